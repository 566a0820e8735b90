package podruntime

import (
	"errors"
	"fmt"
	"strings"

	"github.com/distribution/reference"
	v1 "k8s.io/api/core/v1"
)

// ErrImage marks a container that cannot start because of its image; the
// waitingReason carries the API reason.
var ErrImage = errors.New("image not available")

// ImageError is a failure to provide a container's image.
type ImageError struct {
	Reason  string
	Message string
}

func (e *ImageError) Error() string { return e.Reason + ": " + e.Message }

func (e *ImageError) Unwrap() error { return ErrImage }

// WithDefaultTag adds :latest to an image reference with neither tag nor
// digest, as the kubelet does before asking the runtime.
func WithDefaultTag(image string) (string, error) {
	named, err := reference.ParseNormalizedNamed(image)
	if err != nil {
		return "", fmt.Errorf("couldn't parse image name %q: %w", image, err)
	}
	if reference.IsNameOnly(named) {
		return image + ":latest", nil
	}
	return image, nil
}

// PullPolicy is the container's image pull policy, defaulted like the API
// server does: Always for :latest or untagged images, else IfNotPresent.
func PullPolicy(c *v1.Container) v1.PullPolicy {
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

// ShortError trims a runtime error to its last, most specific part for a
// status message.
func ShortError(err error) string {
	msg := err.Error()
	if len(msg) > 1024 {
		msg = msg[:1024] + "…"
	}
	return strings.TrimSpace(msg)
}
