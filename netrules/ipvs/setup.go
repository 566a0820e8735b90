package ipvs

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"k8s.io/klog/v2"

	"github.com/berthnode/berth/netrules/sysctl"
)

// ErrNoIPVS is returned by Sync when the kernel has no IPVS.
var ErrNoIPVS = errors.New("the kernel has no IPVS")

// connReuseFixed is the first kernel whose IPVS reschedules a connection
// reusing a source port without the one-second stall of conn_reuse_mode=1
// (Linux commit 35dfb013149f), the version kube-proxy checks.
var connReuseFixed = [2]int{5, 9}

// checkModules fails unless the kernel has IPVS: /proc/net/ip_vs exists once
// the ip_vs module is loaded (or built in).
func checkModules(procRoot string) error {
	p := filepath.Join(procRoot, "net", "ip_vs")
	if _, err := os.Stat(p); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("%w: %s is missing; load the modules (modprobe ip_vs ip_vs_rr ip_vs_wrr ip_vs_sh nf_conntrack) "+
				"or run berth with the iptables proxy mode", ErrNoIPVS, p)
		}
		return fmt.Errorf("%w: %w", ErrNoIPVS, err)
	}
	return nil
}

// wantedSysctls returns the kernel parameters IPVS mode sets, given what
// root holds: the kernel's release, the optional parameters that exist.
func wantedSysctls(root sysctl.Root, strictARP bool) map[string]string {
	want := map[string]string{
		// IPVS connections get conntrack entries, so that the nat
		// POSTROUTING masquerade (mark-based, hairpin) applies to them.
		"net.ipv4.vs.conntrack": "1",
		// A packet of a connection whose destination was deleted is
		// dropped and the connection expired at once, so the client
		// retries on a live destination rather than hanging. It also makes
		// the immediate removal of UDP destinations safe.
		"net.ipv4.vs.expire_nodest_conn": "1",
		// A persistence template (session affinity) pointing at a
		// weight-0 destination expires, so the client is scheduled to a
		// live destination rather than kept on a draining one.
		"net.ipv4.vs.expire_quiescent_template": "1",
		// IPVS masquerade forwarding routes the packets of the virtual
		// services to the endpoints.
		"net.ipv4.ip_forward": "1",
	}
	// conn_reuse_mode=0 keeps a connection that reuses a source port on
	// its old destination instead of rescheduling it: on kernels before
	// 5.9 the rescheduling stalls such connections for a second. From 5.9
	// the kernel's default (1) works and reschedules away from removed
	// destinations, so it is left alone, as kube-proxy does.
	if release, err := root.Get("kernel.osrelease"); err != nil || kernelBefore(release, connReuseFixed) {
		want["net.ipv4.vs.conn_reuse_mode"] = "0"
	}
	// Pods on a Linux bridge reaching a service whose endpoint is on the
	// same bridge: without it their bridged packets skip iptables and
	// conntrack, and replies miss the reverse NAT. Only when br_netfilter
	// is loaded (the parameter exists).
	for _, p := range []string{"net.bridge.bridge-nf-call-iptables", "net.bridge.bridge-nf-call-ip6tables"} {
		if _, err := root.Get(p); err == nil {
			want[p] = "1"
		}
	}
	if strictARP {
		// The node must not answer ARP for the dummy interface's
		// addresses (a load balancer such as MetalLB announces them).
		want["net.ipv4.conf.all.arp_ignore"] = "1"
		want["net.ipv4.conf.all.arp_announce"] = "2"
	}
	return want
}

// kernelBefore tells whether the release ("5.4.0-150-generic") is older
// than want (major, minor); an unreadable release counts as older.
func kernelBefore(release string, want [2]int) bool {
	var got [2]int
	fields := strings.FieldsFunc(release, func(r rune) bool { return r < '0' || r > '9' })
	for i := range got {
		if i >= len(fields) {
			return true
		}
		n, err := strconv.Atoi(fields[i])
		if err != nil {
			return true
		}
		got[i] = n
	}
	return got[0] < want[0] || got[0] == want[0] && got[1] < want[1]
}

// setupKernel checks for IPVS and sets the kernel parameters IPVS mode
// needs.
func setupKernel(ctx context.Context, procRoot string, strictARP bool) error {
	if err := checkModules(procRoot); err != nil {
		return err
	}
	root := sysctl.Root(filepath.Join(procRoot, "sys"))
	changed, err := root.Ensure(wantedSysctls(root, strictARP))
	if err != nil {
		return fmt.Errorf("setting the kernel parameters of IPVS mode: %w", err)
	}
	if len(changed) > 0 {
		klog.FromContext(ctx).Info("Set kernel parameters for IPVS mode", "names", changed)
	}
	return nil
}
