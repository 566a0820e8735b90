package node

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"
	"k8s.io/klog/v2/ktesting"
	"k8s.io/utils/ptr"

	"github.com/berthnode/berth/test/e2e/cluster"
	"github.com/berthnode/berth/test/images"
	"github.com/berthnode/berth/test/testbed"
	"github.com/berthnode/berth/test/vm"
)

// workerName is the VM's hostname and Node name.
const workerName = "worker1"

// TestBerthNodeInVM: on a Debian VM booted with systemd, berth is
// installed as kubeadm's kubelet and joins the test bed's cluster with a
// real `kubeadm join`; in IPVS mode a Service balances round-robin and a
// rolling update keeps an established connection until its pod goes;
// restarting berth restarts no pod; stopping it and rebooting brings the
// node back Ready with its pods.
func TestBerthNodeInVM(t *testing.T) {
	requireVMHost(t)
	_, ctx := ktesting.NewTestContext(t)
	ctx, cancel := context.WithTimeout(ctx, 28*time.Minute)
	defer cancel()
	w := setUpWorker(ctx, t)

	var svcIP string
	if !t.Run("join", func(t *testing.T) { w.checkJoined(ctx, t) }) {
		t.FailNow()
	}
	if !t.Run("ipvs round robin", func(t *testing.T) { svcIP = w.checkRoundRobin(ctx, t) }) {
		w.dumpNetwork(ctx, t)
		t.FailNow()
	}
	t.Run("rolling update drains", func(t *testing.T) { w.checkDrain(ctx, t, svcIP) })
	t.Run("restart keeps pods", func(t *testing.T) { w.checkRestart(ctx, t) })
	t.Run("reboot", func(t *testing.T) { w.checkReboot(ctx, t) })
	t.Run("service removed", func(t *testing.T) { w.checkServiceRemoved(ctx, t, svcIP) })
}

// worker is the VM and the cluster it joins.
type worker struct {
	bed    *testbed.Testbed
	vm     *vm.VM
	client kubernetes.Interface
	ns     string
}

// setUpWorker brings up the control plane, boots the VM with what an
// operator puts on a worker (berth, kubeadm, its systemd drop-in, the
// images), installs berth as kubelet and runs `kubeadm join`.
func setUpWorker(ctx context.Context, t *testing.T) *worker {
	t.Helper()
	progress(t, "control plane")
	cfg, err := testbed.DefaultConfig(ctx, fmt.Sprintf("v%d", os.Getpid()), 0)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Owned = true
	bed, err := testbed.Up(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			bed.KeepLogs()
			t.Logf("test bed logs: %s", bed.LogDir())
		}
		if err := bed.Down(context.Background()); err != nil {
			t.Errorf("test bed down: %v", err)
		}
	})
	dir := t.TempDir()
	binary, err := testbed.BuildBerth(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := bed.ApplyBerthRBAC(ctx, binary); err != nil {
		t.Fatal(err)
	}
	echo := filepath.Join(dir, "echo")
	if out, err := goBuild(ctx, echo, "./test/images/echo"); err != nil {
		t.Fatalf("build the echo client: %v\n%s", err, out)
	}
	files, err := workerFiles(bed, binary, echo)
	if err != nil {
		t.Fatal(err)
	}

	progress(t, "VM image")
	imgCfg, err := vm.DefaultImageConfig()
	if err != nil {
		t.Fatal(err)
	}
	img, err := vm.BuildImage(ctx, imgCfg)
	if err != nil {
		t.Fatal(err)
	}
	progress(t, "booting the VM")
	lan := bed.LAN()
	v, err := vm.Boot(ctx, img, vm.Config{
		Name: workerName, NetNS: lan.NetNS, Bridge: lan.Bridge,
		Address: bed.GuestAddress(0), Gateway: lan.Gateway, DNS: []netip.Addr{lan.Gateway},
		Files: files, WorkDir: t.TempDir(), LogDir: bed.LogDir(),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			if out, err := v.Output(context.Background(), "journalctl -u kubelet --no-pager | tail -n 200"); err == nil {
				t.Logf("berth's journal:\n%s", out)
			}
		}
		if err := v.Close(); err != nil {
			t.Errorf("close the VM: %v", err)
		}
	})
	w := &worker{bed: bed, vm: v, client: cluster.AdminClient(t, bed)}
	w.ns = cluster.Namespace(t, w.client)

	progress(t, "installing berth as kubelet; kubeadm join")
	// The agent answers before systemd has started everything.
	w.sh(ctx, t, "boot finished", "systemctl is-system-running --wait; systemctl is-active containerd")
	w.sh(ctx, t, "berth image load: the node has no registry", "/root/berth image load /root/images/*.tar")
	w.sh(ctx, t, "berth install", "/root/berth install --kubelet --now")
	w.sh(ctx, t, "kubeadm join", "kubeadm join --config /root/join.yaml")
	return w
}

