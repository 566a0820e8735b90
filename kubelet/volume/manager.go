package volume

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/klog/v2"
)

// The kubelet's plugin directory names, kept so that the on-disk layout is
// the one node tooling expects.
const (
	pluginEmptyDir    = "kubernetes.io~empty-dir"
	pluginConfigMap   = "kubernetes.io~configmap"
	pluginSecret      = "kubernetes.io~secret"
	pluginProjected   = "kubernetes.io~projected"
	pluginDownwardAPI = "kubernetes.io~downward-api"
)

// unmountRounds bounds how often Teardown lists and unmounts again when
// mounts remain (stacked mounts on the same directory).
const unmountRounds = 3

// Manager sets up and tears down the volumes of the node's pods. Calls for
// different pods run in parallel; calls for the same pod are serialised.
type Manager struct {
	cfg Config
	// root is cfg.RootDir with symlinks resolved, so that its paths compare
	// equal to the mount points the kernel lists.
	root   string
	locks  podLocks
	tokens tokenCache
	owned  ownedSet
}

// New returns a Manager for cfg, creating RootDir/pods when missing.
func New(cfg Config) (*Manager, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Join(cfg.RootDir, "pods"), 0o750); err != nil {
		return nil, fmt.Errorf("create pods directory: %w", err)
	}
	root, err := filepath.EvalSymlinks(cfg.RootDir)
	if err != nil {
		return nil, fmt.Errorf("resolve root directory: %w", err)
	}
	return &Manager{cfg: cfg, root: root}, nil
}

// Setup makes every volume of pod available and returns, per volume name,
// the host path to bind-mount into the pod's containers. It is idempotent
// and is called again to pick up new API data and renew due service account
// tokens. Every volume is attempted; the error joins one *VolumeError per
// volume that failed, each naming the volume and the cause.
func (m *Manager) Setup(ctx context.Context, pod *v1.Pod) (map[string]string, error) {
	if pod == nil {
		return nil, errors.New("setup volumes: no pod")
	}
	if err := checkName("pod UID", string(pod.UID)); err != nil {
		return nil, err
	}
	unlock := m.locks.lock(pod.UID)
	defer unlock()
	logger := klog.FromContext(ctx).WithValues("pod", klog.KObj(pod), "podUID", pod.UID)
	ctx = klog.NewContext(ctx, logger)

	s := &podSetup{m: m, pod: pod}
	paths := make(map[string]string, len(pod.Spec.Volumes))
	var errs []error
	for i := range pod.Spec.Volumes {
		vol := &pod.Spec.Volumes[i]
		path, err := s.volume(klog.NewContext(ctx, logger.WithValues("volume", vol.Name)), vol)
		if err != nil {
			errs = append(errs, &VolumeError{Volume: vol.Name, Err: err})
			continue
		}
		paths[vol.Name] = path
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	logger.V(4).Info("Volumes set up", "volumes", len(paths))
	return paths, nil
}

// Teardown removes what Setup made for the pod with this UID, whether or not
// the pod is still known, working from what is on disk: it has the CSI
// node side unpublish the pod's CSI volumes first, then unmounts every
// mount left below the pod's volumes and volumeDevices directories (lazily
// when busy), removes those directories without following symlinks or
// entering a mount point, and forgets the pod's tokens. Host paths and the
// data of PersistentVolumes are never touched. It is idempotent; after an
// error nothing that is still mounted has been removed, and calling it
// again retries.
func (m *Manager) Teardown(ctx context.Context, uid types.UID) error {
	if err := checkName("pod UID", string(uid)); err != nil {
		return err
	}
	unlock := m.locks.lock(uid)
	defer unlock()
	logger := klog.FromContext(ctx).WithValues("podUID", uid)
	ctx = klog.NewContext(ctx, logger)
	m.tokens.forget(uid)

	podDir := filepath.Join(m.root, "pods", string(uid))
	if err := m.tearDownCSI(ctx, uid, podDir); err != nil {
		return fmt.Errorf("tear down volumes of pod %s: %w", uid, err)
	}
	for _, dir := range []string{filepath.Join(podDir, "volumes"), filepath.Join(podDir, "volumeDevices")} {
		if err := m.unmountAll(ctx, dir); err != nil {
			return fmt.Errorf("tear down volumes of pod %s: %w", uid, err)
		}
		if err := m.removeTree(dir); err != nil {
			return fmt.Errorf("tear down volumes of pod %s: %w", uid, err)
		}
	}
	m.owned.forget(uid)
	// The pod directory goes too once nothing else is kept in it.
	if err := os.Remove(podDir); err != nil && !errors.Is(err, fs.ErrNotExist) && !errors.Is(err, syscall.ENOTEMPTY) && !errors.Is(err, syscall.EEXIST) {
		return fmt.Errorf("tear down volumes of pod %s: %w", uid, err)
	}
	logger.V(4).Info("Volumes torn down")
	return nil
}

// tearDownCSI has the CSI node side unpublish every CSI volume the pod's
// directories still hold, file system and block alike. Every volume is
// attempted; the error joins the failures.
func (m *Manager) tearDownCSI(ctx context.Context, uid types.UID, podDir string) error {
	var names []string
	for _, parent := range []string{"volumes", "volumeDevices"} {
		entries, err := os.ReadDir(filepath.Join(podDir, parent, pluginCSI))
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return fmt.Errorf("list CSI volumes: %w", err)
		}
		for _, e := range entries {
			if !slices.Contains(names, e.Name()) {
				names = append(names, e.Name())
			}
		}
	}
	if len(names) == 0 {
		return nil
	}
	if m.cfg.CSI == nil {
		return fmt.Errorf("CSI volumes %v left, but this node has no CSI node side to unpublish them", names)
	}
	var errs []error
	for _, name := range names {
		if err := m.cfg.CSI.TearDown(ctx, uid, name); err != nil {
			errs = append(errs, fmt.Errorf("CSI volume %q: %w", name, err))
			continue
		}
		klog.FromContext(ctx).V(4).Info("CSI volume torn down", "volume", name)
	}
	return errors.Join(errs...)
}

