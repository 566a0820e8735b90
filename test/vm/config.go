package vm

import (
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"time"

	"k8s.io/utils/clock"
)

// Defaults of Config.
const (
	// DefaultBridge is the bridge the VM's tap joins: the test bed's LAN.
	DefaultBridge = "br0"
	// DefaultMemoryMiB is the VM's memory.
	DefaultMemoryMiB = 2048
	// DefaultCPUs is the VM's CPU count.
	DefaultCPUs = 2
	// DefaultBootTimeout bounds a boot (and a reboot) until the agent
	// answers. Under TCG a boot takes 30 to 90 s.
	DefaultBootTimeout = 5 * time.Minute
)

// nameRE keeps names short enough for the tap's name ("vm-" + name fits
// the kernel's 15 characters) and valid as a host name.
var nameRE = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,10}[a-z0-9])?$`)

// Config says what VM to boot.
type Config struct {
	// Name is the VM's host name; the tap device is "vm-" + Name.
	Name string
	// NetNS is the path of the network namespace (e.g. a pinned namespace
	// file or /proc/PID/ns/net) that holds Bridge. The tap is created and
	// qemu runs there; nothing of the VM touches any other namespace.
	NetNS string
	// Bridge is the bridge in NetNS the VM's NIC is plugged into.
	Bridge string
	// Address is the VM's static address and prefix on the bridge's LAN.
	Address netip.Prefix
	// Gateway is the VM's default gateway; invalid (zero) for none.
	Gateway netip.Addr
	// DNS are the VM's name servers; empty means Gateway, if set. Keep
	// them inside the bed's namespaces.
	DNS []netip.Addr
	// Files are put into the VM's file system on its first boot, before
	// systemd starts: units among them are loaded, enabled if they carry
	// their own wants links, and network config is in place.
	Files []File
	// WorkDir holds the VM's per-boot files: the disk overlay, the seed,
	// the agent's socket. Keep it short: socket paths are limited to 107
	// bytes.
	WorkDir string
	// LogDir receives NAME.serial.log (the console) and NAME.qemu.log.
	LogDir string
	// AgentPath is the guest agent binary (see BuildAgent); empty means
	// Boot builds it.
	AgentPath string
	// MemoryMiB is the VM's memory; zero means DefaultMemoryMiB.
	MemoryMiB int
	// CPUs is the VM's CPU count; zero means DefaultCPUs.
	CPUs int
	// BootTimeout bounds a boot or reboot until the agent answers; zero
	// means DefaultBootTimeout.
	BootTimeout time.Duration
	// Clock paces waits and progress messages; nil means the real clock.
	Clock clock.WithTicker
}

// File is a file put into the VM on its first boot.
type File struct {
	// Path is the file's absolute path in the guest.
	Path string
	// Source is the host file whose content to copy; empty means Data.
	Source string
	// Data is the file's content when Source is empty.
	Data []byte
	// Mode holds the permission bits; zero means 0644, or Source's.
	Mode fs.FileMode
}

// withDefaults returns c with its zero fields set to their defaults.
func (c Config) withDefaults() Config {
	if c.Bridge == "" {
		c.Bridge = DefaultBridge
	}
	if c.MemoryMiB == 0 {
		c.MemoryMiB = DefaultMemoryMiB
	}
	if c.CPUs == 0 {
		c.CPUs = DefaultCPUs
	}
	if c.BootTimeout == 0 {
		c.BootTimeout = DefaultBootTimeout
	}
	if len(c.DNS) == 0 && c.Gateway.IsValid() {
		c.DNS = []netip.Addr{c.Gateway}
	}
	if c.Clock == nil {
		c.Clock = clock.RealClock{}
	}
	return c
}

// Validate reports every problem of c at once.
func (c *Config) Validate() error {
	var errs []error
	if !nameRE.MatchString(c.Name) {
		errs = append(errs, fmt.Errorf("name %q: must be 1-12 lowercase letters, digits or '-'", c.Name))
	}
	if !filepath.IsAbs(c.NetNS) {
		errs = append(errs, fmt.Errorf("network namespace %q: must be an absolute path", c.NetNS))
	} else if _, err := os.Stat(c.NetNS); err != nil {
		errs = append(errs, fmt.Errorf("network namespace: %w", err))
	}
	if !c.Address.IsValid() || !c.Address.Addr().Is4() || c.Address.Bits() == 32 {
		errs = append(errs, fmt.Errorf("address %q: must be an IPv4 address with its LAN's prefix, e.g. 192.168.200.50/24", c.Address))
	}
	if c.Gateway.IsValid() && (!c.Address.IsValid() || !c.Address.Masked().Contains(c.Gateway)) {
		errs = append(errs, fmt.Errorf("gateway %s: must be on the LAN of %s", c.Gateway, c.Address))
	}
	for _, d := range []struct{ what, path string }{{"work dir", c.WorkDir}, {"log dir", c.LogDir}} {
		if !filepath.IsAbs(d.path) {
			errs = append(errs, fmt.Errorf("%s %q: must be an absolute path", d.what, d.path))
		}
	}
	// The agent's socket is WorkDir/vm-NAME-RANDOM/agent.sock.
	if len(c.WorkDir)+len(c.Name)+32 > 107 {
		errs = append(errs, fmt.Errorf("work dir %q: too long for the agent's socket path (107 bytes at most)", c.WorkDir))
	}
	for _, f := range c.Files {
		if !filepath.IsAbs(f.Path) || filepath.Clean(f.Path) == "/" {
			errs = append(errs, fmt.Errorf("file %q: must be an absolute path", f.Path))
		}
		if f.Source != "" && f.Data != nil {
			errs = append(errs, fmt.Errorf("file %s: has both a source and data", f.Path))
		}
	}
	if c.MemoryMiB < 0 || c.CPUs < 0 || c.BootTimeout < 0 {
		errs = append(errs, errors.New("memory, CPUs and boot timeout: must not be negative"))
	}
	return errors.Join(errs...)
}
