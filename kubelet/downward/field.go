package downward

import (
	"fmt"
	"sort"
	"strconv"
	"strings"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/validation"
)

// FieldValue renders the metadata field at fieldPath: name, namespace,
// uid, and labels and annotations either whole (FormatMap) or one key with
// a subscript (metadata.labels['key']). ok is false for a path that is not
// a metadata field, which the caller may know (status.podIP for env vars).
func FieldValue(pod *v1.Pod, fieldPath string) (value string, ok bool, err error) {
	if path, key, sub := splitSubscript(fieldPath); sub {
		switch path {
		case "metadata.labels":
			if errs := validation.IsQualifiedName(key); len(errs) > 0 {
				return "", true, fmt.Errorf("invalid label key in %s: %s", fieldPath, strings.Join(errs, "; "))
			}
			return pod.Labels[key], true, nil
		case "metadata.annotations":
			if errs := validation.IsQualifiedName(strings.ToLower(key)); len(errs) > 0 {
				return "", true, fmt.Errorf("invalid annotation key in %s: %s", fieldPath, strings.Join(errs, "; "))
			}
			return pod.Annotations[key], true, nil
		}
		return "", true, fmt.Errorf("fieldPath %q does not take a subscript", fieldPath)
	}
	switch fieldPath {
	case "metadata.name":
		return pod.Name, true, nil
	case "metadata.namespace":
		return pod.Namespace, true, nil
	case "metadata.uid":
		return string(pod.UID), true, nil
	case "metadata.labels":
		return FormatMap(pod.Labels), true, nil
	case "metadata.annotations":
		return FormatMap(pod.Annotations), true, nil
	}
	return "", false, nil
}

// splitSubscript splits "metadata.labels['key']" into its path and key.
func splitSubscript(fieldPath string) (path, key string, ok bool) {
	rest, found := strings.CutSuffix(fieldPath, "']")
	if !found {
		return fieldPath, "", false
	}
	path, key, found = strings.Cut(rest, "['")
	if !found || path == "" {
		return fieldPath, "", false
	}
	return path, key, true
}

// FormatMap renders labels or annotations as the kubelet does: sorted
// key="value" lines, values Go-quoted, no trailing newline.
func FormatMap(m map[string]string) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for i, k := range keys {
		if i > 0 {
			b.WriteByte('\n')
		}
		b.WriteString(k)
		b.WriteByte('=')
		b.WriteString(strconv.Quote(m[k]))
	}
	return b.String()
}
