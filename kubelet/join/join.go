package join

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/client-go/kubernetes"
	nodeutil "k8s.io/component-helpers/node/util"
	"k8s.io/klog/v2"

	"github.com/berthnode/berth/kubelet/atomicfile"
)

// ErrNodeExists means a Ready node of the same name is in the cluster:
// joining would take over its name.
var ErrNodeExists = errors.New("a Ready node of this name is already in the cluster: delete it (kubectl delete node), choose another name, or join with --force")

// Result is what Join did.
type Result struct {
	// Server is the API server URL the node's credentials point at (the
	// one cluster-info names).
	Server string
	// CACertHash is the cluster CA's public key pin.
	CACertHash string
	// ClusterName is the cluster's name.
	ClusterName string
	// NodeName is the node's name.
	NodeName string
	// Rejoined tells that the node already belonged to the cluster under
	// this name: it keeps its identity.
	Rejoined bool
	// Written are the files written, in order.
	Written []string
	// Removed are the files of another cluster or identity that a forced
	// join removed.
	Removed []string
}

// nodeFile is one file join writes.
type nodeFile struct {
	path    string
	data    []byte
	perm    fs.FileMode
	dirPerm fs.FileMode
}

// Join discovers and verifies the cluster at cfg.APIEndpoint and writes
// the files with which berth (or kubelet) joins it as this node: the
// cluster CA, the bootstrap kubeconfig, the KubeletConfiguration and
// kubeadm-flags.env. Nothing is written unless every check passes. The
// node's own identity is obtained later, when berth starts, through TLS
// bootstrap.
func Join(ctx context.Context, cfg Config) (*Result, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("join configuration: %w", err)
	}
	tok, _ := parseToken(cfg.Token)
	pins, _ := parsePins(cfg.CACertHashes)
	hostname, err := nodeutil.GetHostname(cfg.Hostname)
	if err != nil {
		return nil, fmt.Errorf("hostname: %w", err)
	}
	nodeName := cfg.NodeName
	if nodeName == "" {
		nodeName = hostname
		if msgs := validation.IsDNS1123Subdomain(nodeName); len(msgs) > 0 {
			return nil, fmt.Errorf("hostname %q cannot name the node (%s): give a node name", nodeName, strings.Join(msgs, "; "))
		}
	}
	log := klog.FromContext(ctx).WithValues("endpoint", cfg.APIEndpoint, "tokenID", tok.id, "node", nodeName)
	ctx = klog.NewContext(ctx, log)

	info, err := discover(ctx, &cfg, tok, pins)
	if err != nil {
		return nil, err
	}
	prior := inspectNode(cfg.Paths, info.caCerts, nodeName)
	if prior.conflict != nil && !cfg.Force {
		return nil, prior.conflict
	}
	client, err := bootstrapClient(&cfg, info, tok)
	if err != nil {
		return nil, err
	}
	poll := poller{clock: cfg.Clock, timeout: cfg.timeout(), maxDelay: cfg.retryInterval()}
	settings, err := readClusterSettings(ctx, client, poll)
	if err != nil {
		return nil, err
	}
	// The node re-joining under its own name is the Ready node.
	if !cfg.Force && !prior.member {
		if err := checkNodeName(ctx, client, nodeName); err != nil {
			return nil, err
		}
	}
	plan := joinPlan{tok: tok, info: info, settings: settings, prior: prior, nodeName: nodeName, hostname: hostname}
	files, err := plan.files(ctx, &cfg)
	if err != nil {
		return nil, err
	}
	res := &Result{Server: info.server, CACertHash: info.caHash, ClusterName: settings.clusterName(), NodeName: nodeName, Rejoined: prior.member}
	if cfg.Force {
		for _, p := range prior.stale {
			if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return res, fmt.Errorf("remove another cluster's credentials: %w", err)
			}
			log.Info("Removed stale credentials", "path", p)
			res.Removed = append(res.Removed, p)
		}
	}
	for _, f := range files {
		if err := writeFile(f); err != nil {
			return res, err
		}
		res.Written = append(res.Written, f.path)
	}
	log.Info("Joined: the node's files are written", "server", info.server, "cluster", res.ClusterName, "files", res.Written)
	return res, nil
}

// joinPlan is what Join learnt before writing anything.
type joinPlan struct {
	tok      bootstrapToken
	info     *clusterInfo
	settings *clusterSettings
	prior    priorJoin
	// nodeName is the node's name, hostname the machine's.
	nodeName, hostname string
}

// files renders the files to write. config.yaml comes last: berth waits
// for it to start, and then everything else must be there.
func (p *joinPlan) files(ctx context.Context, cfg *Config) ([]nodeFile, error) {
	cri, _ := criEndpoint(cfg.CRISocket)
	extra, _ := cfg.extraArgs()
	_, err := os.Stat(cfg.Paths.SystemdResolvConf)
	node := nodeSettings{criEndpoint: cri, systemdResolved: err == nil}
	kubelet, warning, err := renderKubeletConfig(p.settings, node)
	if err != nil {
		return nil, err
	}
	if warning != "" {
		klog.FromContext(ctx).Info("Warning: the cluster's kubelet configuration has fields berth does not know; they are left out", "detail", warning)
	}
	bootstrap, err := renderBootstrapKubeconfig(p.info, p.settings.clusterName(), p.tok)
	if err != nil {
		return nil, err
	}
	var files []nodeFile
	if !p.prior.keepCA {
		files = append(files, nodeFile{cfg.Paths.CACert, p.info.caPEM, 0o644, 0o755})
	}
	return append(files,
		nodeFile{cfg.Paths.BootstrapKubeconfig, bootstrap, 0o600, 0o755},
		nodeFile{cfg.Paths.KubeadmFlags, renderKubeadmFlags(baseFlags(p.nodeName, p.hostname), extra), 0o644, 0o700},
		nodeFile{cfg.Paths.InstanceConfig, renderInstanceConfig(node), 0o644, 0o700},
		nodeFile{cfg.Paths.KubeletConfig, kubelet, 0o644, 0o700},
	), nil
}

// bootstrapClient returns a client of the discovered API server that
// trusts the verified CA and authenticates with the bootstrap token.
func bootstrapClient(cfg *Config, info *clusterInfo, tok bootstrapToken) (kubernetes.Interface, error) {
	rc := cfg.restConfig(info.server)
	rc.CAData = info.caPEM
	rc.BearerToken = tok.String()
	client, err := kubernetes.NewForConfig(rc)
	if err != nil {
		return nil, fmt.Errorf("bootstrap client: %w", err)
	}
	return client, nil
}

// checkNodeName refuses a name held by a Ready node, as kubeadm does: a
// second machine under that name would disrupt the first.
func checkNodeName(ctx context.Context, client kubernetes.Interface, name string) error {
	node, err := client.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		return nil
	case apierrors.IsForbidden(err):
		klog.FromContext(ctx).Info("Warning: the bootstrap token may not read nodes; not checking that the node name is free", "err", err)
		return nil
	case err != nil:
		return fmt.Errorf("check node %q: %w", name, err)
	}
	for _, c := range node.Status.Conditions {
		if c.Type == v1.NodeReady && c.Status == v1.ConditionTrue {
			return fmt.Errorf("node %q: %w", name, ErrNodeExists)
		}
	}
	return nil
}

// writeFile writes f whole or not at all: a reader never sees half a file.
func writeFile(f nodeFile) error {
	if err := os.MkdirAll(filepath.Dir(f.path), f.dirPerm); err != nil {
		return fmt.Errorf("write %s: %w", f.path, err)
	}
	return atomicfile.Write(f.path, f.data, f.perm)
}
