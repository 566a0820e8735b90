package podnet

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	coreinformers "k8s.io/client-go/informers/core/v1"
	"k8s.io/utils/clock"

	"github.com/berthnode/berth/netrules/link"
)

// Defaults for the Config fields whose zero value means "the default".
const (
	// DefaultConfDir is where containerd's CRI plugin looks for CNI configs.
	DefaultConfDir = "/etc/cni/net.d"
	// DefaultConfName sorts before the names CNI add-ons usually pick, so
	// that containerd (which loads the first file) uses berth's.
	DefaultConfName = "10-berth.conflist"
	// DefaultBridgeName is the bridge the pods' veths are attached to.
	DefaultBridgeName = "cni0"
	// DefaultResyncPeriod is how often a good sync is repeated, to repair
	// routes changed behind berth's back.
	DefaultResyncPeriod = time.Minute
)

// NetworkName is the CNI network name in the config list.
const NetworkName = "berth"

// maxIfNameLen is the longest Linux interface name (IFNAMSIZ - 1).
const maxIfNameLen = 15

// Config configures the pod network Controller.
type Config struct {
	// NodeName is this node's Node object name.
	NodeName string
	// Nodes is a v1 Node informer over all Nodes (not only this one), from
	// the caller's shared informer factory. New registers it, so call New
	// before starting the factory; the caller starts and stops the factory.
	Nodes coreinformers.NodeInformer
	// ConfDir is the CNI config directory; empty means DefaultConfDir.
	ConfDir string
	// ConfName is the config list's file name in ConfDir, ending in
	// ".conflist"; empty means DefaultConfName.
	ConfName string
	// BridgeName is the Linux bridge the pods are attached to; empty means
	// DefaultBridgeName.
	BridgeName string
	// Routes installs the routes to other Nodes' podCIDRs.
	Routes link.Routes
	// MTU of the bridge and the pods' interfaces; 0 leaves it to the bridge
	// plugin (the default of the kernel, 1500 on Ethernet).
	MTU int
	// HairpinMode lets a packet leave a bridge port through the same port.
	// berth's configuration sets it: a pod that reaches its own Service is
	// sent back to itself by the proxy's DNAT.
	HairpinMode bool
	// ResyncPeriod is how often a good sync is repeated; 0 means
	// DefaultResyncPeriod.
	ResyncPeriod time.Duration
	// Clock drives retries and resyncs; nil means the real clock.
	Clock clock.WithTicker
}

// Validate reports what is wrong with c, with its defaults applied.
func (c *Config) Validate() error {
	d := c.withDefaults()
	var errs []error
	if d.NodeName == "" {
		errs = append(errs, errors.New("NodeName is empty"))
	}
	if d.Nodes == nil {
		errs = append(errs, errors.New("nodes informer is nil"))
	}
	if d.Routes == nil {
		errs = append(errs, errors.New("routes is nil"))
	}
	if !filepath.IsAbs(d.ConfDir) {
		errs = append(errs, fmt.Errorf("ConfDir %q is not an absolute path", d.ConfDir))
	}
	if d.ConfName != filepath.Base(d.ConfName) || !strings.HasSuffix(d.ConfName, ".conflist") || d.ConfName == ".conflist" {
		errs = append(errs, fmt.Errorf("ConfName %q is not a file name ending in .conflist", d.ConfName))
	}
	if err := validateIfName(d.BridgeName); err != nil {
		errs = append(errs, fmt.Errorf("BridgeName: %w", err))
	}
	if d.MTU != 0 && (d.MTU < 68 || d.MTU > 65535) {
		errs = append(errs, fmt.Errorf("MTU %d is outside 68..65535", d.MTU))
	}
	if d.ResyncPeriod < 0 {
		errs = append(errs, fmt.Errorf("ResyncPeriod %s is negative", d.ResyncPeriod))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("invalid pod network config: %w", err)
	}
	return nil
}

// withDefaults returns a copy of c with the defaults of its zero fields.
func (c *Config) withDefaults() Config {
	d := *c
	if d.ConfDir == "" {
		d.ConfDir = DefaultConfDir
	}
	if d.ConfName == "" {
		d.ConfName = DefaultConfName
	}
	if d.BridgeName == "" {
		d.BridgeName = DefaultBridgeName
	}
	if d.ResyncPeriod == 0 {
		d.ResyncPeriod = DefaultResyncPeriod
	}
	if d.Clock == nil {
		d.Clock = clock.RealClock{}
	}
	return d
}

// validateIfName checks a name the kernel accepts for a network interface.
func validateIfName(name string) error {
	switch {
	case name == "" || name == "." || name == "..":
		return fmt.Errorf("%q is not an interface name", name)
	case len(name) > maxIfNameLen:
		return fmt.Errorf("%q is longer than %d bytes", name, maxIfNameLen)
	case strings.ContainsAny(name, "/: \t\n"):
		return fmt.Errorf("%q contains '/', ':' or white space", name)
	}
	return nil
}
