package vm

import (
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
)

// The seed is a folder the guest sees as the 9p share "seed" (see
// rootfs/etc/initramfs-tools/scripts/init-bottom/berth-vm):
//
//	agent   the guest agent, installed on every boot
//	files/  copied into / on the disk's first boot
//	xfer/   files on their way in (see VM.CopyTo), mounted at guestSeed
const (
	seedAgent = "agent"
	seedFiles = "files"
	seedXfer  = "xfer"
	// guestSeed is where the guest mounts the seed after boot.
	guestSeed = "/mnt/seed"
)

// macFor returns the MAC address of the VM with address ip: locally
// administered, qemu's prefix, then the address's last three bytes, so
// that VMs on one LAN differ and the guest's network config can match it.
func macFor(ip netip.Addr) net.HardwareAddr {
	b := ip.As4()
	return net.HardwareAddr{0x52, 0x54, 0x00, b[1], b[2], b[3]}
}

// networkUnit renders the systemd-networkd config of the VM's NIC.
func networkUnit(mac net.HardwareAddr, addr netip.Prefix, gw netip.Addr, dns []netip.Addr) string {
	var b strings.Builder
	fmt.Fprintf(&b, "[Match]\nMACAddress=%s\n\n[Link]\nRequiredForOnline=yes\n\n[Network]\nAddress=%s\n", mac, addr)
	if gw.IsValid() {
		fmt.Fprintf(&b, "Gateway=%s\n", gw)
	}
	for _, d := range dns {
		fmt.Fprintf(&b, "DNS=%s\n", d)
	}
	b.WriteString("LinkLocalAddressing=no\nIPv6AcceptRA=no\n")
	return b.String()
}

// seedFileSet returns the files every VM gets (host name, hosts, resolver,
// network), followed by the configured ones, which win.
func seedFileSet(cfg Config) []File {
	hosts := fmt.Sprintf("127.0.0.1\tlocalhost\n::1\tlocalhost\n%s\t%s\n", cfg.Address.Addr(), cfg.Name)
	var resolv strings.Builder
	for _, d := range cfg.DNS {
		fmt.Fprintf(&resolv, "nameserver %s\n", d)
	}
	files := []File{
		{Path: "/etc/hostname", Data: []byte(cfg.Name + "\n")},
		{Path: "/etc/hosts", Data: []byte(hosts)},
		{Path: "/etc/resolv.conf", Data: []byte(resolv.String())},
		{Path: "/etc/systemd/network/10-berth-vm.network", Data: []byte(networkUnit(macFor(cfg.Address.Addr()), cfg.Address, cfg.Gateway, cfg.DNS))},
	}
	return append(files, cfg.Files...)
}

// writeSeed fills the seed folder dir.
func writeSeed(dir, agentPath string, files []File) error {
	for _, d := range []string{seedFiles, seedXfer} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			return fmt.Errorf("seed: %w", err)
		}
	}
	if err := copyFile(agentPath, filepath.Join(dir, seedAgent), 0o755); err != nil {
		return fmt.Errorf("seed: agent: %w", err)
	}
	for _, f := range files {
		target := filepath.Join(dir, seedFiles, filepath.Clean(f.Path))
		if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
			return fmt.Errorf("seed: %w", err)
		}
		var err error
		if f.Source != "" {
			err = copyFile(f.Source, target, f.Mode)
		} else {
			err = writeFile(target, f.Data, f.Mode)
		}
		if err != nil {
			return fmt.Errorf("seed: file %s: %w", f.Path, err)
		}
	}
	return nil
}

// writeFile writes data to path with mode (0644 when zero), replacing
// whatever was there.
func writeFile(path string, data []byte, mode fs.FileMode) error {
	if mode == 0 {
		mode = 0o644
	}
	if err := os.WriteFile(path, data, mode); err != nil {
		return err
	}
	// WriteFile keeps the mode of a file that existed, and the umask
	// applies to a new one.
	return os.Chmod(path, mode)
}

// copyFile copies src to dst with mode (src's when zero). It copies rather
// than links: the guest sees the owner and mode the seed has.
func copyFile(src, dst string, mode fs.FileMode) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	st, err := in.Stat()
	if err != nil {
		return err
	}
	if !st.Mode().IsRegular() {
		return fmt.Errorf("%s: not a regular file", src)
	}
	if mode == 0 {
		mode = st.Mode().Perm()
	}
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, mode)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	if err := out.Close(); err != nil {
		return err
	}
	return os.Chmod(dst, mode)
}
