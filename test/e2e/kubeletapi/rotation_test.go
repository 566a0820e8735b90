package kubeletapi

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/berthnode/berth/test/e2e/cluster"
)

// floodLines lines of 100 bytes: 50 MiB.
const floodLines = 50 << 20 / 100

// TestLogRotationUnderFollow: a container writes 50 MiB of numbered lines
// as fast as it can; berth rotates its log by the cluster's limits (5 MiB,
// 3 files) while `kubectl logs -f` reads, and the reader gets every line
// once, in order.
func TestLogRotationUnderFollow(t *testing.T) {
	// The writer waits for the go-ahead, so that the reader is attached
	// before the first numbered line.
	script := fmt.Sprintf(`echo ready; while [ ! -e /tmp/go ]; do sleep 0.1; done; `+
		`awk 'BEGIN { pad = sprintf("%%090d", 0); for (i = 1; i <= %d; i++) printf "%%08d %%s\n", i, pad }'; echo done; exec sleep 1000000`, floodLines)
	pod, ns := setUpWithPod(t, busybox("flood", script))
	lines := stream(t, "logs", "-f", "-n", ns, "flood")
	deadline := time.Now().Add(30 * time.Second)
	if l := next(t, lines, deadline, "kubectl logs -f"); l != "ready" {
		t.Fatalf("first line %q, want ready", l)
	}
	kubectl(t, "exec", "-n", ns, "flood", "--", "touch", "/tmp/go")
	deadline = time.Now().Add(5 * time.Minute)
	for want := 1; want <= floodLines; want++ {
		l := next(t, lines, deadline, fmt.Sprintf("line %d of %d", want, floodLines))
		if len(l) != 99 || l[:8] != fmt.Sprintf("%08d", want) {
			t.Fatalf("line %d of %d is %q", want, floodLines, head(l, 20))
		}
	}
	if l := next(t, lines, deadline, "the last line"); l != "done" {
		t.Fatalf("after the numbered lines: %q, want done", l)
	}

	// On the node: the log was rotated, and at most 3 files are left.
	dir, err := bed.HostPath(nodeName(), filepath.Join("/var/log/pods", fmt.Sprintf("%s_%s_%s", ns, pod.Name, pod.UID), "c"))
	if err != nil {
		t.Fatal(err)
	}
	var files []string
	cluster.Poll(t, 30*time.Second, "rotated logs within the limits", func() (bool, string) {
		entries, err := os.ReadDir(dir)
		if err != nil {
			return false, err.Error()
		}
		files = files[:0]
		rotated, compressing := 0, false
		for _, e := range entries {
			files = append(files, e.Name())
			if strings.HasPrefix(e.Name(), "0.log.") {
				rotated++
			}
			// A rotation is under way: look again when it is done.
			compressing = compressing || strings.HasSuffix(e.Name(), ".tmp")
		}
		return !compressing && rotated >= 1 && len(files) <= logMaxFiles, strings.Join(files, " ")
	})
	t.Logf("log files after 50 MiB: %s", strings.Join(files, " "))
}
