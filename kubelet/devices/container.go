package devices

import (
	"context"
	"fmt"
	"sort"

	v1 "k8s.io/api/core/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/klog/v2"
	pluginapi "k8s.io/kubelet/pkg/apis/deviceplugin/v1beta1"

	"github.com/berthnode/berth/kubelet/podruntime"
)

// ContainerDevices returns what the plugins' Allocate answers gave the
// container, for its CRI configuration, after PreStartContainer for the
// plugins whose options ask for it. When two answers set the same
// container path, env name or annotation, the first (by resource name)
// wins and the conflict is logged, as in the kubelet.
func (m *Manager) ContainerDevices(ctx context.Context, pod *v1.Pod, c *v1.Container) (podruntime.ContainerDevices, error) {
	var none podruntime.ContainerDevices
	m.mu.Lock()
	res := m.pods[pod.UID][c.Name]
	names := make([]string, 0, len(res))
	for name := range res {
		names = append(names, name)
	}
	sort.Strings(names)
	type call struct {
		p   *plugin
		ids []string
	}
	var calls []call
	var resps []*pluginapi.ContainerAllocateResponse
	for _, name := range names {
		resps = append(resps, res[name].resp)
		if r := m.resources[name]; r != nil && r.plugin != nil {
			calls = append(calls, call{r.plugin, res[name].ids})
		}
	}
	var missing []string
	for _, rq := range m.requestedLocked(c) {
		if res[rq] == nil {
			missing = append(missing, rq)
		}
	}
	m.mu.Unlock()
	if len(missing) > 0 {
		return none, &AllocateError{Pod: klog.KObj(pod).String(), Err: fmt.Errorf("no devices allocated to container %q for %v", c.Name, missing)}
	}
	for _, cl := range calls {
		if err := cl.p.preStart(ctx, cl.ids); err != nil {
			return none, fmt.Errorf("resource %s: %w", cl.p.resource, err)
		}
	}
	return merge(klog.FromContext(ctx).WithValues("container", c.Name), resps), nil
}

// merge joins the Allocate answers of a container's resources, in order.
func merge(log klog.Logger, resps []*pluginapi.ContainerAllocateResponse) podruntime.ContainerDevices {
	var out podruntime.ContainerDevices
	seen := map[string]string{}
	claim := func(kind, key, value string) bool {
		k := kind + "\x00" + key
		if prev, ok := seen[k]; ok {
			if prev != value {
				log.Error(nil, "Device plugins' answers conflict; the first wins", "kind", kind, "key", key, "kept", prev, "dropped", value)
			}
			return false
		}
		seen[k] = value
		return true
	}
	for _, resp := range resps {
		for _, k := range sortedStrings(resp.Envs) {
			if claim("env", k, resp.Envs[k]) {
				out.Envs = append(out.Envs, &runtimeapi.KeyValue{Key: k, Value: []byte(resp.Envs[k])})
			}
		}
		for _, d := range resp.Devices {
			if claim("device", d.ContainerPath, d.HostPath) {
				out.Devices = append(out.Devices, &runtimeapi.Device{ContainerPath: d.ContainerPath, HostPath: d.HostPath, Permissions: d.Permissions})
			}
		}
		for _, mt := range resp.Mounts {
			if claim("mount", mt.ContainerPath, mt.HostPath) {
				out.Mounts = append(out.Mounts, &runtimeapi.Mount{ContainerPath: mt.ContainerPath, HostPath: mt.HostPath, Readonly: mt.ReadOnly})
			}
		}
		for _, k := range sortedStrings(resp.Annotations) {
			if claim("annotation", k, resp.Annotations[k]) {
				if out.Annotations == nil {
					out.Annotations = map[string]string{}
				}
				out.Annotations[k] = resp.Annotations[k]
			}
		}
		for _, d := range resp.CdiDevices {
			if claim("cdi", d.Name, d.Name) {
				out.CDIDevices = append(out.CDIDevices, &runtimeapi.CDIDevice{Name: d.Name})
			}
		}
	}
	return out
}

// requestedLocked returns the names of the device plugin resources the
// container asks for. m.mu must be held.
func (m *Manager) requestedLocked(c *v1.Container) []string {
	var out []string
	for name, q := range c.Resources.Limits {
		if _, ok := m.resources[string(name)]; ok && q.Value() > 0 {
			out = append(out, string(name))
		}
	}
	sort.Strings(out)
	return out
}

func sortedStrings(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
