package volume

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"

	"github.com/berthnode/berth/kubelet/volume/atomicwriter"
	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	resourcehelper "k8s.io/component-helpers/resource"
	"k8s.io/component-helpers/storage/ephemeral"
	"k8s.io/klog/v2"
)

// defaultFileMode is the API default of defaultMode, used when a pod was not
// defaulted by an apiserver (static pods, tests).
const defaultFileMode os.FileMode = 0o644

// podSetup is one Setup call for one pod.
type podSetup struct {
	m   *Manager
	pod *v1.Pod
	// node is read at most once per Setup, and only when a volume needs
	// the node's allocatable resources.
	node    *v1.Node
	nodeErr error
}

// volume sets up vol and returns the host path for it.
func (s *podSetup) volume(ctx context.Context, vol *v1.Volume) (string, error) {
	if err := checkName("volume name", vol.Name); err != nil {
		return "", err
	}
	src := &vol.VolumeSource
	switch {
	case src.HostPath != nil:
		return setupHostPath(src.HostPath)
	case src.EmptyDir != nil:
		return s.emptyDir(ctx, vol.Name, src.EmptyDir)
	case src.ConfigMap != nil:
		return s.configMap(ctx, vol.Name, src.ConfigMap)
	case src.Secret != nil:
		return s.secret(ctx, vol.Name, src.Secret)
	case src.DownwardAPI != nil:
		return s.downwardAPI(ctx, vol.Name, src.DownwardAPI)
	case src.Projected != nil:
		return s.projected(ctx, vol.Name, src.Projected)
	case src.PersistentVolumeClaim != nil:
		pvc := src.PersistentVolumeClaim
		return s.claimVolume(ctx, vol, pvc.ClaimName, pvc.ReadOnly, false)
	case src.Ephemeral != nil:
		return s.claimVolume(ctx, vol, ephemeral.VolumeClaimName(s.pod, vol), false, true)
	case src.CSI != nil:
		return s.inlineCSI(ctx, vol.Name, src.CSI)
	}
	name := setField(src)
	if name == "" {
		return "", errors.New("no volume source is set")
	}
	return "", &UnsupportedError{Type: name}
}

// setField returns the JSON name of the first non-nil pointer field of the
// struct v points to: the member set in a one-of such as VolumeSource.
// Reflection keeps the name right for sources added to the API later.
func setField(v any) string {
	rv := reflect.ValueOf(v).Elem()
	for i := range rv.NumField() {
		f := rv.Field(i)
		if f.Kind() == reflect.Pointer && !f.IsNil() {
			name, _, _ := strings.Cut(rv.Type().Field(i).Tag.Get("json"), ",")
			return name
		}
	}
	return ""
}

// emptyDir sets up an emptyDir on the node's disk or, for medium Memory, on
// a tmpfs bounded like the kubelet bounds it.
func (s *podSetup) emptyDir(ctx context.Context, name string, src *v1.EmptyDirVolumeSource) (string, error) {
	var options []string
	switch src.Medium {
	case v1.StorageMediumDefault:
	case v1.StorageMediumMemory:
		size, err := s.tmpfsSize(ctx, src.SizeLimit)
		if err != nil {
			return "", err
		}
		if size > 0 {
			options = []string{"size=" + strconv.FormatInt(size, 10)}
		}
	default:
		return "", &UnsupportedError{Type: fmt.Sprintf("emptyDir with medium %s", src.Medium)}
	}
	dir := s.m.volumeDir(s.pod.UID, pluginEmptyDir, name)
	// Everyone may write an emptyDir, as with the kubelet: containers run as
	// any user.
	fresh, err := makeDir(dir, 0o777)
	if err != nil {
		return "", err
	}
	if src.Medium == v1.StorageMediumMemory {
		mounted, err := s.m.ensureTmpfs(ctx, dir, options)
		if err != nil {
			return "", err
		}
		fresh = fresh || mounted
	}
	// Ownership is given once, to the new volume, not on every Setup
	// through whatever the containers wrote since.
	if gid := podFSGroup(s.pod); gid != nil && fresh {
		if err := applyFSGroup(dir, *gid, false); err != nil {
			return "", err
		}
	}
	return dir, nil
}

