package stats

import (
	"context"
	"fmt"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/klog/v2"
	statsapi "k8s.io/kubelet/pkg/apis/stats/v1alpha1"
)

// nodeRateKey keys the node's CPU samples.
const nodeRateKey = "node"

// nodeStats gathers the node's statistics; full adds filesystems and
// process limits to CPU and memory.
func (p *Provider) nodeStats(ctx context.Context, full bool) (statsapi.NodeStats, error) {
	now := p.cfg.Clock.Now()
	ns := statsapi.NodeStats{NodeName: p.cfg.NodeName}
	root, err := readCgroup(p.cfg.CgroupRoot)
	if err != nil {
		return ns, fmt.Errorf("node stats: %w", err)
	}
	proc, err := readProcStat(p.cfg.ProcRoot)
	if err != nil {
		return ns, fmt.Errorf("node stats: %w", err)
	}
	ns.StartTime = metav1.NewTime(proc.boot)
	cpuNanos := proc.cpuNanos
	if root.cpuNanos != nil {
		cpuNanos = *root.cpuNanos
	}
	ns.CPU = &statsapi.CPUStats{
		Time:                 metav1.NewTime(now),
		UsageCoreNanoSeconds: ptr(cpuNanos),
		UsageNanoCores:       p.rates.nanoCores(nodeRateKey, now, cpuNanos),
	}
	if ns.Memory, err = p.nodeMemory(root, now); err != nil {
		return ns, fmt.Errorf("node stats: %w", err)
	}
	if !full {
		return ns, nil
	}
	log := klog.FromContext(ctx)
	if u, err := statFS(p.cfg.RootFS); err != nil {
		log.Error(err, "Reading the node filesystem's use failed")
	} else {
		ns.Fs = u.stats(now)
	}
	maxPID, procs := readRlimit(p.cfg.ProcRoot)
	ns.Rlimit = &statsapi.RlimitStats{Time: metav1.NewTime(now), MaxPID: maxPID, NumOfRunningProcesses: procs}
	if p.cfg.Images != nil {
		rs, err := p.runtimeFs(ctx, now)
		if err != nil {
			log.Error(err, "Reading the image filesystem's use failed")
		}
		ns.Runtime = rs
	}
	return ns, nil
}

// nodeMemory reads the node's memory as cAdvisor does for the root cgroup:
// the root of cgroup v2 has no memory.current, so usage is MemTotal less
// MemFree there; the working set leaves out inactive file pages; what is
// available is the machine's memory less the working set.
func (p *Provider) nodeMemory(root cgroupStats, now time.Time) (*statsapi.MemoryStats, error) {
	mi, err := readMeminfo(p.cfg.ProcRoot)
	if err != nil {
		return nil, err
	}
	stat := root.stat
	if stat == nil {
		// No memory.stat: take what meminfo tells of the same.
		stat = map[string]uint64{"inactive_file": mi["Inactive(file)"], "anon": mi["AnonPages"]}
	}
	total := mi["MemTotal"]
	usage := total - min(mi["MemFree"], total)
	if root.usage != nil {
		usage = *root.usage
	}
	ws := workingSet(usage, stat)
	m := &statsapi.MemoryStats{
		Time:            metav1.NewTime(now),
		UsageBytes:      ptr(usage),
		WorkingSetBytes: ptr(ws),
		RSSBytes:        ptr(stat["anon"]),
		AvailableBytes:  ptr(total - min(ws, total)),
	}
	if v, ok := stat["pgfault"]; ok {
		m.PageFaults = ptr(v)
	}
	if v, ok := stat["pgmajfault"]; ok {
		m.MajorPageFaults = ptr(v)
	}
	return m, nil
}

func (u fsUsage) stats(now time.Time) *statsapi.FsStats {
	return &statsapi.FsStats{
		Time:           metav1.NewTime(now),
		CapacityBytes:  ptr(u.capacity),
		AvailableBytes: ptr(u.available),
		UsedBytes:      ptr(u.used),
		Inodes:         ptr(u.inodes),
		InodesFree:     ptr(u.inodesFree),
		InodesUsed:     ptr(u.inodes - min(u.inodesFree, u.inodes)),
	}
}

