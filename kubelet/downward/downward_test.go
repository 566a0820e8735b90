package downward

import (
	"errors"
	"testing"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestFieldValue(t *testing.T) {
	pod := &v1.Pod{ObjectMeta: metav1.ObjectMeta{
		Name: "web", Namespace: "shop", UID: "u1",
		Labels:      map[string]string{"b": "2", "a": `say "hi"`},
		Annotations: map[string]string{"note": "x"},
	}}
	for _, tc := range []struct {
		path    string
		want    string
		ok, err bool
	}{
		{path: "metadata.name", want: "web", ok: true},
		{path: "metadata.uid", want: "u1", ok: true},
		{path: "metadata.labels", want: "a=\"say \\\"hi\\\"\"\nb=\"2\"", ok: true},
		{path: "metadata.labels['b']", want: "2", ok: true},
		{path: "metadata.annotations['note']", want: "x", ok: true},
		{path: "metadata.labels['bad key']", ok: true, err: true},
		{path: "metadata.name['x']", ok: true, err: true},
		{path: "status.podIP", ok: false},
	} {
		got, ok, err := FieldValue(pod, tc.path)
		if got != tc.want || ok != tc.ok || (err != nil) != tc.err {
			t.Errorf("FieldValue(%q) = %q, %v, %v; want %q, %v, error %v", tc.path, got, ok, err, tc.want, tc.ok, tc.err)
		}
	}
}

func TestResourceValue(t *testing.T) {
	c := &v1.Container{Resources: v1.ResourceRequirements{
		Requests: v1.ResourceList{v1.ResourceCPU: resource.MustParse("250m"), v1.ResourceMemory: resource.MustParse("1Mi")},
		Limits:   v1.ResourceList{v1.ResourceMemory: resource.MustParse("3Mi")},
	}}
	node := func(res v1.ResourceName) (resource.Quantity, error) {
		if res == v1.ResourceCPU {
			return resource.MustParse("2"), nil
		}
		return resource.Quantity{}, errors.New("no node figure")
	}
	for _, tc := range []struct {
		res, divisor string
		want         string
		err          bool
	}{
		{res: "requests.cpu", want: "1"},                  // 250m rounded up to a whole CPU
		{res: "requests.cpu", divisor: "1m", want: "250"}, // in millicores
		{res: "limits.cpu", divisor: "1m", want: "2000"},  // not set: the node's
		{res: "limits.memory", divisor: "1Mi", want: "3"}, // set
		{res: "requests.memory", divisor: "1Ki", want: "1024"},
		{res: "limits.ephemeral-storage", err: true}, // the node's figure fails
		{res: "limits.nvidia.com/gpu", err: true},    // not a resource the downward API shows
		{res: "usage.cpu", err: true},
	} {
		ref := &v1.ResourceFieldSelector{Resource: tc.res}
		if tc.divisor != "" {
			ref.Divisor = resource.MustParse(tc.divisor)
		}
		got, err := ResourceValue(c, ref, node)
		if got != tc.want || (err != nil) != tc.err {
			t.Errorf("ResourceValue(%s / %s) = %q, %v; want %q, error %v", tc.res, tc.divisor, got, err, tc.want, tc.err)
		}
	}
}
