package stats

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	statsapi "k8s.io/kubelet/pkg/apis/stats/v1alpha1"
	testingclock "k8s.io/utils/clock/testing"

	critesting "github.com/berthnode/berth/cri/testing"
)

var (
	t0    = time.Date(2024, 1, 2, 15, 0, 0, 0, time.UTC)
	t1    = t0.Add(10 * time.Second)
	boot  = time.Unix(1700000000, 0)
	gib   = uint64(1 << 30)
	proc0 = map[string]string{
		"stat": "cpu  1000 20 500 9000 100 30 40 50 0 0\ncpu0 1000 20 500 9000 100 30 40 50 0 0\n" +
			"intr 12345\nbtime 1700000000\nprocesses 999\n",
		"meminfo": "MemTotal:        8388608 kB\nMemFree:         2097152 kB\nMemAvailable:    4194304 kB\n" +
			"Inactive(file):  1048576 kB\nAnonPages:       3145728 kB\nHugePages_Total:       0\n",
		"loadavg":                "0.10 0.20 0.30 2/345 6789\n",
		"sys/kernel/pid_max":     "4194304\n",
		"sys/kernel/threads-max": "63000\n",
	}
)

// nodeTree is the root cgroup (which has no memory.current), the cgroup of
// all pods, and the cgroup of pod kube-system/dns at time usec of CPU used
// by the node.
func nodeTree(nodeUsec, podsUsec, dnsUsec string) map[string]string {
	return map[string]string{
		"cgroup.controllers":                           "cpu memory pids\n",
		"cpu.stat":                                     "usage_usec " + nodeUsec + "\nuser_usec 1\nsystem_usec 2\n",
		"memory.stat":                                  "anon 3221225472\nfile 2147483648\ninactive_file 1073741824\npgfault 100\npgmajfault 3\n",
		"kubepods/cpu.stat":                            "usage_usec " + podsUsec + "\n",
		"kubepods/memory.current":                      "2147483648\n",
		"kubepods/memory.max":                          "max\n",
		"kubepods/memory.stat":                         "anon 1073741824\ninactive_file 536870912\n",
		"kubepods/burstable/poduid-dns/cpu.stat":       "usage_usec " + dnsUsec + "\n",
		"kubepods/burstable/poduid-dns/memory.current": "104857600\n",
		"kubepods/burstable/poduid-dns/memory.max":     "209715200\n",
		"kubepods/burstable/poduid-dns/memory.stat":    "anon 52428800\ninactive_file 4857600\npgfault 7\npgmajfault 1\n",
	}
}

