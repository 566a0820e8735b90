package testing

import (
	"context"
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/berthnode/berth/cri"
)

func TestRuntimeLabelsAndOrder(t *testing.T) {
	ctx := context.Background()
	r := NewRuntime()
	r.AddSandbox(Sandbox{ID: "b", Namespace: "ns", Name: "web", UID: "u", CreatedAt: 2})
	r.AddSandbox(Sandbox{ID: "a", Namespace: "ns", Name: "web", UID: "u", CreatedAt: 2, NotReady: true})
	r.AddContainer(Container{ID: "c2", SandboxID: "b", Name: "app", Attempt: 1, CreatedAt: 4, LogPath: "/l"})
	r.AddContainer(Container{ID: "c1", SandboxID: "b", Name: "app", CreatedAt: 3})

	sbs, err := r.ListPodSandbox(ctx, &runtimeapi.PodSandboxFilter{LabelSelector: map[string]string{cri.LabelPodUID: "u"}})
	if err != nil || len(sbs) != 2 || sbs[0].Id != "a" || sbs[1].Id != "b" {
		t.Fatalf("ListPodSandbox = %v, %v; want a, b by creation then ID", sbs, err)
	}
	if sbs[0].State != runtimeapi.PodSandboxState_SANDBOX_NOTREADY || sbs[1].State != runtimeapi.PodSandboxState_SANDBOX_READY {
		t.Errorf("sandbox states %v, %v", sbs[0].State, sbs[1].State)
	}
	cs, err := r.ListContainers(ctx, &runtimeapi.ContainerFilter{LabelSelector: map[string]string{cri.LabelContainerName: "app"}})
	if err != nil || len(cs) != 2 || cs[0].Id != "c1" {
		t.Fatalf("ListContainers = %v, %v; want c1 first", cs, err)
	}
	want := map[string]string{cri.LabelPodNamespace: "ns", cri.LabelPodName: "web", cri.LabelPodUID: "u", cri.LabelContainerName: "app"}
	if diff := cmp.Diff(want, cs[1].Labels); diff != "" {
		t.Errorf("labels (-want +got):\n%s", diff)
	}
	if n := cri.RestartCount(cs[1]); n != 1 {
		t.Errorf("restart count %d, want 1", n)
	}
	resp, err := r.ContainerStatus(ctx, "c2", false)
	if err != nil || resp.GetStatus().GetLogPath() != "/l" {
		t.Errorf("ContainerStatus = %v, %v; want log path /l", resp, err)
	}
	if _, err := r.ContainerStatus(ctx, "gone", false); status.Code(err) != codes.NotFound {
		t.Errorf("ContainerStatus of an unknown container: %v, want NotFound", err)
	}
	if n := r.CallCount("ContainerStatus"); n != 2 {
		t.Errorf("%d ContainerStatus calls, want 2", n)
	}
}

func TestRuntimeReopen(t *testing.T) {
	r := NewRuntime()
	boom := errors.New("boom")
	r.Reopen = func(id string) error {
		if id == "bad" {
			return boom
		}
		return nil
	}
	if err := r.ReopenContainerLog(context.Background(), "good"); err != nil {
		t.Errorf("reopen good: %v", err)
	}
	if err := r.ReopenContainerLog(context.Background(), "bad"); !errors.Is(err, boom) {
		t.Errorf("reopen bad: %v, want the hook's error", err)
	}
	if diff := cmp.Diff([]string{"good", "bad"}, r.Reopens()); diff != "" {
		t.Errorf("reopens (-want +got):\n%s", diff)
	}
}

func TestRuntimeStreams(t *testing.T) {
	ctx := context.Background()
	r := NewRuntime()
	r.StreamBase = "http://127.0.0.1:1"
	r.AddSandbox(Sandbox{ID: "sb", Namespace: "ns", Name: "web", UID: "u"})
	r.AddContainer(Container{ID: "run", SandboxID: "sb", Name: "app", State: runtimeapi.ContainerState_CONTAINER_RUNNING})
	r.AddContainer(Container{ID: "done", SandboxID: "sb", Name: "old", State: runtimeapi.ContainerState_CONTAINER_EXITED})

	exec, err := r.Exec(ctx, &runtimeapi.ExecRequest{ContainerId: "run"})
	if err != nil || exec.Url != "http://127.0.0.1:1/exec/token-1" {
		t.Errorf("Exec = %v, %v", exec, err)
	}
	if _, err := r.Attach(ctx, &runtimeapi.AttachRequest{ContainerId: "done"}); status.Code(err) != codes.FailedPrecondition {
		t.Errorf("Attach to an exited container: %v, want FailedPrecondition", err)
	}
	if _, err := r.Exec(ctx, &runtimeapi.ExecRequest{ContainerId: "gone"}); status.Code(err) != codes.NotFound {
		t.Errorf("Exec in an unknown container: %v, want NotFound", err)
	}
	r.StreamErr = errors.New("refused")
	if _, err := r.PortForward(ctx, &runtimeapi.PortForwardRequest{PodSandboxId: "sb"}); !errors.Is(err, r.StreamErr) {
		t.Errorf("PortForward: %v, want StreamErr", err)
	}
	if n := len(r.StreamRequests()); n != 2 {
		t.Errorf("%d stream requests recorded, want 2 (exec, port forward)", n)
	}
}
