package resize

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	v1 "k8s.io/api/core/v1"
)

// stepNames lists a plan's steps as "name:resource:from->to" of the amounts
// that change.
func summary(p Plan) map[string][]string {
	out := map[string][]string{}
	for name := range p.Restart {
		out["restart"] = append(out["restart"], name)
	}
	for _, s := range p.Memory {
		out["memory"] = append(out["memory"], s.Name)
	}
	for _, s := range p.CPU {
		out["cpu"] = append(out["cpu"], s.Name)
	}
	return out
}

func withPolicy(c v1.Container, r v1.ResourceName, p v1.ResourceResizeRestartPolicy) v1.Container {
	c.ResizePolicy = append(c.ResizePolicy, v1.ContainerResizePolicy{ResourceName: r, RestartPolicy: p})
	return c
}

func TestPlanFor(t *testing.T) {
	small := lim(req("100m", "64Mi"), "200m", "128Mi")
	big := lim(req("300m", "128Mi"), "400m", "256Mi")
	running := map[string]string{"a": "id-a", "b": "id-b"}
	tests := []struct {
		name     string
		pod      *v1.Pod
		actuated map[string]v1.ResourceRequirements
		running  map[string]string
		want     map[string][]string
	}{
		{"nothing changes", podWith(ctr("a", small)), nil, running, map[string][]string{}},
		{"both grow in place", podWith(ctr("a", big)), map[string]v1.ResourceRequirements{"a": small}, running,
			map[string][]string{"memory": {"a"}, "cpu": {"a"}}},
		{"memory with RestartContainer restarts", podWith(withPolicy(ctr("a", big), v1.ResourceMemory, v1.RestartContainer)),
			map[string]v1.ResourceRequirements{"a": small}, running, map[string][]string{"restart": {"a"}}},
		{"CPU alone does not restart for a memory policy",
			podWith(withPolicy(ctr("a", lim(req("300m", "64Mi"), "400m", "128Mi")), v1.ResourceMemory, v1.RestartContainer)),
			map[string]v1.ResourceRequirements{"a": small}, running, map[string][]string{"cpu": {"a"}}},
		{"shrinking goes first", podWith(ctr("a", big), ctr("b", small)),
			map[string]v1.ResourceRequirements{"a": small, "b": big}, running,
			map[string][]string{"memory": {"b", "a"}, "cpu": {"b", "a"}}},
		{"a container that does not run is left to its start", podWith(ctr("a", big)),
			map[string]v1.ResourceRequirements{"a": small}, map[string]string{}, map[string][]string{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rec := NewRecord(tc.pod)
			for name, r := range tc.actuated {
				rec.SetActuated(name, running[name], r)
			}
			if diff := cmp.Diff(tc.want, summary(PlanFor(tc.pod, rec, tc.running))); diff != "" {
				t.Errorf("plan (-want +got):\n%s", diff)
			}
		})
	}
}

func TestPlanStepsChangeOneResourceEach(t *testing.T) {
	small := lim(req("100m", "64Mi"), "200m", "128Mi")
	big := lim(req("300m", "128Mi"), "400m", "256Mi")
	pod := podWith(ctr("a", big))
	rec := NewRecord(pod)
	rec.SetActuated("a", "id-a", small)
	p := PlanFor(pod, rec, map[string]string{"a": "id-a"})
	if len(p.Memory) != 1 || len(p.CPU) != 1 {
		t.Fatalf("plan %+v", summary(p))
	}
	mem, cpu := p.Memory[0], p.CPU[0]
	want := []Amounts{AmountsOf(small), {100, 200, 128 << 20, 256 << 20}, AmountsOf(big)}
	got := []Amounts{AmountsOf(mem.From), AmountsOf(mem.To), AmountsOf(cpu.To)}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("steps (-want +got):\n%s", diff)
	}
	if mem.ContainerID != "id-a" || AmountsOf(cpu.From) != AmountsOf(mem.To) {
		t.Errorf("the CPU step does not start where the memory step ended: %+v", p)
	}
}

func TestInProgress(t *testing.T) {
	small, big := req("100m", ""), req("200m", "")
	pod := podWith(ctr("a", big))
	rec := NewRecord(pod)
	rec.SetActuated("a", "id-a", small)
	if !InProgress(pod, rec, map[string]string{"a": "id-a"}) {
		t.Error("not in progress while the running container has its old resources")
	}
	if InProgress(pod, rec, map[string]string{"a": "id-new"}) {
		t.Error("in progress for a container started since, with its allocated resources")
	}
	rec.SetActuated("a", "id-a", big)
	if InProgress(pod, rec, map[string]string{"a": "id-a"}) || len(rec.Actuated) != 0 {
		t.Errorf("in progress after actuation; record %+v", rec.Actuated)
	}
}

func TestPodCgroupFor(t *testing.T) {
	guaranteed := lim(req("250m", "64Mi"), "250m", "64Mi")
	tests := []struct {
		name string
		pod  *v1.Pod
		want PodCgroup
	}{
		{"every container limited", podWith(ctr("a", guaranteed), ctr("b", guaranteed)),
			PodCgroup{CPUShares: 512, CPUQuota: 50000, CPUPeriod: 100000, MemoryLimit: 128 << 20}},
		{"one without limits leaves the pod unlimited", podWith(ctr("a", guaranteed), ctr("b", req("100m", ""))),
			PodCgroup{CPUShares: 358, CPUQuota: Unlimited, CPUPeriod: 100000, MemoryLimit: Unlimited}},
		{"best effort", podWith(ctr("a", v1.ResourceRequirements{})),
			PodCgroup{CPUShares: 2, CPUQuota: Unlimited, CPUPeriod: 100000, MemoryLimit: Unlimited}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, PodCgroupFor(tc.pod, true, 100000)); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestMilliCPUConversions(t *testing.T) {
	for milli, want := range map[int64]int64{0: 2, 1: 2, 100: 102, 1000: 1024, 1000000: 262144} {
		if got := MilliCPUToShares(milli); got != want {
			t.Errorf("MilliCPUToShares(%d) = %d, want %d", milli, got, want)
		}
	}
	for milli, want := range map[int64]int64{0: Unlimited, 5: 1000, 10: 1000, 250: 25000} {
		if got := MilliCPUToQuota(milli, 100000); got != want {
			t.Errorf("MilliCPUToQuota(%d) = %d, want %d", milli, got, want)
		}
	}
}
