package podruntime

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

// ErrImage marks a container that cannot start because of its image; the
// WaitingReason carries the API reason.
var ErrImage = errors.New("image not available")

// ImageError is a failure to provide a container's image.
type ImageError struct {
	Reason  string
	Message string
}

func (e *ImageError) Error() string { return e.Reason + ": " + e.Message }

func (e *ImageError) Unwrap() error { return ErrImage }

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

// IsImageError tells whether err is about the container's image.
func IsImageError(err error) (*ImageError, bool) {
	var ie *ImageError
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

// EnsureImage makes the container's image present under its pull policy and
// returns its reference and description. Pull failures go into the pod's
// pull back-off.
func (p *Pod) EnsureImage(ctx context.Context, pod *v1.Pod, c *v1.Container, sb *runtimeapi.PodSandboxConfig) (string, *runtimeapi.Image, error) {
	rec := p.r.recorder
	image, err := withDefaultTag(c.Image)
	if err != nil {
		rec.Eventf(pod, v1.EventTypeWarning, "InspectFailed", "Failed to apply default image tag %q: %v", c.Image, err)
		return "", nil, &ImageError{Reason: ReasonInvalidImageName, Message: err.Error()}
	}
	spec := &runtimeapi.ImageSpec{Image: image, UserSpecifiedImage: c.Image}
	policy := pullPolicy(c)
	st, err := p.r.images.ImageStatus(ctx, spec, false)
	if err != nil {
		rec.Eventf(pod, v1.EventTypeWarning, "InspectFailed", "Failed to inspect image %q: %v", c.Image, err)
		return "", nil, &ImageError{Reason: ReasonErrImagePull, Message: fmt.Sprintf("failed to inspect image %q: %v", c.Image, err)}
	}
	present := st.GetImage() != nil
	if policy == v1.PullNever && !present {
		msg := fmt.Sprintf("Container image %q is not present with pull policy of Never", c.Image)
		rec.Event(pod, v1.EventTypeWarning, ReasonErrImageNeverPull, msg)
		return "", nil, &ImageError{Reason: ReasonErrImageNeverPull, Message: msg}
	}
	if present && policy != v1.PullAlways {
		rec.Eventf(pod, v1.EventTypeNormal, "Pulled", "Container image %q already present on machine", c.Image)
		return st.GetImage().GetId(), st.GetImage(), nil
	}
	return p.pull(ctx, pod, spec, sb)
}

// pull pulls an image unless it is in its back-off, trying each matching
// credential of the pod's pull secrets (or none) in turn.
func (p *Pod) pull(ctx context.Context, pod *v1.Pod, spec *runtimeapi.ImageSpec, sb *runtimeapi.PodSandboxConfig) (string, *runtimeapi.Image, error) {
	rec := p.r.recorder
	image := spec.UserSpecifiedImage
	now := p.r.clock.Now()
	if p.Pulls.RemainingSinceLast(image) > 0 {
		rec.Eventf(pod, v1.EventTypeNormal, "BackOff", "Back-off pulling image %q", image)
		return "", nil, &ImageError{
			Reason:  ReasonImagePullBackOff,
			Message: fmt.Sprintf("Back-off pulling image %q: %s", image, p.PullErrors[image]),
		}
	}
	creds, secretErrs := PullSecretCreds(ctx, p.r.objects, pod)
	for _, err := range secretErrs {
		rec.Eventf(pod, v1.EventTypeWarning, "FailedToRetrieveImagePullSecret", "Unable to retrieve some image pull secrets; attempting to pull the image may not succeed: %v", err)
	}
	auths := ImageAuths(spec.Image, creds)
	if len(auths) == 0 {
		auths = []*runtimeapi.AuthConfig{nil}
	}
	rec.Eventf(pod, v1.EventTypeNormal, "Pulling", "Pulling image %q", image)
	start := p.r.clock.Now()
	var ref string
	var err error
	for _, auth := range auths {
		if ref, err = p.r.images.PullImage(ctx, spec, auth, sb); err == nil {
			break
		}
	}
	if err != nil {
		p.Pulls.Next(image, now)
		p.PullErrors[image] = err.Error()
		msg := fmt.Sprintf("Failed to pull image %q: %v", image, err)
		rec.Event(pod, v1.EventTypeWarning, "Failed", msg)
		rec.Eventf(pod, v1.EventTypeWarning, "Failed", "Error: %s", ReasonErrImagePull)
		return "", nil, &ImageError{Reason: ReasonErrImagePull, Message: msg}
	}
	p.Pulls.Reset(image)
	delete(p.PullErrors, image)
	took := p.r.clock.Since(start).Round(time.Millisecond)
	rec.Eventf(pod, v1.EventTypeNormal, "Pulled", "Successfully pulled image %q in %s", image, took)
	st, err := p.r.images.ImageStatus(ctx, &runtimeapi.ImageSpec{Image: ref}, false)
	if err != nil || st.GetImage() == nil {
		// The pull worked; the image's user is unknown, which only matters
		// for runAsNonRoot checks.
		return ref, &runtimeapi.Image{Id: ref}, nil
	}
	return ref, st.GetImage(), nil
}
