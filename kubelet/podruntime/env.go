package podruntime

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sort"
	"strconv"
	"strings"

	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/berthnode/berth/kubelet/downward"
)

// ErrConfig marks a container configuration that cannot be made from the
// pod spec as it stands (a missing ConfigMap key, an unsupported field
// path): the container waits in CreateContainerConfigError.
var ErrConfig = errors.New("container configuration error")

// EnvVars is an ordered set of environment variables: a name set again keeps
// its place and takes the new value.
type EnvVars struct {
	names  []string
	values map[string]string
}

// Set sets a variable; a new one goes last.
func (e *EnvVars) Set(name, value string) {
	if e.values == nil {
		e.values = map[string]string{}
	}
	if _, ok := e.values[name]; !ok {
		e.names = append(e.names, name)
	}
	e.values[name] = value
}

// Lookup returns a variable's value and whether it is set.
func (e *EnvVars) Lookup(name string) (string, bool) {
	v, ok := e.values[name]
	return v, ok
}

// envInput is what a container's environment is made of.
type envInput struct {
	Pod       *v1.Pod
	Container *v1.Container
	PodIPs    []string
	HostIPs   []string
	// Services are the services whose variables the container gets.
	Services []*v1.Service
	// NodeCPUMilli and NodeMemory stand in for limits that are not set.
	NodeCPUMilli int64
	NodeMemory   int64
	// Objects reads ConfigMaps and Secrets.
	Objects Objects
}

// makeEnv builds the container's environment: service variables first, then
// envFrom, then env, later ones winning; env values expand $(NAME)
// references to the variables defined before them.
func makeEnv(ctx context.Context, in envInput) (*EnvVars, error) {
	out := &EnvVars{}
	svc := serviceEnv(in.Services)
	for _, name := range svc.names {
		out.Set(name, svc.values[name])
	}
	for _, from := range in.Container.EnvFrom {
		if err := addEnvFrom(ctx, in, from, out); err != nil {
			return nil, err
		}
	}
	for _, e := range in.Container.Env {
		if e.ValueFrom == nil {
			out.Set(e.Name, expand(e.Value, out.Lookup))
			continue
		}
		v, ok, err := envValueFrom(ctx, in, e.ValueFrom)
		if err != nil {
			return nil, fmt.Errorf("env %s: %w", e.Name, err)
		}
		if ok {
			out.Set(e.Name, v)
		}
	}
	return out, nil
}

func addEnvFrom(ctx context.Context, in envInput, from v1.EnvFromSource, out *EnvVars) error {
	ns := in.Pod.Namespace
	var data map[string]string
	switch {
	case from.ConfigMapRef != nil:
		cm, err := in.Objects.ConfigMaps(ns).Get(ctx, from.ConfigMapRef.Name, metav1.GetOptions{})
		if err != nil {
			if apierrors.IsNotFound(err) && isOptional(from.ConfigMapRef.Optional) {
				return nil
			}
			return fmt.Errorf("%w: configmap %q: %w", ErrConfig, from.ConfigMapRef.Name, err)
		}
		data = cm.Data
	case from.SecretRef != nil:
		s, err := in.Objects.Secrets(ns).Get(ctx, from.SecretRef.Name, metav1.GetOptions{})
		if err != nil {
			if apierrors.IsNotFound(err) && isOptional(from.SecretRef.Optional) {
				return nil
			}
			return fmt.Errorf("%w: secret %q: %w", ErrConfig, from.SecretRef.Name, err)
		}
		data = map[string]string{}
		for k, v := range s.Data {
			data[k] = string(v)
		}
	}
	keys := make([]string, 0, len(data))
	for k := range data {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		name := from.Prefix + k
		if name == "" || strings.Contains(name, "=") {
			continue
		}
		out.Set(name, data[k])
	}
	return nil
}

func isOptional(b *bool) bool { return b != nil && *b }

// envValueFrom resolves a valueFrom source. ok is false for an optional key
// that is missing: the variable is left out.
func envValueFrom(ctx context.Context, in envInput, src *v1.EnvVarSource) (string, bool, error) {
	ns := in.Pod.Namespace
	switch {
	case src.FieldRef != nil:
		v, err := fieldRefValue(in, src.FieldRef.FieldPath)
		return v, err == nil, err
	case src.ResourceFieldRef != nil:
		v, err := resourceFieldValue(in, src.ResourceFieldRef)
		return v, err == nil, err
	case src.ConfigMapKeyRef != nil:
		ref := src.ConfigMapKeyRef
		cm, err := in.Objects.ConfigMaps(ns).Get(ctx, ref.Name, metav1.GetOptions{})
		if err != nil {
			if apierrors.IsNotFound(err) && isOptional(ref.Optional) {
				return "", false, nil
			}
			return "", false, fmt.Errorf("%w: configmap %q: %w", ErrConfig, ref.Name, err)
		}
		if v, ok := cm.Data[ref.Key]; ok {
			return v, true, nil
		}
		if v, ok := cm.BinaryData[ref.Key]; ok {
			return string(v), true, nil
		}
		if isOptional(ref.Optional) {
			return "", false, nil
		}
		return "", false, fmt.Errorf("%w: couldn't find key %s in ConfigMap %s/%s", ErrConfig, ref.Key, ns, ref.Name)
	case src.SecretKeyRef != nil:
		ref := src.SecretKeyRef
		s, err := in.Objects.Secrets(ns).Get(ctx, ref.Name, metav1.GetOptions{})
		if err != nil {
			if apierrors.IsNotFound(err) && isOptional(ref.Optional) {
				return "", false, nil
			}
			return "", false, fmt.Errorf("%w: secret %q: %w", ErrConfig, ref.Name, err)
		}
		if v, ok := s.Data[ref.Key]; ok {
			return string(v), true, nil
		}
		if isOptional(ref.Optional) {
			return "", false, nil
		}
		return "", false, fmt.Errorf("%w: couldn't find key %s in Secret %s/%s", ErrConfig, ref.Key, ns, ref.Name)
	}
	return "", false, fmt.Errorf("%w: unsupported valueFrom source", ErrConfig)
}

