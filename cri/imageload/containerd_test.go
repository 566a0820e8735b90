package imageload

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"syscall"
	"testing"
	"time"

	"github.com/moby/sys/mountinfo"
	"golang.org/x/sys/unix"
)

// Bounds of the private containerd's life; generous, since CI machines can
// be slow, and never slept: they only cap polling and waiting.
const (
	containerdStartTimeout = 30 * time.Second
	containerdStopTimeout  = 15 * time.Second
	socketPollInterval     = 20 * time.Millisecond
)

// containerdConfig keeps every path of the private containerd under one
// directory (%[1]s) and leaves out the snapshotters that probe or load
// kernel modules. %[2]s is the CRI plugin's setting: disabled, or
// criConfig.
const containerdConfig = `version = 2
root = "%[1]s/root"
state = "%[1]s/state"
disabled_plugins = [
  "io.containerd.snapshotter.v1.aufs",
  "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.devmapper",
  "io.containerd.snapshotter.v1.zfs",%[2]s
]

[grpc]
  address = "%[1]s/containerd.sock"

[ttrpc]
  address = "%[1]s/containerd.sock.ttrpc"

[plugins."io.containerd.internal.v1.opt"]
  path = "%[1]s/opt"
`

// criDisabled is containerdConfig's %[2]s without CRI.
const criDisabled = `
  "io.containerd.grpc.v1.cri",`

// criConfig configures the CRI plugin with CNI directories of its own (left
// empty: no pod is run); its streaming server listens in containerd's
// private network namespace.
const criConfig = `
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "berth.local/pause:3.10"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "%[1]s/cni/bin"
    conf_dir = "%[1]s/cni/conf"
`

// startContainerd runs a private containerd (Debian's binary) whose root,
// state and sockets live under a test directory, in its own mount and
// network namespaces so that its mounts never reach the host's. It is
// stopped, and anything it left mounted is unmounted, when the test ends.
// With withCRI its CRI plugin runs too, serving the same socket. It returns
// the API socket. The test is skipped when it cannot run here.
func startContainerd(t *testing.T, withCRI bool) string {
	t.Helper()
	if testing.Short() {
		t.Skip("skipped in -short mode: runs a private containerd")
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root: runs a private containerd that mounts overlayfs snapshots")
	}
	bin, err := exec.LookPath("containerd")
	if err != nil {
		t.Skip("needs Debian's containerd binary (`make apt`): ", err)
	}
	dir := t.TempDir()
	configPath := filepath.Join(dir, "config.toml")
	config := fmt.Sprintf(containerdConfig, dir, criDisabled)
	if withCRI {
		config = fmt.Sprintf(containerdConfig, dir, "") + fmt.Sprintf(criConfig, dir)
	}
	if err := os.WriteFile(configPath, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	cmd := exec.Command(bin, "--config", configPath, "--log-level", "info")
	cmd.Stdout, cmd.Stderr = &logs, &logs
	cmd.SysProcAttr = &syscall.SysProcAttr{
		// Unshareflags, unlike Cloneflags, makes the new mount namespace
		// private, so that mounts do not propagate back to the host; the
		// network namespace keeps CRI's streaming server off the host's.
		Unshareflags: unix.CLONE_NEWNS | unix.CLONE_NEWNET,
		// A test binary that dies without cleanup takes containerd along.
		Pdeathsig: unix.SIGKILL,
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", bin, err)
	}
	exited := make(chan struct{})
	var waitErr error
	go func() {
		waitErr = cmd.Wait()
		close(exited)
	}()
	t.Cleanup(func() {
		stopContainerd(t, cmd, exited)
		unmountUnder(t, dir)
		if t.Failed() {
			t.Logf("containerd log:\n%s", logs.String())
		}
	})

	socket := filepath.Join(dir, "containerd.sock")
	deadline := time.NewTimer(containerdStartTimeout)
	defer deadline.Stop()
	poll := time.NewTicker(socketPollInterval)
	defer poll.Stop()
	for {
		if conn, err := net.Dial("unix", socket); err == nil {
			conn.Close()
			return socket
		}
		select {
		case <-exited:
			t.Fatalf("containerd exited before serving %s: %v", socket, waitErr)
		case <-deadline.C:
			t.Fatalf("containerd did not serve %s within %v", socket, containerdStartTimeout)
		case <-poll.C:
		}
	}
}

// stopContainerd terminates containerd and waits for it to exit, killing it
// if it takes too long.
func stopContainerd(t *testing.T, cmd *exec.Cmd, exited <-chan struct{}) {
	select {
	case <-exited:
		return
	default:
	}
	if err := cmd.Process.Signal(unix.SIGTERM); err != nil {
		t.Errorf("stop containerd (pid %d): %v", cmd.Process.Pid, err)
	}
	timeout := time.NewTimer(containerdStopTimeout)
	defer timeout.Stop()
	select {
	case <-exited:
		return
	case <-timeout.C:
		t.Errorf("containerd (pid %d) did not exit within %v of SIGTERM; killing it", cmd.Process.Pid, containerdStopTimeout)
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Errorf("kill containerd (pid %d): %v", cmd.Process.Pid, err)
	}
	<-exited
}

// unmountUnder unmounts, deepest first, whatever is mounted under dir in
// this mount namespace: nothing is expected (containerd mounted in its own),
// but a leftover would make the test directory impossible to remove.
func unmountUnder(t *testing.T, dir string) {
	mounts, err := mountinfo.GetMounts(mountinfo.PrefixFilter(dir))
	if err != nil {
		t.Errorf("list mounts under %s: %v", dir, err)
		return
	}
	sort.Slice(mounts, func(i, j int) bool { return len(mounts[i].Mountpoint) > len(mounts[j].Mountpoint) })
	for _, m := range mounts {
		t.Errorf("left mounted after containerd exited: %s (%s)", m.Mountpoint, m.FSType)
		if err := unix.Unmount(m.Mountpoint, unix.MNT_DETACH); err != nil {
			t.Errorf("unmount %s: %v", m.Mountpoint, err)
		}
	}
}
