package podruntime

import (
	"errors"
	"testing"

	v1 "k8s.io/api/core/v1"
)

func TestPullPolicyDefault(t *testing.T) {
	tests := map[string]v1.PullPolicy{
		"busybox":                  v1.PullAlways,
		"busybox:latest":           v1.PullAlways,
		"busybox:1.36":             v1.PullIfNotPresent,
		"registry:5000/app":        v1.PullAlways,
		"registry:5000/app:v2":     v1.PullIfNotPresent,
		"app@sha256:" + sha256Zero: v1.PullIfNotPresent,
	}
	for image, want := range tests {
		if got := pullPolicy(&v1.Container{Image: image}); got != want {
			t.Errorf("%s: %s, want %s", image, got, want)
		}
	}
}

func TestImageErrorWraps(t *testing.T) {
	err := error(&ImageError{Reason: ReasonErrImagePull, Message: "x"})
	if !errors.Is(err, ErrImage) {
		t.Error("imageError does not wrap errImage")
	}
}

const sha256Zero = "0000000000000000000000000000000000000000000000000000000000000000"
