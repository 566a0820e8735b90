package podruntimetest

import (
	"context"
	"fmt"
	"strings"
	"sync"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/tools/record"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	critest "k8s.io/cri-api/pkg/apis/testing"
)

// Images is the CRI image fake that remembers the pulls and their
// credentials, and can fail pulls of some images.
type Images struct {
	*critest.FakeImageService
	mu    sync.Mutex
	fail  map[string]error
	pulls []string
	auths []*runtimeapi.AuthConfig
}

// NewImages returns an image service without images.
func NewImages() *Images {
	return &Images{FakeImageService: critest.NewFakeImageService(), fail: map[string]error{}}
}

// PullImage records the pull and fails it as SetFail asked.
func (s *Images) PullImage(ctx context.Context, img *runtimeapi.ImageSpec, auth *runtimeapi.AuthConfig, sb *runtimeapi.PodSandboxConfig) (string, error) {
	s.mu.Lock()
	s.pulls = append(s.pulls, img.Image)
	s.auths = append(s.auths, auth)
	err := s.fail[img.Image]
	s.mu.Unlock()
	if err != nil {
		return "", err
	}
	return s.FakeImageService.PullImage(ctx, img, auth, sb)
}

// Pulls returns the images pulled so far, in order.
func (s *Images) Pulls() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.pulls...)
}

// Auths returns the credentials of the pulls so far, in order.
func (s *Images) Auths() []*runtimeapi.AuthConfig {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]*runtimeapi.AuthConfig(nil), s.auths...)
}

// SetFail makes pulls of image fail with err (nil: succeed again).
func (s *Images) SetFail(image string, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err == nil {
		delete(s.fail, image)
		return
	}
	s.fail[image] = err
}

// Event is one recorded event.
type Event struct {
	Object, Type, Reason, Message string
}

// Events records events for assertions.
type Events struct {
	mu   sync.Mutex
	list []Event
}

var _ record.EventRecorder = &Events{}

// Event records an event about obj.
func (e *Events) Event(obj runtime.Object, typ, reason, msg string) {
	name := ""
	if m, ok := obj.(metav1.Object); ok {
		name = m.GetName()
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	e.list = append(e.list, Event{Object: name, Type: typ, Reason: reason, Message: msg})
}

// Eventf records an event with a formatted message.
func (e *Events) Eventf(obj runtime.Object, typ, reason, format string, args ...any) {
	e.Event(obj, typ, reason, fmt.Sprintf(format, args...))
}

// AnnotatedEventf records an event; the annotations are dropped.
func (e *Events) AnnotatedEventf(obj runtime.Object, _ map[string]string, typ, reason, format string, args ...any) {
	e.Eventf(obj, typ, reason, format, args...)
}

// List returns the events recorded so far.
func (e *Events) List() []Event {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]Event(nil), e.list...)
}

// Has tells whether an event with reason (and a message containing msg) was
// recorded for the object.
func (e *Events) Has(object, reason, msg string) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, ev := range e.list {
		if ev.Object == object && ev.Reason == reason && strings.Contains(ev.Message, msg) {
			return true
		}
	}
	return false
}

// Count is the number of events with reason recorded for the object.
func (e *Events) Count(object, reason string) int {
	e.mu.Lock()
	defer e.mu.Unlock()
	n := 0
	for _, ev := range e.list {
		if ev.Object == object && ev.Reason == reason {
			n++
		}
	}
	return n
}