// runtimeFs returns the image filesystem's (and the containers' writable
// layers') use: sizes from the filesystem CRI names, use from CRI.
func (p *Provider) runtimeFs(ctx context.Context, now time.Time) (*statsapi.RuntimeStats, error) {
	resp, err := p.cfg.Images.ImageFsInfo(ctx)
	if err != nil {
		return nil, fmt.Errorf("image fs info: %w", err)
	}
	rs := &statsapi.RuntimeStats{}
	if fss := resp.GetImageFilesystems(); len(fss) > 0 {
		rs.ImageFs = criFsStats(fss[0], now)
	}
	rs.ContainerFs = rs.ImageFs
	if fss := resp.GetContainerFilesystems(); len(fss) > 0 {
		rs.ContainerFs = criFsStats(fss[0], now)
	}
	return rs, nil
}

// criFsStats combines the use CRI reports of a filesystem with its size.
func criFsStats(use *runtimeapi.FilesystemUsage, now time.Time) *statsapi.FsStats {
	fs := &statsapi.FsStats{Time: metav1.NewTime(now), UsedBytes: ptr(use.GetUsedBytes().GetValue())}
	if use.GetInodesUsed() != nil {
		fs.InodesUsed = ptr(use.GetInodesUsed().GetValue())
	}
	if mp := use.GetFsId().GetMountpoint(); mp == "" {
		return fs
	}
	if u, err := statFS(use.GetFsId().GetMountpoint()); err == nil {
		fs.CapacityBytes, fs.AvailableBytes = ptr(u.capacity), ptr(u.available)
		fs.Inodes, fs.InodesFree = ptr(u.inodes), ptr(u.inodesFree)
	}
	return fs
}

// systemContainers returns the kubelet's "pods" system container: the
// cgroup all pods run under, read like the node's.
func (p *Provider) systemContainers(pods []statsapi.PodStats) []statsapi.ContainerStats {
	cs, ok := firstCgroup(podsCgroupDirs(p.cfg.CgroupRoot))
	if !ok {
		return nil
	}
	now := p.cfg.Clock.Now()
	sc := statsapi.ContainerStats{Name: statsapi.SystemContainerPods}
	for _, pod := range pods {
		if sc.StartTime.IsZero() || pod.StartTime.Before(&sc.StartTime) {
			sc.StartTime = pod.StartTime
		}
	}
	sc.CPU, sc.Memory = p.cgroupCPUAndMemory("system/"+statsapi.SystemContainerPods, cs, now)
	return []statsapi.ContainerStats{sc}
}

// cgroupCPUAndMemory turns what a (non-root) cgroup tells into CPU and
// memory stats; key keys its CPU samples.
func (p *Provider) cgroupCPUAndMemory(key string, cs cgroupStats, now time.Time) (*statsapi.CPUStats, *statsapi.MemoryStats) {
	var cpu *statsapi.CPUStats
	if cs.cpuNanos != nil {
		cpu = &statsapi.CPUStats{
			Time:                 metav1.NewTime(now),
			UsageCoreNanoSeconds: cs.cpuNanos,
			UsageNanoCores:       p.rates.nanoCores(key, now, *cs.cpuNanos),
		}
	}
	if cs.usage == nil {
		return cpu, nil
	}
	ws := workingSet(*cs.usage, cs.stat)
	mem := &statsapi.MemoryStats{
		Time:            metav1.NewTime(now),
		UsageBytes:      cs.usage,
		WorkingSetBytes: ptr(ws),
	}
	if v, ok := cs.stat["anon"]; ok {
		mem.RSSBytes = ptr(v)
	}
	if v, ok := cs.stat["pgfault"]; ok {
		mem.PageFaults = ptr(v)
	}
	if v, ok := cs.stat["pgmajfault"]; ok {
		mem.MajorPageFaults = ptr(v)
	}
	if cs.limit != nil {
		mem.AvailableBytes = ptr(*cs.limit - min(ws, *cs.limit))
	}
	return cpu, mem
}
