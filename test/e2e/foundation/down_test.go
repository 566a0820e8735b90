package foundation

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/berthnode/berth/test/testbed"
)

// TestDownLeavesNothing brings up a second, one-node bed, and checks that
// Down leaves no process, mount, namespace, cgroup or file behind. A first
// Up is interrupted half-way to check that the next Up recovers.
func TestDownLeavesNothing(t *testing.T) {
	testbed.Require(t, bed)
	ctx := t.Context()
	cfg, err := testbed.DefaultConfig(ctx, fmt.Sprintf("t%dd", os.Getpid()), 1)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Owned = true

	// A crash mid-Up: the context ends while the control plane starts.
	crashCtx, cancel := context.WithTimeout(ctx, 2*time.Second)
	partial, err := testbed.Up(crashCtx, cfg)
	cancel()
	if err == nil {
		t.Log("Up finished within 2s; the crash case was not exercised")
		if err := partial.Down(ctx); err != nil {
			t.Fatal(err)
		}
	}

	// The next Up cleans what the crashed one left, and works.
	tb, err := testbed.Up(ctx, cfg)
	if err != nil {
		if tb != nil {
			tb.KeepLogs()
			_ = tb.Down(ctx)
		}
		t.Fatalf("Up after an interrupted Up: %v", err)
	}
	pids, err := tb.PIDs()
	if err != nil || len(pids) == 0 {
		t.Fatalf("bed has processes %v, %v; want some", pids, err)
	}
	namespaces, err := tb.Namespaces()
	if err != nil || len(namespaces) != 7 { // lan: net; cp, node1: net, mnt, uts
		t.Fatalf("bed has namespaces %v, %v; want 7", namespaces, err)
	}
	runDir := tb.RunDir()
	if err := tb.Down(ctx); err != nil {
		t.Fatal(err)
	}

	for _, pid := range pids {
		if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
			t.Errorf("process %d of the bed is still there after Down (kill 0: %v)", pid, err)
		}
	}
	if _, err := os.Stat(runDir); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("run folder %s still there after Down: %v", runDir, err)
	}
	if mounts := mountsUnder(t, runDir); len(mounts) > 0 {
		t.Errorf("mounts left under %s: %v", runDir, mounts)
	}
	if holders := namespaceHolders(namespaces); len(holders) > 0 {
		t.Errorf("namespaces of the bed still held after Down: %v", holders)
	}
	cgroups, _ := filepath.Glob(filepath.Join("/sys/fs/cgroup/*/berth-testbed", cfg.Name))
	if len(cgroups) > 0 {
		t.Errorf("cgroups left: %v", cgroups)
	}
}

// mountsUnder lists the mount points of this mount namespace below dir.
func mountsUnder(t *testing.T, dir string) []string {
	t.Helper()
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var found []string
	s := bufio.NewScanner(f)
	for s.Scan() {
		fields := strings.Fields(s.Text())
		if len(fields) > 4 && (fields[4] == dir || strings.HasPrefix(fields[4], dir+"/")) {
			found = append(found, fields[4])
		}
	}
	return found
}

// namespaceHolders returns the processes that are in, or hold a file
// descriptor of, one of the namespaces (as /proc/PID/ns links read them).
func namespaceHolders(namespaces []string) []string {
	want := map[string]bool{}
	for _, ns := range namespaces {
		want[ns] = true
	}
	var links []string
	for _, pattern := range []string{"/proc/[0-9]*/ns/*", "/proc/[0-9]*/fd/*"} {
		found, _ := filepath.Glob(pattern)
		links = append(links, found...)
	}
	var holders []string
	for _, l := range links {
		// Processes come and go during the walk: unreadable links are
		// of processes that exited.
		if target, err := os.Readlink(l); err == nil && want[target] {
			holders = append(holders, l+" -> "+target)
		}
	}
	return holders
}
