package pods

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/distribution/reference"
	v1 "k8s.io/api/core/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// errImage marks a container that cannot start because of its image; the
// waitingReason carries the API reason.
var errImage = errors.New("image not available")

// imageError is a failure to provide a container's image.
type imageError struct {
	Reason  string
	Message string
}

func (e *imageError) Error() string { return e.Reason + ": " + e.Message }

func (e *imageError) Unwrap() error { return errImage }

// withDefaultTag adds :latest to an image reference with neither tag nor
// digest, as the kubelet does before asking the runtime.
func withDefaultTag(image string) (string, error) {
	named, err := reference.ParseNormalizedNamed(image)
	if err != nil {
		return "", fmt.Errorf("couldn't parse image name %q: %w", image, err)
	}
	if reference.IsNameOnly(named) {
		return image + ":latest", nil
	}
	return image, nil
}

// pullPolicy is the container's image pull policy, defaulted like the API
// server does: Always for :latest or untagged images, else IfNotPresent.
func pullPolicy(c *v1.Container) v1.PullPolicy {
	if c.ImagePullPolicy != "" {
		return c.ImagePullPolicy
	}
	named, err := reference.ParseNormalizedNamed(c.Image)
	if err != nil {
		return v1.PullIfNotPresent
	}
	if tagged, ok := named.(reference.Tagged); ok && tagged.Tag() != "latest" {
		return v1.PullIfNotPresent
	}
	if _, ok := named.(reference.Digested); ok {
		return v1.PullIfNotPresent
	}
	return v1.PullAlways
}

// ensureImage makes the container's image present under its pull policy and
// returns its reference and description. Pull failures go into the pod's
// pull back-off.
func (w *podWorker) ensureImage(ctx context.Context, pod *v1.Pod, c *v1.Container, sb *runtimeapi.PodSandboxConfig) (string, *runtimeapi.Image, error) {
	rec := w.m.cfg.Recorder
	image, err := withDefaultTag(c.Image)
	if err != nil {
		rec.Eventf(pod, v1.EventTypeWarning, "InspectFailed", "Failed to apply default image tag %q: %v", c.Image, err)
		return "", nil, &imageError{Reason: reasonInvalidImageName, Message: err.Error()}
	}
	spec := &runtimeapi.ImageSpec{Image: image, UserSpecifiedImage: c.Image}
	policy := pullPolicy(c)
	st, err := w.m.cfg.Images.ImageStatus(ctx, spec, false)
	if err != nil {
		rec.Eventf(pod, v1.EventTypeWarning, "InspectFailed", "Failed to inspect image %q: %v", c.Image, err)
		return "", nil, &imageError{Reason: reasonErrImagePull, Message: fmt.Sprintf("failed to inspect image %q: %v", c.Image, err)}
	}
	present := st.GetImage() != nil
	if policy == v1.PullNever && !present {
		msg := fmt.Sprintf("Container image %q is not present with pull policy of Never", c.Image)
		rec.Event(pod, v1.EventTypeWarning, reasonErrImageNeverPull, msg)
		return "", nil, &imageError{Reason: reasonErrImageNeverPull, Message: msg}
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
		return "", nil, &imageError{
			Reason:  reasonImagePullBackOff,
			Message: fmt.Sprintf("Back-off pulling image %q: %s", image, s.pullErrors[image]),
		}
	}
	creds, secretErrs := pullSecretCreds(ctx, w.m.cfg.Client, pod)
	for _, err := range secretErrs {
		rec.Eventf(pod, v1.EventTypeWarning, "FailedToRetrieveImagePullSecret", "Unable to retrieve some image pull secrets; attempting to pull the image may not succeed: %v", err)
	}
	auths := imageAuths(spec.Image, creds)
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
		rec.Eventf(pod, v1.EventTypeWarning, "Failed", "Error: %s", reasonErrImagePull)
		return "", nil, &imageError{Reason: reasonErrImagePull, Message: msg}
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

// isImageError tells whether err is about the container's image.
func isImageError(err error) (*imageError, bool) {
	var ie *imageError
	if errors.As(err, &ie) {
		return ie, true
	}
	return nil, false
}

// shortError trims a runtime error to its last, most specific part for a
// status message.
func shortError(err error) string {
	msg := err.Error()
	if len(msg) > 1024 {
		msg = msg[:1024] + "…"
	}
	return strings.TrimSpace(msg)
}
