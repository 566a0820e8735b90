package vm

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
	"k8s.io/klog/v2/ktesting"
)

// The throwaway LAN of TestBootVM, inside a namespace the test creates.
var (
	testGateway = netip.MustParsePrefix("192.168.200.1/24")
	testAddress = netip.MustParsePrefix("192.168.200.50/24")
)

// requireVMHost skips t unless VMs can be built and booted here.
func requireVMHost(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("skipping: booting a VM takes minutes (-short)")
	}
	if os.Geteuid() != 0 {
		t.Skip("skipping: building and booting a VM needs root (debootstrap, network namespaces, taps); CI runs it as root")
	}
	for _, tool := range []string{qemuBinary, "qemu-img", "debootstrap", "mkfs.ext4", "unshare", "nsenter", "busybox"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("skipping: %s is not installed (make setup installs it)", tool)
		}
	}
}

// newTestLAN creates a network namespace pinned to a file of t's, holding
// the bridge br0 with the LAN's gateway address, and returns the file. The
// namespace goes away when t ends.
func newTestLAN(t *testing.T) string {
	t.Helper()
	pin := filepath.Join(t.TempDir(), "lan.net")
	if err := os.WriteFile(pin, nil, 0o444); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("unshare", "--net="+pin, "true").CombinedOutput(); err != nil {
		t.Fatalf("create network namespace: %v: %s", err, out)
	}
	t.Cleanup(func() {
		if err := unix.Unmount(pin, unix.MNT_DETACH); err != nil {
			t.Errorf("release network namespace: %v", err)
		}
	})
	err := inNetNS(pin, func() error {
		lo, err := netlink.LinkByName("lo")
		if err != nil {
			return err
		}
		if err := netlink.LinkSetUp(lo); err != nil {
			return err
		}
		br := &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: DefaultBridge}}
		if err := netlink.LinkAdd(br); err != nil {
			return err
		}
		ipnet := &net.IPNet{IP: net.IP(testGateway.Addr().AsSlice()), Mask: net.CIDRMask(testGateway.Bits(), 32)}
		if err := netlink.AddrAdd(br, &netlink.Addr{IPNet: ipnet}); err != nil {
			return err
		}
		return netlink.LinkSetUp(br)
	})
	if err != nil {
		t.Fatalf("set up the LAN: %v", err)
	}
	return pin
}

