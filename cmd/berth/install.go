package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os/exec"
	"strings"

	"github.com/berthnode/berth/systemd"
)

const installSynopsis = `Usage: berth install [--kubelet [--replace-kubelet]] [--root DIR] [--now]

Install berth on this machine: the binary (/usr/local/bin/berth), its systemd
unit (berth.service), and a default configuration (/etc/berth/config.yaml, kept
if present). With --kubelet, install berth as kubeadm's kubelet instead: the
symlink /usr/bin/kubelet -> berth and a drop-in for kubelet.service, so that
kubeadm join starts berth unchanged. --root installs into another tree (an
image being built). --now also runs the systemctl commands it prints.
`

// cmdInstall implements "berth install".
func cmdInstall(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("berth install", flag.ContinueOnError)
	var opts systemd.InstallOptions
	fs.BoolVar(&opts.Kubelet, "kubelet", false, "install berth as kubeadm's kubelet (symlink and kubelet.service drop-in)")
	fs.BoolVar(&opts.ReplaceKubelet, "replace-kubelet", false, "with --kubelet, replace a kubelet binary already at /usr/bin/kubelet")
	root := fs.String("root", "/", "install under `DIR`")
	now := fs.Bool("now", false, "run the systemctl commands (only with --root /)")
	if ok, code := parseFlags(fs, installSynopsis, args, stdout, stderr); !ok {
		return code
	}
	res, err := systemd.Install(*root, opts)
	if err != nil {
		fmt.Fprintf(stderr, "berth install: %v\n", err)
		return exitFailure
	}
	for _, f := range res.Changed {
		fmt.Fprintf(stdout, "installed %s\n", f)
	}
	for _, f := range res.Kept {
		fmt.Fprintf(stdout, "kept %s\n", f)
	}
	for _, c := range res.Commands {
		if !*now || *root != "/" {
			fmt.Fprintf(stdout, "next: %s\n", strings.Join(c, " "))
			continue
		}
		cmd := exec.CommandContext(ctx, c[0], c[1:]...)
		cmd.Stdout, cmd.Stderr = stdout, stderr
		fmt.Fprintf(stdout, "running: %s\n", strings.Join(c, " "))
		if err := cmd.Run(); err != nil {
			fmt.Fprintf(stderr, "berth install: %s: %v\n", strings.Join(c, " "), err)
			return exitFailure
		}
	}
	return exitOK
}
