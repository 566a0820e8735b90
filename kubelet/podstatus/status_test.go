package podstatus

import (
	"strings"
	"testing"
	"time"

	"github.com/berthnode/berth/kubelet/podruntime"
	"github.com/berthnode/berth/kubelet/podruntime/podruntimetest"
	"github.com/google/go-cmp/cmp"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// condSummary is a condition without its times.
type condSummary struct {
	Type   v1.PodConditionType
	Status v1.ConditionStatus
	Reason string
}

func summarize(list []v1.PodCondition) []condSummary {
	var out []condSummary
	for _, c := range list {
		out = append(out, condSummary{c.Type, c.Status, c.Reason})
	}
	return out
}

func TestBuildStatus(t *testing.T) {
	always, never := v1.RestartPolicyAlways, v1.RestartPolicyNever
	scheduled := condSummary{v1.PodScheduled, v1.ConditionTrue, ""}
	sandboxUp := condSummary{v1.PodReadyToStartContainers, v1.ConditionTrue, ""}
	initTrue := condSummary{v1.PodInitialized, v1.ConditionTrue, ""}
	readyTrue := []condSummary{{v1.ContainersReady, v1.ConditionTrue, ""}, {v1.PodReady, v1.ConditionTrue, ""}}
	notReady := []condSummary{{v1.ContainersReady, v1.ConditionFalse, ReasonContainersNotReady}, {v1.PodReady, v1.ConditionFalse, ReasonContainersNotReady}}
	completed := []condSummary{{v1.ContainersReady, v1.ConditionFalse, ReasonPodCompleted}, {v1.PodReady, v1.ConditionFalse, ReasonPodCompleted}}
	tests := []struct {
		name       string
		pod        *v1.Pod
		rt         *podruntime.PodState
		waiting    map[string]podruntime.WaitingReason
		terminal   bool
		phase      v1.PodPhase
		conditions []condSummary
		states     map[string]string
	}{{
		name:       "no sandbox yet",
		pod:        podruntimetest.Scheduled(always, nil, podruntimetest.Spec("a")),
		rt:         &podruntime.PodState{},
		phase:      v1.PodPending,
		conditions: append([]condSummary{scheduled, {v1.PodReadyToStartContainers, v1.ConditionFalse, ""}, initTrue}, notReady...),
		states:     map[string]string{"a": "waiting:ContainerCreating"},
	}, {
		name:       "running",
		pod:        podruntimetest.Scheduled(always, nil, podruntimetest.Spec("a")),
		rt:         podruntimetest.State(true, podruntimetest.Running("a")),
		phase:      v1.PodRunning,
		conditions: append([]condSummary{scheduled, sandboxUp, initTrue}, readyTrue...),
		states:     map[string]string{"a": "running"},
	}, {
		name:  "init container running",
		pod:   podruntimetest.Scheduled(always, []v1.Container{podruntimetest.Spec("i")}, podruntimetest.Spec("a")),
		rt:    podruntimetest.State(true, podruntimetest.Running("i")),
		phase: v1.PodPending,
		conditions: append([]condSummary{scheduled, sandboxUp, {v1.PodInitialized, v1.ConditionFalse, ReasonContainersNotInit}},
			notReady...),
		states: map[string]string{"i": "running", "a": "waiting:PodInitializing"},
	}, {
		name:       "init done, container being created",
		pod:        podruntimetest.Scheduled(always, []v1.Container{podruntimetest.Spec("i")}, podruntimetest.Spec("a")),
		rt:         podruntimetest.State(true, podruntimetest.Exited("i", 0)),
		phase:      v1.PodPending,
		conditions: append([]condSummary{scheduled, sandboxUp, initTrue}, notReady...),
		states:     map[string]string{"i": "terminated:Completed", "a": "waiting:ContainerCreating"},
	}, {
		name:       "crash loop",
		pod:        podruntimetest.Scheduled(always, nil, podruntimetest.Spec("a")),
		rt:         podruntimetest.State(true, podruntimetest.Exited("a", 1)),
		waiting:    map[string]podruntime.WaitingReason{"a": {Reason: podruntime.ReasonCrashLoopBackOff, Message: "back-off 10s"}},
		phase:      v1.PodRunning,
		conditions: append([]condSummary{scheduled, sandboxUp, initTrue}, notReady...),
		states:     map[string]string{"a": "waiting:CrashLoopBackOff"},
	}, {
		name:       "image pull error",
		pod:        podruntimetest.Scheduled(always, nil, podruntimetest.Spec("a"), podruntimetest.Spec("b")),
		rt:         podruntimetest.State(true, podruntimetest.Running("b")),
		waiting:    map[string]podruntime.WaitingReason{"a": {Reason: podruntime.ReasonErrImagePull, Message: "not found"}},
		phase:      v1.PodPending,
		conditions: append([]condSummary{scheduled, sandboxUp, initTrue}, notReady...),
		states:     map[string]string{"a": "waiting:ErrImagePull", "b": "running"},
	}, {
		name:       "Never pod failed",
		pod:        podruntimetest.Scheduled(never, nil, podruntimetest.Spec("a"), podruntimetest.Spec("b")),
		rt:         podruntimetest.State(false, podruntimetest.Exited("a", 0), podruntimetest.Exited("b", 2)),
		terminal:   true,
		phase:      v1.PodFailed,
		conditions: append([]condSummary{scheduled, {v1.PodReadyToStartContainers, v1.ConditionFalse, ""}, initTrue}, notReady...),
		states:     map[string]string{"a": "terminated:Completed", "b": "terminated:Error"},
	}, {
		name:       "Never pod succeeded",
		pod:        podruntimetest.Scheduled(never, nil, podruntimetest.Spec("a")),
		rt:         podruntimetest.State(false, podruntimetest.Exited("a", 0)),
		terminal:   true,
		phase:      v1.PodSucceeded,
		conditions: append([]condSummary{scheduled, {v1.PodReadyToStartContainers, v1.ConditionFalse, ""}, initTrue}, completed...),
		states:     map[string]string{"a": "terminated:Completed"},
	}, {
		name:     "init container failed under Never",
		pod:      podruntimetest.Scheduled(never, []v1.Container{podruntimetest.Spec("i")}, podruntimetest.Spec("a")),
		rt:       podruntimetest.State(false, podruntimetest.Exited("i", 1)),
		terminal: true,
		phase:    v1.PodFailed,
		conditions: append([]condSummary{scheduled, {v1.PodReadyToStartContainers, v1.ConditionFalse, ""},
			{v1.PodInitialized, v1.ConditionFalse, ReasonContainersNotInit}}, notReady...),
		states: map[string]string{"i": "terminated:Error", "a": "waiting:PodInitializing"},
	}, {
		name:       "sidecar running with the app",
		pod:        podruntimetest.Scheduled(always, []v1.Container{podruntimetest.Sidecar("s")}, podruntimetest.Spec("a")),
		rt:         podruntimetest.State(true, podruntimetest.Running("s"), podruntimetest.Running("a")),
		phase:      v1.PodRunning,
		conditions: append([]condSummary{scheduled, sandboxUp, initTrue}, readyTrue...),
		states:     map[string]string{"s": "running", "a": "running"},
	}, {
		name: "OOM killed",
		pod:  podruntimetest.Scheduled(never, nil, podruntimetest.Spec("a")),
		rt: podruntimetest.State(false, &podruntime.ContainerState{ID: "x", Name: "a", SandboxID: "sb", State: runtimeapi.ContainerState_CONTAINER_EXITED,
			ExitCode: 137, Reason: "OOMKilled"}),
		terminal:   true,
		phase:      v1.PodFailed,
		conditions: append([]condSummary{scheduled, {v1.PodReadyToStartContainers, v1.ConditionFalse, ""}, initTrue}, notReady...),
		states:     map[string]string{"a": "terminated:OOMKilled"},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := Build(Input{Pod: tt.pod, RT: tt.rt, Waiting: tt.waiting, Terminal: tt.terminal,
				Now: podruntimetest.T0, HostIPs: []string{"192.0.2.10"}, RuntimeName: "containerd"})
			if st.Phase != tt.phase {
				t.Errorf("phase %s, want %s", st.Phase, tt.phase)
			}
			if diff := cmp.Diff(tt.conditions, summarize(st.Conditions)); diff != "" {
				t.Errorf("conditions (-want +got):\n%s", diff)
			}
			states := map[string]string{}
			for _, list := range [][]v1.ContainerStatus{st.InitContainerStatuses, st.ContainerStatuses} {
				for _, s := range list {
					switch {
					case s.State.Running != nil:
						states[s.Name] = "running"
					case s.State.Terminated != nil:
						states[s.Name] = "terminated:" + s.State.Terminated.Reason
					case s.State.Waiting != nil:
						states[s.Name] = "waiting:" + s.State.Waiting.Reason
					}
				}
			}
			if diff := cmp.Diff(tt.states, states); diff != "" {
				t.Errorf("container states (-want +got):\n%s", diff)
			}
		})
	}
}

