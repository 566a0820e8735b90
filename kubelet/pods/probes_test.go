package pods

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/berthnode/berth/kubelet/podruntime"
	"github.com/berthnode/berth/kubelet/podstatus"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	remote "k8s.io/cri-client/pkg"
	utilexec "k8s.io/utils/exec"
	"k8s.io/utils/ptr"
)

func (r *recordingRuntime) ExecSync(ctx context.Context, id string, cmd []string, timeout time.Duration) ([]byte, []byte, error) {
	r.mu.Lock()
	r.execs = append(r.execs, execCall{ID: id, Cmd: strings.Join(cmd, " "), Timeout: timeout})
	fn := r.exec
	r.mu.Unlock()
	r.note("exec:" + strings.Join(cmd, " "))
	return fn(id, cmd, timeout)
}

// Execs returns the ExecSync calls whose command is cmd.
func (r *recordingRuntime) Execs(cmd string) []execCall {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []execCall
	for _, e := range r.execs {
		if e.Cmd == cmd {
			out = append(out, e)
		}
	}
	return out
}

// execResults answers ExecSync by command: exit codes the test changes as
// it goes (a missing command exits 0), or an error.
type execResults struct {
	mu    sync.Mutex
	codes map[string]int
	errs  map[string]error
}

func (e *execResults) set(cmd string, code int) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.codes[cmd] = code
}

func (e *execResults) fail(cmd string, err error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.errs[cmd] = err
}

func (e *execResults) run(_ string, cmd []string, _ time.Duration) ([]byte, []byte, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	key := strings.Join(cmd, " ")
	if err := e.errs[key]; err != nil {
		return nil, nil, err
	}
	if code := e.codes[key]; code != 0 {
		return []byte(key + " said no"), nil, utilexec.CodeExitError{Err: fmt.Errorf("exit %d", code), Code: code}
	}
	return nil, nil, nil
}

// newProbeHarness is a harness whose probes start without jitter and
// whose ExecSync answers from the returned table.
func newProbeHarness(t *testing.T) (*harness, *execResults) {
	h := newHarness(t)
	res := &execResults{codes: map[string]int{}, errs: map[string]error{}}
	h.rt.exec = res.run
	h.tweak = func(m *Manager) { m.probing.Jitter = func(time.Duration) time.Duration { return 0 } }
	return h, res
}

func execProbe(cmd string, period, failures int32) *v1.Probe {
	return &v1.Probe{
		ProbeHandler:     v1.ProbeHandler{Exec: &v1.ExecAction{Command: []string{cmd}}},
		PeriodSeconds:    period,
		TimeoutSeconds:   1,
		SuccessThreshold: 1,
		FailureThreshold: failures,
	}
}

