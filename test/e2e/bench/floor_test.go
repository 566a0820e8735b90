package bench

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"slices"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sync/errgroup"
	"k8s.io/apimachinery/pkg/util/uuid"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/berthnode/berth/test/images"
	"github.com/berthnode/berth/test/testbed"
)

// The floor's pods are invisible to berth: they carry none of the
// kubelet's io.kubernetes.* labels (berth removes sandboxes of unknown pods
// that do), only floorLabel, and live in a cgroup of their own.
const (
	floorLabel     = "berth.bench/floor"
	floorNamespace = "berth-bench-floor"
	floorCgroup    = "berth-bench-floor"
	// kubeletNamespaceLabel is the label the agents' sandboxes carry with
	// their pod's namespace, to see when a namespace's are gone.
	kubeletNamespaceLabel = "io.kubernetes.pod.namespace"
)

// floorWorkers are the parallelisms the burst floor tries; the best counts.
var floorWorkers = []int{4, 8, 16}

// floorRun is one start of floor pods through CRI.
type floorRun struct {
	workers int
	// total runs from the first RunPodSandbox to the last container
	// running.
	total time.Duration
	// perPod are each pod's RunPodSandbox-to-running times.
	perPod []time.Duration
	// machineCPU is what the whole machine did meanwhile.
	machineCPU time.Duration
}

