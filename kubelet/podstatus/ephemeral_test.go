package podstatus

import (
	"slices"
	"testing"

	"github.com/berthnode/berth/kubelet/podruntime"
	"github.com/berthnode/berth/kubelet/podruntime/podruntimetest"
	v1 "k8s.io/api/core/v1"
)

func TestEphemeralStatuses(t *testing.T) {
	pod := podruntimetest.WithEphemeral(podruntimetest.Pod(v1.RestartPolicyAlways, nil, podruntimetest.Spec("app")),
		podruntimetest.Debug("zz-new", ""), podruntimetest.Debug("run", "app"), podruntimetest.Debug("done", ""), podruntimetest.Debug("bad", ""))
	run, done := podruntimetest.Running("run"), podruntimetest.Exited("done", 3)
	run.ImageRef, done.ImageRef = "sha256:run", "sha256:done"
	in := Input{
		Pod:         pod,
		RT:          podruntimetest.State(true, run, done, podruntimetest.Running("app")),
		Waiting:     map[string]podruntime.WaitingReason{"bad": {Reason: podruntime.ReasonErrImagePull, Message: "no such image"}},
		Now:         podruntimetest.T0,
		RuntimeName: "containerd",
	}
	st := Build(in)
	var names []string
	for _, s := range st.EphemeralContainerStatuses {
		names = append(names, s.Name)
		if s.Started != nil || s.Ready || s.Image != "img" {
			t.Errorf("%s: started %v ready %v image %q", s.Name, s.Started, s.Ready, s.Image)
		}
	}
	if want := []string{"bad", "done", "run", "zz-new"}; !slices.Equal(names, want) {
		t.Fatalf("statuses %v, want %v", names, want)
	}
	byName := func(n string) v1.ContainerStatus { s, _ := StatusByName(st.EphemeralContainerStatuses, n); return s }
	if s := byName("run"); s.State.Running == nil || s.ContainerID != "containerd://run-id" || s.ImageID != "sha256:run" {
		t.Errorf("run: %+v", s)
	}
	if s := byName("done"); s.State.Terminated == nil || s.State.Terminated.ExitCode != 3 || s.State.Terminated.Reason != ReasonError {
		t.Errorf("done: %+v", s.State)
	}
	if s := byName("bad"); s.State.Waiting == nil || s.State.Waiting.Reason != podruntime.ReasonErrImagePull {
		t.Errorf("bad: %+v", s.State)
	}
	if s := byName("zz-new"); s.State.Waiting == nil || s.State.Waiting.Reason != ReasonContainerCreating {
		t.Errorf("zz-new: %+v", s.State)
	}
	if len(st.ContainerStatuses) != 1 || st.Phase != v1.PodRunning {
		t.Errorf("ephemeral containers changed the pod: %d statuses, phase %s", len(st.ContainerStatuses), st.Phase)
	}
}
