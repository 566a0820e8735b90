package resize

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

func req(cpu, mem string) v1.ResourceRequirements {
	r := v1.ResourceRequirements{Requests: v1.ResourceList{}}
	if cpu != "" {
		r.Requests[v1.ResourceCPU] = resource.MustParse(cpu)
	}
	if mem != "" {
		r.Requests[v1.ResourceMemory] = resource.MustParse(mem)
	}
	return r
}

func lim(r v1.ResourceRequirements, cpu, mem string) v1.ResourceRequirements {
	r = *r.DeepCopy()
	r.Limits = v1.ResourceList{}
	if cpu != "" {
		r.Limits[v1.ResourceCPU] = resource.MustParse(cpu)
	}
	if mem != "" {
		r.Limits[v1.ResourceMemory] = resource.MustParse(mem)
	}
	return r
}

func podWith(containers ...v1.Container) *v1.Pod {
	return &v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", UID: "uid", Generation: 2}, Spec: v1.PodSpec{Containers: containers}}
}

func ctr(name string, r v1.ResourceRequirements) v1.Container {
	return v1.Container{Name: name, Resources: r}
}

func list(cpu, mem string) v1.ResourceList {
	return req(cpu, mem).Requests
}

func TestFit(t *testing.T) {
	node := list("2", "4Gi")
	sidecar := ctr("side", req("500m", ""))
	sidecar.RestartPolicy = ptr.To(v1.ContainerRestartPolicyAlways)
	withSidecar := podWith(ctr("a", req("1", "1Gi")))
	withSidecar.Spec.InitContainers = []v1.Container{sidecar}
	tests := []struct {
		name string
		pod  *v1.Pod
		used v1.ResourceList
		want Verdict
	}{
		{"fits beside others", podWith(ctr("a", req("1", "1Gi"))), list("1", "3Gi"), Verdict{}},
		{"CPU taken: deferred", podWith(ctr("a", req("1500m", "1Gi"))), list("1", "1Gi"), Verdict{
			Reason: ReasonOutOfCPU, Message: "Node didn't have enough resource: cpu, requested: 1500, used: 1000, capacity: 2000"}},
		{"memory taken: deferred", podWith(ctr("a", req("1", "2Gi"))), list("500m", "3Gi"), Verdict{
			Reason: ReasonOutOfMemory, Message: "Node didn't have enough resource: memory, requested: 2147483648, used: 3221225472, capacity: 4294967296"}},
		{"more than the node: infeasible even on an empty node", podWith(ctr("a", req("3", "1Gi"))), nil, Verdict{
			Reason: ReasonInfeasible, Message: "Node didn't have enough capacity: cpu, requested: 3000, capacity: 2000"}},
		{"a sidecar counts", withSidecar, list("600m", ""), Verdict{
			Reason: ReasonOutOfCPU, Message: "Node didn't have enough resource: cpu, requested: 1500, used: 600, capacity: 2000"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, Fit(tc.pod, tc.used, node)); diff != "" {
				t.Errorf("Fit (-want +got):\n%s", diff)
			}
		})
	}
}

func TestApplyKeepsSpecOfUnknownContainers(t *testing.T) {
	pod := podWith(ctr("a", req("1", "")), ctr("b", req("2", "")))
	out, differs := Apply(pod, map[string]v1.ResourceRequirements{"a": req("500m", "")})
	if !differs || out == pod {
		t.Fatal("allocation differing from the spec not applied to a copy")
	}
	if got := out.Spec.Containers[0].Resources.Requests.Cpu().MilliValue(); got != 500 {
		t.Errorf("a has %dm, want the allocated 500m", got)
	}
	if got := out.Spec.Containers[1].Resources.Requests.Cpu().MilliValue(); got != 2000 {
		t.Errorf("b has %dm, want its spec's 2000m", got)
	}
	if pod.Spec.Containers[0].Resources.Requests.Cpu().MilliValue() != 1000 {
		t.Error("Apply changed its input")
	}
	if same, differs := Apply(pod, map[string]v1.ResourceRequirements{"a": req("1000m", "")}); differs || same != pod {
		t.Error("1000m and 1 counted as different")
	}
}

func TestAdd(t *testing.T) {
	got := Add(list("100m", "1Gi"), list("1", ""))
	if got.Cpu().MilliValue() != 1100 || got.Memory().Value() != 1<<30 {
		t.Errorf("sum %v", got)
	}
}
