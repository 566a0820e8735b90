package pods

import (
	"context"
	"fmt"
	"time"

	"github.com/berthnode/berth/kubelet/podruntime"
	v1 "k8s.io/api/core/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// ensureImage makes the container's image present under its pull policy and
// returns its reference and description. Pull failures go into the pod's
// pull back-off.
func (w *podWorker) ensureImage(ctx context.Context, pod *v1.Pod, c *v1.Container, sb *runtimeapi.PodSandboxConfig) (string, *runtimeapi.Image, error) {
	rec := w.m.cfg.Recorder
	image, err := podruntime.WithDefaultTag(c.Image)
	if err != nil {
		rec.Eventf(pod, v1.EventTypeWarning, "InspectFailed", "Failed to apply default image tag %q: %v", c.Image, err)
		return "", nil, &podruntime.ImageError{Reason: podruntime.ReasonInvalidImageName, Message: err.Error()}
	}
	spec := &runtimeapi.ImageSpec{Image: image, UserSpecifiedImage: c.Image}
	policy := podruntime.PullPolicy(c)
	st, err := w.m.cfg.Images.ImageStatus(ctx, spec, false)
	if err != nil {
		rec.Eventf(pod, v1.EventTypeWarning, "InspectFailed", "Failed to inspect image %q: %v", c.Image, err)
		return "", nil, &podruntime.ImageError{Reason: podruntime.ReasonErrImagePull, Message: fmt.Sprintf("failed to inspect image %q: %v", c.Image, err)}
	}
	present := st.GetImage() != nil
	if policy == v1.PullNever && !present {
		msg := fmt.Sprintf("Container image %q is not present with pull policy of Never", c.Image)
		rec.Event(pod, v1.EventTypeWarning, podruntime.ReasonErrImageNeverPull, msg)
		return "", nil, &podruntime.ImageError{Reason: podruntime.ReasonErrImageNeverPull, Message: msg}
	}
	if present && policy != v1.PullAlways {
		rec.Eventf(pod, v1.EventTypeNormal, "Pulled", "Container image %q already present on machine", c.Image)
		return st.GetImage().GetId(), st.GetImage(), nil
	}
	return w.pull(ctx, pod, spec, sb)
}

// pull pulls an image unless it is in its back-off, trying each matching
// credential of the pod's pull secrets (or none) in turn.
func (w *podWorker) pull(ctx context.Context, pod *v1.Pod, spec *runtimeapi.ImageSpec, sb *runtimeapi.PodSandboxConfig) (string, *runtimeapi.Image, error) {
	rec, s := w.m.cfg.Recorder, w.state
	image := spec.UserSpecifiedImage
	now := w.m.cfg.Clock.Now()
	if s.pulls.RemainingSinceLast(image, now) > 0 {
		rec.Eventf(pod, v1.EventTypeNormal, "BackOff", "Back-off pulling image %q", image)
		return "", nil, &podruntime.ImageError{
			Reason:  podruntime.ReasonImagePullBackOff,
			Message: fmt.Sprintf("Back-off pulling image %q: %s", image, s.pullErrors[image]),
		}
	}
	creds, secretErrs := podruntime.PullSecretCreds(ctx, w.m.cfg.Client.CoreV1(), pod)
	for _, err := range secretErrs {
		rec.Eventf(pod, v1.EventTypeWarning, "FailedToRetrieveImagePullSecret", "Unable to retrieve some image pull secrets; attempting to pull the image may not succeed: %v", err)
	}
	auths := podruntime.ImageAuths(spec.Image, creds)
	if len(auths) == 0 {
		auths = []*runtimeapi.AuthConfig{nil}
	}
	rec.Eventf(pod, v1.EventTypeNormal, "Pulling", "Pulling image %q", image)
	start := w.m.cfg.Clock.Now()
	var ref string
	var err error
	for _, auth := range auths {
		if ref, err = w.m.cfg.Images.PullImage(ctx, spec, auth, sb); err == nil {
			break
		}
	}
	if err != nil {
		s.pulls.Next(image, now, w.m.cfg.Clock.Now())
		s.pullErrors[image] = err.Error()
		msg := fmt.Sprintf("Failed to pull image %q: %v", image, err)
		rec.Event(pod, v1.EventTypeWarning, "Failed", msg)
		rec.Eventf(pod, v1.EventTypeWarning, "Failed", "Error: %s", podruntime.ReasonErrImagePull)
		return "", nil, &podruntime.ImageError{Reason: podruntime.ReasonErrImagePull, Message: msg}
	}
	s.pulls.Reset(image)
	delete(s.pullErrors, image)
	took := w.m.cfg.Clock.Since(start).Round(time.Millisecond)
	rec.Eventf(pod, v1.EventTypeNormal, "Pulled", "Successfully pulled image %q in %s", image, took)
	st, err := w.m.cfg.Images.ImageStatus(ctx, &runtimeapi.ImageSpec{Image: ref}, false)
	if err != nil || st.GetImage() == nil {
		// The pull worked; the image's user is unknown, which only matters
		// for runAsNonRoot checks.
		return ref, &runtimeapi.Image{Id: ref}, nil
	}
	return ref, st.GetImage(), nil
}
