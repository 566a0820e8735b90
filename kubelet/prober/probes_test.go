package prober

import (
	"context"
	"errors"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/client-go/tools/record"
	critest "k8s.io/cri-api/pkg/apis/testing"
	testingclock "k8s.io/utils/clock/testing"

	"github.com/berthnode/berth/kubelet/podruntime/podruntimetest"
)

// probed is a prober of one pod on the CRI fake, a fake clock, and a wake
// function that counts.
type probed struct {
	t     *testing.T
	rt    *critest.FakeRuntimeService
	clk   *testingclock.FakeClock
	wakes chan struct{}
	pod   *Pod
}

func newProbed(t *testing.T) *probed {
	p := &probed{
		t: t, rt: critest.NewFakeRuntimeService(),
		clk:   testingclock.NewFakeClock(podruntimetest.T0.Add(time.Hour)),
		wakes: make(chan struct{}, 100),
	}
	cfg := &Config{Runtime: p.rt, Recorder: record.NewFakeRecorder(100), Clock: p.clk}
	p.pod = NewPod(cfg, func() { p.wakes <- struct{}{} })
	t.Cleanup(p.pod.StopAll)
	return p
}

// waitFor moves the clock a second at a time until cond holds.
func (p *probed) waitFor(what string, cond func() bool) {
	p.t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			p.t.Fatalf("timed out waiting for %s", what)
		}
		p.clk.Step(time.Second)
		time.Sleep(5 * time.Millisecond)
	}
}

func execProbe(failures int32) *v1.Probe {
	return &v1.Probe{
		ProbeHandler:     v1.ProbeHandler{Exec: &v1.ExecAction{Command: []string{"check"}}},
		PeriodSeconds:    1,
		FailureThreshold: failures,
	}
}

func TestReadinessSetsReady(t *testing.T) {
	p := newProbed(t)
	c := podruntimetest.Spec("app")
	c.ReadinessProbe = execProbe(1)
	pod := podruntimetest.Pod(v1.RestartPolicyAlways, nil, c)
	p.pod.Sync(context.Background(), pod, podruntimetest.State(true, podruntimetest.Running("app")), "10.0.0.5")
	if n := p.pod.Workers(); n != 1 {
		t.Fatalf("%d probe workers, want 1", n)
	}
	if started, ready := HealthOf(&c, p.pod.Health()["app-id"]); !started || ready {
		t.Errorf("before a probe: started %v ready %v, want true false", started, ready)
	}
	p.waitFor("ready", func() bool { return p.pod.Health()["app-id"].Ready })
	if len(p.wakes) == 0 {
		t.Error("the pod worker was not woken")
	}
	// The container is gone: its worker stops and its result is forgotten.
	p.pod.Sync(context.Background(), pod, podruntimetest.State(true, podruntimetest.Exited("app", 0)), "10.0.0.5")
	if n, h := p.pod.Workers(), p.pod.Health(); n != 0 || len(h) != 0 {
		t.Errorf("after the exit: %d workers, health %v", n, h)
	}
}

func TestLivenessFailureAsksForKill(t *testing.T) {
	p := newProbed(t)
	c := podruntimetest.Spec("app")
	c.LivenessProbe = execProbe(1)
	pod := podruntimetest.Pod(v1.RestartPolicyAlways, nil, c)
	p.rt.InjectError("ExecSync", errors.New("no such process"))
	p.pod.Sync(context.Background(), pod, podruntimetest.State(true, podruntimetest.Running("app")), "10.0.0.5")
	var kills map[string]Kill
	p.waitFor("a kill", func() bool {
		kills = p.pod.TakeKills()
		return len(kills) > 0
	})
	k, ok := kills["app-id"]
	if !ok || k.Message != "Container app failed liveness probe, will be restarted" || k.Grace != 30 {
		t.Errorf("kills %+v", kills)
	}
	p.pod.StopAll()
	if n := p.pod.Workers(); n != 0 {
		t.Errorf("%d workers after StopAll", n)
	}
}

func TestStartupHoldsReadiness(t *testing.T) {
	c := podruntimetest.Spec("app")
	c.StartupProbe = execProbe(3)
	c.ReadinessProbe = execProbe(3)
	if started, ready := HealthOf(&c, Health{Ready: true}); started || ready {
		t.Errorf("not started: started %v ready %v, want false false", started, ready)
	}
	if started, ready := HealthOf(&c, Health{Started: true, Ready: true}); !started || !ready {
		t.Errorf("started and ready: started %v ready %v", started, ready)
	}
	for k, want := range map[Kind]string{Liveness: "Liveness", Readiness: "Readiness", Startup: "Startup"} {
		if k.String() != want {
			t.Errorf("%d: %s, want %s", k, k, want)
		}
	}
}