// workerFiles are the files the VM boots with.
func workerFiles(bed *testbed.Testbed, binary, echo string) ([]vm.File, error) {
	hash, err := bed.CACertHash()
	if err != nil {
		return nil, err
	}
	files := []vm.File{
		{Path: "/root/berth", Source: binary, Mode: 0o755},
		{Path: "/usr/bin/kubeadm", Source: bed.UpstreamBinary("kubeadm"), Mode: 0o755},
		{Path: "/usr/local/bin/echo-client", Source: echo, Mode: 0o755},
		// What the kubeadm package puts next to kubelet.service.
		{Path: "/usr/lib/systemd/system/kubelet.service.d/10-kubeadm.conf", Data: []byte(kubeadmDropIn), Mode: 0o644},
		// berth's own settings: the IPVS proxy mode (berth install keeps
		// an existing configuration).
		{Path: "/etc/berth/config.yaml", Data: []byte(berthConfig), Mode: 0o644},
		{Path: "/root/join.yaml", Data: []byte(fmt.Sprintf(joinConfig, bed.ControlPlaneEndpoint(), bed.Token(), hash, workerName)), Mode: 0o600},
		{Path: "/root/patches/kubeletconfiguration+merge.yaml", Data: []byte(kubeletPatch), Mode: 0o644},
	}
	for _, img := range bed.ImageArchives() {
		files = append(files, vm.File{Path: "/root/images/" + filepath.Base(img), Source: img, Mode: 0o644})
	}
	return files, nil
}

const kubeadmDropIn = `[Service]
Environment="KUBELET_KUBECONFIG_ARGS=--bootstrap-kubeconfig=/etc/kubernetes/bootstrap-kubelet.conf --kubeconfig=/etc/kubernetes/kubelet.conf"
Environment="KUBELET_CONFIG_ARGS=--config=/var/lib/kubelet/config.yaml"
EnvironmentFile=-/var/lib/kubelet/kubeadm-flags.env
EnvironmentFile=-/etc/default/kubelet
ExecStart=
ExecStart=/usr/bin/kubelet $KUBELET_KUBECONFIG_ARGS $KUBELET_CONFIG_ARGS $KUBELET_KUBEADM_ARGS $KUBELET_EXTRA_ARGS
`

const berthConfig = `apiVersion: berth.dev/v1alpha1
kind: BerthConfiguration
proxy:
  mode: ipvs
`

const joinConfig = `apiVersion: kubeadm.k8s.io/v1beta4
kind: JoinConfiguration
discovery:
  bootstrapToken:
    apiServerEndpoint: %s
    token: "%s"
    caCertHashes: ["%s"]
nodeRegistration:
  name: %s
  criSocket: unix:///run/containerd/containerd.sock
patches:
  directory: /root/patches
`

// kubeletPatch fits the cluster's KubeletConfiguration to the VM: its
// containerd uses the systemd cgroup driver, and graceful node shutdown is
// on.
const kubeletPatch = `cgroupDriver: systemd
shutdownGracePeriod: 30s
shutdownGracePeriodCriticalPods: 10s
`

