package resize

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestSequence(t *testing.T) {
	step := func(name string) Step { return Step{Name: name} }
	memPlan := Plan{Memory: []Step{step("down"), step("up")}}
	cpuPlan := Plan{CPU: []Step{step("c")}}
	pc := func(shares, quota, mem int64) *PodCgroup {
		return &PodCgroup{CPUShares: shares, CPUQuota: quota, CPUPeriod: 100000, MemoryLimit: mem}
	}
	tests := []struct {
		name      string
		plan      Plan
		cur, want *PodCgroup
		restart   bool
		ops       []string
	}{
		{"memory grows: pod first", memPlan, pc(2, Unlimited, 100), pc(2, Unlimited, 200), false,
			[]string{"pod-memory", "down", "up"}},
		{"memory shrinks: pod last", memPlan, pc(2, Unlimited, 200), pc(2, Unlimited, 100), false,
			[]string{"down", "up", "pod-memory"}},
		{"a first pod limit comes after the containers", memPlan, pc(2, Unlimited, Unlimited), pc(2, Unlimited, 100), false,
			[]string{"down", "up", "pod-memory"}},
		{"CPU grows: quota and shares first", cpuPlan, pc(100, 10000, Unlimited), pc(200, 20000, Unlimited), false,
			[]string{"pod-quota", "pod-shares", "c"}},
		{"CPU shrinks: shares then quota last", cpuPlan, pc(200, 20000, Unlimited), pc(100, 10000, Unlimited), false,
			[]string{"c", "pod-shares", "pod-quota"}},
		{"no pod cgroup: containers only", Plan{Memory: []Step{step("m")}, CPU: []Step{step("c")}}, nil, nil, false,
			[]string{"m", "c"}},
		{"a restart may change the pod's totals", Plan{Restart: map[string]string{"r": "id"}}, pc(100, 10000, 100), pc(200, 20000, 200), true,
			[]string{"pod-memory", "pod-quota", "pod-shares"}},
		{"nothing to change", Plan{}, pc(2, Unlimited, 100), pc(2, Unlimited, 200), false, nil},
	}
	names := map[OpKind]string{OpPodMemory: "pod-memory", OpPodCPUQuota: "pod-quota", OpPodCPUShares: "pod-shares"}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var got []string
			for _, op := range Sequence(tc.plan, tc.cur, tc.want, tc.restart) {
				if op.Kind == OpContainer {
					got = append(got, op.Step.Name)
				} else {
					got = append(got, names[op.Kind])
				}
			}
			if diff := cmp.Diff(tc.ops, got); diff != "" {
				t.Errorf("sequence (-want +got):\n%s", diff)
			}
		})
	}
}
