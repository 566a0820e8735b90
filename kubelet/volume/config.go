package volume

import (
	"errors"
	"fmt"
	"path/filepath"

	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/clock"
)

// Config is what a Manager needs.
type Config struct {
	// RootDir is the kubelet root directory, usually /var/lib/kubelet. Pod
	// volumes live in RootDir/pods/<uid>/volumes/<plugin>/<name>.
	RootDir string
	// Client reads configMaps and secrets and requests service account
	// tokens with the node's credentials; the NodeRestriction admission
	// plugin limits it to what the node's own pods reference.
	Client kubernetes.Interface
	// NodeName is the name of this node's Node object, whose allocatable
	// resources bound memory-backed emptyDirs and resourceFieldRefs without
	// a container limit.
	NodeName string
	// Mounter mounts and unmounts the tmpfs file systems behind
	// memory-backed volumes.
	Mounter Mounter
	// Clock names atomic writer versions and times token renewal.
	Clock clock.Clock
	// CSI publishes CSI volumes: PersistentVolumes with a csi source and
	// CSI inline volumes. Nil refuses them.
	CSI CSI
}

// Validate reports every missing or malformed field.
func (c *Config) Validate() error {
	var errs []error
	if c.RootDir == "" {
		errs = append(errs, errors.New("missing RootDir"))
	} else if !filepath.IsAbs(c.RootDir) {
		errs = append(errs, fmt.Errorf("relative RootDir %q, want an absolute path", c.RootDir))
	}
	if c.Client == nil {
		errs = append(errs, errors.New("missing Client"))
	}
	if c.NodeName == "" {
		errs = append(errs, errors.New("missing NodeName"))
	}
	if c.Mounter == nil {
		errs = append(errs, errors.New("missing Mounter"))
	}
	if c.Clock == nil {
		errs = append(errs, errors.New("missing Clock"))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("volume config: %w", err)
	}
	return nil
}
