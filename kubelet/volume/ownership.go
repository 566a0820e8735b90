package volume

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"syscall"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/klog/v2"
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
// symlinks: links are re-owned, not their targets. dir itself comes last,
// as with the kubelet, so that a walk cut short is done again under the
// OnRootMismatch policy.
func applyFSGroup(dir string, gid int64, readOnly bool) error {
	mask := groupReadWrite
	if readOnly {
		mask = groupReadOnly
	}
	own := func(p string, d fs.DirEntry) error {
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
	}
	var root fs.DirEntry
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p == dir {
			root = d
			return nil
		}
		return own(p, d)
	})
	if err != nil {
		return err
	}
	return own(dir, root)
}

// rootOwned reports whether dir already looks given to gid: its group,
// the group bits and, for a directory, setgid. It is the OnRootMismatch
// check of the kubelet.
func rootOwned(dir string, gid int64, readOnly bool) bool {
	info, err := os.Stat(dir)
	if err != nil || !info.IsDir() {
		return false
	}
	st, ok := info.Sys().(*syscall.Stat_t)
	if !ok || int64(st.Gid) != gid {
		return false
	}
	want := groupReadWrite | groupTraverse
	if readOnly {
		want = groupReadOnly | groupTraverse
	}
	return info.Mode().Perm()&want == want && info.Mode()&fs.ModeSetgid != 0
}

// ownOnce gives the pod's fsGroup to a volume whose content the pod
// brings along (a PersistentVolume), once per pod and volume while berth
// runs: not on every Setup through whatever the containers wrote since.
// Under fsGroupChangePolicy OnRootMismatch the walk is skipped when the
// volume's root already has the group.
func (s *podSetup) ownOnce(ctx context.Context, name, dir string) error {
	gid := podFSGroup(s.pod)
	if gid == nil || s.m.owned.has(s.pod.UID, name) {
		return nil
	}
	sc := s.pod.Spec.SecurityContext
	if sc.FSGroupChangePolicy != nil && *sc.FSGroupChangePolicy == v1.FSGroupChangeOnRootMismatch && rootOwned(dir, *gid, false) {
		klog.FromContext(ctx).V(4).Info("Volume root has the fsGroup already; ownership left as it is", "path", dir, "fsGroup", *gid)
	} else {
		if err := applyFSGroup(dir, *gid, false); err != nil {
			return err
		}
		klog.FromContext(ctx).V(3).Info("Gave volume to the fsGroup", "path", dir, "fsGroup", *gid)
	}
	s.m.owned.add(s.pod.UID, name)
	return nil
}

// ownedSet remembers, per pod, the volumes given to the pod's fsGroup.
type ownedSet struct {
	mu   sync.Mutex
	pods map[types.UID]map[string]bool
}

func (o *ownedSet) has(uid types.UID, name string) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.pods[uid][name]
}

func (o *ownedSet) add(uid types.UID, name string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.pods == nil {
		o.pods = make(map[types.UID]map[string]bool)
	}
	if o.pods[uid] == nil {
		o.pods[uid] = make(map[string]bool)
	}
	o.pods[uid][name] = true
}

func (o *ownedSet) forget(uid types.UID) {
	o.mu.Lock()
	defer o.mu.Unlock()
	delete(o.pods, uid)
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
