package podnet

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
	"k8s.io/apimachinery/pkg/util/wait"
)

// cniPluginDir is where Debian's containernetworking-plugins puts the
// plugins; BERTH_CNI_PLUGIN_DIR overrides it.
func cniPluginDir() string {
	if d := os.Getenv("BERTH_CNI_PLUGIN_DIR"); d != "" {
		return d
	}
	return "/usr/lib/cni"
}

// nsThread is a goroutine locked to an OS thread in a network namespace of
// its own; what it runs (including the processes it starts) lives there.
type nsThread struct {
	jobs chan func()
}

func newNSThread(t *testing.T) *nsThread {
	t.Helper()
	n := &nsThread{jobs: make(chan func())}
	ready := make(chan error)
	go func() {
		// Never unlocked: the thread left the host's namespace, so it ends
		// with this goroutine instead of returning to the scheduler's pool.
		runtime.LockOSThread()
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			ready <- fmt.Errorf("unshare(CLONE_NEWNET): %w", err)
			return
		}
		ready <- nil
		for f := range n.jobs {
			f()
		}
	}()
	if err := <-ready; err != nil {
		if errors.Is(err, unix.EPERM) {
			t.Skipf("skipping: cannot create a network namespace here: %v", err)
		}
		t.Fatal(err)
	}
	t.Cleanup(func() { close(n.jobs) })
	return n
}

// do runs f on the namespace's thread.
func (n *nsThread) do(f func()) {
	done := make(chan struct{})
	n.jobs <- func() { defer close(done); f() }
	<-done
}

// handle returns a netlink handle bound to the namespace.
func (n *nsThread) handle(t *testing.T) *netlink.Handle {
	t.Helper()
	var h *netlink.Handle
	var err error
	n.do(func() { h, err = netlink.NewHandle(unix.NETLINK_ROUTE) })
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.Close)
	return h
}

// path returns a path to the namespace that other processes can open.
func (n *nsThread) path(t *testing.T) string {
	t.Helper()
	var fd int
	var err error
	n.do(func() { fd, err = unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0) })
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	return fmt.Sprintf("/proc/%d/fd/%d", os.Getpid(), fd)
}

// TestConflistWithRealPlugins runs the rendered config list's plugins, as
// containerd would, in a host and a pod network namespace that the test
// creates: the pod gets one address per family on the bridge, a default
// route per family via the bridge, hairpin on its port, and reaches the
// gateway.
func TestConflistWithRealPlugins(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("skipping: running CNI plugins needs root to create network namespaces (run as root; CI does)")
	}
	pluginDir := cniPluginDir()
	if _, err := os.Stat(filepath.Join(pluginDir, "bridge")); err != nil {
		t.Skipf("skipping: no CNI plugins in %s (apt-get install containernetworking-plugins): %v", pluginDir, err)
	}
	data, err := renderConflist(confParams{bridge: "cni0", hairpin: true, podCIDRs: prefixes("10.244.1.0/24", "fd00:10:244:1::/64")})
	if err != nil {
		t.Fatal(err)
	}
	var list struct {
		CNIVersion string           `json:"cniVersion"`
		Name       string           `json:"name"`
		Plugins    []map[string]any `json:"plugins"`
	}
	if err := json.Unmarshal(data, &list); err != nil {
		t.Fatal(err)
	}
	// host-local's state goes to a temporary directory, not /var/lib/cni.
	dataDir := t.TempDir()
	list.Plugins[0]["ipam"].(map[string]any)["dataDir"] = dataDir

	host, pod := newNSThread(t), newNSThread(t)
	podPath := pod.path(t)
	inv := invocation{pluginDir: pluginDir, netns: podPath, ns: host}

	var prev json.RawMessage
	for _, p := range list.Plugins {
		prev = inv.run(t, "ADD", withNetwork(t, p, list.CNIVersion, list.Name, prev))
	}
	var result struct {
		IPs []struct {
			Address string `json:"address"`
			Gateway string `json:"gateway"`
		} `json:"ips"`
	}
	if err := json.Unmarshal(prev, &result); err != nil {
		t.Fatalf("decoding the result %s: %v", prev, err)
	}
	got := map[string]string{}
	for _, ip := range result.IPs {
		got[ip.Address] = ip.Gateway
	}
	want := map[string]string{"10.244.1.2/24": "10.244.1.1", "fd00:10:244:1::2/64": "fd00:10:244:1::1"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("pod addresses -> gateways (-want +got):\n%s", diff)
	}

	hostH := host.handle(t)
	checkHost(t, hostH)
	waitDAD(t, hostH, "cni0")
	checkPodRoutes(t, pod.handle(t))
	for _, gw := range []string{"10.244.1.1", "fd00:10:244:1::1"} {
		checkReaches(t, host, pod, gw)
	}

	leases := []string{filepath.Join(dataDir, NetworkName, "10.244.1.2"), filepath.Join(dataDir, NetworkName, "fd00:10:244:1::2")}
	for _, l := range leases {
		if _, err := os.Stat(l); err != nil {
			t.Errorf("host-local lease after ADD: %v", err)
		}
	}
	inv.run(t, "DEL", withNetwork(t, list.Plugins[0], list.CNIVersion, list.Name, nil))
	for _, l := range leases {
		if _, err := os.Stat(l); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("host-local lease %s after DEL: stat = %v, want it gone", l, err)
		}
	}
}

// invocation runs CNI plugins for one pod from the host namespace.
type invocation struct {
	pluginDir string
	netns     string
	ns        *nsThread
}