// checkJoined: the node is Ready; berth runs as kubelet.service, a notify
// unit that reported READY, with the watchdog armed and logind's delay
// lock held for graceful shutdown.
func (w *worker) checkJoined(ctx context.Context, t *testing.T) {
	w.waitNodeReady(ctx, t, 5*time.Minute)
	show := w.sh(ctx, t, "kubelet.service", "systemctl show kubelet -p Type -p ActiveState -p SubState -p StatusText -p WatchdogUSec -p MainPID")
	for _, want := range []string{"Type=notify", "ActiveState=active", "SubState=running", "StatusText=running", "WatchdogUSec=1min"} {
		if !strings.Contains(show, want+"\n") {
			t.Errorf("systemctl show kubelet lacks %q:\n%s", want, show)
		}
	}
	exe := w.sh(ctx, t, "kubelet's binary", "readlink -f /proc/$(systemctl show kubelet -p MainPID --value)/exe")
	if strings.TrimSpace(exe) != "/usr/local/bin/berth" {
		t.Errorf("kubelet.service runs %q, want /usr/local/bin/berth", exe)
	}
	inhibit := w.sh(ctx, t, "inhibitor locks", "systemd-inhibit --list --no-pager")
	if !strings.Contains(inhibit, "berth") || !strings.Contains(inhibit, "delay") {
		t.Errorf("no delay lock of berth among logind's inhibitors:\n%s", inhibit)
	}
}

// checkRoundRobin runs 3 echo pods behind a ClusterIP Service and returns
// its IP: IPVS holds the service with the rr scheduler and the 3 pods, and
// 30 connections from the node go 10 to each pod, as ipvsadm's counters
// say too.
func (w *worker) checkRoundRobin(ctx context.Context, t *testing.T) string {
	w.deployEcho(ctx, t)
	svcIP := w.serviceIP(ctx, t)
	vip := svcIP + ":80"
	var table string
	cluster.Poll(t, 3*time.Minute, "the service in IPVS with 3 destinations", func() (bool, string) {
		table = w.sh(ctx, t, "ipvsadm", "ipvsadm -Ln -t "+vip)
		return strings.Count(table, "Masq") == 3, table
	})
	if !regexp.MustCompile(`TCP\s+` + regexp.QuoteMeta(vip) + `\s+rr`).MatchString(table) {
		t.Errorf("the service's virtual server is not rr:\n%s", table)
	}
	// The service address is on berth's dummy interface, which is down
	// (the address is local to the node, answered by IPVS only).
	link := w.sh(ctx, t, "berth-ipvs0", "ip -d -o link show berth-ipvs0; ip -o addr show dev berth-ipvs0")
	if !strings.Contains(link, " dummy ") || !strings.Contains(link, "inet "+svcIP+"/32") {
		t.Errorf("berth-ipvs0 is not a dummy holding %s/32:\n%s", svcIP, link)
	}
	explain := w.sh(ctx, t, "berth rules explain", "berth rules explain "+w.ns+"/echo")
	for _, want := range append([]string{svcIP}, destinations(table)...) {
		if !strings.Contains(explain, want) {
			t.Errorf("berth rules explain does not mention %s:\n%s", want, explain)
		}
	}
	statsBefore := w.sh(ctx, t, "ipvsadm stats", "ipvsadm -Ln --stats --exact -t "+vip)
	before := ipvsConns(t, statsBefore)
	out := w.sh(ctx, t, "30 connections", "echo-client get http://"+vip+"/ --count 30")
	counts := map[string]int{}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		counts[strings.Fields(line)[0]]++
	}
	if len(counts) != 3 {
		t.Errorf("30 connections reached %d pods, want 3: %v", len(counts), counts)
	}
	for pod, n := range counts {
		if n != 10 {
			t.Errorf("pod %s got %d of 30 connections, want 10 (round-robin): %v", pod, n, counts)
		}
	}
	// IPVS's estimator folds the per-CPU counters into the stats shown
	// every 2 seconds: poll.
	var statsAfter string
	cluster.Poll(t, 30*time.Second, "ipvsadm to count the 30 connections", func() (bool, string) {
		statsAfter = w.sh(ctx, t, "ipvsadm stats", "ipvsadm -Ln --stats --exact -t "+vip)
		total := 0
		for dest, n := range ipvsConns(t, statsAfter) {
			total += n - before[dest]
		}
		return total >= 30, statsAfter
	})
	for dest, n := range ipvsConns(t, statsAfter) {
		if d := n - before[dest]; d != 10 {
			t.Errorf("ipvsadm counts %d new connections to %s, want 10:\n%s\n→\n%s", d, dest, statsBefore, statsAfter)
		}
	}
	return svcIP
}