// eventually polls cond for up to 5 s of real time without moving the clock.
func (h *harness) eventually(what string, cond func() bool) {
	h.t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			h.t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// probeOnce moves the clock in small steps until the probe running cmd
// ran once more.
func (h *harness) probeOnce(cmd string) {
	h.t.Helper()
	n := len(h.rt.Execs(cmd))
	h.waitFor("probe "+cmd, func() bool { return len(h.rt.Execs(cmd)) > n })
}

func (h *harness) condition(pod string, t v1.PodConditionType) v1.ConditionStatus {
	if p := h.pod(pod); p != nil {
		if c := podstatus.FindCondition(p.Status.Conditions, t); c != nil {
			return c.Status
		}
	}
	return ""
}

func TestReadinessProbeDrivesReady(t *testing.T) {
	t.Parallel()
	h, res := newProbeHarness(t)
	h.start()
	app := ctr("app")
	app.ReadinessProbe = execProbe("ready", 10, 2)
	app.ReadinessProbe.SuccessThreshold = 2
	res.set("ready", 1)
	h.create(testPod("web", app))

	h.waitFor("app running", func() bool { return h.running("web", "app") })
	h.waitFor("a failed probe", func() bool { return h.events.Has("web", "Unhealthy", "Readiness probe failed: ready said no") })
	s := h.status("web", "app")
	if s.Ready || s.Started == nil || !*s.Started {
		t.Errorf("app ready=%t started=%v, want not ready but started", s.Ready, s.Started)
	}
	if got := h.condition("web", v1.PodReady); got != v1.ConditionFalse {
		t.Errorf("Ready condition %q, want False", got)
	}
	if e := h.rt.Execs("ready"); len(e) == 0 || e[0].Timeout != time.Second {
		t.Errorf("readiness ExecSync calls %+v, want timeout 1s", e)
	}

	// Two successes in a row make it ready.
	res.set("ready", 0)
	h.probeOnce("ready")
	if h.settle(func() bool { return h.condition("web", v1.PodReady) == v1.ConditionTrue }) {
		t.Fatal("ready after one success; successThreshold is 2")
	}
	h.probeOnce("ready")
	h.eventually("Ready True", func() bool {
		return h.condition("web", v1.PodReady) == v1.ConditionTrue && h.condition("web", v1.ContainersReady) == v1.ConditionTrue
	})
	if s := h.status("web", "app"); !s.Ready {
		t.Errorf("app status %+v, want ready", s)
	}

	// Two failures in a row make it unready again.
	res.set("ready", 1)
	h.probeOnce("ready")
	if h.settle(func() bool { return h.condition("web", v1.PodReady) == v1.ConditionFalse }) {
		t.Fatal("unready after one failure; failureThreshold is 2")
	}
	h.probeOnce("ready")
	h.eventually("Ready False", func() bool { return h.condition("web", v1.PodReady) == v1.ConditionFalse })
	if h.status("web", "app").RestartCount != 0 {
		t.Error("a readiness failure restarted the container")
	}
}

func TestInitialDelay(t *testing.T) {
	t.Parallel()
	h, _ := newProbeHarness(t)
	h.start()
	app := ctr("app")
	app.ReadinessProbe = execProbe("ready", 10, 3)
	app.ReadinessProbe.InitialDelaySeconds = 30
	h.create(testPod("web", app))
	h.eventually("app running", func() bool { return h.running("web", "app") })
	// Registered waits fire on the step; the probe's wait is registered
	// when its worker starts, right after the container.
	h.eventually("probe worker waiting", func() bool { return h.probeWorkers("web") == 1 })
	h.clock.Step(25 * time.Second)
	if h.settle(func() bool { return len(h.rt.Execs("ready")) > 0 }) {
		t.Fatal("probed before the initial delay")
	}
	h.clock.Step(10 * time.Second)
	h.eventually("Ready True", func() bool { return h.condition("web", v1.PodReady) == v1.ConditionTrue })
}

func TestLivenessFailureRestartsContainer(t *testing.T) {
	t.Parallel()
	h, res := newProbeHarness(t)
	h.start()
	app := ctr("app")
	app.LivenessProbe = execProbe("alive", 5, 3)
	app.LivenessProbe.TerminationGracePeriodSeconds = ptr.To[int64](7)
	h.create(testPod("web", app))
	// Without moving the clock: the probe's first run is the first
	// probeOnce below.
	h.eventually("app running", func() bool { return h.running("web", "app") })
	first := h.containerID("web", "app")

	// Two failures, a success, then failures: the third failure in a row
	// kills the container.
	res.set("alive", 1)
	h.probeOnce("alive")
	h.probeOnce("alive")
	res.set("alive", 0)
	h.probeOnce("alive")
	res.set("alive", 1)
	h.probeOnce("alive")
	h.probeOnce("alive")
	if _, stopped := h.rt.StopTimeout(first); stopped {
		t.Fatal("stopped before failureThreshold failures in a row")
	}
	h.probeOnce("alive")
	h.waitFor("restart", func() bool { return h.status("web", "app").RestartCount == 1 && h.running("web", "app") })
	n := 0
	for _, e := range h.rt.Execs("alive") {
		if e.ID == first {
			n++
		}
	}
	if n != 6 {
		t.Errorf("first container probed %d times, want 6 (none after the third failure in a row): %+v", n, h.rt.Execs("alive"))
	}
	if got, _ := h.rt.StopTimeout(first); got != 7 {
		t.Errorf("stop grace %d, want the probe's 7", got)
	}
	if !h.events.Has("web", "Unhealthy", "Liveness probe failed: alive said no") {
		t.Error("no Unhealthy event for liveness")
	}
	if !h.events.Has("web", "Killing", "Container app failed liveness probe, will be restarted") {
		t.Errorf("no Killing event: %+v", h.events.List())
	}
}

func TestStartupProbeGatesOthers(t *testing.T) {
	t.Parallel()
	h, res := newProbeHarness(t)
	h.start()
	app := ctr("app")
	app.StartupProbe = execProbe("started", 1, 100)
	app.LivenessProbe = execProbe("alive", 1, 1)
	app.ReadinessProbe = execProbe("ready", 1, 1)
	res.set("started", 1)
	res.set("alive", 1)
	h.create(testPod("web", app))
	h.waitFor("startup probed", func() bool { return len(h.rt.Execs("started")) >= 3 })
	s := h.status("web", "app")
	if s.Started == nil || *s.Started || s.Ready {
		t.Errorf("app started=%v ready=%t before its startup probe succeeded", s.Started, s.Ready)
	}
	if n := len(h.rt.Execs("alive")) + len(h.rt.Execs("ready")); n != 0 {
		t.Fatalf("%d liveness/readiness probes before startup succeeded", n)
	}
	res.set("alive", 0)
	res.set("started", 0)
	h.waitFor("Ready", func() bool { return h.condition("web", v1.PodReady) == v1.ConditionTrue })
	if s := h.status("web", "app"); s.Started == nil || !*s.Started || s.RestartCount != 0 {
		t.Errorf("status %+v, want started without restart", s)
	}
}

func TestStartupProbeFailureRestarts(t *testing.T) {
	t.Parallel()
	h, res := newProbeHarness(t)
	h.start()
	app := ctr("app")
	app.StartupProbe = execProbe("started", 1, 3)
	res.set("started", 1)
	h.create(testPod("web", app))
	h.waitFor("restart", func() bool { return h.status("web", "app").RestartCount >= 1 })
	if !h.events.Has("web", "Killing", "Container app failed startup probe, will be restarted") {
		t.Error("no Killing event for the startup probe")
	}
}

func TestExecProbeTimeoutIsFailure(t *testing.T) {
	t.Parallel()
	h, res := newProbeHarness(t)
	h.start()
	app := ctr("app")
	app.ReadinessProbe = execProbe("ready", 10, 1)
	app.ReadinessProbe.TimeoutSeconds = 4
	res.fail("ready", fmt.Errorf("%w: %q timed out after 4s", remote.ErrCommandTimedOut, "ready"))
	h.create(testPod("web", app))
	h.waitFor("failed probe", func() bool { return h.events.Has("web", "Unhealthy", "Readiness probe failed: command timed out") })
	if got := h.condition("web", v1.PodReady); got != v1.ConditionFalse {
		t.Errorf("Ready %q, want False", got)
	}
	if e := h.rt.Execs("ready"); e[0].Timeout != 4*time.Second {
		t.Errorf("ExecSync timeout %s, want 4s", e[0].Timeout)
	}
}

// probeWorkers counts the pod's probe workers.
func (h *harness) probeWorkers(pod string) int {
	h.m.mu.Lock()
	w := h.m.workers[types.UID("uid-"+pod)]
	h.m.mu.Unlock()
	if w == nil {
		return 0
	}
	return w.probes.Workers()
}

// deletePod marks the pod deleted with a grace period, as the API server does.
func (h *harness) deletePod(name string, grace int64) {
	h.t.Helper()
	p := h.pod(name)
	now := metav1.NewTime(h.clock.Now().Add(time.Duration(grace) * time.Second))
	p.DeletionTimestamp = &now
	p.DeletionGracePeriodSeconds = ptr.To(grace)
	if _, err := h.client.CoreV1().Pods("default").Update(context.Background(), p, metav1.UpdateOptions{}); err != nil {
		h.t.Fatal(err)
	}
}

func TestPreStopCountsAgainstGrace(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		hook  v1.LifecycleHandler
		grace int64
		// took is how long the exec hook takes on the fake clock.
		took      time.Duration
		wantGrace int64
	}{
		{"exec", v1.LifecycleHandler{Exec: &v1.ExecAction{Command: []string{"drain"}}}, 30, 12 * time.Second, 18},
		{"exec beyond grace", v1.LifecycleHandler{Exec: &v1.ExecAction{Command: []string{"drain"}}}, 10, 10 * time.Second, podruntime.MinGracePeriod},
		{"sleep", v1.LifecycleHandler{Sleep: &v1.SleepAction{Seconds: 7}}, 30, 0, 23},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h, _ := newProbeHarness(t)
			h.rt.exec = func(string, []string, time.Duration) ([]byte, []byte, error) {
				h.clock.Step(tt.took)
				return nil, nil, nil
			}
			h.start()
			app := ctr("app")
			app.Lifecycle = &v1.Lifecycle{PreStop: &tt.hook}
			h.create(testPod("web", app))
			h.waitFor("app running", func() bool { return h.running("web", "app") })
			id := h.containerID("web", "app")
			h.rt.ResetOrder()
			h.deletePod("web", tt.grace)
			h.waitFor("pod deleted", func() bool { return h.pod("web") == nil })
			got, _ := h.rt.StopTimeout(id)
			if tt.hook.Sleep != nil && (got < tt.wantGrace-1 || got > tt.wantGrace) {
				t.Errorf("stop grace %d after the sleep hook, want about %d", got, tt.wantGrace)
			}
			if tt.hook.Exec != nil {
				if got != tt.wantGrace {
					t.Errorf("stop grace %d, want %d", got, tt.wantGrace)
				}
				if order := h.rt.Order(); len(order) < 2 || order[0] != "exec:drain" || order[1] != "stop:app" {
					t.Errorf("calls %v, want the preStop exec before the stop", order)
				}
				if e := h.rt.Execs("drain"); e[0].Timeout != time.Duration(tt.grace)*time.Second {
					t.Errorf("preStop exec timeout %s, want the grace period", e[0].Timeout)
				}
			}
		})
	}
}

func TestPostStartHookFailureKillsContainer(t *testing.T) {
	t.Parallel()
	h, res := newProbeHarness(t)
	h.start()
	app := ctr("app")
	app.Lifecycle = &v1.Lifecycle{PostStart: &v1.LifecycleHandler{Exec: &v1.ExecAction{Command: []string{"init"}}}}
	res.set("init", 2)
	h.create(testPod("web", app))
	h.waitFor("FailedPostStartHook", func() bool { return h.events.Has("web", "FailedPostStartHook", "init said no") })
	h.waitFor("container stopped", func() bool { return h.calls("StopContainer") >= 1 })
	if !h.events.Has("web", "Killing", "FailedPostStartHook") {
		t.Error("no Killing event")
	}
	order := h.rt.Order()
	want := []string{"runSandbox", "create:app", "start:app", "exec:init", "stop:app"}
	for i, w := range want {
		if i >= len(order) || order[i] != w {
			t.Fatalf("calls %v, want %v first", order, want)
		}
	}
	// The hook passes now: the restart runs.
	res.set("init", 0)
	h.waitFor("restarted and running", func() bool { return h.running("web", "app") && h.status("web", "app").RestartCount >= 1 })
}
