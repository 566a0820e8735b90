package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"slices"

	"github.com/berthnode/berth/cmd/berth/config"
	kubeletconfig "github.com/berthnode/berth/kubelet/config"
	"github.com/berthnode/berth/systemd"
)

// cmdKubelet runs berth the way kubeadm's systemd drop-in runs kubelet:
// `kubelet --bootstrap-kubeconfig=... --kubeconfig=... --config=...
// $KUBELET_KUBEADM_ARGS $KUBELET_EXTRA_ARGS`, as the `kubelet` binary (a
// symlink to berth) or as `berth kubelet`. Unknown kubelet flags are warned
// about, not fatal. `kubelet --version` answers as upstream kubelet does,
// which kubeadm's preflight checks.
func cmdKubelet(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if slices.Contains(args, "--version") || slices.Contains(args, "--version=true") || slices.Contains(args, "--version=raw") {
		fmt.Fprintf(stdout, "Kubernetes %s\n", kubernetesVersion)
		return exitOK
	}
	if slices.Contains(args, "-h") || slices.Contains(args, "--help") {
		fmt.Fprint(stdout, kubeletSynopsis)
		return exitOK
	}
	// Reject what cannot work before waiting on kubeadm's files.
	flags, _, err := kubeletconfig.ParseFlags(args)
	if err != nil {
		return usageError(stderr, "kubelet", err.Error())
	}
	if err := setLogVerbosity(flags.Verbosity, flags.VModule); err != nil {
		return usageError(stderr, "kubelet", err.Error())
	}
	cfg, err := kubeletModeConfig(systemd.ConfigPath)
	if err != nil {
		fmt.Fprintf(stderr, "kubelet: %v\n", err)
		return exitUsage
	}
	if err := runAgent(ctx, cfg, func(ctx context.Context) error { return runKubelet(ctx, cfg, args) }); err != nil {
		fmt.Fprintf(stderr, "berth: %v\n", err)
		return exitFailure
	}
	return exitOK
}

// kubeletModeConfig is berth's configuration when it runs as kubelet: the
// file `berth install` writes (for berth's own settings, such as the proxy
// mode), if there is one, else the defaults; kubelet's flags and files
// still decide the rest.
func kubeletModeConfig(path string) (*config.Config, error) {
	if _, err := os.Stat(path); err == nil {
		return config.Load(path)
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	cfg := config.Default()
	name, err := config.HostnameNodeName()
	if err != nil {
		return nil, err
	}
	cfg.NodeName = name
	return cfg, nil
}

const kubeletSynopsis = `Usage: kubelet [kubelet flags]
       berth kubelet [kubelet flags]

Run berth as kubeadm's systemd unit runs kubelet. The flags kubeadm passes
(--bootstrap-kubeconfig, --kubeconfig, --config, --container-runtime-endpoint,
--pod-infra-container-image, --node-ip, --hostname-override, --node-labels,
--register-with-taints, --root-dir, --cert-dir, ...) are honoured; other kubelet
flags are accepted with a warning. --version prints the Kubernetes release berth
is compatible with. berth's own settings (such as proxy.mode: ipvs) come from
/etc/berth/config.yaml when it exists.
`
