package vm

import (
	"net"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestQemuArgs(t *testing.T) {
	p := qemuParams{
		name:        "vm1",
		kernel:      "/cache/vmlinuz",
		initrd:      "/cache/initrd.img",
		cmdline:     kernelCmdline("vm1"),
		disk:        "/work/disk.qcow2",
		seedDir:     "/work/a,b/seed",
		agentSocket: "/work/agent.sock",
		serialLog:   "/logs/vm1.serial.log",
		tap:         "vm-vm1",
		mac:         net.HardwareAddr{0x52, 0x54, 0, 1, 2, 3},
		memoryMiB:   2048,
		cpus:        2,
	}
	want := []string{
		"-name", "vm1",
		"-accel", "tcg",
		"-m", "2048",
		"-smp", "2",
		"-nodefaults", "-no-user-config", "-display", "none",
		"-chardev", "file,id=serial0,path=/logs/vm1.serial.log",
		"-serial", "chardev:serial0",
		"-kernel", "/cache/vmlinuz",
		"-initrd", "/cache/initrd.img",
		"-append", "root=/dev/vda rw console=ttyS0,115200 systemd.hostname=vm1 mitigations=off",
		"-drive", "file=/work/disk.qcow2,if=virtio,format=qcow2,cache=unsafe",
		"-netdev", "tap,id=net0,ifname=vm-vm1,script=no,downscript=no",
		"-device", "virtio-net-pci,netdev=net0,mac=52:54:00:01:02:03",
		"-fsdev", "local,id=seed,path=/work/a,,b/seed,security_model=none,readonly=on",
		"-device", "virtio-9p-pci,fsdev=seed,mount_tag=seed",
		"-device", "virtio-serial-pci,id=vser0",
		"-chardev", "socket,id=agent,path=/work/agent.sock,server=on,wait=off",
		"-device", "virtserialport,bus=vser0.0,chardev=agent,name=berth.agent",
		"-device", "virtio-rng-pci",
	}
	if diff := cmp.Diff(want, qemuArgs(p)); diff != "" {
		t.Errorf("qemuArgs (-want +got):\n%s", diff)
	}
}
