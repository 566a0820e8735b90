package podruntime

import (
	"os"
	"path"
	"path/filepath"
	"strings"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
)

// QOSClass returns the pod's QoS class: the one the API server recorded, or
// computed from the requests and limits of its containers the same way.
func QOSClass(pod *v1.Pod) v1.PodQOSClass {
	if pod.Status.QOSClass != "" {
		return pod.Status.QOSClass
	}
	return computeQOS(pod)
}

// computeQOS classifies a pod: BestEffort without any cpu or memory request
// or limit; Guaranteed when every container limits cpu and memory and
// requests exactly its limits; Burstable otherwise.
func computeQOS(pod *v1.Pod) v1.PodQOSClass {
	if pod.Spec.Resources != nil {
		return qosOf([]v1.ResourceRequirements{*pod.Spec.Resources})
	}
	var all []v1.ResourceRequirements
	for _, c := range pod.Spec.InitContainers {
		all = append(all, c.Resources)
	}
	for _, c := range pod.Spec.Containers {
		all = append(all, c.Resources)
	}
	return qosOf(all)
}

func qosOf(all []v1.ResourceRequirements) v1.PodQOSClass {
	tracked := []v1.ResourceName{v1.ResourceCPU, v1.ResourceMemory}
	some, guaranteed := false, true
	for _, r := range all {
		for _, name := range tracked {
			req, hasReq := nonZero(r.Requests, name)
			lim, hasLim := nonZero(r.Limits, name)
			some = some || hasReq || hasLim
			if !hasLim || (hasReq && req.Cmp(lim) != 0) {
				guaranteed = false
			}
		}
	}
	switch {
	case !some:
		return v1.PodQOSBestEffort
	case guaranteed:
		return v1.PodQOSGuaranteed
	default:
		return v1.PodQOSBurstable
	}
}

func nonZero(list v1.ResourceList, name v1.ResourceName) (resource.Quantity, bool) {
	q, ok := list[name]
	return q, ok && !q.IsZero()
}

// CgroupParent returns the cgroup parent of the pod's sandbox: the pod's own
// cgroup below its QoS class's (kubepods, kubepods/burstable,
// kubepods/besteffort) under the cgroup root, written for the cgroup driver:
// a cgroupfs path, or the matching systemd slice path.
func CgroupParent(root, driver string, perQOS bool, pod *v1.Pod) string {
	if root == "" {
		root = "/"
	}
	if !perQOS {
		return root
	}
	parts := []string{"kubepods"}
	switch QOSClass(pod) {
	case v1.PodQOSBurstable:
		parts = append(parts, "burstable")
	case v1.PodQOSBestEffort:
		parts = append(parts, "besteffort")
	}
	parts = append(parts, "pod"+string(pod.UID))
	if driver == "systemd" {
		return systemdSlicePath(root, parts)
	}
	return path.Join(append([]string{root}, parts...)...)
}

// systemdSlicePath writes a cgroup path as nested systemd slices: each
// slice's name carries its parents' names, as in
// /kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod<uid>.slice
// (dashes in names become underscores, the separator being a dash).
func systemdSlicePath(root string, parts []string) string {
	var names []string
	for _, r := range strings.Split(strings.Trim(root, "/"), "/") {
		if r = strings.TrimSuffix(r, ".slice"); r != "" {
			// A root slice name already carries its parents' prefix.
			names = []string{r}
		}
	}
	out := ""
	if len(names) > 0 {
		out = "/" + names[0] + ".slice"
	}
	prefix := strings.Join(names, "-")
	for _, p := range parts {
		p = strings.ReplaceAll(p, "-", "_")
		if prefix != "" {
			p = prefix + "-" + p
		}
		prefix = p
		out += "/" + p + ".slice"
	}
	return out
}

// CgroupFS is where the cgroup hierarchies are mounted.
const CgroupFS = "/sys/fs/cgroup"

// RemovePodCgroups removes the pod cgroups the runtime created for a pod
// under the cgroupfs driver, in every hierarchy, as the kubelet does once a
// pod is gone (runc creates them for the sandbox's parent and never removes
// them). The QoS class of a pod no longer known is not, so every class's
// place is tried. Busy or missing cgroups are left alone. With the systemd
// driver the slices are systemd's to remove.
func RemovePodCgroups(root, driver string, perQOS bool, uid string) {
	if driver == "systemd" || !perQOS {
		return
	}
	hierarchies, _ := filepath.Glob(filepath.Join(CgroupFS, "*"))
	hierarchies = append(hierarchies, CgroupFS)
	for _, qos := range []string{"", "burstable", "besteffort"} {
		rel := path.Join(root, "kubepods", qos, "pod"+uid)
		for _, h := range hierarchies {
			_ = os.Remove(filepath.Join(h, rel))
		}
	}
}
