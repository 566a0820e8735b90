package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"k8s.io/utils/clock"

	"github.com/berthnode/berth/cmd/berth/config"
	"github.com/berthnode/berth/kubelet/join"
)

const joinSynopsis = `Usage: berth join API_ENDPOINT --token TOKEN --discovery-token-ca-cert-hash sha256:HASH [flags]

Join this machine to a kubeadm cluster without kubeadm, with the checks
kubeadm join makes: the cluster-info ConfigMap must be signed with the token,
and its CA must match one of the given hashes. Writes the bootstrap
kubeconfig, the CA, /var/lib/kubelet/config.yaml (the cluster's kubelet-config)
and kubeadm-flags.env; then start berth (systemctl start berth), which does the
TLS bootstrap and registers the node.
`

// stringList is a repeatable flag.
type stringList []string

func (l *stringList) String() string { return strings.Join(*l, ",") }

func (l *stringList) Set(v string) error {
	*l = append(*l, v)
	return nil
}

// cmdJoin implements "berth join".
func cmdJoin(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("berth join", flag.ContinueOnError)
	cfg := join.Config{Paths: join.DefaultPaths("/"), Clock: clock.RealClock{}}
	var hashes, extra stringList
	fs.StringVar(&cfg.Token, "token", "", "the bootstrap `TOKEN` (abcdef.0123456789abcdef)")
	fs.Var(&hashes, "discovery-token-ca-cert-hash", "`sha256:HASH` of the cluster CA's public key (repeatable)")
	fs.BoolVar(&cfg.UnsafeSkipCAVerification, "discovery-token-unsafe-skip-ca-verification", false, "join without pinning the CA (unsafe)")
	fs.StringVar(&cfg.NodeName, "node-name", "", "the node's `NAME` (default: the hostname)")
	fs.StringVar(&cfg.NodeIP, "node-ip", "", "the node's `IP` (default: the address of the default route)")
	fs.StringVar(&cfg.CRISocket, "cri-socket", config.DefaultContainerRuntimeEndpoint, "the container runtime's `ENDPOINT`")
	fs.Var(&extra, "kubelet-extra-arg", "`NAME=VALUE` kubelet flag for kubeadm-flags.env (repeatable)")
	fs.BoolVar(&cfg.Force, "force", false, "replace the credentials of another cluster or node")
	fs.DurationVar(&cfg.Timeout, "timeout", 5*time.Minute, "how long to wait for the cluster")
	endpoint, rest := "", args
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		endpoint, rest = args[0], args[1:]
	}
	if ok, code := parseFlags(fs, joinSynopsis, rest, stdout, stderr); !ok {
		return code
	}
	if endpoint == "" {
		return usageError(stderr, fs.Name(), "the API_ENDPOINT (host:port) is required")
	}
	cfg.APIEndpoint, cfg.CACertHashes, cfg.KubeletExtraArgs = endpoint, hashes, extra
	if err := cfg.Validate(); err != nil {
		return usageError(stderr, fs.Name(), err.Error())
	}
	res, err := join.Join(ctx, cfg)
	if err != nil {
		fmt.Fprintf(stderr, "berth join: %v\n", err)
		if errors.Is(err, join.ErrNoPinMatch) {
			fmt.Fprintln(stderr, "berth join: compare the hash above with `kubeadm token create --print-join-command` on a control-plane node")
		}
		return exitFailure
	}
	fmt.Fprintf(stdout, "joined cluster %s at %s as node %s (CA %s)\n", res.ClusterName, res.Server, res.NodeName, res.CACertHash)
	for _, f := range res.Written {
		fmt.Fprintf(stdout, "wrote %s\n", f)
	}
	fmt.Fprintln(stdout, "next: systemctl start berth (or kubelet, with berth installed as kubelet)")
	return exitOK
}
