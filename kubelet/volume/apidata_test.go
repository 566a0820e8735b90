package volume_test

import (
	"testing"

	volumetesting "github.com/berthnode/berth/kubelet/volume/testing"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

func appConfigMap() *v1.ConfigMap {
	return &v1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: "app", Namespace: "shop"},
		Data:       map[string]string{"app.yaml": "port: 8080", "log.level": "debug"},
		BinaryData: map[string][]byte{"logo.png": {0x89, 'P', 'N', 'G'}},
	}
}

func appSecret() *v1.Secret {
	return &v1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "app", Namespace: "shop"},
		Data:       map[string][]byte{"password": []byte("hunter2"), "tls.key": []byte("KEY")},
	}
}

func TestSetupConfigMapAndSecret(t *testing.T) {
	tests := []struct {
		name      string
		objects   []runtime.Object
		source    v1.VolumeSource
		plugin    string
		want      map[string]file
		wantErr   string
		wantTmpfs bool
	}{{
		name:    "configMap, every key with the default mode",
		objects: []runtime.Object{appConfigMap()},
		source:  v1.VolumeSource{ConfigMap: &v1.ConfigMapVolumeSource{LocalObjectReference: v1.LocalObjectReference{Name: "app"}}},
		plugin:  "kubernetes.io~configmap",
		want: map[string]file{
			"app.yaml":  {Data: "port: 8080", Mode: 0o644},
			"log.level": {Data: "debug", Mode: 0o644},
			"logo.png":  {Data: "\x89PNG", Mode: 0o644},
		},
	}, {
		name:    "configMap items map keys to paths with their own modes",
		objects: []runtime.Object{appConfigMap()},
		source: v1.VolumeSource{ConfigMap: &v1.ConfigMapVolumeSource{
			LocalObjectReference: v1.LocalObjectReference{Name: "app"},
			DefaultMode:          ptr[int32](0o440),
			Items: []v1.KeyToPath{
				{Key: "app.yaml", Path: "conf/app.yaml"},
				{Key: "log.level", Path: "level", Mode: ptr[int32](0o600)},
			},
		}},
		plugin: "kubernetes.io~configmap",
		want: map[string]file{
			"conf/app.yaml": {Data: "port: 8080", Mode: 0o440},
			"level":         {Data: "debug", Mode: 0o600},
		},
	}, {
		name: "missing optional configMap gives an empty volume",
		source: v1.VolumeSource{ConfigMap: &v1.ConfigMapVolumeSource{
			LocalObjectReference: v1.LocalObjectReference{Name: "app"},
			Optional:             ptr(true),
			Items:                []v1.KeyToPath{{Key: "app.yaml", Path: "app.yaml"}},
		}},
		plugin: "kubernetes.io~configmap",
		want:   map[string]file{},
	}, {
		name:    "missing configMap",
		source:  v1.VolumeSource{ConfigMap: &v1.ConfigMapVolumeSource{LocalObjectReference: v1.LocalObjectReference{Name: "app"}}},
		wantErr: `volume "data": configmap "app" not found`,
	}, {
		name:    "missing key of an optional configMap is skipped",
		objects: []runtime.Object{appConfigMap()},
		source: v1.VolumeSource{ConfigMap: &v1.ConfigMapVolumeSource{
			LocalObjectReference: v1.LocalObjectReference{Name: "app"},
			Optional:             ptr(true),
			Items:                []v1.KeyToPath{{Key: "nope", Path: "nope"}, {Key: "log.level", Path: "level"}},
		}},
		plugin: "kubernetes.io~configmap",
		want:   map[string]file{"level": {Data: "debug", Mode: 0o644}},
	}, {
		name:    "missing key",
		objects: []runtime.Object{appConfigMap()},
		source: v1.VolumeSource{ConfigMap: &v1.ConfigMapVolumeSource{
			LocalObjectReference: v1.LocalObjectReference{Name: "app"},
			Items:                []v1.KeyToPath{{Key: "nope", Path: "nope"}},
		}},
		wantErr: `volume "data": configmap "app" has no key "nope"`,
	}, {
		name:      "secret on tmpfs",
		objects:   []runtime.Object{appSecret()},
		source:    v1.VolumeSource{Secret: &v1.SecretVolumeSource{SecretName: "app", DefaultMode: ptr[int32](0o400)}},
		plugin:    "kubernetes.io~secret",
		wantTmpfs: true,
		want: map[string]file{
			"password": {Data: "hunter2", Mode: 0o400},
			"tls.key":  {Data: "KEY", Mode: 0o400},
		},
	}, {
		name:    "secret items",
		objects: []runtime.Object{appSecret()},
		source: v1.VolumeSource{Secret: &v1.SecretVolumeSource{
			SecretName: "app",
			Items:      []v1.KeyToPath{{Key: "tls.key", Path: "tls/key.pem", Mode: ptr[int32](0o600)}},
		}},
		plugin:    "kubernetes.io~secret",
		wantTmpfs: true,
		want:      map[string]file{"tls/key.pem": {Data: "KEY", Mode: 0o600}},
	}, {
		name:      "missing optional secret gives an empty volume",
		source:    v1.VolumeSource{Secret: &v1.SecretVolumeSource{SecretName: "app", Optional: ptr(true)}},
		plugin:    "kubernetes.io~secret",
		wantTmpfs: true,
		want:      map[string]file{},
	}, {
		name:    "missing secret",
		source:  v1.VolumeSource{Secret: &v1.SecretVolumeSource{SecretName: "app", Optional: ptr(false)}},
		wantErr: `volume "data": secret "app" not found`,
	}, {
		name:    "missing secret key",
		objects: []runtime.Object{appSecret()},
		source: v1.VolumeSource{Secret: &v1.SecretVolumeSource{
			SecretName: "app",
			Items:      []v1.KeyToPath{{Key: "ca.crt", Path: "ca.crt"}},
		}},
		wantErr: `volume "data": secret "app" has no key "ca.crt"`,
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, tc.objects...)
			paths, err := e.m.Setup(e.ctx, newPod(v1.Volume{Name: "data", VolumeSource: tc.source}))
			if tc.wantErr != "" {
				if err == nil || err.Error() != tc.wantErr {
					t.Fatalf("Setup error = %v, want %q", err, tc.wantErr)
				}
				if verr := asVolumeError(t, err); verr.Volume != "data" {
					t.Errorf("VolumeError.Volume = %q, want data", verr.Volume)
				}
				return
			}
			if err != nil {
				t.Fatalf("Setup: %v", err)
			}
			dir := e.volumeDir(tc.plugin, "data")
			if diff := cmp.Diff(map[string]string{"data": dir}, paths); diff != "" {
				t.Errorf("paths (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tc.want, visibleFiles(t, dir)); diff != "" {
				t.Errorf("files (-want +got):\n%s", diff)
			}
			var wantMounts []volumetesting.FakeMount
			if tc.wantTmpfs {
				wantMounts = []volumetesting.FakeMount{{Path: dir, FSType: "tmpfs"}}
			}
			if diff := cmp.Diff(wantMounts, e.mounter.Mounts(), equateEmpty); diff != "" {
				t.Errorf("mounts (-want +got):\n%s", diff)
			}
		})
	}
}

