package imageload

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/containerd/containerd/identifiers"
)

// Defaults of Config.
const (
	// DefaultAddress is where containerd serves its API on a stock node.
	DefaultAddress = "/run/containerd/containerd.sock"
	// DefaultNamespace is the containerd namespace CRI keeps its images in.
	DefaultNamespace = "k8s.io"
)

// Config says which containerd to import into and where.
type Config struct {
	// Address is containerd's API socket, an absolute path with or without
	// a unix:// prefix, for example DefaultAddress.
	Address string
	// Namespace is the containerd namespace images go into; empty means
	// DefaultNamespace, the one CRI serves.
	Namespace string
	// Snapshotter names the snapshotter images are unpacked into; it must
	// be the one CRI is configured with. Empty means containerd's default
	// for the namespace (overlayfs on Linux).
	Snapshotter string
}

// Validate reports the first invalid field of c.
func (c Config) Validate() error {
	if c.Address == "" {
		return errors.New("containerd address is empty")
	}
	path, isUnix := strings.CutPrefix(c.Address, "unix://")
	if !isUnix && strings.Contains(c.Address, "://") {
		return fmt.Errorf("containerd address %q: only unix sockets are supported", c.Address)
	}
	if !filepath.IsAbs(path) {
		return fmt.Errorf("containerd address %q: socket path must be absolute", c.Address)
	}
	if c.Namespace != "" {
		if err := identifiers.Validate(c.Namespace); err != nil {
			return fmt.Errorf("containerd namespace %q: %w", c.Namespace, err)
		}
	}
	return nil
}

// namespace returns the namespace to use.
func (c Config) namespace() string {
	if c.Namespace == "" {
		return DefaultNamespace
	}
	return c.Namespace
}

// socketPath returns the path of a socket address given with or without the
// unix:// scheme (CRI endpoints are usually written with it, containerd's
// client wants the bare path).
func socketPath(address string) string {
	return strings.TrimPrefix(address, "unix://")
}
