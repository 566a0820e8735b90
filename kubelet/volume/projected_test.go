package volume_test

import (
	"errors"
	"os"
	"path/filepath"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/berthnode/berth/kubelet/volume"
	volumetesting "github.com/berthnode/berth/kubelet/volume/testing"
	"github.com/google/go-cmp/cmp"
	authv1 "k8s.io/api/authentication/v1"
	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	k8stesting "k8s.io/client-go/testing"
)

// kubeAPIAccess is the volume the apiserver's ServiceAccount admission adds
// to nearly every pod.
func kubeAPIAccess() v1.Volume {
	return v1.Volume{Name: "kube-api-access-x2x9z", VolumeSource: v1.VolumeSource{Projected: &v1.ProjectedVolumeSource{
		DefaultMode: ptr[int32](420),
		Sources: []v1.VolumeProjection{
			{ServiceAccountToken: &v1.ServiceAccountTokenProjection{ExpirationSeconds: ptr[int64](3607), Path: "token"}},
			{ConfigMap: &v1.ConfigMapProjection{
				LocalObjectReference: v1.LocalObjectReference{Name: "kube-root-ca.crt"},
				Items:                []v1.KeyToPath{{Key: "ca.crt", Path: "ca.crt"}},
			}},
			{DownwardAPI: &v1.DownwardAPIProjection{Items: []v1.DownwardAPIVolumeFile{
				{Path: "namespace", FieldRef: &v1.ObjectFieldSelector{APIVersion: "v1", FieldPath: "metadata.namespace"}},
			}}},
		},
	}}}
}

func rootCA() *v1.ConfigMap {
	return &v1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: "kube-root-ca.crt", Namespace: "shop"},
		Data:       map[string]string{"ca.crt": "-----BEGIN CERTIFICATE-----\nMIIC\n-----END CERTIFICATE-----\n"},
	}
}

