package csi

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/berthnode/berth/test/e2e/cluster"
	"github.com/berthnode/berth/test/testbed"
)

// mockDriver is a csimock instance on the node.
type mockDriver struct {
	name           string
	zone           string
	attachRequired bool
}

// The node paths of a driver, as node-driver-registrar and the kubelet use
// them.
func (d mockDriver) pluginDir() string  { return "/var/lib/kubelet/plugins/" + d.name }
func (d mockDriver) endpoint() string   { return d.pluginDir() + "/csi.sock" }
func (d mockDriver) controlDir() string { return d.pluginDir() + "/control" }
func (d mockDriver) regSocket() string {
	return "/var/lib/kubelet/plugins_registry/" + d.name + "-reg.sock"
}

// topologyKey is the driver's one topology key.
func (d mockDriver) topologyKey() string { return "topology." + d.name + "/zone" }

// start runs the driver on node; the bed's Down stops it.
func (d mockDriver) start(tb *testbed.Testbed, node string) error {
	args := []string{
		"--name=" + d.name, "--node-id=" + node,
		"--endpoint=" + d.endpoint(), "--registration-socket=" + d.regSocket(),
		"--control-dir=" + d.controlDir(), "--topology=" + d.topologyKey() + "=" + d.zone,
		"--volumes=6", "--attach-limit=9",
	}
	if d.attachRequired {
		args = append(args, "--attach-required")
	}
	_, err := tb.StartPlugin(node, "csimock", args...)
	return err
}

// hostPath is where the test reads a node path.
func hostPath(t testing.TB, node, p string) string {
	t.Helper()
	out, err := bed.HostPath(node, p)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// callRecord is the part of a calls.jsonl line the tests look at.
type callRecord struct {
	Method  string  `json:"method"`
	Volume  string  `json:"volume_id"`
	Staging string  `json:"staging_target_path"`
	Target  string  `json:"target_path"`
	Code    string  `json:"code"`
	Error   string  `json:"error"`
	Millis  float64 `json:"duration_ms"`
}

// calls returns the driver's calls so far.
func (d mockDriver) calls(t testing.TB, node string) []callRecord {
	t.Helper()
	data, err := os.ReadFile(hostPath(t, node, filepath.Join(d.controlDir(), "calls.jsonl")))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	var out []callRecord
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 64*1024), 1024*1024)
	for sc.Scan() {
		var r callRecord
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("calls.jsonl line %q: %v", sc.Text(), err)
		}
		out = append(out, r)
	}
	return out
}

// volumeCalls returns the successful node stage/publish calls for volume
// after the first skip calls, as "Method" strings.
func volumeCalls(calls []callRecord, volume string) []callRecord {
	var out []callRecord
	for _, c := range calls {
		if c.Volume == volume && strings.HasPrefix(c.Method, "Node") && c.Method != "NodeGetVolumeStats" {
			out = append(out, c)
		}
	}
	return out
}

// methods lists the methods of calls, with the error code when not OK.
func methods(calls []callRecord) []string {
	var out []string
	for _, c := range calls {
		m := c.Method
		if c.Code != "" && c.Code != "OK" {
			m += "(" + c.Code + ")"
		}
		out = append(out, m)
	}
	return out
}

// fault creates (or with remove, deletes) the driver's <method>.<kind> file.
func (d mockDriver) fault(t testing.TB, node, method, kind string, remove bool) {
	t.Helper()
	p := hostPath(t, node, filepath.Join(d.controlDir(), method+"."+kind))
	if remove {
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			t.Fatal(err)
		}
		return
	}
	if err := os.WriteFile(p, []byte("injected by "+t.Name()), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.Remove(p) })
}

// stagingPath is the kubelet's staging path of a volume.
func stagingPath(driver, handle string) string {
	return fmt.Sprintf("/var/lib/kubelet/plugins/kubernetes.io/csi/%s/%x/globalmount", driver, sha256.Sum256([]byte(handle)))
}

// publishPath is the kubelet's publish path of a pod's CSI volume.
func publishPath(podUID, specName string) string {
	return fmt.Sprintf("/var/lib/kubelet/pods/%s/volumes/kubernetes.io~csi/%s/mount", podUID, specName)
}

// kubeletMounts lists the node's mount points below /var/lib/kubelet whose
// path contains any of subs.
func kubeletMounts(t testing.TB, node string, subs ...string) []string {
	t.Helper()
	out, err := bed.Output(t.Context(), node, "cat", "/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	var found []string
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		if len(f) < 5 || !strings.HasPrefix(f[4], "/var/lib/kubelet/") {
			continue
		}
		for _, s := range subs {
			if strings.Contains(f[4], s) {
				found = append(found, f[4])
				break
			}
		}
	}
	return found
}

// waitCalls waits until the driver's node calls for volume, from the
// skip-th call of the log on, are want, and returns them.
func (d mockDriver) waitCalls(t testing.TB, node string, skip int, volume string, want ...string) []callRecord {
	t.Helper()
	return d.waitCallsWithin(t, node, skip, volume, 30*time.Second, want...)
}

// waitCallsWithin is waitCalls with a timeout.
func (d mockDriver) waitCallsWithin(t testing.TB, node string, skip int, volume string, timeout time.Duration, want ...string) []callRecord {
	t.Helper()
	var calls []callRecord
	deadline := time.Now().Add(timeout)
	for attempt := 0; ; attempt++ {
		all := d.calls(t, node)
		calls = volumeCalls(all[min(skip, len(all)):], volume)
		if slices.Equal(methods(calls), want) {
			return calls
		}
		if time.Now().After(deadline) {
			t.Fatalf("driver %s calls for volume %s: %v, want %v", d.name, volume, methods(calls), want)
		}
		cluster.Pause(t.Context(), attempt)
	}
}
