package node

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/berthnode/berth/kubelet/config"
)

const gi = int64(1) << 30

func defaulted(t *testing.T, mutate func(*config.KubeletConfiguration)) *config.KubeletConfiguration {
	t.Helper()
	kc := &config.KubeletConfiguration{}
	mutate(kc)
	config.SetDefaults(kc)
	return kc
}

func TestAllocatable(t *testing.T) {
	info := MachineInfo{CPUs: 4, MemoryBytes: 8 * gi}
	usage := Usage{FSCapacityBytes: 100 * gi}
	tests := []struct {
		name                 string
		mutate               func(*config.KubeletConfiguration)
		cpu, memory, storage string
	}{
		{"defaults: eviction thresholds only", func(*config.KubeletConfiguration) {}, "4", "8092Mi", "92160Mi"},
		{"reserved", func(kc *config.KubeletConfiguration) {
			kc.SystemReserved = map[string]string{"cpu": "500m", "memory": "1Gi"}
			kc.KubeReserved = map[string]string{"cpu": "500m", "ephemeral-storage": "10Gi"}
		}, "3", "7068Mi", "81920Mi"},
		{"absolute storage threshold", func(kc *config.KubeletConfiguration) {
			kc.EvictionHard = map[string]string{"nodefs.available": "1Gi"}
		}, "4", "8Gi", "99Gi"},
		{"never below zero", func(kc *config.KubeletConfiguration) {
			kc.SystemReserved = map[string]string{"memory": "20Gi"}
		}, "4", "0", "92160Mi"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			kc := defaulted(t, tt.mutate)
			got, err := allocatable(capacity(info, usage, kc.MaxPods), kc)
			if err != nil {
				t.Fatal(err)
			}
			for name, want := range map[v1.ResourceName]string{v1.ResourceCPU: tt.cpu, v1.ResourceMemory: tt.memory, v1.ResourceEphemeralStorage: tt.storage} {
				q := got[name]
				if q.Cmp(resource.MustParse(want)) != 0 {
					t.Errorf("allocatable %s = %s, want %s", name, q.String(), want)
				}
			}
		})
	}
	kc := defaulted(t, func(kc *config.KubeletConfiguration) { kc.SystemReserved = map[string]string{"memory": "lots"} })
	if _, err := allocatable(capacity(info, usage, 110), kc); err == nil {
		t.Error("bad reserved quantity: no error")
	}
}

