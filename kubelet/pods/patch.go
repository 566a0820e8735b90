package pods

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"time"

	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/strategicpatch"
	"k8s.io/klog/v2"

	"github.com/berthnode/berth/kubelet/logs"
	"github.com/berthnode/berth/kubelet/podruntime"
	"github.com/berthnode/berth/kubelet/podstatus"
)

// Limits of termination messages, as under the kubelet.
const (
	maxMessageBytes  = 4096
	maxFallbackLines = 80
	maxFallbackBytes = 2048
	// resendAfter is how long a patch is not sent again while the informer
	// still shows the old status.
	resendAfter = 10 * time.Second
)

// publish computes the pod's status and patches it to the API server when it
// differs from what the server has, after any patch still being sent in
// the background.
func (w *podWorker) publish(ctx context.Context, pod *v1.Pod, rt *podruntime.PodState) error {
	if w.supersede != nil {
		close(w.supersede)
		w.supersede, w.hurry = nil, nil
	}
	w.pending.Wait()
	pod = w.withNewestStatus(pod)
	st := w.podStatus(ctx, pod, rt)
	w.sending.Lock()
	defer w.sending.Unlock()
	return w.sendStatus(ctx, pod, st)
}

// backgroundPublishDelay is how long a new pod's first status waits before
// it is sent: a pod that starts sooner goes from Pending to Running with
// one patch, and a burst of pods does not spend the API rate limit on
// statuses that are stale before they are sent.
const backgroundPublishDelay = 2 * time.Second

// publishInBackground is publish without waiting for the API server, for
// a pod that has no sandbox yet: the status goes out after
// backgroundPublishDelay unless the worker's next publish came first, and
// that next publish comes after it. Others publish in the foreground, as do
// static pods, whose status goes through worker state.
func (w *podWorker) publishInBackground(ctx context.Context, pod *v1.Pod, rt *podruntime.PodState) {
	if w.static || rt.NewestSandbox() != nil {
		if err := w.publish(ctx, pod, rt); err != nil {
			klog.FromContext(ctx).Error(err, "Cannot publish pod status")
		}
		return
	}
	st := w.podStatus(ctx, pod, rt)
	superseded, hurry := make(chan struct{}), make(chan struct{})
	w.supersede, w.hurry = superseded, hurry
	w.pending.Add(1)
	go func() {
		defer w.pending.Done()
		select {
		case <-superseded:
			return
		case <-ctx.Done():
			return
		case <-hurry:
		case <-w.clock.After(backgroundPublishDelay):
		}
		w.sending.Lock()
		defer w.sending.Unlock()
		if err := w.sendStatus(ctx, pod, st); err != nil && ctx.Err() == nil {
			klog.FromContext(ctx).Error(err, "Cannot publish pod status")
		}
	}()
}

// publishNow sends the status publishInBackground holds back without
// waiting any longer, and returns once it is sent: the sync failed before
// the pod could start, and the pod shows why it waits (ContainerCreating)
// at once, as under the kubelet.
func (w *podWorker) publishNow() {
	if w.hurry != nil {
		close(w.hurry)
		w.hurry = nil
	}
	w.pending.Wait()
}

// podStatus computes the status to publish.
func (w *podWorker) podStatus(ctx context.Context, pod *v1.Pod, rt *podruntime.PodState) v1.PodStatus {
	w.readMessages(ctx, pod, rt)
	st := podstatus.Build(podstatus.Input{
		Pod:         pod,
		RT:          rt,
		Waiting:     w.runtime.Waiting,
		Terminal:    w.state.finished,
		Now:         w.clock.Now(),
		HostIPs:     w.hostIPs(),
		RuntimeName: w.runtimeName.get(ctx),
		Messages:    w.state.messages,
		Health:      w.probes.Health(),
		StartTime:   w.state.startTime,
		Actual:      w.actualResources(pod, rt),
		Resize:      w.state.resize.conds.List(),
	})
	w.state.startTime = st.StartTime
	if w.state.deadline.exceeded {
		st = podstatus.Ended(st, pod.Status.Conditions, podstatus.ReasonDeadlineExceeded, podstatus.MessageDeadlineExceeded, w.clock.Now())
	}
	if podstatus.IsTerminalPhase(pod.Status.Phase) && !podstatus.IsTerminalPhase(st.Phase) {
		// A terminal phase is final; the API server would refuse the change.
		st.Phase = pod.Status.Phase
	}
	if !w.state.started && st.Phase == v1.PodRunning {
		w.state.started = true
		// A pod that ran before berth (re)started was not started by it.
		if pod.Status.Phase != v1.PodRunning {
			w.observeStart(w.clock.Since(w.state.seen).Seconds())
			if w.state.trace != nil {
				w.state.trace.running = true
			}
		} else {
			w.state.trace = nil
		}
	}
	return st
}

