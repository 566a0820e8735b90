// Package node tests berth as a node agent on a booted worker: a Debian VM
// (test/vm) with systemd as PID 1 and a kernel with IPVS joins the test
// bed's control plane with `kubeadm join`, berth installed as kubelet. It
// is the test of what this machine's kernel and init lack: systemd units,
// sd_notify, the watchdog, logind's inhibitor lock, the IPVS proxy mode,
// restarts and reboots.
package node
