package staticpods

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	testingclock "k8s.io/utils/clock/testing"
	"k8s.io/utils/ptr"
)

const testNode = "Node-1"

const etcdYAML = `apiVersion: v1
kind: Pod
metadata:
  name: etcd
  namespace: kube-system
  labels:
    component: etcd
  annotations:
    kubeadm.kubernetes.io/etcd.advertise-client-urls: https://192.0.2.10:2379
spec:
  hostNetwork: true
  priorityClassName: system-node-critical
  containers:
  - name: etcd
    image: registry.k8s.io/etcd:3.6.5-0
    command: [etcd, --data-dir=/var/lib/etcd]
    ports:
    - containerPort: 2381
    resources:
      limits:
        memory: 1Gi
    env:
    - name: NODE
      valueFrom:
        fieldRef:
          fieldPath: spec.nodeName
    livenessProbe:
      httpGet:
        port: 2381
    volumeMounts:
    - name: data
      mountPath: /var/lib/etcd
  volumes:
  - name: data
    hostPath:
      path: /var/lib/etcd
`

func newTestSource(t *testing.T, dir string) (*Source, *testingclock.FakeClock) {
	t.Helper()
	clk := testingclock.NewFakeClock(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
	s, err := New(Config{Dir: dir, NodeName: testNode, Period: time.Second, Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	return s, clk
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestStaticPodFromManifest(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "etcd.yaml")
	writeFile(t, path, etcdYAML)
	s, clk := newTestSource(t, dir)
	pod, err := s.load(path)
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`^[0-9a-f]{32}$`).MatchString(string(pod.UID)) {
		t.Errorf("UID %q is not 32 hex digits", pod.UID)
	}
	wantMeta := metav1.ObjectMeta{
		Name: "etcd-node-1", Namespace: "kube-system", UID: pod.UID,
		Labels: map[string]string{"component": "etcd"},
		Annotations: map[string]string{
			"kubeadm.kubernetes.io/etcd.advertise-client-urls": "https://192.0.2.10:2379",
			AnnotationSource: SourceFile,
			AnnotationHash:   string(pod.UID),
			AnnotationSeen:   clk.Now().Format(time.RFC3339Nano),
		},
	}
	if diff := cmp.Diff(wantMeta, pod.ObjectMeta); diff != "" {
		t.Errorf("metadata (-want +got):\n%s", diff)
	}
	memory := resource.MustParse("1Gi")
	wantSpec := v1.PodSpec{
		NodeName:                      testNode,
		HostNetwork:                   true,
		PriorityClassName:             "system-node-critical",
		RestartPolicy:                 v1.RestartPolicyAlways,
		DNSPolicy:                     v1.DNSClusterFirst,
		TerminationGracePeriodSeconds: ptr.To[int64](30),
		SchedulerName:                 "default-scheduler",
		SecurityContext:               &v1.PodSecurityContext{},
		EnableServiceLinks:            ptr.To(true),
		Tolerations:                   []v1.Toleration{{Operator: v1.TolerationOpExists, Effect: v1.TaintEffectNoExecute}},
		Volumes: []v1.Volume{{Name: "data", VolumeSource: v1.VolumeSource{
			HostPath: &v1.HostPathVolumeSource{Path: "/var/lib/etcd", Type: ptr.To(v1.HostPathUnset)},
		}}},
		Containers: []v1.Container{{
			Name:    "etcd",
			Image:   "registry.k8s.io/etcd:3.6.5-0",
			Command: []string{"etcd", "--data-dir=/var/lib/etcd"},
			Ports:   []v1.ContainerPort{{ContainerPort: 2381, HostPort: 2381, Protocol: v1.ProtocolTCP}},
			Resources: v1.ResourceRequirements{
				Limits:   v1.ResourceList{v1.ResourceMemory: memory},
				Requests: v1.ResourceList{v1.ResourceMemory: memory},
			},
			Env: []v1.EnvVar{{Name: "NODE", ValueFrom: &v1.EnvVarSource{
				FieldRef: &v1.ObjectFieldSelector{APIVersion: "v1", FieldPath: "spec.nodeName"},
			}}},
			LivenessProbe: &v1.Probe{
				ProbeHandler:   v1.ProbeHandler{HTTPGet: &v1.HTTPGetAction{Path: "/", Port: intstr.FromInt32(2381), Scheme: v1.URISchemeHTTP}},
				TimeoutSeconds: 1, PeriodSeconds: 10, SuccessThreshold: 1, FailureThreshold: 3,
			},
			VolumeMounts:             []v1.VolumeMount{{Name: "data", MountPath: "/var/lib/etcd"}},
			TerminationMessagePath:   "/dev/termination-log",
			TerminationMessagePolicy: v1.TerminationMessageReadFile,
			ImagePullPolicy:          v1.PullIfNotPresent,
		}},
	}
	if diff := cmp.Diff(wantSpec, pod.Spec); diff != "" {
		t.Errorf("spec (-want +got):\n%s", diff)
	}
	if pod.Status.Phase != v1.PodPending {
		t.Errorf("phase %q, want Pending", pod.Status.Phase)
	}
}

func TestDefaultPullPolicy(t *testing.T) {
	for image, want := range map[string]v1.PullPolicy{
		"busybox":                  v1.PullAlways,
		"busybox:latest":           v1.PullAlways,
		"registry.example/app:1.0": v1.PullIfNotPresent,
		"registry.example/app@sha256:" + strings.Repeat("a", 64): v1.PullIfNotPresent,
	} {
		if got := defaultPullPolicy(image); got != want {
			t.Errorf("defaultPullPolicy(%q) = %s, want %s", image, got, want)
		}
	}
}

// TestUIDIsContentHash: the UID depends on the node, the file and what the
// pod says, not on how the manifest says it.
func TestUIDIsContentHash(t *testing.T) {
	dir := t.TempDir()
	s, _ := newTestSource(t, dir)
	uid := func(path, content string) string {
		t.Helper()
		writeFile(t, path, content)
		pod, err := s.load(path)
		if err != nil {
			t.Fatal(err)
		}
		return string(pod.UID)
	}
	a := filepath.Join(dir, "etcd.yaml")
	base := uid(a, etcdYAML)
	other, _ := newTestSource(t, dir)
	other.cfg.NodeName = "node-2"
	otherPod, err := other.load(a)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		got  string
		same bool
	}{
		{"read again", uid(a, etcdYAML), true},
		{"comments and blank lines", uid(a, "# etcd\n\n"+etcdYAML), true},
		{"defaults written out", uid(a, strings.Replace(etcdYAML, "  hostNetwork: true\n", "  hostNetwork: true\n  restartPolicy: Always\n", 1)), true},
		{"other image", uid(a, strings.Replace(etcdYAML, "3.6.5-0", "3.6.6-0", 1)), false},
		{"other file", uid(filepath.Join(dir, "etcd2.yaml"), etcdYAML), false},
		{"other node", string(otherPod.UID), false},
	}
	for _, tc := range tests {
		if (tc.got == base) != tc.same {
			t.Errorf("%s: UID %s, base %s, want same=%v", tc.name, tc.got, base, tc.same)
		}
	}
}

func TestBadManifests(t *testing.T) {
	tests := []struct {
		name, content, want string
	}{
		{"not YAML", "{{{ nope", "parse manifest"},
		{"not a pod", "apiVersion: v1\nkind: Service\nmetadata:\n  name: x\n", "not hold a v1 Pod"},
		{"no kind", "metadata:\n  name: x\n", "parse manifest"},
		{"no containers", "apiVersion: v1\nkind: Pod\nmetadata:\n  name: x\nspec: {}\n", "at least one container"},
		{"no name", "apiVersion: v1\nkind: Pod\nspec:\n  containers:\n  - {name: a, image: a}\n", "metadata.name"},
		{"duplicate container", "apiVersion: v1\nkind: Pod\nmetadata:\n  name: x\nspec:\n  initContainers:\n  - {name: a, image: a}\n  containers:\n  - {name: a, image: a}\n", "duplicate"},
		{"no image", "apiVersion: v1\nkind: Pod\nmetadata:\n  name: x\nspec:\n  containers:\n  - {name: a}\n", "image: required"},
		{"unknown volume", "apiVersion: v1\nkind: Pod\nmetadata:\n  name: x\nspec:\n  containers:\n  - name: a\n    image: a\n    volumeMounts:\n    - {name: v, mountPath: /v}\n", "no such volume"},
		{"bad restart policy", "apiVersion: v1\nkind: Pod\nmetadata:\n  name: x\nspec:\n  restartPolicy: Sometimes\n  containers:\n  - {name: a, image: a}\n", "restartPolicy"},
	}
	dir := t.TempDir()
	s, _ := newTestSource(t, dir)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(dir, "pod.yaml")
			writeFile(t, path, tc.content)
			_, err := s.load(path)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("load = %v, want an error containing %q", err, tc.want)
			}
		})
	}
}
