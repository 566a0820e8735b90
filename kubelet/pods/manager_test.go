package pods

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestConfigValidate(t *testing.T) {
	h := newHarness(t)
	if err := h.cfg.Validate(); err != nil {
		t.Fatalf("valid config: %v", err)
	}
	bad := h.cfg
	bad.NodeName = ""
	bad.Runtime = nil
	bad.RootDir = "relative"
	k := *bad.Kubelet
	k.CgroupDriver = "cgroupv3"
	k.ClusterDNS = []string{"not-an-ip"}
	bad.Kubelet = &k
	err := bad.Validate()
	if err == nil {
		t.Fatal("invalid config accepted")
	}
	for _, want := range []string{"NodeName", "Runtime", "RootDir", "cgroupv3", "not-an-ip"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %s", err, want)
		}
	}
	if _, err := New(bad); err == nil {
		t.Error("New accepted an invalid config")
	}
}

func TestHealthyAndRunningPods(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	m, err := New(h.cfg)
	if err != nil {
		t.Fatal(err)
	}
	if m.Healthy() == nil {
		t.Error("healthy before running")
	}
	h.start()
	h.create(testPod("a", ctr("app")))
	h.create(testPod("b", ctr("app")))
	h.waitFor("two running pods", func() bool { return h.m.RunningPods() == 2 })
	h.rt.InjectError("ListPodSandbox", errBoom)
	h.clock.Step(4 * time.Minute)
	h.waitFor("unhealthy after a stale relist", func() bool { return h.m.Healthy() != nil })
	h.waitFor("healthy again", func() bool { return h.m.Healthy() == nil })
}

func TestSandboxAndContainerSetup(t *testing.T) {
	t.Parallel()
	h := newHarness(t,
		&v1.Service{ObjectMeta: metav1.ObjectMeta{Name: "kubernetes", Namespace: "default"},
			Spec: v1.ServiceSpec{ClusterIP: "10.96.0.1", Ports: []v1.ServicePort{{Name: "https", Port: 443}}}})
	h.start()
	c := ctr("app")
	c.Command = []string{"echo", "$(GREETING) from $(POD_IP)"}
	c.Env = []v1.EnvVar{
		{Name: "GREETING", Value: "hello"},
		{Name: "POD_IP", ValueFrom: &v1.EnvVarSource{FieldRef: &v1.ObjectFieldSelector{FieldPath: "status.podIP"}}},
	}
	c.VolumeMounts = []v1.VolumeMount{{Name: "data", MountPath: "/data"}}
	pod := testPod("web", c)
	pod.Spec.Hostname, pod.Spec.Subdomain = "web-0", "svc"
	pod.Spec.Volumes = []v1.Volume{{Name: "data"}}
	pod.Spec.HostAliases = []v1.HostAlias{{IP: "192.0.2.99", Hostnames: []string{"alias.example"}}}
	h.create(pod)
	h.waitFor("running", func() bool { return h.running("web", "app") })

	sb := h.rt.SandboxConfigs()[0]
	if sb.Hostname != "web-0" || sb.Linux.CgroupParent != "/kubepods/besteffort/poduid-web" ||
		sb.LogDirectory != filepath.Join(h.cfg.PodLogsDir, "default_web_uid-web") {
		t.Errorf("sandbox hostname %q cgroup %q logs %q", sb.Hostname, sb.Linux.CgroupParent, sb.LogDirectory)
	}
	wantSearch := []string{"default.svc.cluster.local", "svc.cluster.local", "cluster.local", "example.com", "corp.example"}
	if diff := cmp.Diff(wantSearch, sb.DnsConfig.Searches); diff != "" {
		t.Errorf("DNS searches (-want +got):\n%s", diff)
	}
	cfg := h.rt.ContainerConfig("app")
	if diff := cmp.Diff([]string{"echo", "hello from 192.168.192.168"}, cfg.Command); diff != "" {
		t.Errorf("command (-want +got):\n%s", diff)
	}
	env := map[string]string{}
	for _, kv := range cfg.Envs {
		env[kv.Key] = string(kv.Value)
	}
	if env["KUBERNETES_SERVICE_HOST"] != "10.96.0.1" || env["KUBERNETES_SERVICE_PORT"] != "443" {
		t.Errorf("API server variables missing: %v", env)
	}
	mounts := map[string]string{}
	for _, m := range cfg.Mounts {
		mounts[m.ContainerPath] = m.HostPath
	}
	if !strings.HasSuffix(mounts["/data"], "/data") || mounts["/etc/hosts"] == "" || mounts["/dev/termination-log"] == "" {
		t.Errorf("mounts %v", mounts)
	}
	hosts, err := os.ReadFile(mounts["/etc/hosts"])
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"192.168.192.168\tweb-0.svc.default.svc.cluster.local\tweb-0", "192.0.2.99\talias.example"} {
		if !strings.Contains(string(hosts), want) {
			t.Errorf("hosts file lacks %q:\n%s", want, hosts)
		}
	}
	if _, err := os.Stat(filepath.Join(sb.LogDirectory, "app")); err != nil {
		t.Errorf("container log directory: %v", err)
	}
}

