package registration

import (
	"bufio"
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/berthnode/berth/test/testbed"
)

// bed is the test bed all tests of this package share (nil as non-root).
var bed *testbed.Testbed

func TestMain(m *testing.M) {
	os.Exit(testbed.RunTests(m, testbed.Options{Nodes: 1, Setup: testbed.JoinAll}, &bed))
}

const (
	// registryDir is the node's registration directory (kubelet's
	// default root directory).
	registryDir = "/var/lib/kubelet/plugins_registry"
	// bogusType is a plugin type berth has no handler for.
	bogusType = "Bogus"
	// registrationTimeout is berth's timeout of each registration call.
	registrationTimeout = 10 * time.Second
)

// mock is a csimock running on a node, with its control folder as the
// test sees it.
type mock struct {
	name    string
	socket  string // the registration socket, as the node sees it
	control string // the control folder, as the test sees it
	log     string // its log file (shared by the node's csimocks)
}

// startMock starts csimock on node as the driver name, registering at
// <registryDir>/<name>-reg.sock, with the control files given (e.g.
// GetInfo.hang) in place before it starts. It stops when the test ends.
func startMock(t *testing.T, node, name string, files map[string]string) *mock {
	t.Helper()
	base := "/var/lib/kubelet/plugins/" + name
	control, err := bed.HostPath(node, base+"/control")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(control, 0o755); err != nil {
		t.Fatal(err)
	}
	for f, content := range files {
		if err := os.WriteFile(filepath.Join(control, f), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	m := &mock{name: name, socket: registryDir + "/" + name + "-reg.sock", control: control}
	p, err := bed.StartPlugin(node, "csimock", "--name="+name, "--node-id="+node,
		"--endpoint="+base+"/csi.sock", "--registration-socket="+m.socket, "--control-dir="+base+"/control")
	if err != nil {
		t.Fatal(err)
	}
	m.log = p.Log
	t.Cleanup(func() {
		// SIGTERM: csimock removes its sockets. A hanging call ends too.
		_ = os.Remove(filepath.Join(control, "GetInfo.hang"))
		_ = syscall.Kill(p.PID, syscall.SIGTERM)
	})
	return m
}

// registrationCall is one line of csimock's registration.jsonl.
type registrationCall struct {
	Time       time.Time `json:"time"`
	Method     string    `json:"method"`
	Registered bool      `json:"plugin_registered"`
	Error      string    `json:"error"`
}

// statuses returns what berth told the mock, in order.
func (m *mock) statuses(t *testing.T) []registrationCall {
	t.Helper()
	f, err := os.Open(filepath.Join(m.control, "registration.jsonl"))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []registrationCall
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var c registrationCall
		if err := json.Unmarshal(sc.Bytes(), &c); err != nil {
			// The last line may be half written.
			continue
		}
		if c.Method == "NotifyRegistrationStatus" {
			out = append(out, c)
		}
	}
	return out
}

// waitStatus waits until berth told the mock something after since, and
// returns it.
func (m *mock) waitStatus(t *testing.T, since time.Time, timeout time.Duration) registrationCall {
	t.Helper()
	var got registrationCall
	poll(t, timeout, "berth to tell "+m.name+" its registration status", func() bool {
		for _, c := range m.statuses(t) {
			if c.Time.After(since) {
				got = c
				return true
			}
		}
		return false
	})
	return got
}

// berthLog returns node's berth log file.
func berthLog(node string) string {
	return filepath.Join(bed.LogDir(), node+"-berth.log")
}

// waitLog waits until a line of the log file has every part.
func waitLog(t *testing.T, file string, timeout time.Duration, parts ...string) {
	t.Helper()
	poll(t, timeout, "a line of "+filepath.Base(file)+" with "+strings.Join(parts, " + "), func() bool {
		data, err := os.ReadFile(file)
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			t.Fatal(err)
		}
		for _, line := range strings.Split(string(data), "\n") {
			if containsAll(strings.ReplaceAll(line, `\"`, `"`), parts) {
				return true
			}
		}
		return false
	})
}

func containsAll(s string, parts []string) bool {
	for _, p := range parts {
		if !strings.Contains(s, p) {
			return false
		}
	}
	return true
}