// removeTree removes dir and everything below it, like os.RemoveAll, but
// refuses to enter a directory that is a mount point: whatever is mounted
// there (a PersistentVolume's data, a host path) is not the pod's to
// remove. Symlinks are removed, not followed.
func (m *Manager) removeTree(dir string) error {
	info, err := os.Lstat(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if info.IsDir() {
		_, mounted, err := m.cfg.Mounter.MountedAt(dir)
		if err != nil {
			return err
		}
		if mounted {
			return fmt.Errorf("%s is still a mount point: not removed", dir)
		}
		entries, err := os.ReadDir(dir)
		if err != nil {
			return err
		}
		for _, e := range entries {
			if err := m.removeTree(filepath.Join(dir, e.Name())); err != nil {
				return err
			}
		}
	}
	if err := os.Remove(dir); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}

// unmountAll unmounts every mount at or below dir, deepest and latest first,
// and fails when any is left.
func (m *Manager) unmountAll(ctx context.Context, dir string) error {
	logger := klog.FromContext(ctx)
	for range unmountRounds {
		mounts, err := m.cfg.Mounter.List(dir)
		if err != nil {
			return err
		}
		if len(mounts) == 0 {
			return nil
		}
		slices.Reverse(mounts)
		sort.SliceStable(mounts, func(i, j int) bool {
			return strings.Count(mounts[i].Path, "/") > strings.Count(mounts[j].Path, "/")
		})
		for _, mp := range mounts {
			if err := m.cfg.Mounter.Unmount(mp.Path); err != nil && !errors.Is(err, ErrNotMounted) {
				return err
			}
			logger.V(4).Info("Unmounted", "path", mp.Path, "fsType", mp.FSType)
		}
	}
	mounts, err := m.cfg.Mounter.List(dir)
	if err != nil {
		return err
	}
	if len(mounts) > 0 {
		return fmt.Errorf("%d mounts left below %s after unmounting, first %s", len(mounts), dir, mounts[0].Path)
	}
	return nil
}

// NeedsRefresh reports whether a service account token written for the pod
// with this UID is due for renewal: 80% of its lifetime, or 24 hours, has
// passed. Setup renews it.
func (m *Manager) NeedsRefresh(uid types.UID) bool {
	at, ok := m.RefreshTime(uid)
	return ok && !m.cfg.Clock.Now().Before(at)
}

// RefreshTime returns when the earliest token of the pod with this UID
// becomes due for renewal, and false when the pod has no token.
func (m *Manager) RefreshTime(uid types.UID) (time.Time, bool) {
	return m.tokens.refreshTime(uid)
}

// ReadOnly reports whether containers must mount vol read-only whatever
// their volumeMount says. Like the kubelet, berth keeps API data
// (configMap, secret, downwardAPI, projected) read-only so that a container
// cannot change what other containers of the pod, or the next update, see.
func ReadOnly(vol *v1.Volume) bool {
	src := &vol.VolumeSource
	return src.ConfigMap != nil || src.Secret != nil || src.DownwardAPI != nil || src.Projected != nil
}

// volumeDir is where the volume of the pod lives.
func (m *Manager) volumeDir(uid types.UID, plugin, name string) string {
	return filepath.Join(m.root, "pods", string(uid), "volumes", plugin, name)
}

// checkName refuses values that would escape the directory they name a
// child of. The API validates pod UIDs and volume names far more strictly;
// this guards the paths whatever the caller passes.
func checkName(what, name string) error {
	if name == "" || name == "." || name == ".." || strings.ContainsAny(name, "/\x00") {
		return fmt.Errorf("invalid %s %q", what, name)
	}
	return nil
}

// podLocks serialises work on one pod while letting pods proceed in
// parallel.
type podLocks struct {
	mu    sync.Mutex
	locks map[types.UID]*podLock
}

type podLock struct {
	sync.Mutex
	users int
}

// lock locks uid and returns its unlock function.
func (l *podLocks) lock(uid types.UID) func() {
	l.mu.Lock()
	if l.locks == nil {
		l.locks = make(map[types.UID]*podLock)
	}
	pl := l.locks[uid]
	if pl == nil {
		pl = &podLock{}
		l.locks[uid] = pl
	}
	pl.users++
	l.mu.Unlock()

	pl.Lock()
	return func() {
		pl.Unlock()
		l.mu.Lock()
		pl.users--
		if pl.users == 0 {
			delete(l.locks, uid)
		}
		l.mu.Unlock()
	}
}