func TestTerminationMessages(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.start()
	file := ctr("file")
	logs := ctr("logs")
	logs.TerminationMessagePolicy = v1.TerminationMessageFallbackToLogsOnError
	partial := ctr("partial")
	partial.TerminationMessagePolicy = v1.TerminationMessageFallbackToLogsOnError
	pod := testPod("msg", file, logs, partial)
	pod.Spec.RestartPolicy = v1.RestartPolicyNever
	h.create(pod)
	h.waitFor("running", func() bool {
		return h.running("msg", "file") && h.running("msg", "logs") && h.running("msg", "partial")
	})

	mounts := map[string]string{}
	for _, m := range h.rt.ContainerConfig("file").Mounts {
		mounts[m.ContainerPath] = m.HostPath
	}
	if err := os.WriteFile(mounts["/dev/termination-log"], []byte("all done"), 0o644); err != nil {
		t.Fatal(err)
	}
	logDir := filepath.Join(h.cfg.PodLogsDir, "default_msg_uid-msg", "logs")
	log := "2026-01-02T03:04:05.000000000Z stdout F starting\n" +
		"2026-01-02T03:04:06.000000000Z stderr P fatal: \n" +
		"2026-01-02T03:04:06.000000000Z stderr F disk full\n"
	if err := os.WriteFile(filepath.Join(logDir, "0.log"), []byte(log), 0o644); err != nil {
		t.Fatal(err)
	}
	// `echo -n DONE; false`: the runtime ends the unfinished line with a
	// P record and no F record after it.
	partialLog := "2026-01-02T03:04:05.000000000Z stdout P DO\n" +
		"2026-01-02T03:04:05.000000000Z stdout P NE\n"
	if err := os.WriteFile(filepath.Join(h.cfg.PodLogsDir, "default_msg_uid-msg", "partial", "0.log"), []byte(partialLog), 0o644); err != nil {
		t.Fatal(err)
	}
	h.exit(h.containerID("msg", "file"), 0)
	h.exit(h.containerID("msg", "logs"), 1)
	h.exit(h.containerID("msg", "partial"), 1)
	h.waitFor("failed", func() bool { return h.pod("msg").Status.Phase == v1.PodFailed })
	if got := h.status("msg", "file").State.Terminated.Message; got != "all done" {
		t.Errorf("file message %q", got)
	}
	if got := h.status("msg", "logs").State.Terminated.Message; got != "starting\nfatal: disk full\n" {
		t.Errorf("log fallback message %q", got)
	}
	if got := h.status("msg", "partial").State.Terminated.Message; got != "DONE" {
		t.Errorf("log fallback message of an unfinished line %q, want %q", got, "DONE")
	}
}

func TestGarbageCollection(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.start()
	h.create(testPod("gc", ctr("app")))
	h.waitFor("running", func() bool { return h.running("gc", "app") })
	for i := int32(1); i <= 3; i++ {
		h.exit(h.containerID("gc", "app"), 1)
		h.clock.Step(5 * time.Minute)
		h.waitFor("restart", func() bool { return h.running("gc", "app") && h.status("gc", "app").RestartCount == i })
	}
	h.waitFor("one dead container kept", func() bool { return h.count("gc", "app") == 2 })
	if s := h.status("gc", "app"); s.LastTerminationState.Terminated == nil {
		t.Error("the kept dead container is not the last termination state")
	}

	// A dead sandbox is replaced; the old one goes once its containers are gone.
	h.rt.Lock()
	for _, sb := range h.rt.Sandboxes {
		sb.State = 1 // SANDBOX_NOTREADY
	}
	h.rt.Unlock()
	h.waitFor("new sandbox with the app", func() bool {
		h.rt.Lock()
		defer h.rt.Unlock()
		return len(h.rt.Sandboxes) == 2
	})
	h.waitFor("app running in the new sandbox", func() bool { return h.running("gc", "app") && h.status("gc", "app").RestartCount == 4 })
	h.exit(h.containerID("gc", "app"), 1)
	h.clock.Step(5 * time.Minute)
	h.waitFor("old sandbox removed", func() bool {
		h.rt.Lock()
		defer h.rt.Unlock()
		return len(h.rt.Sandboxes) == 1
	})
}
