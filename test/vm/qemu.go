package vm

import (
	"net"
	"strconv"
	"strings"

	"github.com/berthnode/berth/test/vm/agent"
)

// qemuBinary is the emulator; Debian's qemu-system-x86 package installs it.
const qemuBinary = "qemu-system-x86_64"

// qemuParams are the inputs of a qemu command line.
type qemuParams struct {
	// name is the VM's name.
	name string
	// kernel, initrd and cmdline boot the guest directly.
	kernel, initrd, cmdline string
	// disk is the qcow2 overlay of the image's disk.
	disk string
	// seedDir is shared with the guest as the 9p tag "seed".
	seedDir string
	// agentSocket is the unix socket qemu listens on for the agent's port.
	agentSocket string
	// serialLog receives the guest's console.
	serialLog string
	// tap is the tap device, which must exist in qemu's namespace.
	tap string
	// mac is the NIC's address.
	mac net.HardwareAddr
	// memoryMiB and cpus size the VM.
	memoryMiB, cpus int
}

// kernelCmdline returns the guest kernel's command line: the disk is the
// root file system, the console is the first serial port, and systemd
// takes the host name from it on every boot.
func kernelCmdline(name string) string {
	return strings.Join([]string{
		"root=/dev/vda", "rw", "console=ttyS0,115200",
		"systemd.hostname=" + name,
		// Emulated CPUs gain nothing from them, and TCG is slow enough.
		"mitigations=off",
	}, " ")
}

// qemuArgs returns the arguments of qemuBinary for p. The machine is
// emulated (TCG: KVM guests hang on the test machines) with qemu's default
// CPU model (fewer features for the guest to load drivers for), no display
// and no default devices; it has a virtio disk, a virtio NIC on the tap, a
// 9p share for the seed, a virtio-serial port for the agent and a virtio
// RNG, so that the guest does not wait for entropy.
func qemuArgs(p qemuParams) []string {
	return []string{
		"-name", p.name,
		"-accel", "tcg",
		"-m", strconv.Itoa(p.memoryMiB),
		"-smp", strconv.Itoa(p.cpus),
		"-nodefaults", "-no-user-config", "-display", "none",
		"-chardev", "file,id=serial0,path=" + optValue(p.serialLog),
		"-serial", "chardev:serial0",
		"-kernel", p.kernel,
		"-initrd", p.initrd,
		"-append", p.cmdline,
		// cache=unsafe: the overlay is thrown away with the VM, so
		// flushes buy nothing.
		"-drive", "file=" + optValue(p.disk) + ",if=virtio,format=qcow2,cache=unsafe",
		"-netdev", "tap,id=net0,ifname=" + p.tap + ",script=no,downscript=no",
		"-device", "virtio-net-pci,netdev=net0,mac=" + p.mac.String(),
		"-fsdev", "local,id=seed,path=" + optValue(p.seedDir) + ",security_model=none,readonly=on",
		"-device", "virtio-9p-pci,fsdev=seed,mount_tag=seed",
		"-device", "virtio-serial-pci,id=vser0",
		"-chardev", "socket,id=agent,path=" + optValue(p.agentSocket) + ",server=on,wait=off",
		"-device", "virtserialport,bus=vser0.0,chardev=agent,name=" + agent.PortName,
		"-device", "virtio-rng-pci",
	}
}

// optValue escapes s for a qemu option value, where a comma separates
// options: qemu reads ",," as one comma.
func optValue(s string) string { return strings.ReplaceAll(s, ",", ",,") }
