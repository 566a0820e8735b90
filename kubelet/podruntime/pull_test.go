package podruntime_test

import (
	"context"
	"encoding/base64"
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/testing/protocmp"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	critest "k8s.io/cri-api/pkg/apis/testing"
	testingclock "k8s.io/utils/clock/testing"

	"github.com/berthnode/berth/kubelet/podruntime"
	"github.com/berthnode/berth/kubelet/podruntime/podruntimetest"
)

var errBoom = errors.New("boom")

// pullEnv is the runtime side of one pod on the CRI fakes, a fake clock
// and a fake clientset for pull secrets: no API server, no pod manager.
type pullEnv struct {
	images  *podruntimetest.Images
	events  *podruntimetest.Events
	clock   *testingclock.FakeClock
	objects podruntime.Objects
	pod     *podruntime.Pod
}

func newPullEnv(t *testing.T, objects ...runtime.Object) *pullEnv {
	client := fake.NewClientset(objects...)
	h := &pullEnv{
		images:  podruntimetest.NewImages(),
		events:  &podruntimetest.Events{},
		clock:   testingclock.NewFakeClock(podruntimetest.T0),
		objects: client.CoreV1(),
	}
	r, err := podruntime.NewRunner(podruntime.Config{
		Runtime: critest.NewFakeRuntimeService(), Images: h.images, Recorder: h.events, Clock: h.clock,
		Objects: h.objects, RuntimeClasses: client.NodeV1(),
		Services:     func(*v1.Pod) ([]*v1.Service, error) { return nil, nil },
		HostIPs:      func() []string { return nil },
		SandboxSlots: 1,
	})
	if err != nil {
		t.Fatal(err)
	}
	h.pod = r.NewPod()
	return h
}

// pullPod is the pod the images are pulled for.
func pullPod() *v1.Pod {
	return &v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "default", UID: "uid-p"}}
}

func TestEnsureImage(t *testing.T) {
	tests := []struct {
		name    string
		image   string
		policy  v1.PullPolicy
		present []string
		fail    error
		pulls   []string
		reason  string
		event   string
	}{
		{name: "IfNotPresent, present", image: "app:1", policy: v1.PullIfNotPresent, present: []string{"app:1"}, event: "Pulled"},
		{name: "IfNotPresent, absent", image: "app:1", policy: v1.PullIfNotPresent, pulls: []string{"app:1"}, event: "Pulling"},
		{name: "Always, present", image: "app:1", policy: v1.PullAlways, present: []string{"app:1"}, pulls: []string{"app:1"}, event: "Pulled"},
		{name: "untagged defaults to latest and Always", image: "app", present: []string{"app:latest"}, pulls: []string{"app:latest"}, event: "Pulling"},
		{name: "Never, present", image: "app:1", policy: v1.PullNever, present: []string{"app:1"}, event: "Pulled"},
		{name: "Never, absent", image: "app:1", policy: v1.PullNever, reason: podruntime.ReasonErrImageNeverPull, event: podruntime.ReasonErrImageNeverPull},
		{name: "pull fails", image: "app:1", policy: v1.PullIfNotPresent, fail: errBoom, pulls: []string{"app:1"}, reason: podruntime.ReasonErrImagePull, event: "Failed"},
		{name: "invalid name", image: "bad image", policy: v1.PullIfNotPresent, reason: podruntime.ReasonInvalidImageName, event: "InspectFailed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newPullEnv(t)
			h.images.SetFakeImages(tt.present)
			h.images.SetFail(tt.image, tt.fail)
			if tt.fail != nil {
				h.images.SetFail(tt.image, tt.fail)
			}
			pod := pullPod()
			c := &v1.Container{Name: "c", Image: tt.image, ImagePullPolicy: tt.policy}
			_, _, err := h.pod.EnsureImage(context.Background(), pod, c, &runtimeapi.PodSandboxConfig{})
			reason := ""
			if ie, ok := podruntime.IsImageError(err); ok {
				reason = ie.Reason
			} else if err != nil {
				t.Fatal(err)
			}
			if reason != tt.reason {
				t.Errorf("reason %q, want %q (err %v)", reason, tt.reason, err)
			}
			if diff := cmp.Diff(tt.pulls, h.images.Pulls()); diff != "" {
				t.Errorf("pulls (-want +got):\n%s", diff)
			}
			if !h.events.Has("p", tt.event, "") {
				t.Errorf("no %s event in %+v", tt.event, h.events.List())
			}
		})
	}
}

