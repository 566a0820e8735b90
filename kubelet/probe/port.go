package probe

import (
	"fmt"
	"strconv"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// ResolvePort returns the port number of a probe's port: a number, or the
// name of one of the container's ports (a numeric string counts as a
// number).
func ResolvePort(p intstr.IntOrString, c *v1.Container) (int, error) {
	if p.Type == intstr.Int {
		return int(p.IntVal), validPort(int(p.IntVal))
	}
	if n, err := strconv.Atoi(p.StrVal); err == nil {
		return n, validPort(n)
	}
	if c != nil {
		for _, cp := range c.Ports {
			if cp.Name == p.StrVal {
				return int(cp.ContainerPort), validPort(int(cp.ContainerPort))
			}
		}
	}
	return 0, fmt.Errorf("container has no port named %q", p.StrVal)
}
