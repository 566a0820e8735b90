package volume

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	v1 "k8s.io/api/core/v1"
)

// Bits the pod's fsGroup gets on its volumes, as with the kubelet: read and
// write (or read only, for API data), and traversal plus setgid on
// directories so that new files inherit the group.
const (
	groupReadWrite fs.FileMode = 0o660
	groupReadOnly  fs.FileMode = 0o440
	groupTraverse  fs.FileMode = 0o110
)

// applyFSGroup gives everything below dir to group gid. It never follows
// symlinks: links are re-owned, not their targets.
func applyFSGroup(dir string, gid int64, readOnly bool) error {
	mask := groupReadWrite
	if readOnly {
		mask = groupReadOnly
	}
	return filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := os.Lchown(p, -1, int(gid)); err != nil {
			return fmt.Errorf("give %s to fsGroup %d: %w", p, gid, err)
		}
		if d.Type()&fs.ModeSymlink != 0 {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		want := info.Mode() | mask
		if d.IsDir() {
			want |= fs.ModeSetgid | groupTraverse
		}
		if want == info.Mode() {
			return nil
		}
		if err := os.Chmod(p, want); err != nil {
			return fmt.Errorf("give %s to fsGroup %d: %w", p, gid, err)
		}
		return nil
	})
}

// podFSGroup is the group the pod's volumes are given to, if any.
func podFSGroup(pod *v1.Pod) *int64 {
	if pod.Spec.SecurityContext == nil {
		return nil
	}
	return pod.Spec.SecurityContext.FSGroup
}

// podFSUser is the user every container of the pod runs as, when they all
// declare the same one: projected tokens are then given to that user alone,
// as the kubelet does.
func podFSUser(pod *v1.Pod) *int64 {
	var podUser *int64
	if pod.Spec.SecurityContext != nil {
		podUser = pod.Spec.SecurityContext.RunAsUser
	}
	var user *int64
	n := 0
	visit := func(sc *v1.SecurityContext) bool {
		n++
		u := podUser
		if sc != nil && sc.RunAsUser != nil {
			u = sc.RunAsUser
		}
		if u == nil || (user != nil && *user != *u) {
			return false
		}
		user = u
		return true
	}
	for i := range pod.Spec.InitContainers {
		if !visit(pod.Spec.InitContainers[i].SecurityContext) {
			return nil
		}
	}
	for i := range pod.Spec.Containers {
		if !visit(pod.Spec.Containers[i].SecurityContext) {
			return nil
		}
	}
	for i := range pod.Spec.EphemeralContainers {
		if !visit(pod.Spec.EphemeralContainers[i].SecurityContext) {
			return nil
		}
	}
	if n == 0 {
		return nil
	}
	return user
}
