package vm

import (
	"errors"
	"fmt"
	"os"
	"runtime"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// inNetNS calls fn on a thread that has entered the network namespace at
// nsPath. The thread is never unlocked, so it exits with its goroutine
// rather than go back to the scheduler in the wrong namespace.
func inNetNS(nsPath string, fn func() error) error {
	target, err := os.Open(nsPath)
	if err != nil {
		return fmt.Errorf("open network namespace: %w", err)
	}
	defer target.Close()
	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
			done <- fmt.Errorf("enter network namespace %s: %w", nsPath, err)
			return
		}
		done <- fn()
	}()
	return <-done
}

// createTap creates the persistent tap device name in the network
// namespace at nsPath (a tap lives where /dev/net/tun was opened, hence the
// thread in that namespace), plugs it into bridge and brings it up. qemu
// attaches to it by name.
func createTap(nsPath, name, bridge string) error {
	err := inNetNS(nsPath, func() error {
		br, err := netlink.LinkByName(bridge)
		if err != nil {
			return fmt.Errorf("find bridge %s: %w", bridge, err)
		}
		tap := &netlink.Tuntap{
			LinkAttrs: netlink.LinkAttrs{Name: name},
			Mode:      netlink.TUNTAP_MODE_TAP,
			// What qemu asks for when it opens the tap; one queue.
			Flags: netlink.TUNTAP_NO_PI | netlink.TUNTAP_VNET_HDR,
		}
		if err := netlink.LinkAdd(tap); err != nil {
			return fmt.Errorf("add tap %s: %w", name, err)
		}
		link, err := netlink.LinkByName(name)
		if err == nil {
			err = netlink.LinkSetMaster(link, br)
		}
		if err == nil {
			err = netlink.LinkSetUp(link)
		}
		if err != nil {
			_ = netlink.LinkDel(tap)
			return fmt.Errorf("plug tap %s into %s: %w", name, bridge, err)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("tap: %w", err)
	}
	return nil
}

// deleteTap removes the tap device name from the network namespace at
// nsPath. A tap or namespace that is gone already is not an error.
func deleteTap(nsPath, name string) error {
	if _, err := os.Stat(nsPath); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	err := inNetNS(nsPath, func() error {
		link, err := netlink.LinkByName(name)
		var notFound netlink.LinkNotFoundError
		if errors.As(err, &notFound) {
			return nil
		}
		if err != nil {
			return err
		}
		return netlink.LinkDel(link)
	})
	if errors.Is(err, unix.EINVAL) {
		// Not a namespace any more (an unmounted pin): the tap went
		// with it.
		return nil
	}
	if err != nil {
		return fmt.Errorf("remove tap %s: %w", name, err)
	}
	return nil
}