// sendStatus patches st onto the pod's object in the API when it differs
// from what the server has. A static pod's status goes to its mirror pod,
// and is remembered for when there is none.
func (w *podWorker) sendStatus(ctx context.Context, pod *v1.Pod, st v1.PodStatus) error {
	target := pod
	if w.static {
		w.state.static.status = &st
		if target = w.state.static.mirror; target == nil {
			return nil
		}
	}
	encoded, err := encodeStatus(st)
	if err != nil {
		return err
	}
	patch, err := encodedStatusPatch(target, encoded)
	if err != nil {
		return err
	}
	if patch == nil {
		return nil
	}
	if bytes.Equal(patch, w.state.lastSent) && w.clock.Since(w.state.lastSentAt) < resendAfter {
		// Sent just now; the informer has not caught up yet.
		return nil
	}
	patched, err := w.client.CoreV1().Pods(target.Namespace).Patch(ctx, target.Name,
		types.StrategicMergePatchType, patch, metav1.PatchOptions{}, "status")
	if w.static && apierrors.IsNotFound(err) {
		// The mirror pod went; its deletion wakes the worker to make a
		// new one, which gets the status.
		klog.FromContext(ctx).V(2).Info("Mirror pod gone before its status was patched")
		w.state.static.mirror = nil
		return nil
	}
	if err != nil {
		return fmt.Errorf("patch pod status: %w", err)
	}
	klog.FromContext(ctx).V(3).Info("Patched pod status", "phase", st.Phase, "patch", string(patch))
	w.state.lastSent, w.state.lastSentAt = patch, w.clock.Now()
	if !w.static {
		w.sent.record(encoded, patched, w.clock.Now())
	}
	return nil
}

// statusPatch is the strategic merge patch from the pod's status to st,
// carrying the pod's UID so that it cannot land on a new pod of the same
// name; nil when nothing changes.
func statusPatch(pod *v1.Pod, st v1.PodStatus) ([]byte, error) {
	newJSON, err := encodeStatus(st)
	if err != nil {
		return nil, err
	}
	return encodedStatusPatch(pod, newJSON)
}

// encodeStatus encodes st as a pod holding only it: the form the status
// patch is made from and sentStatus compares the informer's updates with.
func encodeStatus(st v1.PodStatus) ([]byte, error) {
	b, err := json.Marshal(v1.Pod{Status: st})
	if err != nil {
		return nil, fmt.Errorf("encode pod status: %w", err)
	}
	return b, nil
}

// encodedStatusPatch is statusPatch for a status encoded by encodeStatus.
func encodedStatusPatch(pod *v1.Pod, newJSON []byte) ([]byte, error) {
	oldJSON, err := encodeStatus(pod.Status)
	if err != nil {
		return nil, err
	}
	diff, err := strategicpatch.CreateTwoWayMergePatch(oldJSON, newJSON, v1.Pod{})
	if err != nil {
		return nil, fmt.Errorf("make pod status patch: %w", err)
	}
	if string(diff) == "{}" {
		return nil, nil
	}
	var patch map[string]any
	if err := json.Unmarshal(diff, &patch); err != nil {
		return nil, fmt.Errorf("decode pod status patch: %w", err)
	}
	patch["metadata"] = map[string]any{"uid": string(pod.UID)}
	return json.Marshal(patch)
}

// readMessages reads the termination messages of exited containers once:
// the file at the termination message path, or with FallbackToLogsOnError
// the tail of the log of a failed container that left none.
func (w *podWorker) readMessages(ctx context.Context, pod *v1.Pod, rt *podruntime.PodState) {
	for _, c := range rt.Containers {
		if !c.Exited() {
			continue
		}
		if _, ok := w.state.messages[c.ID]; ok {
			continue
		}
		msg := readLimited(c.TermFile, maxMessageBytes)
		if msg == "" && c.ExitCode != 0 && c.TermPolicy == string(v1.TerminationMessageFallbackToLogsOnError) {
			msg = w.logMessage(ctx, pod, c)
		}
		w.state.messages[c.ID] = msg
	}
}

// logMessage is the termination message taken from the end of a
// container's log: the last maxFallbackLines records, at most
// maxFallbackBytes, as the kubelet reads it.
func (w *podWorker) logMessage(ctx context.Context, pod *v1.Pod, c *podruntime.ContainerState) string {
	path := c.LogPath
	if !filepath.IsAbs(path) {
		// containerd names the whole path; for a runtime that names
		// only the part below the pod's log directory, it is where berth
		// asked for it.
		path = filepath.Join(podruntime.PodLogDir(w.files.podLogsDir, pod), c.Name, strconv.Itoa(int(c.RestartCount))+".log")
	}
	msg, err := logs.Last(ctx, path, maxFallbackLines, maxFallbackBytes)
	if err != nil {
		klog.FromContext(ctx).Error(err, "Cannot read the container's log for its termination message", "container", c.Name)
		return fmt.Sprintf("Error on reading termination message from logs: %v", err)
	}
	return msg
}

func readLimited(path string, limit int64) string {
	if path == "" {
		return ""
	}
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	b, _ := io.ReadAll(io.LimitReader(f, limit))
	return string(b)
}
