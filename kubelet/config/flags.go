package config

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"maps"
	"os"
	"slices"
	"strconv"
	"strings"

	v1 "k8s.io/api/core/v1"
)

// Flags are the kubelet command-line flags berth honours: those kubeadm's
// systemd drop-in and kubeadm-flags.env pass, and the deprecated ones that
// set a KubeletConfiguration field berth reads (fieldFlags).
type Flags struct {
	// BootstrapKubeconfig is --bootstrap-kubeconfig.
	BootstrapKubeconfig string
	// Kubeconfig is --kubeconfig.
	Kubeconfig string
	// Config is --config, the KubeletConfiguration file.
	Config string
	// RootDir is --root-dir.
	RootDir string
	// CertDir is --cert-dir (default RootDir/pki).
	CertDir string
	// PodInfraContainerImage is --pod-infra-container-image: the sandbox
	// image berth makes sure the runtime has.
	PodInfraContainerImage string
	// NodeIPs is --node-ip (comma-separated, at most one per family).
	NodeIPs []string
	// HostnameOverride is --hostname-override.
	HostnameOverride string
	// NodeLabels is --node-labels.
	NodeLabels map[string]string
	// Overrides are the flags given that set KubeletConfiguration fields
	// (fieldFlags), by name: Compose applies them over the file.
	Overrides map[string]string
	// Verbosity and VModule are --v and --vmodule, the log verbosity ("" when
	// not given).
	Verbosity, VModule string
}

// ignoredFlags are kubelet flags that have no meaning for berth; they are
// accepted silently so that a kubeadm drop-in written for kubelet works.
var ignoredFlags = map[string]bool{
	"logtostderr": true, "alsologtostderr": true, "log-dir": true, "log-file": true,
	"fail-swap-on": true, "runtime-request-timeout": true, "image-service-endpoint": true,
}

// ParseFlags parses kubelet flags (--name=value or --name value; booleans
// as --name). Unknown flags are returned as warnings, not errors: an
// operator's KUBELET_EXTRA_ARGS for upstream kubelet must not stop the node.
func ParseFlags(args []string) (Flags, []string, error) {
	f := Flags{NodeLabels: map[string]string{}, Overrides: map[string]string{}}
	var warnings []string
	for i := 0; i < len(args); i++ {
		arg := args[i]
		name, value, hasValue, ok := splitFlag(arg)
		if !ok {
			return f, warnings, fmt.Errorf("unexpected argument %q: kubelet takes only flags", arg)
		}
		if !hasValue && takesValue(name) {
			if i+1 >= len(args) {
				return f, warnings, fmt.Errorf("flag --%s needs a value", name)
			}
			i++
			value = args[i]
		}
		if err := f.set(name, value); err != nil {
			if err == errUnknownFlag {
				warnings = append(warnings, fmt.Sprintf("ignoring unknown kubelet flag %s", arg))
				continue
			}
			return f, warnings, fmt.Errorf("flag --%s=%s: %w", name, value, err)
		}
	}
	return f, warnings, nil
}

// splitFlag splits "--name=value" or "--name".
func splitFlag(arg string) (name, value string, hasValue, ok bool) {
	trimmed := strings.TrimLeft(arg, "-")
	if trimmed == arg || trimmed == "" || len(arg)-len(trimmed) > 2 {
		return "", "", false, false
	}
	name, value, hasValue = strings.Cut(trimmed, "=")
	return name, value, hasValue, true
}

// takesValue tells whether --name without "=" takes the next argument.
// Unknown flags are assumed boolean, so a mistake costs at most a warning
// about the next argument.
func takesValue(name string) bool {
	switch name {
	case "bootstrap-kubeconfig", "kubeconfig", "config", "root-dir", "cert-dir",
		"pod-infra-container-image", "node-ip", "hostname-override", "node-labels",
		"v", "vmodule", "log-dir", "log-file", "runtime-request-timeout",
		"image-service-endpoint":
		return true
	}
	ff, ok := fieldFlags[name]
	return ok && !ff.boolean
}

type flagError string

func (e flagError) Error() string { return string(e) }

const errUnknownFlag = flagError("unknown flag")

