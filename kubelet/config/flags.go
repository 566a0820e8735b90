package config

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"

	v1 "k8s.io/api/core/v1"
)

// Flags are the kubelet command-line flags berth honours: those kubeadm's
// systemd drop-in and kubeadm-flags.env pass, and the common deprecated ones
// that set a KubeletConfiguration field.
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
	// RegisterWithTaints is --register-with-taints.
	RegisterWithTaints []v1.Taint
	// Overrides are flags that set KubeletConfiguration fields, applied over
	// the file by Apply.
	Overrides map[string]string
	// Verbosity and VModule are --v and --vmodule, the log verbosity ("" when
	// not given).
	Verbosity, VModule string
}

// configFlags are the deprecated kubelet flags that set a
// KubeletConfiguration field; Apply writes them over the file's values, as
// kubelet does.
var configFlags = map[string]func(*KubeletConfiguration, string) error{
	"container-runtime-endpoint": func(c *KubeletConfiguration, v string) error { c.ContainerRuntimeEndpoint = v; return nil },
	"cgroup-driver":              func(c *KubeletConfiguration, v string) error { c.CgroupDriver = v; return nil },
	"cgroup-root":                func(c *KubeletConfiguration, v string) error { c.CgroupRoot = v; return nil },
	"cluster-domain":             func(c *KubeletConfiguration, v string) error { c.ClusterDomain = v; return nil },
	"cluster-dns":                func(c *KubeletConfiguration, v string) error { c.ClusterDNS = splitList(v); return nil },
	"resolv-conf":                func(c *KubeletConfiguration, v string) error { c.ResolverConfig = &v; return nil },
	"pod-manifest-path":          func(c *KubeletConfiguration, v string) error { c.StaticPodPath = v; return nil },
	"max-pods": func(c *KubeletConfiguration, v string) error {
		n, err := strconv.ParseInt(v, 10, 32)
		c.MaxPods = int32(n)
		return err
	},
	"port": func(c *KubeletConfiguration, v string) error {
		n, err := strconv.ParseInt(v, 10, 32)
		c.Port = int32(n)
		return err
	},
	"address": func(c *KubeletConfiguration, v string) error { c.Address = v; return nil },
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
		"register-with-taints", "v", "vmodule", "log-dir", "log-file", "runtime-request-timeout",
		"image-service-endpoint":
		return true
	}
	_, ok := configFlags[name]
	return ok
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
	case "register-with-taints":
		taints, err := parseTaints(value)
		f.RegisterWithTaints = taints
		return err
	case "v":
		if _, err := strconv.ParseUint(value, 10, 31); err != nil {
			return errors.New("want a verbosity level (0, 1, 2, ...)")
		}
		f.Verbosity = value
	case "vmodule":
		f.VModule = value
	default:
		if _, ok := configFlags[name]; ok {
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

// Apply writes the flags that set KubeletConfiguration fields over c.
func (f *Flags) Apply(c *KubeletConfiguration) error {
	for name, value := range f.Overrides {
		if err := configFlags[name](c, value); err != nil {
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