func (inv invocation) run(t *testing.T, command string, stdin []byte) json.RawMessage {
	t.Helper()
	var typ struct {
		Type string `json:"type"`
	}
	if err := json.Unmarshal(stdin, &typ); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(filepath.Join(inv.pluginDir, typ.Type))
	cmd.Env = []string{
		"CNI_COMMAND=" + command, "CNI_CONTAINERID=berth-podnet-test", "CNI_NETNS=" + inv.netns,
		"CNI_IFNAME=eth0", "CNI_PATH=" + inv.pluginDir, "PATH=/usr/sbin:/usr/bin:/sbin:/bin",
	}
	cmd.Stdin = bytes.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	var err error
	inv.ns.do(func() { err = cmd.Run() }) // forked from the host namespace's thread
	if err != nil {
		t.Fatalf("CNI %s %s: %v\nstdin: %s\nstdout: %s\nstderr: %s", command, typ.Type, err, stdin, stdout.Bytes(), stderr.Bytes())
	}
	return stdout.Bytes()
}

// withNetwork is a plugin's stdin in a config list: its config plus the
// list's version and name and the previous plugin's result.
func withNetwork(t *testing.T, plugin map[string]any, version, name string, prev json.RawMessage) []byte {
	t.Helper()
	conf := map[string]any{"cniVersion": version, "name": name}
	for k, v := range plugin {
		conf[k] = v
	}
	if prev != nil {
		conf["prevResult"] = prev
	}
	data, err := json.Marshal(conf)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func checkHost(t *testing.T, h *netlink.Handle) {
	t.Helper()
	br, err := h.LinkByName("cni0")
	if err != nil {
		t.Fatalf("bridge cni0: %v", err)
	}
	addrs, err := h.AddrList(br, netlink.FAMILY_ALL)
	if err != nil {
		t.Fatal(err)
	}
	have := map[string]bool{}
	for _, a := range addrs {
		have[a.IPNet.String()] = true
	}
	for _, want := range []string{"10.244.1.1/24", "fd00:10:244:1::1/64"} {
		if !have[want] {
			t.Errorf("cni0 lacks %s (has %v)", want, have)
		}
	}
	links, err := h.LinkList()
	if err != nil {
		t.Fatal(err)
	}
	ports := 0
	for _, l := range links {
		if l.Attrs().MasterIndex != br.Attrs().Index {
			continue
		}
		ports++
		pi, err := h.LinkGetProtinfo(l)
		if err != nil {
			t.Fatal(err)
		}
		if !pi.Hairpin {
			t.Errorf("bridge port %s: hairpin mode off", l.Attrs().Name)
		}
	}
	if ports != 1 {
		t.Errorf("cni0 has %d ports, want 1", ports)
	}
}

func checkPodRoutes(t *testing.T, h *netlink.Handle) {
	t.Helper()
	routes, err := h.RouteList(nil, netlink.FAMILY_ALL)
	if err != nil {
		t.Fatal(err)
	}
	gws := map[string]bool{}
	for _, r := range routes {
		if r.Gw != nil && (r.Dst == nil || isDefault(r.Dst)) {
			gws[r.Gw.String()] = true
		}
	}
	for _, want := range []string{"10.244.1.1", "fd00:10:244:1::1"} {
		if !gws[want] {
			t.Errorf("pod has no default route via %s (default gateways: %v)", want, gws)
		}
	}
}

// waitDAD waits (for a bounded time) until the link's IPv6 addresses have
// passed duplicate address detection and can be bound.
func waitDAD(t *testing.T, h *netlink.Handle, name string) {
	t.Helper()
	l, err := h.LinkByName(name)
	if err != nil {
		t.Fatal(err)
	}
	err = wait.PollUntilContextTimeout(t.Context(), 50*time.Millisecond, 10*time.Second, true, func(context.Context) (bool, error) {
		addrs, err := h.AddrList(l, netlink.FAMILY_V6)
		if err != nil {
			return false, err
		}
		for _, a := range addrs {
			if a.Flags&unix.IFA_F_TENTATIVE != 0 {
				return false, nil
			}
		}
		return true, nil
	})
	if err != nil {
		t.Fatalf("IPv6 addresses of %s still tentative: %v", name, err)
	}
}

func isDefault(n *net.IPNet) bool {
	ones, _ := n.Mask.Size()
	return ones == 0
}

// checkReaches connects over TCP from the pod to a listener on the host's
// gateway address: the veth, the bridge and the pod's routes all work.
func checkReaches(t *testing.T, host, pod *nsThread, gw string) {
	t.Helper()
	addr := netip.AddrPortFrom(netip.MustParseAddr(gw), 0).String()
	var ln net.Listener
	var err error
	host.do(func() { ln, err = net.Listen("tcp", addr) })
	if err != nil {
		t.Fatalf("listening on %s in the host namespace: %v", addr, err)
	}
	defer ln.Close()
	accepted := make(chan error, 1)
	go func() {
		c, err := ln.Accept()
		if err == nil {
			c.Close()
		}
		accepted <- err
	}()
	var conn net.Conn
	pod.do(func() { conn, err = net.DialTimeout("tcp", ln.Addr().String(), 10*time.Second) })
	if err != nil {
		t.Fatalf("pod cannot reach %s: %v", ln.Addr(), err)
	}
	conn.Close()
	if err := <-accepted; err != nil {
		t.Fatalf("accepting on %s: %v", ln.Addr(), err)
	}
}
