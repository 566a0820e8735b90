package node

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/berthnode/berth/test/e2e/cluster"
)

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