func TestComputePressure(t *testing.T) {
	info := MachineInfo{MemoryBytes: 8 * gi}
	healthy := Usage{MemoryAvailableBytes: 4 * gi, FSCapacityBytes: 100 * gi, FSAvailableBytes: 50 * gi, FSInodes: 1000, FSInodesFree: 500, PIDMax: 32768, PIDsInUse: 200}
	tests := []struct {
		name   string
		usage  func(u *Usage)
		mutate func(*config.KubeletConfiguration)
		want   pressure
	}{
		{"healthy", func(*Usage) {}, func(*config.KubeletConfiguration) {}, pressure{}},
		{"memory below 100Mi", func(u *Usage) { u.MemoryAvailableBytes = 50 << 20 }, func(*config.KubeletConfiguration) {}, pressure{memory: true}},
		{"disk below 10%", func(u *Usage) { u.FSAvailableBytes = 9 * gi }, func(*config.KubeletConfiguration) {}, pressure{disk: true}},
		{"image fs below 15%", func(u *Usage) { u.FSAvailableBytes = 14 * gi }, func(*config.KubeletConfiguration) {}, pressure{disk: true}},
		{"inodes below 5%", func(u *Usage) { u.FSInodesFree = 40 }, func(*config.KubeletConfiguration) {}, pressure{disk: true}},
		{"pids, when configured", func(u *Usage) { u.PIDsInUse = 32000 }, func(kc *config.KubeletConfiguration) {
			kc.EvictionHard = map[string]string{"pid.available": "1000"}
		}, pressure{pid: true}},
		{"pids, not configured", func(u *Usage) { u.PIDsInUse = 32700 }, func(*config.KubeletConfiguration) {}, pressure{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u := healthy
			tt.usage(&u)
			got, err := computePressure(u, info, defaulted(t, tt.mutate))
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("pressure %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestConditionsKeepTransitionTimes(t *testing.T) {
	t0 := time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)
	first := conditions(nil, []string{"runtime down"}, pressure{}, t0)
	byType := func(cs []v1.NodeCondition) map[v1.NodeConditionType]v1.NodeCondition {
		m := map[v1.NodeConditionType]v1.NodeCondition{}
		for _, c := range cs {
			m[c.Type] = c
		}
		return m
	}
	if c := byType(first)[v1.NodeReady]; c.Status != v1.ConditionFalse || c.Message != "runtime down" || c.Reason != "KubeletNotReady" {
		t.Errorf("ready condition %+v", c)
	}
	// NetworkUnavailable belongs to someone else: it is kept as is.
	foreign := v1.NodeCondition{Type: v1.NodeNetworkUnavailable, Status: v1.ConditionFalse, Reason: "RouteCreated"}
	t1 := t0.Add(time.Minute)
	second := byType(conditions(append(first, foreign), nil, pressure{}, t1))
	if c := second[v1.NodeReady]; c.Status != v1.ConditionTrue || !c.LastTransitionTime.Time.Equal(t1) {
		t.Errorf("ready after recovery %+v, want True since %v", c, t1)
	}
	if c := second[v1.NodeMemoryPressure]; !c.LastTransitionTime.Time.Equal(t0) || !c.LastHeartbeatTime.Time.Equal(t1) {
		t.Errorf("memory pressure %+v: want transition %v (unchanged) and heartbeat %v", c, t0, t1)
	}
	if diff := cmp.Diff(foreign, second[v1.NodeNetworkUnavailable]); diff != "" {
		t.Errorf("foreign condition changed (-want +got):\n%s", diff)
	}
	if c := second[v1.NodeDiskPressure]; c.Reason != "KubeletHasNoDiskPressure" {
		t.Errorf("disk pressure reason %q, want upstream's KubeletHasNoDiskPressure", c.Reason)
	}
}

func TestStatusEqualIgnoresHeartbeats(t *testing.T) {
	a := v1.NodeStatus{Conditions: []v1.NodeCondition{{Type: v1.NodeReady, Status: v1.ConditionTrue, LastHeartbeatTime: metav1.Unix(1, 0)}}}
	b := *a.DeepCopy()
	b.Conditions[0].LastHeartbeatTime = metav1.Unix(2, 0)
	if !statusEqual(a, b) {
		t.Error("statuses that differ only in heartbeat compare unequal")
	}
	b.Conditions[0].Status = v1.ConditionFalse
	if statusEqual(a, b) {
		t.Error("statuses with different Ready compare equal")
	}
}

func TestParseThreshold(t *testing.T) {
	for in, want := range map[string]int64{"100Mi": 100 << 20, "10%": 100, "0.5%": 5} {
		th, err := parseThreshold(in)
		if err != nil {
			t.Fatal(err)
		}
		if got := th.value(1000); in != "100Mi" && got != want {
			t.Errorf("%s of 1000 = %d, want %d", in, got, want)
		} else if in == "100Mi" && th.value(0) != want {
			t.Errorf("%s = %d, want %d", in, th.value(0), want)
		}
	}
	for _, bad := range []string{"110%", "x%", "lots"} {
		if _, err := parseThreshold(bad); err == nil {
			t.Errorf("parseThreshold(%q): no error", bad)
		}
	}
}

func TestMachineParsers(t *testing.T) {
	route := "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n" +
		"cni0\t0000F40A\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n" +
		"eth0\t00000000\t01C8A8C0\t0003\t0\t0\t0\t00000000\t0\t0\t0\n"
	if got, err := defaultRouteInterface([]byte(route)); err != nil || got != "eth0" {
		t.Errorf("default route interface %q, %v; want eth0", got, err)
	}
	if _, err := defaultRouteInterface([]byte(route[:strings.Index(route, "eth0")])); err == nil {
		t.Error("no default route: no error")
	}
	mem := "MemTotal:       24684092 kB\nMemFree:        1000 kB\nMemAvailable:   20000000 kB\n"
	if got, err := parseMeminfo([]byte(mem), "MemAvailable"); err != nil || got != 20000000*1024 {
		t.Errorf("MemAvailable %d, %v", got, err)
	}
	if _, err := parseMeminfo([]byte(mem), "SwapTotal"); err == nil {
		t.Error("missing meminfo field: no error")
	}
}
