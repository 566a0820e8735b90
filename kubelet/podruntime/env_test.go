package podruntime

import (
	"context"
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"
	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/utils/ptr"
)

func TestExpand(t *testing.T) {
	vars := map[string]string{"A": "alpha", "B": "beta", "EMPTY": ""}
	lookup := func(k string) (string, bool) { v, ok := vars[k]; return v, ok }
	tests := []struct{ in, want string }{
		{"plain", "plain"},
		{"$(A)", "alpha"},
		{"x$(A)y$(B)z", "xalphaybetaz"},
		{"$(MISSING)", "$(MISSING)"},
		{"$$(A)", "$(A)"},
		{"$$$(A)", "$alpha"},
		{"$$", "$"},
		{"$A", "$A"},
		{"cost: 5$", "cost: 5$"},
		{"$(A", "$(A"},
		{"$()", "$()"},
		{"[$(EMPTY)]", "[]"},
		{"$(A)$(A)", "alphaalpha"},
	}
	for _, tt := range tests {
		if got := expand(tt.in, lookup); got != tt.want {
			t.Errorf("expand(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestMakeEnv(t *testing.T) {
	client := fake.NewClientset(
		&v1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "cm", Namespace: "ns"}, Data: map[string]string{"color": "blue", "size": "L"}},
		&v1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "sec", Namespace: "ns"}, Data: map[string][]byte{"token": []byte("s3cret")}},
	)
	pod := &v1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "ns", UID: "u1",
			Labels: map[string]string{"app": "web"}, Annotations: map[string]string{"team": "a"}},
		Spec: v1.PodSpec{NodeName: "node-1", ServiceAccountName: "sa"},
	}
	c := &v1.Container{
		Name: "app",
		Resources: v1.ResourceRequirements{
			Requests: v1.ResourceList{v1.ResourceCPU: resource.MustParse("250m"), v1.ResourceMemory: resource.MustParse("64Mi")},
			Limits:   v1.ResourceList{v1.ResourceMemory: resource.MustParse("128Mi")},
		},
		EnvFrom: []v1.EnvFromSource{{Prefix: "CM_", ConfigMapRef: &v1.ConfigMapEnvSource{LocalObjectReference: v1.LocalObjectReference{Name: "cm"}}}},
		Env: []v1.EnvVar{
			{Name: "A", Value: "x"},
			{Name: "B", Value: "$(A)-y"},
			{Name: "C", Value: "$$(A)"},
			{Name: "D", Value: "$(LATER)"},
			{Name: "LATER", Value: "z"},
			{Name: "CM_size", Value: "XL"},
			{Name: "POD_NAME", ValueFrom: &v1.EnvVarSource{FieldRef: &v1.ObjectFieldSelector{FieldPath: "metadata.name"}}},
			{Name: "POD_NS", ValueFrom: &v1.EnvVarSource{FieldRef: &v1.ObjectFieldSelector{FieldPath: "metadata.namespace"}}},
			{Name: "POD_UID", ValueFrom: &v1.EnvVarSource{FieldRef: &v1.ObjectFieldSelector{FieldPath: "metadata.uid"}}},
			{Name: "APP", ValueFrom: &v1.EnvVarSource{FieldRef: &v1.ObjectFieldSelector{FieldPath: "metadata.labels['app']"}}},
			{Name: "TEAM", ValueFrom: &v1.EnvVarSource{FieldRef: &v1.ObjectFieldSelector{FieldPath: "metadata.annotations['team']"}}},
			{Name: "NODE", ValueFrom: &v1.EnvVarSource{FieldRef: &v1.ObjectFieldSelector{FieldPath: "spec.nodeName"}}},
			{Name: "SA", ValueFrom: &v1.EnvVarSource{FieldRef: &v1.ObjectFieldSelector{FieldPath: "spec.serviceAccountName"}}},
			{Name: "POD_IP", ValueFrom: &v1.EnvVarSource{FieldRef: &v1.ObjectFieldSelector{FieldPath: "status.podIP"}}},
			{Name: "POD_IPS", ValueFrom: &v1.EnvVarSource{FieldRef: &v1.ObjectFieldSelector{FieldPath: "status.podIPs"}}},
			{Name: "HOST_IP", ValueFrom: &v1.EnvVarSource{FieldRef: &v1.ObjectFieldSelector{FieldPath: "status.hostIP"}}},
			{Name: "CPU_REQ", ValueFrom: &v1.EnvVarSource{ResourceFieldRef: &v1.ResourceFieldSelector{Resource: "requests.cpu", Divisor: resource.MustParse("1m")}}},
			{Name: "CPU_LIM", ValueFrom: &v1.EnvVarSource{ResourceFieldRef: &v1.ResourceFieldSelector{Resource: "limits.cpu"}}},
			{Name: "MEM_LIM", ValueFrom: &v1.EnvVarSource{ResourceFieldRef: &v1.ResourceFieldSelector{Resource: "limits.memory", Divisor: resource.MustParse("1Mi")}}},
			{Name: "COLOR", ValueFrom: &v1.EnvVarSource{ConfigMapKeyRef: &v1.ConfigMapKeySelector{LocalObjectReference: v1.LocalObjectReference{Name: "cm"}, Key: "color"}}},
			{Name: "TOKEN", ValueFrom: &v1.EnvVarSource{SecretKeyRef: &v1.SecretKeySelector{LocalObjectReference: v1.LocalObjectReference{Name: "sec"}, Key: "token"}}},
			{Name: "OPT", ValueFrom: &v1.EnvVarSource{SecretKeyRef: &v1.SecretKeySelector{LocalObjectReference: v1.LocalObjectReference{Name: "nope"}, Key: "k", Optional: ptr.To(true)}}},
		},
	}
	services := []*v1.Service{{
		ObjectMeta: metav1.ObjectMeta{Name: "my-db", Namespace: "ns"},
		Spec:       v1.ServiceSpec{ClusterIP: "10.96.3.4", Ports: []v1.ServicePort{{Name: "sql", Port: 5432, Protocol: v1.ProtocolTCP}}},
	}, {
		ObjectMeta: metav1.ObjectMeta{Name: "headless", Namespace: "ns"},
		Spec:       v1.ServiceSpec{ClusterIP: v1.ClusterIPNone, Ports: []v1.ServicePort{{Port: 80}}},
	}}
	env, err := makeEnv(context.Background(), envInput{
		Pod: pod, Container: c, PodIPs: []string{"10.0.0.5", "fd00::5"}, HostIPs: []string{"192.0.2.10"},
		Services: services, NodeCPUMilli: 4000, NodeMemory: 8 << 30, Objects: client.CoreV1(),
	})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, n := range env.names {
		got[n] = env.values[n]
	}
	want := map[string]string{
		"MY_DB_SERVICE_HOST": "10.96.3.4", "MY_DB_SERVICE_PORT": "5432", "MY_DB_SERVICE_PORT_SQL": "5432",
		"MY_DB_PORT": "tcp://10.96.3.4:5432", "MY_DB_PORT_5432_TCP": "tcp://10.96.3.4:5432",
		"MY_DB_PORT_5432_TCP_PROTO": "tcp", "MY_DB_PORT_5432_TCP_PORT": "5432", "MY_DB_PORT_5432_TCP_ADDR": "10.96.3.4",
		"CM_color": "blue", "CM_size": "XL",
		"A": "x", "B": "x-y", "C": "$(A)", "D": "$(LATER)", "LATER": "z",
		"POD_NAME": "web", "POD_NS": "ns", "POD_UID": "u1", "APP": "web", "TEAM": "a", "NODE": "node-1", "SA": "sa",
		"POD_IP": "10.0.0.5", "POD_IPS": "10.0.0.5,fd00::5", "HOST_IP": "192.0.2.10",
		"CPU_REQ": "250", "CPU_LIM": "4", "MEM_LIM": "128",
		"COLOR": "blue", "TOKEN": "s3cret",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("env (-want +got):\n%s", diff)
	}

	c.Env = []v1.EnvVar{{Name: "X", ValueFrom: &v1.EnvVarSource{ConfigMapKeyRef: &v1.ConfigMapKeySelector{
		LocalObjectReference: v1.LocalObjectReference{Name: "cm"}, Key: "missing"}}}}
	c.EnvFrom = nil
	_, err = makeEnv(context.Background(), envInput{Pod: pod, Container: c, Objects: client.CoreV1()})
	if !errors.Is(err, ErrConfig) {
		t.Errorf("missing key: error %v, want a configuration error", err)
	}
}

