package node

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	"github.com/berthnode/berth/test/e2e/cluster"
)

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