// statsFixture is a node with pods default/web (with a replaced sandbox
// left behind, a container the runtime gives CPU rates for and one it does
// not, and an exited container) and kube-system/dns (whose sandbox the
// runtime has no statistics for), at time t0.
func statsFixture(t *testing.T) (*critesting.Runtime, *testingclock.FakeClock, *Provider, string) {
	t.Helper()
	cg, proc := t.TempDir(), t.TempDir()
	writeTree(t, cg, nodeTree("50000000", "20000000", "1000000"))
	writeTree(t, proc, proc0)
	rt := critesting.NewRuntime()
	running, exited := runtimeapi.ContainerState_CONTAINER_RUNNING, runtimeapi.ContainerState_CONTAINER_EXITED
	rt.AddSandbox(critesting.Sandbox{ID: "sb-web-old", Namespace: "default", Name: "web", UID: "uid-web-old",
		CreatedAt: t0.Add(-time.Hour).UnixNano(), NotReady: true})
	rt.AddSandbox(critesting.Sandbox{ID: "sb-web", Namespace: "default", Name: "web", UID: "uid-web", CreatedAt: t0.Add(-time.Minute).UnixNano()})
	rt.AddContainer(critesting.Container{ID: "c-app", SandboxID: "sb-web", Name: "app", State: running, CreatedAt: t0.Add(-50 * time.Second).UnixNano()})
	rt.AddContainer(critesting.Container{ID: "c-side", SandboxID: "sb-web", Name: "sidecar", State: running, CreatedAt: t0.Add(-40 * time.Second).UnixNano()})
	rt.AddContainer(critesting.Container{ID: "c-init", SandboxID: "sb-web", Name: "init", State: exited, CreatedAt: t0.Add(-55 * time.Second).UnixNano()})
	rt.AddSandbox(critesting.Sandbox{ID: "sb-dns", Namespace: "kube-system", Name: "dns", UID: "uid-dns", CreatedAt: t0.Add(-2 * time.Minute).UnixNano()})
	rt.AddContainer(critesting.Container{ID: "c-dns", SandboxID: "sb-dns", Name: "coredns", State: running, CreatedAt: t0.Add(-100 * time.Second).UnixNano()})
	rt.SetContainerStats(containerStats("c-app", "app", t0.UnixNano(), 7e9, ptr[uint64](3e8), 300<<20))
	rt.SetContainerStats(containerStats("c-side", "sidecar", t0.UnixNano(), 2e9, nil, 50<<20))
	rt.SetContainerStats(containerStats("c-init", "init", t0.UnixNano(), 1e9, nil, 1<<20))
	rt.SetContainerStats(containerStats("c-dns", "coredns", t0.UnixNano(), 1e9, nil, 20<<20))
	rt.SetPodSandboxStats(sandboxStats("sb-web", t0.UnixNano(), 10e9, 400<<20, 4))
	clk := testingclock.NewFakeClock(t0)
	p, err := NewProvider(Config{Runtime: rt, NodeName: "node-1", CgroupRoot: cg, ProcRoot: proc, RootFS: cg, Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	return rt, clk, p, cg
}

// advance moves the node and its pods 10 seconds on: the node used 10 CPU
// seconds, the pods 5, sidecar and coredns 2 each, pod web 5.
func advance(t *testing.T, rt *critesting.Runtime, clk *testingclock.FakeClock, cg string) {
	t.Helper()
	clk.SetTime(t1)
	writeTree(t, cg, nodeTree("60000000", "25000000", "3000000"))
	rt.SetContainerStats(containerStats("c-app", "app", t1.UnixNano(), 9e9, ptr[uint64](2e8), 310<<20))
	rt.SetContainerStats(containerStats("c-side", "sidecar", t1.UnixNano(), 4e9, nil, 60<<20))
	rt.SetContainerStats(containerStats("c-dns", "coredns", t1.UnixNano(), 3e9, nil, 20<<20))
	rt.SetPodSandboxStats(sandboxStats("sb-web", t1.UnixNano(), 15e9, 410<<20, 5))
}

func mt(t time.Time) metav1.Time { return metav1.NewTime(t) }

func u64(v uint64) *uint64 { return &v }

func i64(v int64) *int64 { return &v }

// wantCPUAndMemory is the CPU and memory part of the summary after advance.
func wantCPUAndMemory() *statsapi.Summary {
	container := func(name string, created time.Time, cpu uint64, rate *uint64, ws uint64) statsapi.ContainerStats {
		return statsapi.ContainerStats{
			Name:      name,
			StartTime: mt(created),
			CPU:       &statsapi.CPUStats{Time: mt(t1), UsageCoreNanoSeconds: u64(cpu), UsageNanoCores: rate},
			Memory:    &statsapi.MemoryStats{Time: mt(t1), WorkingSetBytes: u64(ws), UsageBytes: u64(ws + 100)},
		}
	}
	nodeUsage := 8*gib - 2*gib // MemTotal - MemFree at the root cgroup
	return &statsapi.Summary{
		Node: statsapi.NodeStats{
			NodeName:  "node-1",
			StartTime: mt(boot),
			CPU:       &statsapi.CPUStats{Time: mt(t1), UsageCoreNanoSeconds: u64(60e9), UsageNanoCores: u64(1e9)},
			Memory: &statsapi.MemoryStats{
				Time:            mt(t1),
				UsageBytes:      u64(nodeUsage),
				WorkingSetBytes: u64(nodeUsage - gib),
				RSSBytes:        u64(3 * gib),
				AvailableBytes:  u64(8*gib - (nodeUsage - gib)),
				PageFaults:      u64(100),
				MajorPageFaults: u64(3),
			},
			SystemContainers: []statsapi.ContainerStats{{
				Name:      "pods",
				StartTime: mt(t0.Add(-2 * time.Minute)),
				CPU:       &statsapi.CPUStats{Time: mt(t1), UsageCoreNanoSeconds: u64(25e9), UsageNanoCores: u64(5e8)},
				Memory: &statsapi.MemoryStats{Time: mt(t1), UsageBytes: u64(2 * gib), WorkingSetBytes: u64(2*gib - gib/2),
					RSSBytes: u64(gib)},
			}},
		},
		Pods: []statsapi.PodStats{
			{
				PodRef:    statsapi.PodReference{Name: "web", Namespace: "default", UID: "uid-web"},
				StartTime: mt(t0.Add(-time.Minute)),
				Containers: []statsapi.ContainerStats{
					container("app", t0.Add(-50*time.Second), 9e9, u64(2e8), 310<<20),
					container("sidecar", t0.Add(-40*time.Second), 4e9, u64(2e8), 60<<20),
				},
				CPU:    &statsapi.CPUStats{Time: mt(t1), UsageCoreNanoSeconds: u64(15e9), UsageNanoCores: u64(5e8)},
				Memory: &statsapi.MemoryStats{Time: mt(t1), WorkingSetBytes: u64(410 << 20)},
			},
			{
				PodRef:     statsapi.PodReference{Name: "dns", Namespace: "kube-system", UID: "uid-dns"},
				StartTime:  mt(t0.Add(-2 * time.Minute)),
				Containers: []statsapi.ContainerStats{container("coredns", t0.Add(-100*time.Second), 3e9, u64(2e8), 20<<20)},
				// From the pod's cgroup.
				CPU: &statsapi.CPUStats{Time: mt(t1), UsageCoreNanoSeconds: u64(3e9), UsageNanoCores: u64(2e8)},
				Memory: &statsapi.MemoryStats{Time: mt(t1), UsageBytes: u64(100 << 20), WorkingSetBytes: u64(100<<20 - 4857600),
					RSSBytes: u64(50 << 20), AvailableBytes: u64(200<<20 - (100<<20 - 4857600)), PageFaults: u64(7), MajorPageFaults: u64(1)},
			},
		},
	}
}

func TestCPUAndMemory(t *testing.T) {
	rt, clk, p, cg := statsFixture(t)
	first, err := p.CPUAndMemory(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	// No rate the runtime does not give before a second sample.
	if r := first.Node.CPU.UsageNanoCores; r != nil {
		t.Errorf("first node rate %d, want none", *r)
	}
	if r := first.Pods[0].Containers[1].CPU.UsageNanoCores; r != nil {
		t.Errorf("first sidecar rate %d, want none", *r)
	}
	if r := first.Pods[0].Containers[0].CPU.UsageNanoCores; r == nil || *r != 3e8 {
		t.Errorf("first app rate %v, want the runtime's 3e8", r)
	}
	advance(t, rt, clk, cg)
	got, err := p.CPUAndMemory(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(wantCPUAndMemory(), got); diff != "" {
		t.Errorf("summary (-want +got):\n%s", diff)
	}
}

func TestSummaryFull(t *testing.T) {
	rt, clk, p, cg := statsFixture(t)
	if _, err := p.Summary(context.Background()); err != nil {
		t.Fatal(err)
	}
	advance(t, rt, clk, cg)
	got, err := p.Summary(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	want := wantCPUAndMemory()
	want.Node.Rlimit = &statsapi.RlimitStats{Time: mt(t1), MaxPID: i64(63000), NumOfRunningProcesses: i64(345)}
	web := &want.Pods[0]
	web.Network = &statsapi.NetworkStats{Time: mt(t1), InterfaceStats: statsapi.InterfaceStats{Name: "eth0", RxBytes: u64(10), TxBytes: u64(20)}}
	web.ProcessStats = &statsapi.ProcessStats{ProcessCount: u64(5)}
	for _, ps := range want.Pods {
		for i := range ps.Containers {
			ps.Containers[i].Rootfs = &statsapi.FsStats{Time: mt(t1), UsedBytes: u64(4096)}
		}
	}
	if got.Node.Fs == nil || got.Node.Fs.CapacityBytes == nil || *got.Node.Fs.CapacityBytes == 0 {
		t.Errorf("node fs %+v, want the temp dir's filesystem", got.Node.Fs)
	}
	if diff := cmp.Diff(want, got, cmpopts.IgnoreFields(statsapi.NodeStats{}, "Fs")); diff != "" {
		t.Errorf("summary (-want +got):\n%s", diff)
	}
}

// TestWithoutSandboxStats has a runtime that does not implement
// ListPodSandboxStats: pods come from their cgroups, or are summed from
// their containers; the runtime is not asked again.
func TestWithoutSandboxStats(t *testing.T) {
	rt, clk, p, cg := statsFixture(t)
	// As a runtime that predates ListPodSandboxStats; once told, the
	// provider must not ask again.
	rt.InjectError("ListPodSandboxStats", status.Error(codes.Unimplemented, "not implemented"))
	if _, err := p.CPUAndMemory(context.Background()); err != nil {
		t.Fatal(err)
	}
	advance(t, rt, clk, cg)
	got, err := p.CPUAndMemory(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	want := wantCPUAndMemory()
	want.Pods[0].CPU = &statsapi.CPUStats{Time: mt(t1), UsageCoreNanoSeconds: u64(13e9), UsageNanoCores: u64(4e8)}
	want.Pods[0].Memory = &statsapi.MemoryStats{Time: mt(t1), WorkingSetBytes: u64(370 << 20), UsageBytes: u64(370<<20 + 200)}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("summary (-want +got):\n%s", diff)
	}
	if n := rt.CallCount("ListPodSandboxStats"); n != 1 {
		t.Errorf("ListPodSandboxStats called %d times, want once", n)
	}
}

func TestNodeMemory(t *testing.T) {
	tests := []struct {
		name   string
		cgroup map[string]string
		want   *statsapi.MemoryStats
	}{
		{
			name:   "root cgroup without memory.stat: all from meminfo",
			cgroup: map[string]string{"cpu.stat": "usage_usec 1\n"},
			want: &statsapi.MemoryStats{Time: mt(t0), UsageBytes: u64(6 * gib), WorkingSetBytes: u64(5 * gib),
				RSSBytes: u64(3 * gib), AvailableBytes: u64(3 * gib)},
		},
		{
			name:   "a cgroup with memory.current",
			cgroup: map[string]string{"memory.current": "4294967296\n", "memory.stat": "anon 1073741824\ninactive_file 2147483648\n"},
			want: &statsapi.MemoryStats{Time: mt(t0), UsageBytes: u64(4 * gib), WorkingSetBytes: u64(2 * gib),
				RSSBytes: u64(gib), AvailableBytes: u64(6 * gib)},
		},
		{
			name:   "inactive file above usage",
			cgroup: map[string]string{"memory.current": "1024\n", "memory.stat": "inactive_file 4096\n"},
			want: &statsapi.MemoryStats{Time: mt(t0), UsageBytes: u64(1024), WorkingSetBytes: u64(0),
				RSSBytes: u64(0), AvailableBytes: u64(8 * gib)},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cg, proc := t.TempDir(), t.TempDir()
			writeTree(t, cg, tt.cgroup)
			writeTree(t, proc, proc0)
			p, err := NewProvider(Config{Runtime: critesting.NewRuntime(), NodeName: "n", CgroupRoot: cg, ProcRoot: proc,
				RootFS: cg, Clock: testingclock.NewFakeClock(t0)})
			if err != nil {
				t.Fatal(err)
			}
			root, err := readCgroup(cg)
			if err != nil {
				t.Fatal(err)
			}
			got, err := p.nodeMemory(root, t0)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("node memory (-want +got):\n%s", diff)
			}
		})
	}
}

// TestNodeCPUFromProcStat reads the node's CPU from /proc/stat when the
// root cgroup has no cpu.stat: user+nice+system+irq+softirq+steal ticks.
func TestNodeCPUFromProcStat(t *testing.T) {
	cg, proc := t.TempDir(), t.TempDir()
	writeTree(t, proc, proc0)
	p, err := NewProvider(Config{Runtime: critesting.NewRuntime(), NodeName: "n", CgroupRoot: cg, ProcRoot: proc,
		RootFS: cg, Clock: testingclock.NewFakeClock(t0)})
	if err != nil {
		t.Fatal(err)
	}
	ns, err := p.nodeStats(context.Background(), false)
	if err != nil {
		t.Fatal(err)
	}
	want := uint64(1000+20+500+30+40+50) * uint64(10*time.Millisecond)
	if got := ns.CPU.UsageCoreNanoSeconds; got == nil || *got != want {
		t.Errorf("node CPU %v, want %d", got, want)
	}
}

func TestRates(t *testing.T) {
	type sample struct {
		at    time.Duration
		total uint64
		want  *uint64
	}
	tests := []struct {
		name    string
		samples []sample
	}{
		{name: "first has none, then the rate", samples: []sample{
			{at: 0, total: 0, want: nil},
			{at: 2 * time.Second, total: 1e9, want: u64(5e8)},
			{at: 4 * time.Second, total: 5e9, want: u64(2e9)},
		}},
		{name: "too close keeps the last rate", samples: []sample{
			{at: 0, total: 0},
			{at: 10 * time.Second, total: 10e9, want: u64(1e9)},
			{at: 10*time.Second + time.Millisecond, total: 11e9, want: u64(1e9)},
			{at: 20 * time.Second, total: 12e9, want: u64(2e8)},
		}},
		{name: "a counter going back starts over", samples: []sample{
			{at: 0, total: 10e9},
			{at: 10 * time.Second, total: 1e9, want: nil},
			{at: 20 * time.Second, total: 6e9, want: u64(5e8)},
		}},
		{name: "large counters do not overflow", samples: []sample{
			{at: 0, total: 1 << 62},
			{at: time.Hour, total: 1<<62 + 3600e9*64, want: u64(64e9)},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := rateCache{}
			for i, s := range tt.samples {
				got := c.nanoCores("k", t0.Add(s.at), s.total)
				if diff := cmp.Diff(s.want, got); diff != "" {
					t.Errorf("sample %d: rate (-want +got):\n%s", i, diff)
				}
			}
		})
	}
}

// TestRatesForgetTheGone drops the samples of what no longer shows up.
func TestRatesForgetTheGone(t *testing.T) {
	c := rateCache{}
	c.startRound()
	c.nanoCores("stays", t0, 1)
	c.nanoCores("goes", t0, 1)
	c.endRound()
	c.startRound()
	c.nanoCores("stays", t1, 2)
	c.endRound()
	if _, ok := c["goes"]; ok || len(c) != 1 {
		t.Errorf("cache %v, want only the sample of what stayed", c)
	}
}

func TestConfigValidate(t *testing.T) {
	err := (&Config{}).Validate()
	for _, want := range []string{"runtime: required", "node name: required", "root fs path: required"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate() = %v, want it to mention %q", err, want)
		}
	}
	if _, err := NewProvider(Config{Runtime: critesting.NewRuntime(), NodeName: "n", RootFS: "/"}); err != nil {
		t.Errorf("NewProvider with defaults: %v", err)
	}
}
