package volume_test

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/berthnode/berth/kubelet/volume"
	volumetesting "github.com/berthnode/berth/kubelet/volume/testing"
	authv1 "k8s.io/api/authentication/v1"
	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
	"k8s.io/klog/v2/ktesting"
	clocktesting "k8s.io/utils/clock/testing"
)

const (
	nodeName = "node-1"
	podUID   = types.UID("0f5d5a3e-1111-4c3b-9c55-1d2e3f4a5b6c")
)

// The pod workers' view of the Manager, declared in package pods.
var _ interface {
	Setup(ctx context.Context, pod *v1.Pod) (map[string]string, error)
	Teardown(ctx context.Context, uid types.UID) error
} = (*volume.Manager)(nil)

var epoch = time.Date(2026, 11, 26, 10, 0, 0, 123456789, time.UTC)

// env is a Manager over a temporary root, a fake clientset, the fake
// Mounter and a fake clock.
type env struct {
	t       *testing.T
	ctx     context.Context
	root    string
	client  *fake.Clientset
	mounter *volumetesting.FakeMounter
	clock   *clocktesting.FakeClock
	m       *volume.Manager
	// csi is the CSI node side after withCSI; nil before.
	csi *volumetesting.FakeCSI

	mu     sync.Mutex
	tokens []tokenCall
}

// tokenCall is one TokenRequest the fake apiserver answered.
type tokenCall struct {
	Namespace      string
	ServiceAccount string
	Spec           authv1.TokenRequestSpec
}

// testNode has the allocatable resources that bound volumes without limits.
func testNode() *v1.Node {
	return &v1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: nodeName},
		Status: v1.NodeStatus{Allocatable: v1.ResourceList{
			v1.ResourceCPU:    resource.MustParse("4"),
			v1.ResourceMemory: resource.MustParse("8Gi"),
		}},
	}
}

func newEnv(t *testing.T, objects ...runtime.Object) *env {
	t.Helper()
	root, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	e := &env{
		t:       t,
		ctx:     testContext(t),
		root:    root,
		client:  fake.NewClientset(objects...),
		mounter: volumetesting.NewFakeMounter(),
		clock:   clocktesting.NewFakeClock(epoch),
	}
	e.client.PrependReactor("create", "serviceaccounts", e.createToken)
	e.m, err = volume.New(volume.Config{
		RootDir:  root,
		Client:   e.client,
		NodeName: nodeName,
		Mounter:  e.mounter,
		Clock:    e.clock,
	})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// withCSI gives the Manager a fake CSI node side.
func (e *env) withCSI() *env {
	e.t.Helper()
	e.csi = volumetesting.NewFakeCSI(e.root, e.mounter)
	m, err := volume.New(volume.Config{
		RootDir:  e.root,
		Client:   e.client,
		NodeName: nodeName,
		Mounter:  e.mounter,
		Clock:    e.clock,
		CSI:      e.csi,
	})
	if err != nil {
		e.t.Fatal(err)
	}
	e.m = m
	return e
}

// createToken answers TokenRequests like the apiserver: a token that names
// its number, valid for the requested seconds (default one hour).
func (e *env) createToken(action k8stesting.Action) (bool, runtime.Object, error) {
	create, ok := action.(k8stesting.CreateActionImpl)
	if !ok || create.GetSubresource() != "token" {
		return false, nil, nil
	}
	req := create.GetObject().(*authv1.TokenRequest).DeepCopy()
	e.mu.Lock()
	defer e.mu.Unlock()
	e.tokens = append(e.tokens, tokenCall{Namespace: create.GetNamespace(), ServiceAccount: create.Name, Spec: *req.Spec.DeepCopy()})
	seconds := int64(3600)
	if req.Spec.ExpirationSeconds != nil {
		seconds = *req.Spec.ExpirationSeconds
	}
	req.Spec.ExpirationSeconds = &seconds
	req.Status = authv1.TokenRequestStatus{
		Token:               fmt.Sprintf("token-%d", len(e.tokens)),
		ExpirationTimestamp: metav1.NewTime(e.clock.Now().Add(time.Duration(seconds) * time.Second)),
	}
	return true, req, nil
}

func (e *env) tokenCalls() []tokenCall {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]tokenCall(nil), e.tokens...)
}

// setup runs Setup and fails the test on error.
func (e *env) setup(pod *v1.Pod) map[string]string {
	e.t.Helper()
	paths, err := e.m.Setup(e.ctx, pod)
	if err != nil {
		e.t.Fatalf("Setup: %v", err)
	}
	return paths
}

// volumeDir is where the Manager keeps a volume of the test pod.
func (e *env) volumeDir(plugin, name string) string {
	return filepath.Join(e.root, "pods", string(podUID), "volumes", plugin, name)
}

// file is what a container sees at one path of a volume.
type file struct {
	Data string
	Mode fs.FileMode
}

// visibleFiles returns what a container reading dir sees: every file
// reachable through the user-visible names, following symlinks, skipping
// the writer's reserved ".." entries.
func visibleFiles(t *testing.T, dir string) map[string]file {
	t.Helper()
	got := map[string]file{}
	var walk func(rel string)
	walk = func(rel string) {
		entries, err := os.ReadDir(filepath.Join(dir, rel))
		if err != nil {
			t.Fatalf("read %s: %v", rel, err)
		}
		for _, entry := range entries {
			if rel == "" && strings.HasPrefix(entry.Name(), "..") {
				continue
			}
			p := filepath.Join(rel, entry.Name())
			info, err := os.Stat(filepath.Join(dir, p))
			if err != nil {
				t.Fatalf("stat %s: %v", p, err)
			}
			if info.IsDir() {
				walk(p)
				continue
			}
			data, err := os.ReadFile(filepath.Join(dir, p))
			if err != nil {
				t.Fatalf("read %s: %v", p, err)
			}
			got[p] = file{Data: string(data), Mode: info.Mode().Perm()}
		}
	}
	walk("")
	return got
}

// newPod returns the test pod with the given volumes and one container.
func newPod(volumes ...v1.Volume) *v1.Pod {
	return &v1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Name:        "web-7d4b9c-x2x9z",
			Namespace:   "shop",
			UID:         podUID,
			Labels:      map[string]string{"app": "web", "tier": "front\"end"},
			Annotations: map[string]string{"example.com/owner": "team-a"},
		},
		Spec: v1.PodSpec{
			NodeName:           nodeName,
			ServiceAccountName: "web",
			Containers: []v1.Container{{
				Name:  "app",
				Image: "registry.example/web:1",
				Resources: v1.ResourceRequirements{
					Requests: v1.ResourceList{v1.ResourceCPU: resource.MustParse("250m"), v1.ResourceMemory: resource.MustParse("64Mi")},
					Limits:   v1.ResourceList{v1.ResourceMemory: resource.MustParse("128Mi")},
				},
			}},
			Volumes: volumes,
		},
	}
}

func ptr[T any](v T) *T { return &v }

// errorLines splits a joined Setup error into its lines, one per failed
// volume in the pod's volume order.
func errorLines(err error) []string {
	if err == nil {
		return nil
	}
	return strings.Split(err.Error(), "\n")
}

// asVolumeError returns the first VolumeError in err.
func asVolumeError(t *testing.T, err error) *volume.VolumeError {
	t.Helper()
	var verr *volume.VolumeError
	if !errors.As(err, &verr) {
		t.Fatalf("error %v is not a *volume.VolumeError", err)
	}
	return verr
}

// testContext logs through t.
func testContext(t *testing.T) context.Context {
	_, ctx := ktesting.NewTestContext(t)
	return ctx
}
