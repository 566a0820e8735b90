package volume

import (
	"context"
	"errors"
	"fmt"
	"os"

	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/berthnode/berth/kubelet/downward"
	"github.com/berthnode/berth/kubelet/volume/atomicwriter"
)

// configMap sets up a configMap volume. Like the kubelet, it is kept on disk.
func (s *podSetup) configMap(ctx context.Context, name string, src *v1.ConfigMapVolumeSource) (string, error) {
	payload, err := s.configMapPayload(ctx, src.Name, src.Items, isTrue(src.Optional), fileMode(src.DefaultMode, defaultFileMode))
	if err != nil {
		return "", err
	}
	return s.publish(ctx, pluginConfigMap, name, false, payload)
}

// secret sets up a secret volume on a tmpfs.
func (s *podSetup) secret(ctx context.Context, name string, src *v1.SecretVolumeSource) (string, error) {
	payload, err := s.secretPayload(ctx, src.SecretName, src.Items, isTrue(src.Optional), fileMode(src.DefaultMode, defaultFileMode))
	if err != nil {
		return "", err
	}
	return s.publish(ctx, pluginSecret, name, true, payload)
}

// downwardAPI sets up a downwardAPI volume on a tmpfs.
func (s *podSetup) downwardAPI(ctx context.Context, name string, src *v1.DownwardAPIVolumeSource) (string, error) {
	payload, err := s.downwardAPIPayload(ctx, src.Items, fileMode(src.DefaultMode, defaultFileMode))
	if err != nil {
		return "", err
	}
	return s.publish(ctx, pluginDownwardAPI, name, true, payload)
}

// configMapPayload reads the named configMap of the pod's namespace and
// projects it. A missing configMap of an optional source projects nothing.
func (s *podSetup) configMapPayload(ctx context.Context, name string, items []v1.KeyToPath, optional bool, mode os.FileMode) (map[string]atomicwriter.File, error) {
	cm, err := getCached(ctx, s.m.cfg.Client.CoreV1().ConfigMaps(s.pod.Namespace).Get, name)
	if err != nil {
		if optional && apierrors.IsNotFound(err) {
			return map[string]atomicwriter.File{}, nil
		}
		return nil, &objectError{kind: "configmap", name: name, err: err}
	}
	data := make(map[string][]byte, len(cm.Data)+len(cm.BinaryData))
	for k, v := range cm.Data {
		data[k] = []byte(v)
	}
	for k, v := range cm.BinaryData {
		data[k] = v
	}
	return project("configmap", name, data, items, optional, mode)
}

// secretPayload reads the named secret of the pod's namespace and projects
// it. A missing secret of an optional source projects nothing.
func (s *podSetup) secretPayload(ctx context.Context, name string, items []v1.KeyToPath, optional bool, mode os.FileMode) (map[string]atomicwriter.File, error) {
	secret, err := getCached(ctx, s.m.cfg.Client.CoreV1().Secrets(s.pod.Namespace).Get, name)
	if err != nil {
		if optional && apierrors.IsNotFound(err) {
			return map[string]atomicwriter.File{}, nil
		}
		return nil, &objectError{kind: "secret", name: name, err: err}
	}
	return project("secret", name, secret.Data, items, optional, mode)
}

// getCached reads a configMap or secret as the kubelet's object managers
// do: from the API server's watch cache (resource version "0"), which spares
// the server and etcd a quorum read at every sync of every pod that mounts
// it (the kube-root-ca.crt of each service account token volume, in a
// burst). An object the cache does not have yet is read from etcd, so that
// one created just before its pod is found at once.
func getCached[T any](ctx context.Context, get func(context.Context, string, metav1.GetOptions) (T, error), name string) (T, error) {
	obj, err := get(ctx, name, metav1.GetOptions{ResourceVersion: "0"})
	if apierrors.IsNotFound(err) {
		obj, err = get(ctx, name, metav1.GetOptions{})
	}
	return obj, err
}

// project turns the data of a configMap or secret into files: every key
// under its own name, or only the listed items at their paths. A listed key
// that is missing is skipped when optional and an error otherwise.
func project(kind, name string, data map[string][]byte, items []v1.KeyToPath, optional bool, mode os.FileMode) (map[string]atomicwriter.File, error) {
	payload := make(map[string]atomicwriter.File, len(data))
	if len(items) == 0 {
		for k, v := range data {
			payload[k] = atomicwriter.File{Data: v, Mode: mode}
		}
		return payload, nil
	}
	for _, item := range items {
		v, ok := data[item.Key]
		if !ok {
			if optional {
				continue
			}
			return nil, fmt.Errorf("%s %q has no key %q", kind, name, item.Key)
		}
		payload[item.Path] = atomicwriter.File{Data: v, Mode: fileMode(item.Mode, mode)}
	}
	return payload, nil
}

// downwardAPIPayload renders the pod's fields and its containers' resources.
func (s *podSetup) downwardAPIPayload(ctx context.Context, items []v1.DownwardAPIVolumeFile, mode os.FileMode) (map[string]atomicwriter.File, error) {
	payload := make(map[string]atomicwriter.File, len(items))
	var errs []error
	for _, item := range items {
		var value string
		var err error
		switch {
		case item.FieldRef != nil:
			value, err = podFieldValue(s.pod, item.FieldRef.FieldPath)
		case item.ResourceFieldRef != nil:
			value, err = s.resourceFieldValue(ctx, item.ResourceFieldRef)
		default:
			err = errors.New("neither fieldRef nor resourceFieldRef is set")
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("downwardAPI item %q: %w", item.Path, err))
			continue
		}
		payload[item.Path] = atomicwriter.File{Data: []byte(value), Mode: fileMode(item.Mode, mode)}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return payload, nil
}

// podFieldValue renders the metadata fields a downwardAPI volume may
// project (downward.FieldValue).
func podFieldValue(pod *v1.Pod, fieldPath string) (string, error) {
	v, ok, err := downward.FieldValue(pod, fieldPath)
	if !ok {
		return "", fmt.Errorf("unsupported fieldPath %q", fieldPath)
	}
	return v, err
}

// resourceFieldValue renders a container's request or limit in units of the
// divisor, rounded up. A container without a cpu, memory or
// ephemeral-storage limit is limited by the node's allocatable amount, as
// with the kubelet.
func (s *podSetup) resourceFieldValue(ctx context.Context, ref *v1.ResourceFieldSelector) (string, error) {
	c := downward.FindContainer(s.pod, ref.ContainerName)
	if c == nil {
		return "", fmt.Errorf("container %q not found", ref.ContainerName)
	}
	return downward.ResourceValue(c, ref, func(res v1.ResourceName) (resource.Quantity, error) {
		allocatable, err := s.allocatable(ctx)
		if err != nil {
			return resource.Quantity{}, err
		}
		return allocatable[res], nil
	})
}

// fileMode returns the permission bits of mode, or def when mode is unset.
func fileMode(mode *int32, def os.FileMode) os.FileMode {
	if mode == nil {
		return def
	}
	return os.FileMode(*mode) & os.ModePerm
}

func isTrue(b *bool) bool { return b != nil && *b }
