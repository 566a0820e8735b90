package pod

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/berthnode/berth/test/e2e/cluster"
	"github.com/berthnode/berth/test/images"
	"github.com/berthnode/berth/test/testbed"
)

// TestEnvironment checks that every source of environment variables shows
// in the container: values with $(VAR) expansion, configMap and secret
// keys, envFrom with a prefix, the downward API fields, resource limits,
// and the service variables of the namespace.
func TestEnvironment(t *testing.T) {
	testbed.Require(t, bed)
	client := cluster.AdminClient(t, bed)
	ns := cluster.Namespace(t, client)
	ctx := t.Context()
	node := bed.Nodes()[0].Name
	must := func(_ any, err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(client.CoreV1().ConfigMaps(ns).Create(ctx, &v1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "cfg"},
		Data: map[string]string{"color": "blue", "size": "large"}}, metav1.CreateOptions{}))
	must(client.CoreV1().Secrets(ns).Create(ctx, &v1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "sec"},
		Data: map[string][]byte{"token": []byte("t0k3n")}}, metav1.CreateOptions{}))
	must(client.CoreV1().Services(ns).Create(ctx, &v1.Service{ObjectMeta: metav1.ObjectMeta{Name: "backend"},
		Spec: v1.ServiceSpec{Ports: []v1.ServicePort{{Port: 7070}}}}, metav1.CreateOptions{}))
	field := func(path string) *v1.EnvVarSource {
		return &v1.EnvVarSource{FieldRef: &v1.ObjectFieldSelector{FieldPath: path}}
	}
	pod := &v1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "env", Labels: map[string]string{"team": "a"}, Annotations: map[string]string{"note": "hi"}},
		Spec: v1.PodSpec{
			NodeName:                      node,
			TerminationGracePeriodSeconds: ptr.To[int64](1),
			Containers: []v1.Container{{
				Name: "main", Image: images.BusyboxRef,
				Command: []string{"sh", "-c", "env | sort; echo --- end; sleep 3600"},
				Env: []v1.EnvVar{
					{Name: "PLAIN", Value: "value"},
					{Name: "EXPANDED", Value: "$(PLAIN)-x $$(PLAIN)"},
					{Name: "COLOR", ValueFrom: &v1.EnvVarSource{ConfigMapKeyRef: &v1.ConfigMapKeySelector{LocalObjectReference: v1.LocalObjectReference{Name: "cfg"}, Key: "color"}}},
					{Name: "TOKEN", ValueFrom: &v1.EnvVarSource{SecretKeyRef: &v1.SecretKeySelector{LocalObjectReference: v1.LocalObjectReference{Name: "sec"}, Key: "token"}}},
					{Name: "MISSING", ValueFrom: &v1.EnvVarSource{ConfigMapKeyRef: &v1.ConfigMapKeySelector{LocalObjectReference: v1.LocalObjectReference{Name: "nope"}, Key: "k", Optional: ptr.To(true)}}},
					{Name: "POD_NAME", ValueFrom: field("metadata.name")},
					{Name: "POD_NAMESPACE", ValueFrom: field("metadata.namespace")},
					{Name: "POD_UID", ValueFrom: field("metadata.uid")},
					{Name: "TEAM", ValueFrom: field("metadata.labels['team']")},
					{Name: "NOTE", ValueFrom: field("metadata.annotations['note']")},
					{Name: "NODE", ValueFrom: field("spec.nodeName")},
					{Name: "SA", ValueFrom: field("spec.serviceAccountName")},
					{Name: "POD_IP", ValueFrom: field("status.podIP")},
					{Name: "HOST_IP", ValueFrom: field("status.hostIP")},
					{Name: "MEM_LIMIT", ValueFrom: &v1.EnvVarSource{ResourceFieldRef: &v1.ResourceFieldSelector{Resource: "limits.memory", Divisor: resource.MustParse("1Mi")}}},
				},
				EnvFrom:   []v1.EnvFromSource{{Prefix: "CFG_", ConfigMapRef: &v1.ConfigMapEnvSource{LocalObjectReference: v1.LocalObjectReference{Name: "cfg"}}}},
				Resources: v1.ResourceRequirements{Limits: v1.ResourceList{v1.ResourceMemory: resource.MustParse("64Mi")}},
			}},
		},
	}
	created, err := client.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	running := cluster.WaitPod(t, client, ns, "env", time.Minute, cluster.PodReady)
	logPath := mustHostPath(t, node, filepath.Join("/var/log/pods", fmt.Sprintf("%s_env_%s", ns, created.UID), "main", "0.log"))
	env := map[string]string{}
	cluster.Poll(t, 30*time.Second, "environment in the log", func() (bool, string) {
		data, err := os.ReadFile(logPath)
		if err != nil || !strings.Contains(string(data), "--- end") {
			return false, fmt.Sprint(err)
		}
		for _, l := range strings.Split(string(data), "\n") {
			if f := strings.SplitN(l, " ", 4); len(f) == 4 {
				if k, v, ok := strings.Cut(f[3], "="); ok {
					env[k] = v
				}
			}
		}
		return true, ""
	})
	want := map[string]string{
		"PLAIN": "value", "EXPANDED": "value-x $(PLAIN)", "COLOR": "blue", "TOKEN": "t0k3n",
		"POD_NAME": "env", "POD_NAMESPACE": ns, "POD_UID": string(created.UID), "TEAM": "a", "NOTE": "hi",
		"NODE": node, "SA": "default", "POD_IP": running.Status.PodIP, "HOST_IP": bed.Nodes()[0].IP,
		"MEM_LIMIT": "64", "CFG_color": "blue", "CFG_size": "large",
		"BACKEND_SERVICE_PORT": "7070", "KUBERNETES_SERVICE_PORT": "443",
	}
	for k, v := range want {
		if env[k] != v {
			t.Errorf("%s=%q, want %q", k, env[k], v)
		}
	}
	for _, k := range []string{"BACKEND_SERVICE_HOST", "KUBERNETES_SERVICE_HOST"} {
		if env[k] == "" {
			t.Errorf("%s missing", k)
		}
	}
	if _, ok := env["MISSING"]; ok {
		t.Errorf("optional ref to a missing configMap set MISSING=%q", env["MISSING"])
	}
}