// linkExists tells whether the namespace at pin has a link named name.
func linkExists(t *testing.T, pin, name string) bool {
	t.Helper()
	var found bool
	err := inNetNS(pin, func() error {
		_, err := netlink.LinkByName(name)
		found = err == nil
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return found
}

func TestBootVM(t *testing.T) {
	requireVMHost(t)
	_, ctx := ktesting.NewTestContext(t)
	ctx, cancel := context.WithTimeout(ctx, 25*time.Minute)
	defer cancel()
	lan := newTestLAN(t)
	v := bootTestVM(ctx, t, lan)

	checkGuest(ctx, t, v)
	out, err := exec.CommandContext(ctx, "nsenter", "--net="+lan, "busybox", "ping", "-c", "3", "-W", "5", testAddress.Addr().String()).CombinedOutput()
	if err != nil {
		t.Errorf("ping the VM from the LAN: %v\n%s", err, out)
	}

	if err := v.WriteFile(ctx, "/root/written", []byte("written by the host"), 0o640); err != nil {
		t.Fatal(err)
	}
	checkCopyTo(ctx, t, v)
	oldBoot := v.BootID()
	start := time.Now()
	if err := v.Reboot(ctx); err != nil {
		t.Fatal(err)
	}
	t.Logf("rebooted in %s", time.Since(start).Round(time.Second))
	if v.BootID() == oldBoot {
		t.Errorf("boot ID %s unchanged after a reboot", oldBoot)
	}
	checkGuest(ctx, t, v)
	got, err := v.ReadFile(ctx, "/root/written")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff("written by the host", string(got)); diff != "" {
		t.Errorf("file written before the reboot (-want +got):\n%s", diff)
	}

	sctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	start = time.Now()
	if err := v.Shutdown(sctx); err != nil {
		t.Error(err)
	}
	select {
	case <-v.exited:
		t.Logf("powered off in %s", time.Since(start).Round(time.Second))
	default:
		t.Error("qemu still runs after Shutdown")
	}
}

// bootTestVM builds (or finds) the default image and boots a VM from it on
// the LAN in the namespace at lan. The VM is closed when t ends, and its
// tap must be gone then; its logs are kept if t failed.
func bootTestVM(ctx context.Context, t *testing.T, lan string) *VM {
	t.Helper()
	imgCfg, err := DefaultImageConfig()
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	img, err := BuildImage(ctx, imgCfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("image %s ready in %s", img.Dir, time.Since(start).Round(time.Second))

	logDir, err := os.MkdirTemp("", "berth-vm-test-")
	if err != nil {
		t.Fatal(err)
	}
	start = time.Now()
	v, err := Boot(ctx, img, Config{
		Name:    "vmtest",
		NetNS:   lan,
		Address: testAddress,
		Gateway: testGateway.Addr(),
		WorkDir: t.TempDir(),
		LogDir:  logDir,
		Files:   []File{{Path: "/etc/berth-test/seeded", Data: []byte("from the seed\n"), Mode: 0o600}},
	})
	if err != nil {
		t.Logf("logs kept in %s", logDir)
		t.Fatal(err)
	}
	t.Logf("booted in %s", time.Since(start).Round(time.Second))
	t.Cleanup(func() {
		if err := v.Close(); err != nil {
			t.Error(err)
		}
		if linkExists(t, lan, "vm-vmtest") {
			t.Error("the tap is still there after Close")
		}
		if t.Failed() {
			t.Logf("logs kept in %s; the console ends with:\n%s", logDir, tailFile(v.SerialLog(), 60))
			return
		}
		os.RemoveAll(logDir)
	})
	return v
}

// checkCopyTo copies a file of some size into the guest and compares
// checksums.
func checkCopyTo(ctx context.Context, t *testing.T, v *VM) {
	t.Helper()
	data := make([]byte, 8<<20)
	if _, err := rand.Read(data); err != nil {
		t.Fatal(err)
	}
	host := filepath.Join(t.TempDir(), "blob")
	if err := os.WriteFile(host, data, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := v.CopyTo(ctx, host, "/usr/local/bin/blob"); err != nil {
		t.Fatal(err)
	}
	out, err := v.Output(ctx, "sha256sum < /usr/local/bin/blob; stat -c %a /usr/local/bin/blob")
	if err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf("%x  -\n755\n", sha256.Sum256(data))
	if diff := cmp.Diff(want, string(out)); diff != "" {
		t.Errorf("copied file's checksum and mode (-want +got):\n%s", diff)
	}
}

// checkGuest checks what each boot of the VM must offer: systemd as PID 1,
// a system that finishes booting, IPVS, containerd, the seed's files and
// network config.
func checkGuest(ctx context.Context, t *testing.T, v *VM) {
	t.Helper()
	state, _, _, err := v.Run(ctx, "systemctl is-system-running --wait")
	if err != nil {
		t.Fatal(err)
	}
	if s := strings.TrimSpace(string(state)); s != "running" && s != "degraded" {
		t.Errorf("systemctl is-system-running: %q, want running or degraded", s)
	}
	if timing, _, _, err := v.Run(ctx, "systemd-analyze; systemd-analyze critical-chain --no-pager berth-vm-agent.service multi-user.target; systemd-analyze blame --no-pager | head -n 15"); err == nil {
		t.Logf("boot timing:\n%s", timing)
	}
	if strings.TrimSpace(string(state)) == "degraded" {
		failed, _, _, _ := v.Run(ctx, "systemctl --failed --no-pager")
		t.Logf("the system is degraded:\n%s", failed)
	}
	for _, c := range []struct {
		cmd  string
		want string
	}{
		{cmd: "cat /proc/1/comm", want: "systemd"},
		{cmd: "hostname", want: "vmtest"},
		{cmd: "systemctl is-active containerd", want: "active"},
		{cmd: "modprobe ip_vs && ipvsadm -Ln | head -n1", want: "IP Virtual Server version 1.2.1 (size=4096)"},
		{cmd: "cat /etc/berth-test/seeded", want: "from the seed"},
		{cmd: "stat -c %a /etc/berth-test/seeded", want: "600"},
		{cmd: "ip -4 -o addr show scope global | awk '{print $4}'", want: testAddress.String()},
		{cmd: "cat /proc/swaps | wc -l", want: "1"},
		{cmd: "sysctl -n net.ipv4.ip_forward", want: "1"},
		{cmd: "lsmod | grep -c '^br_netfilter '", want: "1"},
	} {
		out, err := v.Output(ctx, c.cmd)
		if err != nil {
			t.Errorf("%v", err)
			continue
		}
		if diff := cmp.Diff(c.want, strings.TrimSpace(string(out))); diff != "" {
			t.Errorf("%s (-want +got):\n%s", c.cmd, diff)
		}
	}
}