func TestImagePullBackOff(t *testing.T) {
	h := newPullEnv(t)
	h.images.SetFail("app:1", errBoom)
	pod := pullPod()
	c := &v1.Container{Name: "c", Image: "app:1", ImagePullPolicy: v1.PullIfNotPresent}
	try := func() string {
		_, _, err := h.pod.EnsureImage(context.Background(), pod, c, &runtimeapi.PodSandboxConfig{})
		if ie, ok := podruntime.IsImageError(err); ok {
			return ie.Reason
		}
		return ""
	}
	if got := try(); got != podruntime.ReasonErrImagePull {
		t.Fatalf("first try %q", got)
	}
	if got := try(); got != podruntime.ReasonImagePullBackOff || len(h.images.Pulls()) != 1 {
		t.Fatalf("second try %q after %d pulls, want ImagePullBackOff without a pull", got, len(h.images.Pulls()))
	}
	h.clock.Step(10 * time.Second)
	if got := try(); got != podruntime.ReasonErrImagePull || len(h.images.Pulls()) != 2 {
		t.Fatalf("after 10s %q after %d pulls, want a new pull", got, len(h.images.Pulls()))
	}
	h.clock.Step(10 * time.Second)
	if got := try(); got != podruntime.ReasonImagePullBackOff {
		t.Fatalf("the second back-off is 20s; got %q", got)
	}
	h.images.SetFail("app:1", nil)
	h.clock.Step(10 * time.Second)
	if got := try(); got != "" {
		t.Fatalf("after the image appeared: %q", got)
	}
	if !h.events.Has("p", "BackOff", `Back-off pulling image "app:1"`) {
		t.Error("no BackOff event")
	}
}

func TestImagePullSecrets(t *testing.T) {
	auth := base64.StdEncoding.EncodeToString([]byte("bob:pw"))
	secret := &v1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "regcred", Namespace: "default"},
		Type:       v1.SecretTypeDockerConfigJson,
		Data: map[string][]byte{v1.DockerConfigJsonKey: []byte(`{"auths":{
			"https://registry.example:5000/v1/":{"auth":"` + auth + `"},
			"registry.example:5000/team":{"username":"team","password":"tpw"},
			"https://index.docker.io/v1/":{"username":"hub","password":"hpw"}}}`)},
	}
	h := newPullEnv(t, secret)
	pod := pullPod()
	pod.Spec.ImagePullSecrets = []v1.LocalObjectReference{{Name: "regcred"}, {Name: "missing"}}
	creds, errs := podruntime.PullSecretCreds(context.Background(), h.objects, pod)
	if len(errs) != 1 {
		t.Errorf("errors %v, want one for the missing secret", errs)
	}
	tests := []struct {
		image string
		want  []*runtimeapi.AuthConfig
	}{{
		image: "registry.example:5000/team/app:1",
		want: []*runtimeapi.AuthConfig{
			{Username: "team", Password: "tpw", ServerAddress: "registry.example:5000"},
			{Username: "bob", Password: "pw", Auth: auth, ServerAddress: "registry.example:5000"},
		},
	}, {
		image: "registry.example:5000/other/app:1",
		want:  []*runtimeapi.AuthConfig{{Username: "bob", Password: "pw", Auth: auth, ServerAddress: "registry.example:5000"}},
	}, {
		image: "busybox",
		want:  []*runtimeapi.AuthConfig{{Username: "hub", Password: "hpw", ServerAddress: "docker.io"}},
	}, {
		image: "quay.io/app",
		want:  []*runtimeapi.AuthConfig{},
	}}
	for _, tt := range tests {
		if diff := cmp.Diff(tt.want, podruntime.ImageAuths(tt.image, creds), protocmp.Transform()); diff != "" {
			t.Errorf("%s (-want +got):\n%s", tt.image, diff)
		}
	}

	// The pull goes out with the credential.
	c := &v1.Container{Name: "c", Image: "registry.example:5000/team/app:1", ImagePullPolicy: v1.PullAlways}
	if _, _, err := h.pod.EnsureImage(context.Background(), pod, c, &runtimeapi.PodSandboxConfig{}); err != nil {
		t.Fatal(err)
	}
	if got := h.images.Auths()[0]; got.GetUsername() != "team" {
		t.Errorf("pulled with %v, want team's credential", got)
	}
	if !h.events.Has("p", "FailedToRetrieveImagePullSecret", "missing") {
		t.Error("no event for the missing pull secret")
	}
}