func TestSetupKubeAPIAccess(t *testing.T) {
	e := newEnv(t, rootCA())
	paths := e.setup(newPod(kubeAPIAccess()))

	dir := e.volumeDir("kubernetes.io~projected", "kube-api-access-x2x9z")
	if diff := cmp.Diff(map[string]string{"kube-api-access-x2x9z": dir}, paths); diff != "" {
		t.Errorf("paths (-want +got):\n%s", diff)
	}
	want := map[string]file{
		"token":     {Data: "token-1", Mode: 0o644},
		"ca.crt":    {Data: rootCA().Data["ca.crt"], Mode: 0o644},
		"namespace": {Data: "shop", Mode: 0o644},
	}
	if diff := cmp.Diff(want, visibleFiles(t, dir)); diff != "" {
		t.Errorf("files (-want +got):\n%s", diff)
	}
	wantCalls := []tokenCall{{
		Namespace:      "shop",
		ServiceAccount: "web",
		Spec: authv1.TokenRequestSpec{
			ExpirationSeconds: ptr[int64](3607),
			BoundObjectRef:    &authv1.BoundObjectReference{APIVersion: "v1", Kind: "Pod", Name: "web-7d4b9c-x2x9z", UID: podUID},
		},
	}}
	if diff := cmp.Diff(wantCalls, e.tokenCalls()); diff != "" {
		t.Errorf("token requests (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]volumetesting.FakeMount{{Path: dir, FSType: "tmpfs"}}, e.mounter.Mounts(), equateEmpty); diff != "" {
		t.Errorf("mounts (-want +got):\n%s", diff)
	}
	// The visible names are links into the published version, as
	// applications watching ..data expect.
	for name := range want {
		if target, err := os.Readlink(filepath.Join(dir, name)); err != nil || target != filepath.Join("..data", name) {
			t.Errorf("%s links to %q (%v), want ..data/%s", name, target, err, name)
		}
	}
}

func TestTokenRefresh(t *testing.T) {
	e := newEnv(t, rootCA())
	pod := newPod(kubeAPIAccess())
	dir := e.setup(pod)["kube-api-access-x2x9z"]
	readToken := func() string {
		t.Helper()
		data, err := os.ReadFile(filepath.Join(dir, "token"))
		if err != nil {
			t.Fatal(err)
		}
		return string(data)
	}
	lifetime := 3607 * time.Second
	wantAt := epoch.Add(lifetime * 8 / 10)
	if at, ok := e.m.RefreshTime(podUID); !ok || !at.Equal(wantAt) {
		t.Errorf("RefreshTime = %v, %v; want %v, true", at, ok, wantAt)
	}

	steps := []struct {
		name        string
		advance     time.Duration
		wantRefresh bool
		wantToken   string
		wantCalls   int
	}{
		{name: "fresh token", wantRefresh: false, wantToken: "token-1", wantCalls: 1},
		{name: "before 80% of the lifetime", advance: wantAt.Sub(epoch) - time.Second, wantRefresh: false, wantToken: "token-1", wantCalls: 1},
		{name: "at 80% of the lifetime", advance: time.Second, wantRefresh: true, wantToken: "token-2", wantCalls: 2},
		{name: "renewed token is fresh", advance: time.Minute, wantRefresh: false, wantToken: "token-2", wantCalls: 2},
	}
	for _, step := range steps {
		e.clock.Step(step.advance)
		if got := e.m.NeedsRefresh(podUID); got != step.wantRefresh {
			t.Errorf("%s: NeedsRefresh = %v, want %v", step.name, got, step.wantRefresh)
		}
		e.setup(pod)
		if got := readToken(); got != step.wantToken {
			t.Errorf("%s: token after Setup = %q, want %q", step.name, got, step.wantToken)
		}
		if got := len(e.tokenCalls()); got != step.wantCalls {
			t.Errorf("%s: %d token requests, want %d", step.name, got, step.wantCalls)
		}
	}
	if e.m.NeedsRefresh("other-pod") {
		t.Error("NeedsRefresh of a pod without tokens = true")
	}
}

func TestTokenRefreshCapsAtADay(t *testing.T) {
	e := newEnv(t)
	pod := newPod(v1.Volume{Name: "vault", VolumeSource: v1.VolumeSource{Projected: &v1.ProjectedVolumeSource{
		Sources: []v1.VolumeProjection{{ServiceAccountToken: &v1.ServiceAccountTokenProjection{
			Audience: "vault", ExpirationSeconds: ptr[int64](7 * 24 * 3600), Path: "vault-token",
		}}},
	}}})
	e.setup(pod)
	if at, ok := e.m.RefreshTime(podUID); !ok || !at.Equal(epoch.Add(24*time.Hour)) {
		t.Errorf("RefreshTime = %v, %v; want a day after issue", at, ok)
	}
	if got := e.tokenCalls()[0].Spec.Audiences; !cmp.Equal(got, []string{"vault"}) {
		t.Errorf("audiences = %v, want [vault]", got)
	}
}

func TestSetupProjectedErrors(t *testing.T) {
	tests := []struct {
		name    string
		sources []v1.VolumeProjection
		want    string
	}{{
		name: "missing configMap names the object",
		sources: []v1.VolumeProjection{{ConfigMap: &v1.ConfigMapProjection{
			LocalObjectReference: v1.LocalObjectReference{Name: "kube-root-ca.crt"},
		}}},
		want: `volume "proj": configmap "kube-root-ca.crt" not found`,
	}, {
		name: "missing secret key",
		sources: []v1.VolumeProjection{{Secret: &v1.SecretProjection{
			LocalObjectReference: v1.LocalObjectReference{Name: "app"},
			Items:                []v1.KeyToPath{{Key: "nope", Path: "nope"}},
		}}},
		want: `volume "proj": secret "app" has no key "nope"`,
	}, {
		name: "unsupported projection",
		sources: []v1.VolumeProjection{{ClusterTrustBundle: &v1.ClusterTrustBundleProjection{
			Name: ptr("bundle"), Path: "bundle.pem",
		}}},
		want: `volume "proj": unsupported volume type projected clusterTrustBundle on this node`,
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, appSecret())
			_, err := e.m.Setup(e.ctx, newPod(v1.Volume{Name: "proj", VolumeSource: v1.VolumeSource{
				Projected: &v1.ProjectedVolumeSource{Sources: tc.sources},
			}}))
			if err == nil || err.Error() != tc.want {
				t.Errorf("Setup error = %v, want %q", err, tc.want)
			}
			// Nothing is made for a volume whose content could not be
			// gathered.
			if _, err := os.Stat(e.volumeDir("kubernetes.io~projected", "proj")); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("volume directory exists after a failed Setup: %v", err)
			}
		})
	}
}

