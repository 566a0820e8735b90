package resize

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// fakeCgroup lays out a pod cgroup's files under a temporary mount.
func fakeCgroup(t *testing.T, v2 bool, files map[string]string) CgroupFS {
	t.Helper()
	cg := CgroupFS{Mount: t.TempDir(), Dir: "kubepods/podX", V2: v2}
	for name, content := range files {
		controller, file, _ := strings.Cut(name, "/")
		p := cg.file(controller, file)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return cg
}

func TestCgroupV1(t *testing.T) {
	cg := fakeCgroup(t, false, map[string]string{
		"cpu/cpu.shares": "1024", "cpu/cpu.cfs_quota_us": "-1", "cpu/cpu.cfs_period_us": "100000",
		"memory/memory.limit_in_bytes": "9223372036854771712",
	})
	got, err := cg.Read()
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(PodCgroup{CPUShares: 1024, CPUQuota: Unlimited, CPUPeriod: 100000, MemoryLimit: Unlimited}, got); diff != "" {
		t.Errorf("read (-want +got):\n%s", diff)
	}
	want := PodCgroup{CPUShares: 204, CPUQuota: 40000, CPUPeriod: 100000, MemoryLimit: 1 << 27}
	for _, k := range []OpKind{OpPodMemory, OpPodCPUQuota, OpPodCPUShares} {
		if err := cg.Apply(k, want); err != nil {
			t.Fatal(err)
		}
	}
	if got, _ = cg.Read(); got != want {
		t.Errorf("after apply %+v, want %+v", got, want)
	}
}

func TestCgroupV2(t *testing.T) {
	cg := fakeCgroup(t, true, map[string]string{"/cpu.weight": "100", "/cpu.max": "max 100000", "/memory.max": "max"})
	got, err := cg.Read()
	if err != nil {
		t.Fatal(err)
	}
	if got.CPUQuota != Unlimited || got.MemoryLimit != Unlimited || got.CPUPeriod != 100000 {
		t.Errorf("read %+v", got)
	}
	want := PodCgroup{CPUShares: 1024, CPUQuota: 50000, CPUPeriod: 100000, MemoryLimit: 1 << 27}
	for _, k := range []OpKind{OpPodMemory, OpPodCPUQuota, OpPodCPUShares} {
		if err := cg.Apply(k, want); err != nil {
			t.Fatal(err)
		}
	}
	for file, content := range map[string]string{"cpu.weight": "39", "cpu.max": "50000 100000", "memory.max": "134217728"} {
		data, _ := os.ReadFile(cg.file("", file))
		if string(data) != content {
			t.Errorf("%s = %q, want %q", file, data, content)
		}
	}
}
