package pods

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/berthnode/berth/kubelet/podruntime"
	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/klog/v2"
)

// terminate stops a pod being deleted within its grace period, removes its
// containers, sandboxes and volumes, publishes its final status and deletes
// the pod object for good, as the kubelet does; for a static pod whose
// manifest is gone or changed, the object is its mirror pod.
func (w *podWorker) terminate(ctx context.Context, pod *v1.Pod, rt *podruntime.PodState) error {
	logger := klog.FromContext(ctx)
	grace := podruntime.DeletionGracePeriod(pod)
	if len(rt.RunningContainers()) > 0 {
		logger.V(2).Info("Stopping pod being deleted", "gracePeriod", grace)
	}
	rt, err := w.stopForGood(ctx, pod, rt, grace)
	if err != nil {
		return err
	}
	switch err := w.publish(ctx, pod, rt); {
	case apierrors.IsNotFound(err):
		// Deleted already (by us on an earlier pass, or by its owner):
		// there is no status left to publish.
		logger.V(4).Info("Pod gone before its final status was published")
	case err != nil:
		logger.Error(err, "Cannot publish the final pod status")
	}
	if err := w.runtime.RemoveAll(ctx, rt); err != nil {
		return err
	}
	if err := w.volumes.Teardown(ctx, w.uid); err != nil {
		return fmt.Errorf("tear down volumes: %w", err)
	}
	w.state.tornDown = true
	w.removeFiles(pod)
	if w.static {
		// A static pod is not in the API; its mirror pod is, if this
		// version has one.
		if mirror := w.state.static.mirror; mirror != nil {
			return w.host.deleteMirror(ctx, mirror)
		}
		return nil
	}
	zero := int64(0)
	err = w.client.CoreV1().Pods(pod.Namespace).Delete(ctx, pod.Name, metav1.DeleteOptions{
		GracePeriodSeconds: &zero,
		Preconditions:      &metav1.Preconditions{UID: &pod.UID},
	})
	switch {
	case err == nil:
		logger.V(2).Info("Pod deleted")
	case apierrors.IsNotFound(err), apierrors.IsConflict(err):
		// Gone already, or a new pod of the same name.
	default:
		return fmt.Errorf("delete pod: %w", err)
	}
	return nil
}

// stopForGood stops everything of the pod within grace seconds and marks
// it finished (no container of it runs again); it returns what the runtime
// holds then, for the final status.
func (w *podWorker) stopForGood(ctx context.Context, pod *v1.Pod, rt *podruntime.PodState, grace int64) (*podruntime.PodState, error) {
	if err := w.runtime.KillPod(ctx, pod, rt, grace); err != nil {
		return nil, err
	}
	rt, err := podruntime.Observe(ctx, w.cri, w.uid)
	if err != nil {
		return nil, err
	}
	w.state.finished = true
	return rt, nil
}

// stopFinished keeps a pod whose phase is terminal stopped: nothing of it
// runs and its volumes are gone; its exited containers stay for their logs.
func (w *podWorker) stopFinished(ctx context.Context, pod *v1.Pod, rt *podruntime.PodState) error {
	if err := w.runtime.KillPod(ctx, pod, rt, podruntime.SpecGracePeriod(pod)); err != nil {
		return err
	}
	if err := w.teardownOnce(ctx); err != nil {
		return err
	}
	w.collectGarbage(ctx, rt)
	return nil
}

// cleanup removes everything of a pod gone from the API.
func (w *podWorker) cleanup(ctx context.Context, rt *podruntime.PodState) error {
	pod := w.state.lastPod
	grace := int64(podruntime.MinGracePeriod)
	if pod != nil && pod.DeletionGracePeriodSeconds != nil {
		grace = podruntime.DeletionGracePeriod(pod)
	}
	if err := w.runtime.KillPod(ctx, nil, rt, grace); err != nil {
		return err
	}
	if err := w.runtime.RemoveAll(ctx, rt); err != nil {
		return err
	}
	if err := w.volumes.Teardown(ctx, w.uid); err != nil {
		return fmt.Errorf("tear down volumes: %w", err)
	}
	if pod != nil {
		w.removeFiles(pod)
	} else {
		w.removeUIDFiles()
	}
	return nil
}

// removeFiles removes the pod's log directory and its files below the
// kubelet root; the pod directory goes too once the volumes left it empty.
func (w *podWorker) removeFiles(pod *v1.Pod) {
	_ = os.RemoveAll(podruntime.PodLogDir(w.files.podLogsDir, pod))
	w.removeUIDFiles()
}

func (w *podWorker) removeUIDFiles() {
	f := w.files
	podruntime.RemovePodCgroups(f.cgroupRoot, f.cgroupDriver, f.cgroupsPerQOS, string(w.uid))
	dir := filepath.Join(w.files.rootDir, "pods", string(w.uid))
	_ = os.RemoveAll(filepath.Join(dir, "containers"))
	_ = os.Remove(filepath.Join(dir, "etc-hosts"))
	w.resizes.Remove(w.uid)
	_ = os.Remove(dir)
	matches, _ := filepath.Glob(filepath.Join(w.files.podLogsDir, "*_"+string(w.uid)))
	for _, m := range matches {
		_ = os.RemoveAll(m)
	}
}

// collectGarbage removes the dead containers of the pod beyond the newest
// one per container name, and dead sandboxes; it forgets the termination
// messages of the containers removed.
func (w *podWorker) collectGarbage(ctx context.Context, rt *podruntime.PodState) {
	for _, id := range w.runtime.CollectGarbage(ctx, rt) {
		delete(w.state.messages, id)
	}
}