// tmpfsSize bounds a memory-backed emptyDir as the kubelet does: by the
// node's allocatable memory, the pod's memory limit when every container
// has one, and the volume's sizeLimit, whichever is least. It returns 0
// when nothing bounds it.
func (s *podSetup) tmpfsSize(ctx context.Context, sizeLimit *resource.Quantity) (int64, error) {
	allocatable, err := s.allocatable(ctx)
	if err != nil {
		return 0, err
	}
	var size int64
	lower := func(q resource.Quantity) {
		if v := q.Value(); v > 0 && (size == 0 || v < size) {
			size = v
		}
	}
	lower(allocatable[v1.ResourceMemory])
	if memoryLimited(s.pod) {
		lower(resourcehelper.PodLimits(s.pod, resourcehelper.PodResourcesOptions{})[v1.ResourceMemory])
	}
	if sizeLimit != nil {
		lower(*sizeLimit)
	}
	return size, nil
}

// memoryLimited reports whether the pod's memory is bounded: by a pod-level
// limit or by a limit on every container.
func memoryLimited(pod *v1.Pod) bool {
	if pod.Spec.Resources != nil {
		if _, ok := pod.Spec.Resources.Limits[v1.ResourceMemory]; ok {
			return true
		}
	}
	n := 0
	for _, containers := range [][]v1.Container{pod.Spec.InitContainers, pod.Spec.Containers} {
		for i := range containers {
			n++
			if q, ok := containers[i].Resources.Limits[v1.ResourceMemory]; !ok || q.IsZero() {
				return false
			}
		}
	}
	return n > 0
}

// allocatable returns the node's allocatable resources, reading the Node at
// most once per Setup.
func (s *podSetup) allocatable(ctx context.Context) (v1.ResourceList, error) {
	if s.node == nil && s.nodeErr == nil {
		node, err := s.m.cfg.Client.CoreV1().Nodes().Get(ctx, s.m.cfg.NodeName, metav1.GetOptions{})
		if err != nil {
			s.nodeErr = fmt.Errorf("get node %q for its allocatable resources: %w", s.m.cfg.NodeName, err)
		}
		s.node = node
	}
	if s.nodeErr != nil {
		return nil, s.nodeErr
	}
	return s.node.Status.Allocatable, nil
}

// publish makes payload the content of the named API data volume and
// returns its directory. onTmpfs keeps the volume off the disk.
func (s *podSetup) publish(ctx context.Context, plugin, name string, onTmpfs bool, payload map[string]atomicwriter.File) (string, error) {
	dir := s.m.volumeDir(s.pod.UID, plugin, name)
	if _, err := makeDir(dir, 0o777); err != nil {
		return "", err
	}
	if onTmpfs {
		if _, err := s.m.ensureTmpfs(ctx, dir, nil); err != nil {
			return "", err
		}
	}
	var prepare func(string) error
	gid := podFSGroup(s.pod)
	if gid != nil {
		// Ask for the group bits up front, so that an unchanged payload
		// compares equal to what applyFSGroup left on disk last time.
		for p, f := range payload {
			f.Mode |= groupReadOnly
			payload[p] = f
		}
		prepare = func(versionDir string) error { return applyFSGroup(versionDir, *gid, true) }
	}
	changed, err := atomicwriter.New(dir, s.m.cfg.Clock).Write(ctx, payload, prepare)
	if err != nil {
		return "", err
	}
	if gid != nil {
		// The volume root and the visible links, made outside the version.
		if err := applyFSGroup(dir, *gid, true); err != nil {
			return "", err
		}
	}
	if changed {
		klog.FromContext(ctx).V(3).Info("Updated volume content", "path", dir, "files", len(payload))
	}
	return dir, nil
}

// makeDir creates dir with mode perm (whatever the umask), and its missing
// parents with mode 0750. It reports whether dir was created.
func makeDir(dir string, perm os.FileMode) (bool, error) {
	if err := os.MkdirAll(filepath.Dir(dir), 0o750); err != nil {
		return false, fmt.Errorf("create volume directory: %w", err)
	}
	err := os.Mkdir(dir, perm)
	if errors.Is(err, fs.ErrExist) {
		return false, nil
	}
	if err == nil {
		err = os.Chmod(dir, perm)
	}
	if err != nil {
		return false, fmt.Errorf("create volume directory: %w", err)
	}
	return true, nil
}

// ensureTmpfs mounts a tmpfs on dir unless one is there already, and
// reports whether it mounted one.
func (m *Manager) ensureTmpfs(ctx context.Context, dir string, options []string) (bool, error) {
	mp, ok, err := m.cfg.Mounter.MountedAt(dir)
	if err != nil {
		return false, err
	}
	if ok {
		if mp.FSType != "tmpfs" {
			return false, fmt.Errorf("%s is a %s mount, want tmpfs", dir, mp.FSType)
		}
		return false, nil
	}
	if err := m.cfg.Mounter.MountTmpfs(dir, options); err != nil {
		return false, err
	}
	klog.FromContext(ctx).V(3).Info("Mounted tmpfs", "path", dir, "options", options)
	return true, nil
}