func TestContainerConfig(t *testing.T) {
	pod := &v1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "ns", UID: "u1"},
		Spec: v1.PodSpec{
			TerminationGracePeriodSeconds: ptr.To[int64](45),
			SecurityContext:               &v1.PodSecurityContext{RunAsUser: ptr.To[int64](1000)},
		},
	}
	c := &v1.Container{
		Name: "app", Image: "nginx:1.27", WorkingDir: "/srv", TTY: true, Stdin: true,
		Command: []string{"sh", "-c", "echo $(GREETING) $$(GREETING)"}, Args: []string{"$(MISSING)"},
		TerminationMessagePath: "/dev/termination-log", TerminationMessagePolicy: v1.TerminationMessageFallbackToLogsOnError,
		VolumeMounts: []v1.VolumeMount{{Name: "data", MountPath: "/data", ReadOnly: true},
			{Name: "data", MountPath: "/cache", SubPath: "cache", MountPropagation: ptr.To(v1.MountPropagationHostToContainer)}},
		Resources: v1.ResourceRequirements{
			Requests: v1.ResourceList{v1.ResourceCPU: resource.MustParse("250m"), v1.ResourceMemory: resource.MustParse("1Gi")},
			Limits:   v1.ResourceList{v1.ResourceCPU: resource.MustParse("500m"), v1.ResourceMemory: resource.MustParse("2Gi")},
		},
		SecurityContext: &v1.SecurityContext{
			RunAsGroup: ptr.To[int64](3000), Privileged: ptr.To(false), ReadOnlyRootFilesystem: ptr.To(true),
			AllowPrivilegeEscalation: ptr.To(false),
			Capabilities:             &v1.Capabilities{Add: []v1.Capability{"NET_ADMIN"}, Drop: []v1.Capability{"ALL"}},
		},
	}
	pod.Spec.Containers = []v1.Container{*c}
	dataDir := t.TempDir()
	env := &EnvVars{}
	env.Set("GREETING", "hi")
	cfg, err := ContainerConfig(ContainerParams{
		Pod: pod, Container: c, RestartCount: 3, ImageRef: "sha256:abc", Env: env,
		Mounts: map[string]string{"data": dataDir}, TermFile: "/var/lib/kubelet/pods/u1/containers/app/3", HostsFile: "/hosts",
	}, ResourceParams{CFSQuota: true, MemoryCapacity: 8 << 30}, "/var/lib/kubelet")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"sh", "-c", "echo hi $(GREETING)"}, cfg.Command); diff != "" {
		t.Errorf("command (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"$(MISSING)"}, cfg.Args); diff != "" {
		t.Errorf("args (-want +got):\n%s", diff)
	}
	if cfg.LogPath != "app/3.log" || cfg.Metadata.Attempt != 3 || cfg.Image.Image != "sha256:abc" || cfg.Image.UserSpecifiedImage != "nginx:1.27" {
		t.Errorf("log path %q, attempt %d, image %v", cfg.LogPath, cfg.Metadata.Attempt, cfg.Image)
	}
	if cfg.Annotations[annotationRestarts] != "3" || cfg.Annotations[annotationHash] != ContainerHash(c) ||
		cfg.Annotations[annotationGrace] != "45" || cfg.Labels[labelContainerName] != "app" || cfg.Labels[labelPodUID] != "u1" {
		t.Errorf("labels %v annotations %v", cfg.Labels, cfg.Annotations)
	}
	type mount struct {
		Container, Host string
		RO              bool
		Prop            string
	}
	var mounts []mount
	for _, m := range cfg.Mounts {
		mounts = append(mounts, mount{m.ContainerPath, m.HostPath, m.Readonly, m.Propagation.String()})
	}
	wantMounts := []mount{
		{"/data", dataDir, true, "PROPAGATION_PRIVATE"},
		{"/cache", dataDir + "/cache", false, "PROPAGATION_HOST_TO_CONTAINER"},
		{"/etc/hosts", "/hosts", false, "PROPAGATION_PRIVATE"},
		{"/dev/termination-log", "/var/lib/kubelet/pods/u1/containers/app/3", false, "PROPAGATION_PRIVATE"},
	}
	if diff := cmp.Diff(wantMounts, mounts); diff != "" {
		t.Errorf("mounts (-want +got):\n%s", diff)
	}
	r := cfg.Linux.Resources
	if r.CpuShares != 256 || r.CpuQuota != 50000 || r.CpuPeriod != 100000 || r.MemoryLimitInBytes != 2<<30 {
		t.Errorf("resources %v", r)
	}
	// Burstable: 1000 - 1000*1Gi/8Gi.
	if r.OomScoreAdj != 875 {
		t.Errorf("oom score adj %d, want 875", r.OomScoreAdj)
	}
	sc := cfg.Linux.SecurityContext
	if sc.RunAsUser.GetValue() != 1000 || sc.RunAsGroup.GetValue() != 3000 || !sc.ReadonlyRootfs || !sc.NoNewPrivs || sc.Privileged ||
		!cmp.Equal(sc.Capabilities.AddCapabilities, []string{"NET_ADMIN"}) || !cmp.Equal(sc.Capabilities.DropCapabilities, []string{"ALL"}) {
		t.Errorf("security context %v", sc)
	}
	if !cfg.Tty || !cfg.Stdin || cfg.WorkingDir != "/srv" {
		t.Errorf("tty %v stdin %v workdir %q", cfg.Tty, cfg.Stdin, cfg.WorkingDir)
	}

	c.VolumeMounts = []v1.VolumeMount{{Name: "nope", MountPath: "/x"}}
	if _, err := ContainerConfig(ContainerParams{Pod: pod, Container: c, Env: env}, ResourceParams{}, "/"); !errors.Is(err, ErrConfig) {
		t.Errorf("unknown volume: error %v, want a configuration error", err)
	}
	c.VolumeMounts = []v1.VolumeMount{{Name: "data", MountPath: "/x", SubPath: "../etc"}}
	if _, err := ContainerConfig(ContainerParams{Pod: pod, Container: c, Env: env, Mounts: map[string]string{"data": dataDir}}, ResourceParams{}, "/"); !errors.Is(err, ErrConfig) {
		t.Errorf("escaping subPath: error %v, want a configuration error", err)
	}
}

