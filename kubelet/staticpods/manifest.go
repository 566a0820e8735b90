package staticpods

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation"
)

// Annotations of static pods, as the kubelet sets them.
const (
	// AnnotationSource names where a static pod comes from; always
	// SourceFile here.
	AnnotationSource = "kubernetes.io/config.source"
	// AnnotationHash is the static pod's content hash, equal to its UID.
	// The mirror pod carries it as v1.MirrorPodAnnotationKey.
	AnnotationHash = "kubernetes.io/config.hash"
	// AnnotationSeen is when the manifest was first read (RFC 3339 with
	// nanoseconds).
	AnnotationSeen = "kubernetes.io/config.seen"
	// SourceFile is the AnnotationSource of pods from manifest files.
	SourceFile = "file"
)

// uidBytes is how much of the SHA-256 sum makes the UID: 32 hex digits, as
// long as the kubelet's MD5 sum.
const uidBytes = 16

// errNotPod marks a manifest that holds something else than a v1 Pod.
var errNotPod = errors.New("manifest does not hold a v1 Pod")

// decode parses one manifest, YAML or JSON, holding a single v1 Pod.
func decode(decoder runtime.Decoder, data []byte) (*v1.Pod, error) {
	obj, gvk, err := decoder.Decode(data, nil, nil)
	if err != nil {
		return nil, fmt.Errorf("parse manifest: %w", err)
	}
	pod, ok := obj.(*v1.Pod)
	if !ok {
		return nil, fmt.Errorf("%w: found %s", errNotPod, gvk)
	}
	return pod, nil
}

// staticPod turns a decoded manifest into the pod the node runs: defaulted,
// validated, named for the node, with its content hash as UID and the
// static pod annotations. path is the manifest's path, part of the UID as
// under the kubelet.
func staticPod(decoded *v1.Pod, path, nodeName string, seen time.Time) (*v1.Pod, error) {
	pod := decoded.DeepCopy()
	// What the API server would own is not the manifest's to say.
	pod.UID, pod.ResourceVersion, pod.Generation = "", "", 0
	pod.Status = v1.PodStatus{}
	setDefaults(pod)
	uid, err := contentUID(nodeName, path, pod)
	if err != nil {
		return nil, err
	}
	pod.UID = uid
	pod.Name = pod.Name + "-" + strings.ToLower(nodeName)
	if pod.Namespace == "" {
		pod.Namespace = metav1.NamespaceDefault
	}
	pod.Spec.NodeName = nodeName
	if pod.Annotations == nil {
		pod.Annotations = map[string]string{}
	}
	pod.Annotations[AnnotationSource] = SourceFile
	pod.Annotations[AnnotationHash] = string(uid)
	pod.Annotations[AnnotationSeen] = seen.UTC().Format(time.RFC3339Nano)
	tolerateNoExecute(pod)
	pod.Status.Phase = v1.PodPending
	if err := validate(pod); err != nil {
		return nil, err
	}
	return pod, nil
}

// contentUID hashes the node name, the manifest path and the defaulted pod.
// encoding/json writes struct fields in order and map keys sorted, so the
// same pod always hashes the same.
func contentUID(nodeName, path string, pod *v1.Pod) (types.UID, error) {
	data, err := json.Marshal(pod)
	if err != nil {
		return "", fmt.Errorf("encode pod for its hash: %w", err)
	}
	h := sha256.New()
	fmt.Fprintf(h, "host:%s\x00file:%s\x00", nodeName, path)
	h.Write(data)
	return types.UID(hex.EncodeToString(h.Sum(nil)[:uidBytes])), nil
}

// tolerateNoExecute lets the static pod tolerate every NoExecute taint, so
// that node problems never evict it.
func tolerateNoExecute(pod *v1.Pod) {
	all := v1.Toleration{Operator: v1.TolerationOpExists, Effect: v1.TaintEffectNoExecute}
	for _, t := range pod.Spec.Tolerations {
		if t.MatchToleration(&all) && t.Key == "" && t.TolerationSeconds == nil {
			return
		}
	}
	pod.Spec.Tolerations = append(pod.Spec.Tolerations, all)
}

// validate checks what the pod manager relies on; the API server checks
// the rest when the mirror pod is created.
func validate(pod *v1.Pod) error {
	var errs []error
	for _, msg := range validation.IsDNS1123Subdomain(pod.Name) {
		errs = append(errs, fmt.Errorf("metadata.name %q: %s", pod.Name, msg))
	}
	for _, msg := range validation.IsDNS1123Label(pod.Namespace) {
		errs = append(errs, fmt.Errorf("metadata.namespace %q: %s", pod.Namespace, msg))
	}
	if len(pod.Spec.Containers) == 0 {
		errs = append(errs, errors.New("spec.containers: a pod needs at least one container"))
	}
	switch pod.Spec.RestartPolicy {
	case v1.RestartPolicyAlways, v1.RestartPolicyOnFailure, v1.RestartPolicyNever:
	default:
		errs = append(errs, fmt.Errorf("spec.restartPolicy %q: not Always, OnFailure or Never", pod.Spec.RestartPolicy))
	}
	volumes := map[string]bool{}
	for i, vol := range pod.Spec.Volumes {
		errs = append(errs, checkName(fmt.Sprintf("spec.volumes[%d].name", i), vol.Name, volumes)...)
	}
	names := map[string]bool{}
	check := func(field string, list []v1.Container) {
		for i, c := range list {
			at := fmt.Sprintf("%s[%d]", field, i)
			errs = append(errs, checkName(at+".name", c.Name, names)...)
			if strings.TrimSpace(c.Image) == "" {
				errs = append(errs, fmt.Errorf("%s.image: required", at))
			}
			for j, m := range c.VolumeMounts {
				if !volumes[m.Name] {
					errs = append(errs, fmt.Errorf("%s.volumeMounts[%d].name %q: no such volume", at, j, m.Name))
				}
				if m.MountPath == "" {
					errs = append(errs, fmt.Errorf("%s.volumeMounts[%d].mountPath: required", at, j))
				}
			}
		}
	}
	check("spec.initContainers", pod.Spec.InitContainers)
	check("spec.containers", pod.Spec.Containers)
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("invalid pod: %w", err)
	}
	return nil
}

// checkName checks a container or volume name: a DNS label, unique among
// seen, which it joins.
func checkName(field, name string, seen map[string]bool) []error {
	var errs []error
	for _, msg := range validation.IsDNS1123Label(name) {
		errs = append(errs, fmt.Errorf("%s %q: %s", field, name, msg))
	}
	if seen[name] {
		errs = append(errs, fmt.Errorf("%s %q: duplicate", field, name))
	}
	seen[name] = true
	return errs
}