// checkDrain: a client holds one kept-alive connection to the service and
// sends a request every second while the Deployment rolls over; its pod
// (which waits 20 s in preStop) keeps answering on that connection after
// it left the service's endpoints, with its IPVS destination at weight 0.
func (w *worker) checkDrain(ctx context.Context, t *testing.T, svcIP string) {
	w.sh(ctx, t, "start a long-lived client",
		"systemd-run --unit=held-client --collect sh -c 'echo-client get http://"+svcIP+":80/ --keepalive --interval 1s --count 25 > /root/held.log 2>&1; echo exit=$? >> /root/held.log'")
	cluster.Poll(t, time.Minute, "the client's first answers", func() (bool, string) {
		log := w.sh(ctx, t, "client log", "cat /root/held.log 2>/dev/null || true")
		return strings.Count(log, "\n") >= 3, log
	})
	patch := fmt.Sprintf(`{"spec":{"template":{"metadata":{"annotations":{"rollout":"%d"}}}}}`, time.Now().UnixNano())
	if _, err := w.client.AppsV1().Deployments(w.ns).Patch(ctx, "echo", types.MergePatchType, []byte(patch), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	// While old pods wait in preStop, their destinations drain.
	cluster.Poll(t, 2*time.Minute, "a draining destination (weight 0)", func() (bool, string) {
		table := w.sh(ctx, t, "ipvsadm", "ipvsadm -Ln -t "+svcIP+":80")
		return regexp.MustCompile(`Masq\s+0\s`).MatchString(table), table
	})
	var log string
	cluster.Poll(t, 2*time.Minute, "the long-lived client to finish", func() (bool, string) {
		log = w.sh(ctx, t, "client log", "cat /root/held.log")
		return strings.Contains(log, "exit="), log
	})
	lines := strings.Split(strings.TrimSpace(log), "\n")
	if lines[len(lines)-1] != "exit=0" || len(lines) != 26 {
		t.Fatalf("the long-lived client failed (want 25 answers and exit=0):\n%s", log)
	}
	// One connection, one pod: every answer names the same pod and client
	// port.
	first := lines[0]
	for _, l := range lines[:25] {
		if l != first {
			t.Fatalf("the kept-alive connection was replaced during the rollout (%q, then %q):\n%s", first, l, log)
		}
	}
	w.waitPods(ctx, t, 3, 3*time.Minute)
}

// checkRestart: systemctl restart kubelet (berth) restarts no container;
// the node stays or is Ready again and the pods' containers are the same.
func (w *worker) checkRestart(ctx context.Context, t *testing.T) {
	before := w.containerIDs(ctx, t)
	w.sh(ctx, t, "restart berth", "systemctl restart kubelet")
	w.waitNodeReady(ctx, t, 2*time.Minute)
	cluster.Poll(t, time.Minute, "pod statuses after the restart", func() (bool, string) {
		after := w.containerIDs(ctx, t)
		return fmt.Sprint(after) == fmt.Sprint(before), fmt.Sprintf("before %v, after %v", before, after)
	})
}

// checkReboot: berth stopped, the VM rebooted; the node comes back Ready
// with its pods running.
func (w *worker) checkReboot(ctx context.Context, t *testing.T) {
	w.sh(ctx, t, "stop berth", "systemctl stop kubelet")
	pods := w.waitPods(ctx, t, 3, time.Minute)
	progress(t, "rebooting the VM")
	if err := w.vm.Reboot(ctx); err != nil {
		t.Fatal(err)
	}
	w.waitNodeReady(ctx, t, 5*time.Minute)
	after := w.waitPods(ctx, t, 3, 5*time.Minute)
	for name := range pods {
		if _, ok := after[name]; !ok {
			t.Errorf("pod %s is gone after the reboot; pods now: %v", name, after)
		}
	}
}

// dumpNetwork logs the VM's service rules, for a failed test.
func (w *worker) dumpNetwork(ctx context.Context, t *testing.T) {
	out, err := w.vm.Output(ctx, "ipvsadm -Ln --stats; cat /proc/net/ip_vs_conn | head -20; ip -br addr; iptables-save; "+
		"sysctl net.ipv4.vs.conntrack net.ipv4.vs.conn_reuse_mode net.ipv4.ip_forward; journalctl -u kubelet --no-pager | grep -i ipvs | tail -40")
	t.Logf("the VM's service rules (%v):\n%s", err, out)
}

// checkServiceRemoved: deleting the Service removes its virtual server and
// its address from berth-ipvs0, and nothing else.
func (w *worker) checkServiceRemoved(ctx context.Context, t *testing.T, svcIP string) {
	// After the reboot, berth programs IPVS again from scratch.
	cluster.Poll(t, 2*time.Minute, "the service back in IPVS and on berth-ipvs0", func() (bool, string) {
		stdout, stderr, _, err := w.vm.Run(ctx, "ipvsadm -Ln; ip -o addr show dev berth-ipvs0")
		out := string(stdout) + string(stderr)
		return err == nil && strings.Count(out, svcIP) >= 2, out
	})
	if err := w.client.CoreV1().Services(w.ns).Delete(ctx, "echo", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	cluster.Poll(t, 2*time.Minute, "the service gone from IPVS and berth-ipvs0", func() (bool, string) {
		out := w.sh(ctx, t, "IPVS and berth-ipvs0", "ipvsadm -Ln; ip -o addr show dev berth-ipvs0")
		return !strings.Contains(out, svcIP), out
	})
	// The kubernetes Service keeps its virtual server and address.
	out := w.sh(ctx, t, "IPVS and berth-ipvs0", "ipvsadm -Ln -t 10.96.0.1:443; ip -o addr show dev berth-ipvs0")
	if strings.Count(out, "10.96.0.1") < 2 {
		t.Errorf("the kubernetes Service lost its virtual server or address:\n%s", out)
	}
}

// deployEcho runs a 3-replica echo Deployment (20 s preStop sleep, so
// that a rollout leaves old pods serving while they drain) and a ClusterIP
// Service for it.
func (w *worker) deployEcho(ctx context.Context, t *testing.T) {
	labels := map[string]string{"app": "echo"}
	c := cluster.EchoContainer()
	c.Lifecycle = &v1.Lifecycle{PreStop: &v1.LifecycleHandler{Sleep: &v1.SleepAction{Seconds: 20}}}
	dep := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "echo"},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To[int32](3),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: v1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec:       v1.PodSpec{Containers: []v1.Container{c}, TerminationGracePeriodSeconds: ptr.To[int64](40)},
			},
		},
	}
	if _, err := w.client.AppsV1().Deployments(w.ns).Create(ctx, dep, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	svc := &v1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "echo"},
		Spec:       v1.ServiceSpec{Selector: labels, Ports: []v1.ServicePort{{Name: "http", Port: 80, TargetPort: intstr.FromString("http")}}},
	}
	if _, err := w.client.CoreV1().Services(w.ns).Create(ctx, svc, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	w.waitPods(ctx, t, 3, 5*time.Minute)
}