// equateEmpty treats nil and empty slices (mounts, options) alike.
var equateEmpty = cmpopts.EquateEmpty()

func TestSetupPicksUpUpdates(t *testing.T) {
	cm := appConfigMap()
	e := newEnv(t, cm)
	pod := newPod(v1.Volume{Name: "data", VolumeSource: v1.VolumeSource{ConfigMap: &v1.ConfigMapVolumeSource{
		LocalObjectReference: v1.LocalObjectReference{Name: "app"},
	}}})
	dir := e.setup(pod)["data"]

	cm = cm.DeepCopy()
	cm.Data = map[string]string{"app.yaml": "port: 9090"}
	cm.BinaryData = nil
	if _, err := e.client.CoreV1().ConfigMaps("shop").Update(e.ctx, cm, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	e.setup(pod)
	want := map[string]file{"app.yaml": {Data: "port: 9090", Mode: 0o644}}
	if diff := cmp.Diff(want, visibleFiles(t, dir)); diff != "" {
		t.Errorf("files after update (-want +got):\n%s", diff)
	}
}

func TestSetupAPIErrorsKeepTheirType(t *testing.T) {
	e := newEnv(t)
	_, err := e.m.Setup(e.ctx, newPod(v1.Volume{Name: "data", VolumeSource: v1.VolumeSource{
		Secret: &v1.SecretVolumeSource{SecretName: "app"},
	}}))
	if !apierrors.IsNotFound(err) {
		t.Errorf("Setup error %v does not unwrap to a NotFound API error", err)
	}
}

func TestSetupDownwardAPI(t *testing.T) {
	e := newEnv(t, testNode())
	items := []v1.DownwardAPIVolumeFile{
		{Path: "name", FieldRef: &v1.ObjectFieldSelector{FieldPath: "metadata.name"}},
		{Path: "namespace", FieldRef: &v1.ObjectFieldSelector{FieldPath: "metadata.namespace"}},
		{Path: "uid", FieldRef: &v1.ObjectFieldSelector{FieldPath: "metadata.uid"}},
		{Path: "labels", FieldRef: &v1.ObjectFieldSelector{FieldPath: "metadata.labels"}},
		{Path: "annotations", FieldRef: &v1.ObjectFieldSelector{FieldPath: "metadata.annotations"}, Mode: ptr[int32](0o400)},
		{Path: "meta/app", FieldRef: &v1.ObjectFieldSelector{FieldPath: "metadata.labels['app']"}},
		{Path: "meta/owner", FieldRef: &v1.ObjectFieldSelector{FieldPath: "metadata.annotations['example.com/owner']"}},
		{Path: "meta/none", FieldRef: &v1.ObjectFieldSelector{FieldPath: "metadata.labels['none']"}},
		{Path: "mem_limit_mi", ResourceFieldRef: &v1.ResourceFieldSelector{ContainerName: "app", Resource: "limits.memory", Divisor: resource.MustParse("1Mi")}},
		{Path: "mem_request", ResourceFieldRef: &v1.ResourceFieldSelector{ContainerName: "app", Resource: "requests.memory"}},
		{Path: "cpu_request_m", ResourceFieldRef: &v1.ResourceFieldSelector{ContainerName: "app", Resource: "requests.cpu", Divisor: resource.MustParse("1m")}},
		{Path: "cpu_request", ResourceFieldRef: &v1.ResourceFieldSelector{ContainerName: "app", Resource: "requests.cpu"}},
		{Path: "cpu_limit", ResourceFieldRef: &v1.ResourceFieldSelector{ContainerName: "app", Resource: "limits.cpu"}},
	}
	pod := newPod(v1.Volume{Name: "info", VolumeSource: v1.VolumeSource{DownwardAPI: &v1.DownwardAPIVolumeSource{Items: items}}})
	dir := e.setup(pod)["info"]
	want := map[string]file{
		"name":          {Data: "web-7d4b9c-x2x9z", Mode: 0o644},
		"namespace":     {Data: "shop", Mode: 0o644},
		"uid":           {Data: string(podUID), Mode: 0o644},
		"labels":        {Data: "app=\"web\"\ntier=\"front\\\"end\"", Mode: 0o644},
		"annotations":   {Data: "example.com/owner=\"team-a\"", Mode: 0o400},
		"meta/app":      {Data: "web", Mode: 0o644},
		"meta/owner":    {Data: "team-a", Mode: 0o644},
		"meta/none":     {Data: "", Mode: 0o644},
		"mem_limit_mi":  {Data: "128", Mode: 0o644},
		"mem_request":   {Data: "67108864", Mode: 0o644},
		"cpu_request_m": {Data: "250", Mode: 0o644},
		"cpu_request":   {Data: "1", Mode: 0o644}, // rounded up
		"cpu_limit":     {Data: "4", Mode: 0o644}, // no limit: node allocatable
	}
	if diff := cmp.Diff(want, visibleFiles(t, dir)); diff != "" {
		t.Errorf("files (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]volumetesting.FakeMount{{Path: dir, FSType: "tmpfs"}}, e.mounter.Mounts(), equateEmpty); diff != "" {
		t.Errorf("mounts (-want +got):\n%s", diff)
	}
}

func TestSetupDownwardAPIErrors(t *testing.T) {
	tests := []struct {
		name string
		item v1.DownwardAPIVolumeFile
		want string
	}{{
		name: "field the volume cannot project",
		item: v1.DownwardAPIVolumeFile{Path: "node", FieldRef: &v1.ObjectFieldSelector{FieldPath: "spec.nodeName"}},
		want: `volume "info": downwardAPI item "node": unsupported fieldPath "spec.nodeName"`,
	}, {
		name: "unknown container",
		item: v1.DownwardAPIVolumeFile{Path: "cpu", ResourceFieldRef: &v1.ResourceFieldSelector{ContainerName: "sidecar", Resource: "limits.cpu"}},
		want: `volume "info": downwardAPI item "cpu": container "sidecar" not found`,
	}, {
		name: "unknown resource",
		item: v1.DownwardAPIVolumeFile{Path: "gpu", ResourceFieldRef: &v1.ResourceFieldSelector{ContainerName: "app", Resource: "limits.nvidia.com/gpu"}},
		want: `volume "info": downwardAPI item "gpu": unsupported resource "limits.nvidia.com/gpu"`,
	}, {
		name: "node unreadable for a limit it bounds",
		item: v1.DownwardAPIVolumeFile{Path: "cpu", ResourceFieldRef: &v1.ResourceFieldSelector{ContainerName: "app", Resource: "limits.cpu"}},
		want: `volume "info": downwardAPI item "cpu": get node "node-1" for its allocatable resources: nodes "node-1" not found`,
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			pod := newPod(v1.Volume{Name: "info", VolumeSource: v1.VolumeSource{DownwardAPI: &v1.DownwardAPIVolumeSource{
				Items: []v1.DownwardAPIVolumeFile{tc.item},
			}}})
			_, err := e.m.Setup(e.ctx, pod)
			if err == nil || err.Error() != tc.want {
				t.Errorf("Setup error = %v, want %q", err, tc.want)
			}
		})
	}
}
