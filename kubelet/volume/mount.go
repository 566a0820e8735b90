package volume

import "errors"

// ErrNotMounted is wrapped by Mounter.Unmount errors for a directory that
// is not a mount point.
var ErrNotMounted = errors.New("not a mount point")

// MountPoint is one mount as the kernel lists it.
type MountPoint struct {
	// Path is the mount point, with symlinks resolved.
	Path string
	// FSType is the file system type, such as "tmpfs".
	FSType string
}

// Mounter is the part of mount(2) and umount(2) that volumes need. The
// system implementation is NewSystemMounter; package
// kubelet/volume/testing has a fake that keeps state.
type Mounter interface {
	// MountTmpfs mounts a new tmpfs on dir, an existing directory. options
	// are tmpfs mount options such as "size=67108864".
	MountTmpfs(dir string, options []string) error
	// Bind mounts source, an existing directory, on dir, an existing
	// directory, read-only when readOnly is set. It is how a local
	// PersistentVolume reaches the pod's volume directory.
	Bind(source, dir string, readOnly bool) error
	// Unmount unmounts the mount on dir, detaching it lazily when it is
	// busy. An error wrapping ErrNotMounted means dir is not a mount point.
	Unmount(dir string) error
	// List returns the mounts on dir and below it in mount order, parents
	// before the mounts on top of them. dir has its symlinks resolved.
	List(dir string) ([]MountPoint, error)
	// MountedAt returns the topmost mount on dir itself, if there is one
	// (a mount below dir does not count). It is what a pod's start asks
	// for each volume; List, which reads every mount of the node, is
	// for teardown.
	MountedAt(dir string) (MountPoint, bool, error)
}