func TestSetupTokenRequestFailure(t *testing.T) {
	e := newEnv(t, rootCA())
	e.client.PrependReactor("create", "serviceaccounts", func(action k8stesting.Action) (bool, runtime.Object, error) {
		return true, nil, errors.New("serviceaccounts \"web\" is forbidden")
	})
	_, err := e.m.Setup(e.ctx, newPod(kubeAPIAccess()))
	want := `volume "kube-api-access-x2x9z": request token for service account "web": serviceaccounts "web" is forbidden`
	if err == nil || err.Error() != want {
		t.Errorf("Setup error = %v, want %q", err, want)
	}
	if _, ok := e.m.RefreshTime(podUID); ok {
		t.Error("a failed request left a token to refresh")
	}
}

// TestSetupOwnership covers fsGroup and a single runAsUser: the kubelet
// gives API data to the group, and the token to the user alone.
func TestSetupOwnership(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("changing owners needs root; run the tests as root to cover fsGroup and token ownership")
	}
	e := newEnv(t, rootCA(), appConfigMap())
	pod := newPod(kubeAPIAccess(),
		v1.Volume{Name: "config", VolumeSource: v1.VolumeSource{ConfigMap: &v1.ConfigMapVolumeSource{
			LocalObjectReference: v1.LocalObjectReference{Name: "app"}, DefaultMode: ptr[int32](0o400),
		}}},
		v1.Volume{Name: "scratch", VolumeSource: v1.VolumeSource{EmptyDir: &v1.EmptyDirVolumeSource{}}},
	)
	pod.Spec.SecurityContext = &v1.PodSecurityContext{RunAsUser: ptr[int64](1000), FSGroup: ptr[int64](2000)}
	paths := e.setup(pod)

	type owner struct {
		UID, GID uint32
		Mode     os.FileMode
	}
	stat := func(p string) owner {
		t.Helper()
		info, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		st := info.Sys().(*syscall.Stat_t)
		return owner{UID: st.Uid, GID: st.Gid, Mode: info.Mode() & (os.ModePerm | os.ModeSetgid | os.ModeDir)}
	}
	api := paths["kube-api-access-x2x9z"]
	got := map[string]owner{
		"token":         stat(filepath.Join(api, "token")),
		"ca.crt":        stat(filepath.Join(api, "ca.crt")),
		"config/app":    stat(filepath.Join(paths["config"], "app.yaml")),
		"scratch (dir)": stat(paths["scratch"]),
	}
	want := map[string]owner{
		"token":         {UID: 1000, GID: 2000, Mode: 0o640},
		"ca.crt":        {UID: 0, GID: 2000, Mode: 0o644},
		"config/app":    {UID: 0, GID: 2000, Mode: 0o440},
		"scratch (dir)": {UID: 0, GID: 2000, Mode: os.ModeDir | os.ModeSetgid | 0o777},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("ownership (-want +got):\n%s", diff)
	}

	// Owned and group-readable content compares equal next time: no new
	// version is written.
	before, _ := os.Readlink(filepath.Join(api, "..data"))
	e.clock.Step(time.Minute)
	e.setup(pod)
	if after, _ := os.Readlink(filepath.Join(api, "..data")); after != before {
		t.Errorf("unchanged content republished: %s -> %s", before, after)
	}
}