func TestBuildStatusDetails(t *testing.T) {
	pod := podruntimetest.Scheduled(v1.RestartPolicyAlways, nil, podruntimetest.Spec("a"))
	pod.Status.Conditions = append(pod.Status.Conditions,
		v1.PodCondition{Type: v1.PodReady, Status: v1.ConditionTrue, LastTransitionTime: metav1.NewTime(podruntimetest.T0.Add(-time.Hour))},
		v1.PodCondition{Type: "example.com/gate", Status: v1.ConditionTrue})
	prev := podruntimetest.Exited("a", 2)
	prev.ID, prev.RestartCount = "old", 0
	cur := podruntimetest.Running("a")
	cur.ID, cur.RestartCount, cur.ImageRef, cur.CreatedAt = "new", 1, "sha256:img", podruntimetest.T0.Add(time.Minute)
	rt := podruntimetest.State(true, cur, prev)
	st := Build(Input{Pod: pod, RT: rt, Now: podruntimetest.T0, HostIPs: []string{"192.0.2.10", "2001:db8::10"},
		RuntimeName: "containerd", Messages: map[string]string{"old": "bye"}})
	s := st.ContainerStatuses[0]
	if s.ContainerID != "containerd://new" || s.RestartCount != 1 || s.ImageID != "sha256:img" || !s.Ready || !*s.Started {
		t.Errorf("status %+v", s)
	}
	if lt := s.LastTerminationState.Terminated; lt == nil || lt.ExitCode != 2 || lt.Message != "bye" || lt.ContainerID != "containerd://old" {
		t.Errorf("last state %+v", s.LastTerminationState)
	}
	if st.PodIP != "10.0.0.5" || st.HostIP != "192.0.2.10" || len(st.HostIPs) != 2 || st.QOSClass != v1.PodQOSBestEffort || st.StartTime == nil {
		t.Errorf("pod IP %q host IP %q host IPs %v QoS %s start %v", st.PodIP, st.HostIP, st.HostIPs, st.QOSClass, st.StartTime)
	}
	ready := FindCondition(st.Conditions, v1.PodReady)
	if !ready.LastTransitionTime.Time.Equal(podruntimetest.T0.Add(-time.Hour)) {
		t.Errorf("unchanged Ready condition got a new transition time %v", ready.LastTransitionTime)
	}
	if FindCondition(st.Conditions, "example.com/gate") == nil {
		t.Error("foreign condition dropped")
	}

	// A readiness gate that is not True holds Ready back.
	pod.Spec.ReadinessGates = []v1.PodReadinessGate{{ConditionType: "example.com/missing"}}
	st = Build(Input{Pod: pod, RT: rt, Now: podruntimetest.T0})
	if c := FindCondition(st.Conditions, v1.PodReady); c.Status != v1.ConditionFalse || !strings.Contains(c.Message, "example.com/missing") {
		t.Errorf("Ready with an unmet gate: %+v", c)
	}
}
