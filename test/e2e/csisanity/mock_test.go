package csisanity

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/berthnode/berth/test/testbed"
)

const (
	// driverName is the CSI driver name csimock serves under.
	driverName = "csi-mock.berth.test"
	// nodeID is the node ID csimock answers in NodeGetInfo.
	nodeID = "node-under-test"
	// zoneKey and zone are the topology segment csimock answers.
	zoneKey, zone = "topology.berth.test/zone", "a"
	// startTimeout bounds csimock's start and stop.
	startTimeout = 10 * time.Second
	// callTimeout bounds one CSI call.
	callTimeout = 10 * time.Second
)

// mockDriver is a running csimock with its folders in a temporary folder.
type mockDriver struct {
	cmd      *exec.Cmd
	exited   chan error
	dir      string // the temporary folder: sockets, control, CO paths
	endpoint string
	regSock  string
	control  string
	log      string
}

// callRecord is the part of a calls.jsonl line the tests look at.
type callRecord struct {
	Time              time.Time `json:"time"`
	Method            string    `json:"method"`
	VolumeID          string    `json:"volume_id"`
	StagingTargetPath string    `json:"staging_target_path"`
	TargetPath        string    `json:"target_path"`
	Code              string    `json:"code"`
	Error             string    `json:"error"`
}

// requireRoot skips t as non-root.
func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("skipping: csimock bind-mounts volumes, which needs root; CI runs this as root")
	}
}

// plugin returns the path of a plugin binary, failing t when it is missing.
func plugin(t *testing.T, name string) string {
	t.Helper()
	bin, err := testbed.PluginBinary(name)
	if err != nil {
		t.Fatal(err)
	}
	return bin
}

// startMock starts csimock with its sockets and control folder in a new
// temporary folder, and waits until both sockets answer. At the end of the
// test it stops csimock, and unmounts (and reports) any mount left below
// the folder.
func startMock(t *testing.T) *mockDriver {
	t.Helper()
	// Resolved: mountinfo lists mount points without symlinks.
	dir, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return startMockIn(t, dir)
}

// startMockIn is startMock with the folder given: a second csimock in the
// folder of a stopped one finds its volumes and mounts.
func startMockIn(t *testing.T, dir string) *mockDriver {
	t.Helper()
	d := &mockDriver{
		dir:      dir,
		endpoint: filepath.Join(dir, "plugins", driverName, "csi.sock"),
		regSock:  filepath.Join(dir, "plugins_registry", driverName+"-reg.sock"),
		control:  filepath.Join(dir, "control"),
		log:      filepath.Join(dir, "csimock.log"),
		exited:   make(chan error, 1),
	}
	logFile, err := os.OpenFile(d.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer logFile.Close()
	d.cmd = exec.Command(plugin(t, "csimock"), "-v=2",
		"--name="+driverName, "--node-id="+nodeID, "--topology="+zoneKey+"="+zone,
		"--endpoint="+d.endpoint, "--registration-socket="+d.regSock, "--control-dir="+d.control)
	d.cmd.Stdout, d.cmd.Stderr = logFile, logFile
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { d.exited <- d.cmd.Wait() }()
	t.Cleanup(func() {
		if d.cmd.ProcessState == nil {
			_ = d.cmd.Process.Kill()
			<-d.exited
		}
		for _, m := range mountsBelow(t, dir) {
			t.Errorf("leaked mount %s", m)
			_ = syscall.Unmount(m, syscall.MNT_DETACH)
		}
		if t.Failed() {
			out, _ := os.ReadFile(d.log)
			t.Logf("csimock log:\n%s", out)
		}
	})
	err = poll(t.Context(), startTimeout, func() (bool, error) {
		select {
		case err := <-d.exited:
			return false, fmt.Errorf("csimock exited: %v", err)
		default:
		}
		return isSocket(d.endpoint) && isSocket(d.regSock), nil
	})
	if err != nil {
		t.Fatalf("csimock did not start: %v", err)
	}
	return d
}

// stop sends SIGTERM and waits for csimock to exit.
func (d *mockDriver) stop(ctx context.Context) error {
	if err := d.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		return err
	}
	select {
	case err := <-d.exited:
		return err
	case <-time.After(startTimeout):
		return fmt.Errorf("csimock still running %s after SIGTERM", startTimeout)
	case <-ctx.Done():
		return ctx.Err()
	}
}

// dial connects to a Unix socket.
func dial(t *testing.T, path string) *grpc.ClientConn {
	t.Helper()
	conn, err := grpc.NewClient("unix://"+path, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return conn
}

// calls reads calls.jsonl.
func (d *mockDriver) calls(t *testing.T) []callRecord {
	t.Helper()
	f, err := os.Open(filepath.Join(d.control, "calls.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []callRecord
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var r callRecord
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("calls.jsonl line %q: %v", sc.Text(), err)
		}
		if r.Method == "" || r.Time.IsZero() || r.Code == "" {
			t.Errorf("calls.jsonl line %q: method, time or code missing", sc.Text())
		}
		out = append(out, r)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// lastCall returns the last record of method.
func lastCall(t *testing.T, records []callRecord, method string) callRecord {
	t.Helper()
	for i := len(records) - 1; i >= 0; i-- {
		if records[i].Method == method {
			return records[i]
		}
	}
	t.Fatalf("calls.jsonl: no %s", method)
	return callRecord{}
}

// poll calls cond until it is true, fails, or timeout passes.
func poll(ctx context.Context, timeout time.Duration, cond func() (bool, error)) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		ok, err := cond()
		if err != nil || ok {
			return err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("not after %s: %w", timeout, ctx.Err())
		case <-tick.C:
		}
	}
}

// isSocket tells whether path is a Unix socket.
func isSocket(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.Mode()&fs.ModeSocket != 0
}

// exists tells whether path exists.
func exists(path string) bool {
	_, err := os.Lstat(path)
	return !errors.Is(err, fs.ErrNotExist)
}

// mountsBelow lists the mount points at or below dir.
func mountsBelow(t *testing.T, dir string) []string {
	t.Helper()
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) > 4 && (f[4] == dir || strings.HasPrefix(f[4], dir+"/")) {
			out = append(out, f[4])
		}
	}
	return out
}

// isMountPoint tells whether path is a mount point.
func isMountPoint(t *testing.T, path string) bool {
	t.Helper()
	for _, m := range mountsBelow(t, path) {
		if m == path {
			return true
		}
	}
	return false
}