// poll checks cond every 100 ms until it holds, failing t after timeout.
func poll(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("Waiting %s for %s", timeout, what)
		}
		select {
		case <-t.Context().Done():
			t.Fatal(t.Context().Err())
		case <-tick.C:
		}
	}
}

// junkScript listens on a Unix socket and answers every connection with
// bytes that are not HTTP/2.
const junkScript = `
import os, socket, sys
path = sys.argv[1]
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.bind(path)
s.listen(16)
while True:
    c, _ = s.accept()
    try:
        c.sendall(b"HTTP/1.0 200 OK\r\n\r\nthis is not a registration service\n")
    finally:
        c.close()
`

// startJunk starts a socket at path on node that answers junk, until the
// test ends.
func startJunk(t *testing.T, node, path string) {
	t.Helper()
	p, err := bed.Start(node, "junk", "python3", "-c", junkScript, path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = syscall.Kill(p.PID, syscall.SIGKILL)
		if host, err := bed.HostPath(node, path); err == nil {
			_ = os.Remove(host)
		}
	})
}

// TestBadSocketsHoldUpNoOtherPlugin starts a plugin whose GetInfo hangs
// and a socket that answers junk, then a third plugin: the third is
// answered at once, well within the hanging call's timeout, and berth logs
// each bad socket by its path.
func TestBadSocketsHoldUpNoOtherPlugin(t *testing.T) {
	testbed.Require(t, bed)
	node := bed.Nodes()[0].Name
	hang := startMock(t, node, "hang.berth.test", map[string]string{"GetInfo.hang": ""})
	junk := registryDir + "/junk.sock"
	startJunk(t, node, junk)
	// berth's GetInfo to the hanging plugin is in flight.
	waitLog(t, hang.log, 30*time.Second, "Hanging", "GetInfo", hang.name)
	waitLog(t, berthLog(node), 30*time.Second, "Plugin registration failed", junk, "error reading server preface")

	start := time.Now()
	other := startMock(t, node, "other.berth.test", map[string]string{"GetInfo.json": `{"type":"` + bogusType + `"}`})
	got := other.waitStatus(t, start, 30*time.Second)
	took := time.Since(start)
	if got.Registered || !strings.Contains(got.Error, `no handler for plugin type "Bogus"`) {
		t.Errorf("The plugin was told registered=%v error=%q, want refused: no handler for type %q", got.Registered, got.Error, bogusType)
	}
	t.Logf("Plugin started next to the bad sockets was answered %s after it started", took.Round(time.Millisecond))
	// Its socket and its answer take milliseconds; a plugin queued behind
	// the hanging socket would wait for its 10 s timeout.
	if took >= registrationTimeout/2 {
		t.Errorf("The plugin was answered %s after it started, want well within the hanging socket's timeout %s", took, registrationTimeout)
	}
	waitLog(t, berthLog(node), 2*registrationTimeout+5*time.Second, "Plugin registration failed", hang.socket, "GetInfo (timeout 10s)")
	waitLog(t, berthLog(node), 5*time.Second, "Plugin registration failed", other.socket, `plugin="other.berth.test"`, `type="Bogus"`)
}

// TestPluginFoundAgainAfterBerthRestart kills berth while a plugin runs:
// the new berth reads the registration directory at start and answers the
// plugin again.
func TestPluginFoundAgainAfterBerthRestart(t *testing.T) {
	testbed.Require(t, bed)
	node := bed.Nodes()[0].Name
	m := startMock(t, node, "restart.berth.test", map[string]string{"GetInfo.json": `{"type":"` + bogusType + `"}`})
	m.waitStatus(t, time.Time{}, 30*time.Second)

	if err := bed.StopProcesses(node, "kubelet", syscall.SIGKILL, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	restarted := time.Now()
	if _, err := bed.StartBerth(node); err != nil {
		t.Fatal(err)
	}
	got := m.waitStatus(t, restarted, 2*time.Minute)
	if got.Registered || !strings.Contains(got.Error, "no handler for plugin type") {
		t.Errorf("After the restart the plugin was told registered=%v error=%q, want refused for its type", got.Registered, got.Error)
	}
	t.Logf("Plugin answered again %s after berth restarted", got.Time.Sub(restarted).Round(time.Millisecond))
}
