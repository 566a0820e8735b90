package volume

import (
	"errors"
	"fmt"
	"strings"

	"github.com/moby/sys/mountinfo"
	"golang.org/x/sys/unix"
)

// systemMounter mounts with the mount(2) and umount2(2) system calls and
// lists mounts from /proc/self/mountinfo.
type systemMounter struct{}

// NewSystemMounter returns the Mounter that changes the mounts of the
// calling process's mount namespace. It needs CAP_SYS_ADMIN.
func NewSystemMounter() Mounter {
	return systemMounter{}
}

// MountTmpfs mounts a tmpfs on dir with mount(2).
func (systemMounter) MountTmpfs(dir string, options []string) error {
	if err := unix.Mount("tmpfs", dir, "tmpfs", 0, strings.Join(options, ",")); err != nil {
		return fmt.Errorf("mount tmpfs on %s: %w", dir, err)
	}
	return nil
}

// Bind bind-mounts source on dir with mount(2). A bind mount takes the
// read-only flag only through a remount, as mount(8) does it.
func (systemMounter) Bind(source, dir string, readOnly bool) error {
	if err := unix.Mount(source, dir, "", unix.MS_BIND, ""); err != nil {
		return fmt.Errorf("bind mount %s on %s: %w", source, dir, err)
	}
	if !readOnly {
		return nil
	}
	if err := unix.Mount("", dir, "", unix.MS_BIND|unix.MS_REMOUNT|unix.MS_RDONLY, ""); err != nil {
		err = fmt.Errorf("remount %s read-only: %w", dir, err)
		if uerr := unix.Unmount(dir, unix.MNT_DETACH|unix.UMOUNT_NOFOLLOW); uerr != nil {
			err = errors.Join(err, fmt.Errorf("unmount %s again: %w", dir, uerr))
		}
		return err
	}
	return nil
}

// Unmount unmounts dir with umount2(2), lazily when busy, never following
// a symlink at dir.
func (systemMounter) Unmount(dir string) error {
	err := unix.Unmount(dir, unix.UMOUNT_NOFOLLOW)
	if errors.Is(err, unix.EBUSY) {
		// Something still uses the mount (a container that has not exited
		// yet, a process with a file open): detach it now, the kernel frees
		// it once the last user is gone.
		err = unix.Unmount(dir, unix.MNT_DETACH|unix.UMOUNT_NOFOLLOW)
	}
	switch {
	case errors.Is(err, unix.EINVAL):
		return fmt.Errorf("unmount %s: %w", dir, ErrNotMounted)
	case err != nil:
		return fmt.Errorf("unmount %s: %w", dir, err)
	}
	return nil
}

// List reads the mounts at and below dir from /proc/self/mountinfo.
func (systemMounter) List(dir string) ([]MountPoint, error) {
	infos, err := mountinfo.GetMounts(mountinfo.PrefixFilter(dir))
	if err != nil {
		return nil, fmt.Errorf("list mounts under %s: %w", dir, err)
	}
	mounts := make([]MountPoint, 0, len(infos))
	for _, info := range infos {
		mounts = append(mounts, MountPoint{Path: info.Mountpoint, FSType: info.FSType})
	}
	return mounts, nil
}

// MountedAt asks the kernel about dir alone: statx(2) tells whether dir is
// the root of a mount and statfs(2) its file system. Reading
// /proc/self/mountinfo instead costs a pass over every mount of the node
// (hundreds with a hundred pods, each container adding a few) under the
// lock the runtime's own mounts wait for. Kernels before 5.8, which do not
// report mount roots, fall back to mountinfo.
func (m systemMounter) MountedAt(dir string) (MountPoint, bool, error) {
	var stx unix.Statx_t
	if err := unix.Statx(unix.AT_FDCWD, dir, unix.AT_SYMLINK_NOFOLLOW|unix.AT_NO_AUTOMOUNT, unix.STATX_TYPE, &stx); err != nil {
		return MountPoint{}, false, fmt.Errorf("stat %s: %w", dir, err)
	}
	if stx.Attributes_mask&unix.STATX_ATTR_MOUNT_ROOT == 0 {
		return m.mountedAtFromList(dir)
	}
	if stx.Attributes&unix.STATX_ATTR_MOUNT_ROOT == 0 {
		return MountPoint{}, false, nil
	}
	var fs unix.Statfs_t
	if err := unix.Statfs(dir, &fs); err != nil {
		return MountPoint{}, false, fmt.Errorf("statfs %s: %w", dir, err)
	}
	return MountPoint{Path: dir, FSType: fsTypeName(fs.Type)}, true, nil
}

// mountedAtFromList finds the topmost mount on dir in mountinfo.
func (m systemMounter) mountedAtFromList(dir string) (MountPoint, bool, error) {
	mounts, err := m.List(dir)
	if err != nil {
		return MountPoint{}, false, err
	}
	for i := len(mounts) - 1; i >= 0; i-- {
		if mounts[i].Path == dir {
			return mounts[i], true, nil
		}
	}
	return MountPoint{}, false, nil
}

// fsTypeName names the file systems berth mounts or meets under its volume
// directories, by statfs magic; others are shown as the number.
func fsTypeName(magic int64) string {
	switch magic {
	case unix.TMPFS_MAGIC:
		return "tmpfs"
	case unix.EXT4_SUPER_MAGIC:
		return "ext4"
	case unix.XFS_SUPER_MAGIC:
		return "xfs"
	case unix.OVERLAYFS_SUPER_MAGIC:
		return "overlay"
	case unix.NFS_SUPER_MAGIC:
		return "nfs"
	}
	return fmt.Sprintf("fs-0x%x", magic)
}