func TestOOMScoreAdj(t *testing.T) {
	tests := []struct {
		name string
		res  v1.ResourceRequirements
		prio *int32
		want int64
	}{
		{"best effort", v1.ResourceRequirements{}, nil, 1000},
		{"guaranteed", resources("", "1"), nil, -997},
		{"critical", v1.ResourceRequirements{}, ptr.To[int32](2000001000), -997},
		{"burstable tiny request", resources("10m", ""), nil, 999},
		{"burstable huge request", v1.ResourceRequirements{Requests: v1.ResourceList{v1.ResourceMemory: resource.MustParse("16Gi")}}, nil, 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := v1.Container{Name: "a", Resources: tt.res}
			if tt.name == "burstable tiny request" {
				c.Resources.Requests[v1.ResourceMemory] = resource.MustParse("1")
			}
			pod := &v1.Pod{Spec: v1.PodSpec{Priority: tt.prio, Containers: []v1.Container{c}}}
			if got := oomScoreAdj(pod, &c, 8<<30); got != tt.want {
				t.Errorf("got %d, want %d", got, tt.want)
			}
		})
	}
	// A static pod's priority class is not resolved to a priority.
	pod := &v1.Pod{Spec: v1.PodSpec{PriorityClassName: "system-node-critical", Containers: []v1.Container{{Name: "a"}}}}
	pod.Annotations = map[string]string{"kubernetes.io/config.source": "file"}
	if got := oomScoreAdj(pod, &pod.Spec.Containers[0], 8<<30); got != -997 {
		t.Errorf("static node critical pod: got %d, want -997", got)
	}
}