func TestReadOnly(t *testing.T) {
	tests := []struct {
		source v1.VolumeSource
		want   bool
	}{
		{v1.VolumeSource{ConfigMap: &v1.ConfigMapVolumeSource{}}, true},
		{v1.VolumeSource{Secret: &v1.SecretVolumeSource{}}, true},
		{v1.VolumeSource{DownwardAPI: &v1.DownwardAPIVolumeSource{}}, true},
		{v1.VolumeSource{Projected: &v1.ProjectedVolumeSource{}}, true},
		{v1.VolumeSource{EmptyDir: &v1.EmptyDirVolumeSource{}}, false},
		{v1.VolumeSource{HostPath: &v1.HostPathVolumeSource{Path: "/data"}}, false},
	}
	for _, tc := range tests {
		if got := volume.ReadOnly(&v1.Volume{Name: "v", VolumeSource: tc.source}); got != tc.want {
			t.Errorf("ReadOnly(%+v) = %v, want %v", tc.source, got, tc.want)
		}
	}
}

// TestSetupTokenRequestPodNotFoundYet: the API server's admission may not
// know a new pod for a moment; the token request is asked again soon, and
// the volume is set up without failing the sync.
func TestSetupTokenRequestPodNotFoundYet(t *testing.T) {
	// What NodeRestriction's pod lister answers.
	testTokenRetried(t, apierrors.NewNotFound(schema.GroupResource{Resource: "pod"}, "web-0"))
}

// TestSetupTokenRequestNodeNotRelatedYet: the node authorizer's graph may
// not have the new pod's node yet (403, "no relationship found between
// node and this object"); the token request is asked again soon.
func TestSetupTokenRequestNodeNotRelatedYet(t *testing.T) {
	testTokenRetried(t, apierrors.NewForbidden(schema.GroupResource{Resource: "serviceaccounts"}, "web",
		errors.New("no relationship found between node 'node1' and this object")))
}

// testTokenRetried checks that a token request answered with answer twice
// is asked again, and the volume set up without failing the sync.
func testTokenRetried(t *testing.T, answer error) {
	e := newEnv(t, rootCA())
	var calls atomic.Int32
	e.client.PrependReactor("create", "serviceaccounts", func(action k8stesting.Action) (bool, runtime.Object, error) {
		if calls.Add(1) <= 2 {
			return true, nil, answer
		}
		return false, nil, nil
	})
	done := make(chan error, 1)
	go func() {
		_, err := e.m.Setup(e.ctx, newPod(kubeAPIAccess()))
		done <- err
	}()
	deadline := time.After(10 * time.Second)
	for {
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("Setup = %v, want the token after two retries", err)
			}
			if got := calls.Load(); got != 3 {
				t.Errorf("token requests = %d, want 3", got)
			}
			return
		case <-deadline:
			t.Fatal("Setup did not finish")
		case <-time.After(time.Millisecond):
			if e.clock.HasWaiters() {
				e.clock.Step(time.Second)
			}
		}
	}
}

// TestSetupTokenRequestServiceAccountNotFound: a missing service account
// is an answer, not a lag: asked once.
func TestSetupTokenRequestServiceAccountNotFound(t *testing.T) {
	e := newEnv(t, rootCA())
	var calls atomic.Int32
	e.client.PrependReactor("create", "serviceaccounts", func(action k8stesting.Action) (bool, runtime.Object, error) {
		calls.Add(1)
		return true, nil, apierrors.NewNotFound(schema.GroupResource{Resource: "serviceaccounts"}, "web")
	})
	if _, err := e.m.Setup(e.ctx, newPod(kubeAPIAccess())); !apierrors.IsNotFound(err) {
		t.Errorf("Setup = %v, want NotFound", err)
	}
	if got := calls.Load(); got != 1 {
		t.Errorf("token requests = %d, want 1", got)
	}
}