func (f *Flags) set(name, value string) error {
	switch name {
	case "bootstrap-kubeconfig":
		f.BootstrapKubeconfig = value
	case "kubeconfig":
		f.Kubeconfig = value
	case "config":
		f.Config = value
	case "root-dir":
		f.RootDir = value
	case "cert-dir":
		f.CertDir = value
	case "pod-infra-container-image":
		f.PodInfraContainerImage = value
	case "node-ip":
		f.NodeIPs = splitList(value)
	case "hostname-override":
		f.HostnameOverride = value
	case "node-labels":
		return parseLabels(value, f.NodeLabels)
	case "v":
		if _, err := strconv.ParseUint(value, 10, 31); err != nil {
			return errors.New("want a verbosity level (0, 1, 2, ...)")
		}
		f.Verbosity = value
	case "vmodule":
		f.VModule = value
	default:
		if ff, ok := fieldFlags[name]; ok {
			// Checked now, so that a bad value stops berth before it
			// waits for kubeadm's files.
			var scratch KubeletConfiguration
			if err := ff.set(&scratch, value); err != nil {
				return err
			}
			f.Overrides[name] = value
			return nil
		}
		if ignoredFlags[name] {
			return nil
		}
		return errUnknownFlag
	}
	return nil
}

// Apply writes the flags given that set KubeletConfiguration fields over
// c, in name order (each sets a field of its own).
func (f *Flags) Apply(c *KubeletConfiguration) error {
	for _, name := range slices.Sorted(maps.Keys(f.Overrides)) {
		value := f.Overrides[name]
		if err := fieldFlags[name].set(c, value); err != nil {
			return fmt.Errorf("flag --%s=%s: %w", name, value, err)
		}
	}
	return nil
}

func splitList(v string) []string {
	var out []string
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

// parseLabels parses "k=v,k2=v2" into labels.
func parseLabels(v string, labels map[string]string) error {
	for _, kv := range splitList(v) {
		k, val, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return fmt.Errorf("label %q: want key=value", kv)
		}
		labels[k] = val
	}
	return nil
}

// parseTaints parses "key=value:Effect,key:Effect".
func parseTaints(v string) ([]v1.Taint, error) {
	var taints []v1.Taint
	for _, spec := range splitList(v) {
		kv, effect, ok := strings.Cut(spec, ":")
		if !ok {
			return nil, fmt.Errorf("taint %q: want key[=value]:Effect", spec)
		}
		switch v1.TaintEffect(effect) {
		case v1.TaintEffectNoSchedule, v1.TaintEffectPreferNoSchedule, v1.TaintEffectNoExecute:
		default:
			return nil, fmt.Errorf("taint %q: unknown effect %q", spec, effect)
		}
		key, value, _ := strings.Cut(kv, "=")
		taints = append(taints, v1.Taint{Key: key, Value: value, Effect: v1.TaintEffect(effect)})
	}
	return taints, nil
}

// ReadKubeadmFlags returns the arguments kubeadm join recorded in the
// environment file at path (KUBELET_KUBEADM_ARGS="..."). A missing file is
// not an error: not every node was joined with kubeadm.
func ReadKubeadmFlags(path string) ([]string, error) {
	data, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read kubeadm flags: %w", err)
	}
	args, err := parseEnvFile(data, "KUBELET_KUBEADM_ARGS")
	if err != nil {
		return nil, fmt.Errorf("kubeadm flags %s: %w", path, err)
	}
	return args, nil
}

// parseEnvFile returns the words of variable key in a systemd
// EnvironmentFile (KEY="a b" or KEY=a; # comments).
func parseEnvFile(data []byte, key string) ([]string, error) {
	s := bufio.NewScanner(bytes.NewReader(data))
	for s.Scan() {
		line := strings.TrimSpace(s.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			return nil, fmt.Errorf("line %q: want KEY=VALUE", line)
		}
		if strings.TrimSpace(k) != key {
			continue
		}
		v = strings.TrimSpace(v)
		if len(v) >= 2 && (v[0] == '"' || v[0] == '\'') && v[len(v)-1] == v[0] {
			v = v[1 : len(v)-1]
		}
		return strings.Fields(v), nil
	}
	return nil, s.Err()
}
