package kubeletapi

import (
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/berthnode/berth/test/e2e/cluster"
)

// talker writes "first" to stdout, "second" to stderr, then tick-1,
// tick-2, ... every 0.2 s.
const talker = `echo first; echo second >&2; i=0; while true; do i=$((i+1)); echo tick-$i; sleep 0.2; done`

var tickLine = regexp.MustCompile(`^tick-(\d+)$`)

// TestLogs: kubectl logs returns the container's output, stdout and
// stderr, with --tail, --since, --timestamps and --limit-bytes as kubelet
// applies them, and -f streams new lines as they are written.
func TestLogs(t *testing.T) {
	_, ns := setUpWithPod(t, busybox("talker", talker))
	var all string
	cluster.Poll(t, time.Minute, "25 ticks in the log", func() (bool, string) {
		all = kubectl(t, "logs", "-n", ns, "talker")
		return strings.Contains(all, "tick-25\n"), all
	})
	// stdout and stderr reach the log through two pipes: their lines
	// interleave in the order the runtime read them.
	if lines := strings.SplitN(all, "\n", 4); len(lines) < 3 || !sameSet(lines[:3], "first", "second", "tick-1") {
		t.Errorf("logs start %q, want first, second (stderr) and tick-1 in some order", head(all, 40))
	}

	tail := kubectl(t, "logs", "-n", ns, "--tail=1", "talker")
	if lines := strings.Split(strings.TrimSuffix(tail, "\n"), "\n"); len(lines) != 1 || !tickLine.MatchString(lines[0]) {
		t.Errorf("--tail=1 gave %q, want one tick line", tail)
	}
	stamped := kubectl(t, "logs", "-n", ns, "--timestamps", "--tail=2", "talker")
	for _, l := range strings.Split(strings.TrimSuffix(stamped, "\n"), "\n") {
		ts, text, _ := strings.Cut(l, " ")
		if _, err := time.Parse(time.RFC3339Nano, ts); err != nil || !tickLine.MatchString(text) {
			t.Errorf("--timestamps line %q: want an RFC 3339 time and a tick (%v)", l, err)
		}
	}
	// The pod has run for 5 s and more: the last 2 s hold ticks only.
	since := kubectl(t, "logs", "-n", ns, "--since=2s", "talker")
	if strings.Contains(since, "first") || !strings.Contains(since, "tick-") {
		t.Errorf("--since=2s gave %q, want recent ticks only", head(since, 80))
	}
	if got := kubectl(t, "logs", "-n", ns, "--limit-bytes=5", "talker"); got != all[:5] {
		t.Errorf("--limit-bytes=5 gave %q, want the log's first 5 bytes %q", got, all[:5])
	}

	// -f: 10 new ticks arrive, in order, none missed.
	lines := stream(t, "logs", "-f", "--tail=1", "-n", ns, "talker")
	deadline := time.Now().Add(30 * time.Second)
	prev := -1
	for range 10 {
		l := next(t, lines, deadline, "kubectl logs -f")
		m := tickLine.FindStringSubmatch(l)
		if m == nil {
			t.Fatalf("kubectl logs -f gave %q, want a tick", l)
		}
		n, _ := strconv.Atoi(m[1])
		if prev >= 0 && n != prev+1 {
			t.Fatalf("kubectl logs -f gave tick-%d after tick-%d", n, prev)
		}
		prev = n
	}
}

// TestPreviousLogs: after a restart, kubectl logs --previous shows the last
// run's output and kubectl logs the current one's.
func TestPreviousLogs(t *testing.T) {
	client, ns := setUp(t)
	pod := busybox("crasher", `cat /proc/sys/kernel/random/uuid; sleep 1; exit 1`)
	if _, err := client.CoreV1().Pods(ns).Create(t.Context(), pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	cluster.WaitPod(t, client, ns, "crasher", 2*time.Minute, func(p *v1.Pod) bool {
		return len(p.Status.ContainerStatuses) == 1 && p.Status.ContainerStatuses[0].RestartCount >= 1
	})
	uuid := regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f-]{27}\n$`)
	previous := kubectl(t, "logs", "-n", ns, "--previous", "crasher")
	var current string
	cluster.Poll(t, 30*time.Second, "the current run's log", func() (bool, string) {
		out, err := bed.Kubectl(t.Context(), "logs", "-n", ns, "crasher")
		current = string(out)
		return err == nil && uuid.MatchString(current), fmt.Sprint(current, err)
	})
	if !uuid.MatchString(previous) || previous == current {
		t.Errorf("--previous gave %q and the current log %q: want two different runs' UUIDs", previous, current)
	}
}

// setUpWithPod is setUp, then runs the pod.
func setUpWithPod(t *testing.T, pod *v1.Pod) (*v1.Pod, string) {
	t.Helper()
	client, ns := setUp(t)
	return runPod(t, client, ns, pod), ns
}

// sameSet tells whether got holds exactly the strings want, in any order.
func sameSet(got []string, want ...string) bool {
	return slices.Equal(slices.Sorted(slices.Values(got)), slices.Sorted(slices.Values(want)))
}

// head is at most n bytes of s, for messages.
func head(s string, n int) string {
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}
