// Package vm boots qemu VMs for what the test machines' own kernel and init
// lack: IPVS (the host kernel has no CONFIG_IP_VS) and systemd as PID 1.
//
// An Image is built from Debian packages only (BuildImage): debootstrap of
// the suite the machine runs, from the mirror its apt already uses, plus a
// kernel with IPVS, systemd, containerd, runc, iptables, ipvsadm, the CNI
// plugins and what kubeadm's preflight wants; then the files under rootfs/
// (containerd config, modules to load, sysctls, the agent's unit, the seed's
// initramfs hook); then mkfs.ext4 -d turns the folder into a raw disk
// without loop devices. Images are cached by a hash of all those inputs
// under $BERTH_CACHE/vm/KEY, built once per machine (1.5 to 3 minutes here).
//
// Boot starts qemu (TCG) with the image's kernel and initrd, on a qcow2
// overlay of its disk in a per-boot folder, so the cached disk is never
// written. Per VM, a seed folder shared over 9p carries the guest agent and
// files that the initrd copies into the root file system on the first boot,
// before systemd starts (units, config, binaries; the VM's network config
// and host name). The VM's NIC is a tap in the network namespace the
// caller names, on its bridge: qemu runs inside that namespace, so the VM
// is reachable only from there.
//
// The host drives the guest through a small static agent (package agent,
// cmd/berth-vm-agent) on a virtio-serial port: Run, ReadFile, WriteFile,
// CopyTo, Reboot. The connection survives guest reboots.
package vm
