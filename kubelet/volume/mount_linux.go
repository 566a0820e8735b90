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
