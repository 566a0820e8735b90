package main

import (
	"os"
	"strconv"
	"strings"
	"testing"
)

// rssFile reads this process's file-backed resident memory in kB.
func rssFile(t *testing.T) int {
	t.Helper()
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, "RssFile:"); ok {
			n, err := strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")))
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	t.Fatal("no RssFile in /proc/self/status")
	return 0
}

func TestPageOutExecutable(t *testing.T) {
	before := rssFile(t)
	spanned, err := pageOutExecutable()
	if err != nil {
		t.Fatal(err)
	}
	after := rssFile(t)
	t.Logf("RssFile %d kB before, %d kB after paging out %d kB of mappings", before, after, spanned/1024)
	if spanned == 0 || after >= before {
		t.Errorf("paging out %d bytes of the executable: RssFile %d kB → %d kB, want less", spanned, before, after)
	}
}
