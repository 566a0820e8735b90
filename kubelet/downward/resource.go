package downward

import (
	"fmt"
	"strconv"
	"strings"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
)

// NodeLimit gives the node's amount of a standard resource (cpu, memory,
// ephemeral-storage), which stands in for a limit the container does not
// set.
type NodeLimit func(v1.ResourceName) (resource.Quantity, error)

// ResourceValue renders c's request or limit named by ref.Resource
// ("limits.cpu", "requests.memory", ...) in units of ref.Divisor (1 when
// zero), rounded up: CPU in millicores' terms, the others in bytes. A
// standard resource's limit that is not set is the node's (nodeLimit).
func ResourceValue(c *v1.Container, ref *v1.ResourceFieldSelector, nodeLimit NodeLimit) (string, error) {
	kind, name, _ := strings.Cut(ref.Resource, ".")
	res := v1.ResourceName(name)
	standard := res == v1.ResourceCPU || res == v1.ResourceMemory || res == v1.ResourceEphemeralStorage
	if !standard && !strings.HasPrefix(name, v1.ResourceHugePagesPrefix) {
		return "", fmt.Errorf("unsupported resource %q", ref.Resource)
	}
	var q resource.Quantity
	switch kind {
	case "requests":
		q = c.Resources.Requests[res]
	case "limits":
		q = c.Resources.Limits[res]
		if q.IsZero() && standard {
			var err error
			if q, err = nodeLimit(res); err != nil {
				return "", err
			}
		}
	default:
		return "", fmt.Errorf("unsupported resource %q", ref.Resource)
	}
	divisor := ref.Divisor
	if divisor.IsZero() {
		divisor = resource.MustParse("1")
	}
	if res == v1.ResourceCPU {
		return strconv.FormatInt(ceilDiv(q.MilliValue(), divisor.MilliValue()), 10), nil
	}
	return strconv.FormatInt(ceilDiv(q.Value(), divisor.Value()), 10), nil
}

// ceilDiv divides a by b, rounded up; 0 for a divisor that is not
// positive (validation refuses one).
func ceilDiv(a, b int64) int64 {
	if b <= 0 {
		return 0
	}
	d := a / b
	if a%b > 0 {
		d++
	}
	return d
}

// FindContainer returns the pod's container or init container called
// name, or nil.
func FindContainer(pod *v1.Pod, name string) *v1.Container {
	for _, containers := range [][]v1.Container{pod.Spec.Containers, pod.Spec.InitContainers} {
		for i := range containers {
			if containers[i].Name == name {
				return &containers[i]
			}
		}
	}
	return nil
}
