package testbed

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
)

const (
	// DefaultName names the bed the CLI brings up.
	DefaultName = "berth"
	// DefaultRoot holds one run folder per bed.
	DefaultRoot = "/var/tmp/berth-testbed"
	// ControlPlaneHost is the host name of the control plane.
	ControlPlaneHost = "cp"
	// lanHost names the namespace that holds the LAN bridge.
	lanHost = "lan"
	// maxNodes bounds the node count: node addresses are .11 to .11+maxNodes-1.
	maxNodes = 16
)

// The LAN every host of a bed sits on. Each bed has a LAN of its own in its
// own namespaces, so concurrent beds may reuse the same addresses.
var (
	lanPrefix      = netip.MustParsePrefix("192.168.200.0/24")
	lanGateway     = netip.MustParseAddr("192.168.200.1")
	controlPlaneIP = netip.MustParseAddr("192.168.200.10")
	firstNodeIP    = netip.MustParseAddr("192.168.200.11")
)

// The cluster's networks, as `kubeadm init` would be told them.
const (
	// PodSubnet is the cluster CIDR the controller-manager allocates node
	// pod CIDRs from.
	PodSubnet = "10.244.0.0/16"
	// ServiceSubnet is the service cluster IP range.
	ServiceSubnet = "10.96.0.0/12"
	// KubernetesVersion is the upstream release the bed runs.
	KubernetesVersion = "v1.37.2"
)

var nameRE = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,14}[a-z0-9])?$`)

// Config says what bed to build.
type Config struct {
	// Name identifies the bed: its run folder, namespaces and cgroups carry
	// it, so beds with different names can run side by side.
	Name string
	// Root is the folder that holds the run folders.
	Root string
	// Nodes is how many node hosts to create (node1 ... nodeN).
	Nodes int
	// UpstreamDir holds etcd, kube-apiserver, kube-controller-manager,
	// kube-scheduler, kubeadm and kubectl (see test/tools/build-upstream.sh).
	UpstreamDir string
	// Images are docker-archive tarballs imported into every node's
	// containerd (the k8s.io namespace CRI uses).
	Images []string
	// SandboxImage is the image reference containerd uses for pod sandboxes;
	// it must be one of Images for pods to start without a registry.
	SandboxImage string
	// Owned ties the bed to the process that brings it up: when that process
	// dies without calling Down, the next Up of any bed removes it. The CLI
	// leaves it false so that its bed outlives `testbed up`.
	Owned bool
}

// Validate reports every problem of c at once.
func (c *Config) Validate() error {
	var errs []error
	if !nameRE.MatchString(c.Name) {
		errs = append(errs, fmt.Errorf("name %q: must be 1-16 lowercase letters, digits or '-'", c.Name))
	}
	if !filepath.IsAbs(c.Root) {
		errs = append(errs, fmt.Errorf("root %q: must be an absolute path", c.Root))
	}
	if c.Nodes < 0 || c.Nodes > maxNodes {
		errs = append(errs, fmt.Errorf("nodes %d: must be between 0 and %d", c.Nodes, maxNodes))
	}
	for _, bin := range upstreamBinaries {
		if _, err := os.Stat(filepath.Join(c.UpstreamDir, bin)); err != nil {
			errs = append(errs, fmt.Errorf("upstream binary %s: %w (run `make setup`)", bin, err))
		}
	}
	for _, img := range c.Images {
		if _, err := os.Stat(img); err != nil {
			errs = append(errs, fmt.Errorf("image %s: %w", img, err))
		}
	}
	if c.Nodes > 0 && c.SandboxImage == "" {
		errs = append(errs, errors.New("sandbox image: must be set when the bed has nodes"))
	}
	return errors.Join(errs...)
}

// upstreamBinaries are the programs UpstreamDir must hold.
var upstreamBinaries = []string{"etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubeadm", "kubectl"}

// NodeName returns the host name of the i-th node, counting from 1.
func NodeName(i int) string { return fmt.Sprintf("node%d", i) }

// nodeIP returns the LAN address of the i-th node, counting from 1.
func nodeIP(i int) netip.Addr {
	ip := firstNodeIP
	for range i - 1 {
		ip = ip.Next()
	}
	return ip
}