// runFloor starts count floor pods through CRI, workers at a time.
func (e *benchEnv) runFloor(ctx context.Context, prefix string, count, workers int) (floorRun, error) {
	r := floorRun{workers: workers, perPod: make([]time.Duration, count)}
	if _, err := testbed.WaitIdle(ctx, idleBusy, idleTimeout); err != nil {
		return r, err
	}
	busy0, err := testbed.MachineBusy()
	if err != nil {
		return r, err
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(workers)
	start := time.Now()
	for i, name := range podNames(prefix, count) {
		g.Go(func() error {
			d, err := e.floorPod(gctx, name)
			r.perPod[i] = d
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return r, err
	}
	r.total = time.Since(start)
	busy, err := testbed.MachineBusy()
	if err != nil {
		return r, err
	}
	r.machineCPU = busy - busy0
	return r, nil
}

// floorPod starts the sandbox and container berth would start for a
// busyboxPod (same image, command, namespaces, CNI network, DNS, log
// files, cgroup below the node's) straight through CRI, and returns the
// time until its container runs. It leaves out what only a node agent
// does: the service account token volume, /etc/hosts and the termination
// message file.
func (e *benchEnv) floorPod(ctx context.Context, name string) (time.Duration, error) {
	uid := string(uuid.NewUUID())
	nsOpts := &runtimeapi.NamespaceOption{Network: runtimeapi.NamespaceMode_POD, Pid: runtimeapi.NamespaceMode_CONTAINER, Ipc: runtimeapi.NamespaceMode_POD}
	unconfined := &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_Unconfined}
	labels := map[string]string{floorLabel: "true"}
	logDir := path.Join("/var/log/pods", fmt.Sprintf("%s_%s_%s", floorNamespace, name, uid))
	sbCfg := &runtimeapi.PodSandboxConfig{
		Metadata:     &runtimeapi.PodSandboxMetadata{Name: name, Namespace: floorNamespace, Uid: uid},
		Hostname:     name,
		LogDirectory: logDir,
		DnsConfig: &runtimeapi.DNSConfig{
			Servers:  []string{"10.96.0.10"},
			Searches: []string{floorNamespace + ".svc.cluster.local", "svc.cluster.local", "cluster.local"},
			Options:  []string{"ndots:5"},
		},
		Labels: labels,
		Linux: &runtimeapi.LinuxPodSandboxConfig{
			CgroupParent:    path.Join(e.agent.node.CgroupParent, floorCgroup, "pod"+uid),
			SecurityContext: &runtimeapi.LinuxSandboxSecurityContext{NamespaceOptions: nsOpts, Seccomp: unconfined},
		},
	}
	ctrCfg := &runtimeapi.ContainerConfig{
		Metadata: &runtimeapi.ContainerMetadata{Name: "main"},
		Image:    &runtimeapi.ImageSpec{Image: images.BusyboxRef, UserSpecifiedImage: images.BusyboxRef},
		Command:  []string{"sh", "-c", "sleep 3600"},
		LogPath:  "main/0.log",
		Labels:   labels,
		Linux: &runtimeapi.LinuxContainerConfig{
			SecurityContext: &runtimeapi.LinuxContainerSecurityContext{NamespaceOptions: nsOpts, Seccomp: unconfined},
		},
	}
	start := time.Now()
	if err := e.startFloorPod(ctx, sbCfg, ctrCfg); err != nil {
		return 0, fmt.Errorf("floor pod %s: %w", name, err)
	}
	return time.Since(start), nil
}

// startFloorPod runs the sandbox, creates and starts the container in it,
// and checks that it runs.
func (e *benchEnv) startFloorPod(ctx context.Context, sbCfg *runtimeapi.PodSandboxConfig, ctrCfg *runtimeapi.ContainerConfig) error {
	logDir, err := bed.HostPath(e.agent.node.Name, path.Join(sbCfg.LogDirectory, ctrCfg.Metadata.Name))
	if err != nil {
		return err
	}
	if err := os.MkdirAll(logDir, 0o755); err != nil {
		return fmt.Errorf("create log directory: %w", err)
	}
	sb, err := e.cri.Runtime.RunPodSandbox(ctx, &runtimeapi.RunPodSandboxRequest{Config: sbCfg})
	if err != nil {
		return fmt.Errorf("run sandbox: %w", err)
	}
	ctr, err := e.cri.Runtime.CreateContainer(ctx, &runtimeapi.CreateContainerRequest{
		PodSandboxId: sb.PodSandboxId, Config: ctrCfg, SandboxConfig: sbCfg,
	})
	if err != nil {
		return fmt.Errorf("create container: %w", err)
	}
	if _, err := e.cri.Runtime.StartContainer(ctx, &runtimeapi.StartContainerRequest{ContainerId: ctr.ContainerId}); err != nil {
		return fmt.Errorf("start container: %w", err)
	}
	st, err := e.cri.Runtime.ContainerStatus(ctx, &runtimeapi.ContainerStatusRequest{ContainerId: ctr.ContainerId})
	if err != nil {
		return fmt.Errorf("container status: %w", err)
	}
	if s := st.GetStatus().GetState(); s != runtimeapi.ContainerState_CONTAINER_RUNNING {
		return fmt.Errorf("container is %s after its start, want running", s)
	}
	return nil
}

// removeFloor stops and removes every floor sandbox (their containers go
// with them), their log folders and their cgroups.
func (e *benchEnv) removeFloor(ctx context.Context) error {
	resp, err := e.cri.Runtime.ListPodSandbox(ctx, &runtimeapi.ListPodSandboxRequest{
		Filter: &runtimeapi.PodSandboxFilter{LabelSelector: map[string]string{floorLabel: "true"}},
	})
	if err != nil {
		return fmt.Errorf("list floor sandboxes: %w", err)
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(8)
	for _, sb := range resp.Items {
		g.Go(func() error {
			if _, err := e.cri.Runtime.StopPodSandbox(gctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: sb.Id}); err != nil {
				return fmt.Errorf("stop floor sandbox %s: %w", sb.Id, err)
			}
			if _, err := e.cri.Runtime.RemovePodSandbox(gctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: sb.Id}); err != nil {
				return fmt.Errorf("remove floor sandbox %s: %w", sb.Id, err)
			}
			m := sb.Metadata
			dir, err := bed.HostPath(e.agent.node.Name, path.Join("/var/log/pods", fmt.Sprintf("%s_%s_%s", m.Namespace, m.Name, m.Uid)))
			if err != nil {
				return err
			}
			return os.RemoveAll(dir)
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	return removeCgroupDirs(path.Join(e.agent.node.CgroupParent, floorCgroup))
}

// removeCgroupDirs removes the (empty) cgroup rel and those below it from
// every hierarchy: the runtime removes its containers' cgroups, not the
// parents it created for them.
func removeCgroupDirs(rel string) error {
	roots, err := filepath.Glob(filepath.Join("/sys/fs/cgroup", "*", rel))
	if err != nil {
		return err
	}
	roots = append(roots, filepath.Join("/sys/fs/cgroup", rel))
	for _, root := range roots {
		var dirs []string
		err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.IsDir() {
				dirs = append(dirs, p)
			}
			return nil
		})
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("walk cgroup %s: %w", root, err)
		}
		for _, d := range slices.Backward(dirs) {
			// cpu and cpuacct may be one hierarchy under two names.
			if err := syscall.Rmdir(d); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return fmt.Errorf("remove cgroup %s: %w", d, err)
			}
		}
	}
	return nil
}

// bestFloor starts a burst of floor pods with each of floorWorkers and
// returns the fastest run.
func (e *benchEnv) bestFloor(b *testing.B) (floorRun, error) {
	ctx := b.Context()
	var best floorRun
	for _, workers := range floorWorkers {
		r, err := e.runFloor(ctx, fmt.Sprintf("floor-w%d", workers), burstPods(), workers)
		if err != nil {
			return best, err
		}
		if err := e.removeFloor(context.WithoutCancel(ctx)); err != nil {
			return best, err
		}
		b.Logf("CRI floor, %d workers: all running in %s, per pod p50 %s p99 %s; machine CPU %.1f s (%.0f%% of its %d CPUs)",
			workers, round(r.total), round(percentile(r.perPod, 50)), round(percentile(r.perPod, 99)),
			r.machineCPU.Seconds(), busyShare(r.machineCPU, r.total), runtime.NumCPU())
		if best.total == 0 || r.total < best.total {
			best = r
		}
	}
	return best, nil
}
