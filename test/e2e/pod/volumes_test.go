package pod

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	authorizationv1 "k8s.io/api/authorization/v1"
	v1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"

	"github.com/berthnode/berth/test/e2e/cluster"
	"github.com/berthnode/berth/test/images"
	"github.com/berthnode/berth/test/testbed"
)

// reportScript prints, every second, what the test checks: each volume's
// files with their modes, between markers, so the newest report can be cut
// out of the log.
const reportScript = `while true; do
echo "--- report"
for f in /cfg/greeting /cfg/sub/second /sec/password /info/labels /scratch/probe /var/run/secrets/kubernetes.io/serviceaccount/namespace; do
  echo "$f $(stat -L -c %a $f 2>/dev/null) $(cat $f 2>/dev/null | tr '\n' '|')"
done
echo "scratch $(df -P /scratch | tail -1 | cut -c1-5)"
echo "token $(cat /var/run/secrets/kubernetes.io/serviceaccount/token)"
echo "--- end"
sleep 1
done`

// TestVolumes mounts a configMap, a secret, a memory emptyDir, a
// downwardAPI volume and the default service-account volume: contents and
// modes are right; an updated configMap shows within 60 s; the pod's token
// works while the pod lives and is rejected once it is deleted.
func TestVolumes(t *testing.T) {
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
	must(client.CoreV1().ConfigMaps(ns).Create(ctx, &v1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: "app"},
		Data:       map[string]string{"greeting": "hello", "second": "two", "unused": "x"},
	}, metav1.CreateOptions{}))
	must(client.CoreV1().Secrets(ns).Create(ctx, &v1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "creds"},
		Data:       map[string][]byte{"password": []byte("s3cret")},
	}, metav1.CreateOptions{}))
	// The pod's service account may list pods in its namespace.
	must(client.RbacV1().RoleBindings(ns).Create(ctx, &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "view"},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "view"},
		Subjects:   []rbacv1.Subject{{Kind: "ServiceAccount", Name: "default", Namespace: ns}},
	}, metav1.CreateOptions{}))

	pod := &v1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "volumes", Labels: map[string]string{"tier": "web"}},
		Spec: v1.PodSpec{
			NodeName:                      node,
			TerminationGracePeriodSeconds: ptr.To[int64](1),
			Containers: []v1.Container{{
				Name: "main", Image: images.BusyboxRef, Command: []string{"sh", "-c", reportScript},
				VolumeMounts: []v1.VolumeMount{
					{Name: "cfg", MountPath: "/cfg"}, {Name: "sec", MountPath: "/sec"},
					{Name: "info", MountPath: "/info"}, {Name: "scratch", MountPath: "/scratch"},
				},
			}},
			Volumes: []v1.Volume{
				{Name: "cfg", VolumeSource: v1.VolumeSource{ConfigMap: &v1.ConfigMapVolumeSource{
					LocalObjectReference: v1.LocalObjectReference{Name: "app"},
					Items:                []v1.KeyToPath{{Key: "greeting", Path: "greeting"}, {Key: "second", Path: "sub/second", Mode: ptr.To[int32](0o600)}},
					DefaultMode:          ptr.To[int32](0o640),
				}}},
				{Name: "sec", VolumeSource: v1.VolumeSource{Secret: &v1.SecretVolumeSource{SecretName: "creds", DefaultMode: ptr.To[int32](0o400)}}},
				{Name: "info", VolumeSource: v1.VolumeSource{DownwardAPI: &v1.DownwardAPIVolumeSource{Items: []v1.DownwardAPIVolumeFile{
					{Path: "labels", FieldRef: &v1.ObjectFieldSelector{FieldPath: "metadata.labels"}},
				}}}},
				{Name: "scratch", VolumeSource: v1.VolumeSource{EmptyDir: &v1.EmptyDirVolumeSource{Medium: v1.StorageMediumMemory, SizeLimit: ptr.To(resource.MustParse("16Mi"))}}},
			},
		},
	}
	created, err := client.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cluster.WaitPod(t, client, ns, "volumes", time.Minute, cluster.PodReady)
	logPath := mustHostPath(t, node, filepath.Join("/var/log/pods", fmt.Sprintf("%s_volumes_%s", ns, created.UID), "main", "0.log"))

	report := waitReport(t, logPath, func(r map[string]string) bool { return r["/cfg/greeting"] != "" })
	want := map[string]string{
		"/cfg/greeting":   "640 hello",
		"/cfg/sub/second": "600 two",
		"/sec/password":   "400 s3cret",
		"/info/labels":    `644 tier="web"`,
		"scratch":         "tmpfs",
		"/var/run/secrets/kubernetes.io/serviceaccount/namespace": "644 " + ns,
	}
	for k, v := range want {
		if got := report[k]; got != v {
			t.Errorf("%s: %q, want %q", k, got, v)
		}
	}

	// The token is the pod's own: it may list pods in its namespace.
	token := report["token"]
	if !tokenCanListPods(t, ns, token) {
		t.Error("the pod's service-account token cannot list pods in its namespace")
	}

	// A configMap update reaches the volume within 60 s.
	cm, err := client.CoreV1().ConfigMaps(ns).Get(ctx, "app", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cm.Data["greeting"] = "updated"
	if _, err := client.CoreV1().ConfigMaps(ns).Update(ctx, cm, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	waitReportWithin(t, logPath, 70*time.Second, func(r map[string]string) bool { return r["/cfg/greeting"] == "640 updated" })
	if took := time.Since(start); took > 60*time.Second {
		t.Errorf("configMap update took %s to reach the volume, want ≤ 60s", took.Round(time.Second))
	} else {
		t.Logf("configMap update visible after %s", took.Round(time.Second))
	}

	// Bound to the pod: once the pod is gone, the token is rejected.
	if err := client.CoreV1().Pods(ns).Delete(ctx, "volumes", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	cluster.Poll(t, time.Minute, "pod deleted", func() (bool, string) {
		_, err := client.CoreV1().Pods(ns).Get(ctx, "volumes", metav1.GetOptions{})
		return apierrors.IsNotFound(err), fmt.Sprint(err)
	})
	// The apiserver caches a token's successful authentication for 10 s.
	cluster.Poll(t, 30*time.Second, "the deleted pod's token rejected", func() (bool, string) {
		return !tokenCanListPods(t, ns, token), "still accepted"
	})
}

// tokenCanListPods asks the apiserver, with token, whether it may list pods.
func tokenCanListPods(t *testing.T, ns, token string) bool {
	t.Helper()
	cfg, err := bed.RESTConfig(testbed.AdminKubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	cfg.CertData, cfg.KeyData, cfg.CertFile, cfg.KeyFile = nil, nil, "", ""
	cfg.BearerToken = token
	c, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	review, err := c.AuthorizationV1().SelfSubjectAccessReviews().Create(t.Context(), &authorizationv1.SelfSubjectAccessReview{
		Spec: authorizationv1.SelfSubjectAccessReviewSpec{ResourceAttributes: &authorizationv1.ResourceAttributes{Namespace: ns, Verb: "list", Resource: "pods"}},
	}, metav1.CreateOptions{})
	if apierrors.IsUnauthorized(err) {
		return false
	}
	if err != nil {
		t.Fatal(err)
	}
	if !review.Status.Allowed {
		return false
	}
	_, err = c.CoreV1().Pods(ns).List(t.Context(), metav1.ListOptions{})
	return err == nil
}

// waitReport waits up to a minute for a report that ok accepts.
func waitReport(t *testing.T, logPath string, ok func(map[string]string) bool) map[string]string {
	t.Helper()
	return waitReportWithin(t, logPath, time.Minute, ok)
}

// waitReportWithin polls the container's log for its newest complete
// report until ok accepts it.
func waitReportWithin(t *testing.T, logPath string, timeout time.Duration, ok func(map[string]string) bool) map[string]string {
	t.Helper()
	var report map[string]string
	cluster.Poll(t, timeout, "volume report in "+logPath, func() (bool, string) {
		data, err := os.ReadFile(logPath)
		if err != nil {
			return false, err.Error()
		}
		report = lastReport(string(data))
		return report != nil && ok(report), fmt.Sprint(report)
	})
	return report
}

// lastReport parses the newest complete report of a CRI log.
func lastReport(log string) map[string]string {
	var lines []string
	for _, l := range strings.Split(log, "\n") {
		if f := strings.SplitN(l, " ", 4); len(f) == 4 {
			lines = append(lines, f[3])
		}
	}
	end := -1
	for i := len(lines) - 1; i >= 0; i-- {
		if lines[i] == "--- end" && end < 0 {
			end = i
		}
		if lines[i] == "--- report" && end > i {
			r := map[string]string{}
			for _, l := range lines[i+1 : end] {
				k, v, _ := strings.Cut(l, " ")
				r[k] = v
			}
			return r
		}
	}
	return nil
}

func mustHostPath(t *testing.T, node, p string) string {
	t.Helper()
	out, err := bed.HostPath(node, p)
	if err != nil {
		t.Fatal(err)
	}
	return out
}