// fieldRefValue resolves a downward API field path: the pod's metadata
// (downward.FieldValue, as a downwardAPI volume shows it), or what only an
// environment variable may show: the node's and the pod's names and
// addresses.
func fieldRefValue(in envInput, path string) (string, error) {
	pod := in.Pod
	if v, ok, err := downward.FieldValue(pod, path); ok {
		if err != nil {
			return "", fmt.Errorf("%w: %w", ErrConfig, err)
		}
		return v, nil
	}
	switch path {
	case "spec.nodeName":
		return pod.Spec.NodeName, nil
	case "spec.serviceAccountName":
		return pod.Spec.ServiceAccountName, nil
	case "status.hostIP":
		return first(in.HostIPs), nil
	case "status.hostIPs":
		return strings.Join(in.HostIPs, ","), nil
	case "status.podIP":
		return first(in.PodIPs), nil
	case "status.podIPs":
		return strings.Join(in.PodIPs, ","), nil
	}
	return "", fmt.Errorf("%w: unsupported fieldPath %q", ErrConfig, path)
}

func first(list []string) string {
	if len(list) == 0 {
		return ""
	}
	return list[0]
}

// resourceFieldValue resolves a resourceFieldRef: the container's (or a
// named container's) request or limit, divided by the divisor and rounded
// up; a CPU or memory limit that is not set is the node's capacity.
func resourceFieldValue(in envInput, ref *v1.ResourceFieldSelector) (string, error) {
	c := in.Container
	if ref.ContainerName != "" {
		c = downward.FindContainer(in.Pod, ref.ContainerName)
		if c == nil {
			return "", fmt.Errorf("%w: resourceFieldRef: no container %q", ErrConfig, ref.ContainerName)
		}
	}
	v, err := downward.ResourceValue(c, ref, func(res v1.ResourceName) (resource.Quantity, error) {
		switch res {
		case v1.ResourceCPU:
			return *resource.NewMilliQuantity(in.NodeCPUMilli, resource.DecimalSI), nil
		case v1.ResourceMemory:
			return *resource.NewQuantity(in.NodeMemory, resource.BinarySI), nil
		}
		return resource.Quantity{}, nil
	})
	if err != nil {
		return "", fmt.Errorf("%w: %w", ErrConfig, err)
	}
	return v, nil
}

// serviceEnv makes the Docker-links style variables of services
// (NAME_SERVICE_HOST, NAME_SERVICE_PORT, NAME_PORT_80_TCP_ADDR, ...).
func serviceEnv(services []*v1.Service) *EnvVars {
	out := &EnvVars{}
	sorted := append([]*v1.Service(nil), services...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].Name < sorted[j].Name })
	for _, s := range sorted {
		ip := s.Spec.ClusterIP
		if ip == "" || ip == v1.ClusterIPNone || len(s.Spec.Ports) == 0 {
			continue
		}
		prefix := envName(s.Name)
		out.Set(prefix+"_SERVICE_HOST", ip)
		out.Set(prefix+"_SERVICE_PORT", strconv.Itoa(int(s.Spec.Ports[0].Port)))
		for _, p := range s.Spec.Ports {
			if p.Name != "" {
				out.Set(prefix+"_SERVICE_PORT_"+envName(p.Name), strconv.Itoa(int(p.Port)))
			}
		}
		addr := net.JoinHostPort(ip, strconv.Itoa(int(s.Spec.Ports[0].Port)))
		out.Set(prefix+"_PORT", strings.ToLower(string(protocolOf(s.Spec.Ports[0])))+"://"+addr)
		for _, p := range s.Spec.Ports {
			proto := protocolOf(p)
			port := strconv.Itoa(int(p.Port))
			base := prefix + "_PORT_" + port + "_" + strings.ToUpper(string(proto))
			out.Set(base, strings.ToLower(string(proto))+"://"+net.JoinHostPort(ip, port))
			out.Set(base+"_PROTO", strings.ToLower(string(proto)))
			out.Set(base+"_PORT", port)
			out.Set(base+"_ADDR", ip)
		}
	}
	return out
}

func protocolOf(p v1.ServicePort) v1.Protocol {
	if p.Protocol == "" {
		return v1.ProtocolTCP
	}
	return p.Protocol
}

func envName(s string) string { return strings.ToUpper(strings.ReplaceAll(s, "-", "_")) }