func (w *worker) serviceIP(ctx context.Context, t *testing.T) string {
	svc, err := w.client.CoreV1().Services(w.ns).Get(ctx, "echo", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return svc.Spec.ClusterIP
}

// waitPods waits until exactly n echo pods run and are ready (old ones of
// a rollout gone) and returns them by name.
func (w *worker) waitPods(ctx context.Context, t *testing.T, n int, timeout time.Duration) map[string]v1.Pod {
	t.Helper()
	out := map[string]v1.Pod{}
	cluster.Poll(t, timeout, fmt.Sprintf("%d ready echo pods", n), func() (bool, string) {
		list, err := w.client.CoreV1().Pods(w.ns).List(ctx, metav1.ListOptions{LabelSelector: "app=echo"})
		if err != nil {
			return false, err.Error()
		}
		clear(out)
		var states []string
		for _, p := range list.Items {
			states = append(states, cluster.Describe(&p))
			if p.DeletionTimestamp == nil && cluster.PodReady(&p) {
				out[p.Name] = p
			}
		}
		return len(out) == n && len(list.Items) == n, strings.Join(states, "; ")
	})
	return out
}

// containerIDs are the echo pods' container IDs and restart counts.
func (w *worker) containerIDs(ctx context.Context, t *testing.T) []string {
	t.Helper()
	list, err := w.client.CoreV1().Pods(w.ns).List(ctx, metav1.ListOptions{LabelSelector: "app=echo"})
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, p := range list.Items {
		for _, c := range p.Status.ContainerStatuses {
			ids = append(ids, fmt.Sprintf("%s/%s#%d", p.Name, c.ContainerID, c.RestartCount))
		}
	}
	slices.Sort(ids)
	return ids
}

func (w *worker) waitNodeReady(ctx context.Context, t *testing.T, timeout time.Duration) {
	t.Helper()
	cluster.Poll(t, timeout, "node "+workerName+" Ready", func() (bool, string) {
		n, err := w.client.CoreV1().Nodes().Get(ctx, workerName, metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		for _, c := range n.Status.Conditions {
			if c.Type == v1.NodeReady {
				return c.Status == v1.ConditionTrue, c.Message
			}
		}
		return false, "no Ready condition"
	})
}

// sh runs a shell command in the VM and returns its stdout; the test fails
// if it fails.
func (w *worker) sh(ctx context.Context, t *testing.T, what, cmd string) string {
	t.Helper()
	stdout, stderr, code, err := w.vm.Run(ctx, cmd)
	if err != nil || code != 0 {
		t.Fatalf("%s (%s): exit %d, %v\nstdout:\n%s\nstderr:\n%s", what, cmd, code, err, stdout, stderr)
	}
	return string(stdout)
}

// destinations lists the real servers of `ipvsadm -Ln` output.
func destinations(table string) []string {
	var out []string
	for _, l := range strings.Split(table, "\n") {
		if f := strings.Fields(l); len(f) >= 3 && f[0] == "->" && f[1] != "RemoteAddress:Port" {
			out = append(out, f[1])
		}
	}
	return out
}

// ipvsConns parses `ipvsadm -Ln --stats`: the connection count of each
// real server.
func ipvsConns(t *testing.T, stats string) map[string]int {
	t.Helper()
	out := map[string]int{}
	for _, l := range strings.Split(stats, "\n") {
		f := strings.Fields(l)
		if len(f) >= 3 && f[0] == "->" && f[1] != "RemoteAddress:Port" {
			var n int
			if _, err := fmt.Sscan(f[2], &n); err != nil {
				t.Fatalf("ipvsadm --stats line %q: %v", l, err)
			}
			out[f[1]] = n
		}
	}
	return out
}

// goBuild builds a static program of the repository.
func goBuild(ctx context.Context, out, pkg string) ([]byte, error) {
	repo, err := images.RepoRoot()
	if err != nil {
		return nil, err
	}
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-o", out, pkg)
	cmd.Dir = repo
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	return cmd.CombinedOutput()
}

func progress(t *testing.T, what string) {
	t.Helper()
	t.Logf("%s: %s", time.Now().Format("15:04:05"), what)
}

// requireVMHost skips unless this machine can build and boot the VM.
func requireVMHost(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("skipping: booting a VM takes minutes (-short)")
	}
	if os.Geteuid() != 0 {
		t.Skip("skipping: the control plane and the VM need root (namespaces, debootstrap, taps); CI runs it as root")
	}
	for _, tool := range []string{"qemu-system-x86_64", "qemu-img", "debootstrap", "mkfs.ext4"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("skipping: %s is not installed (make setup installs it)", tool)
		}
	}
}
