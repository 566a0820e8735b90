package stats

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/klog/v2"
	statsapi "k8s.io/kubelet/pkg/apis/stats/v1alpha1"

	"github.com/berthnode/berth/cri"
)

// podStats gathers the statistics of the running pods and their running
// containers; full adds network, process and writable layer figures.
func (p *Provider) podStats(ctx context.Context, full bool) ([]statsapi.PodStats, error) {
	rt := p.cfg.Runtime
	sandboxes, err := rt.ListPodSandbox(ctx, &runtimeapi.PodSandboxFilter{
		State: &runtimeapi.PodSandboxStateValue{State: runtimeapi.PodSandboxState_SANDBOX_READY},
	})
	if err != nil {
		return nil, fmt.Errorf("list pod sandboxes: %w", err)
	}
	containers, err := rt.ListContainers(ctx, &runtimeapi.ContainerFilter{
		State: &runtimeapi.ContainerStateValue{State: runtimeapi.ContainerState_CONTAINER_RUNNING},
	})
	if err != nil {
		return nil, fmt.Errorf("list containers: %w", err)
	}
	cstats, err := rt.ListContainerStats(ctx, &runtimeapi.ContainerStatsFilter{})
	if err != nil {
		return nil, fmt.Errorf("list container stats: %w", err)
	}
	pods := map[string]*statsapi.PodStats{}
	for _, sb := range cri.NewestPerPod(sandboxes) {
		md := sb.GetMetadata()
		pods[sb.Id] = &statsapi.PodStats{
			PodRef: statsapi.PodReference{Name: md.GetName(), Namespace: md.GetNamespace(), UID: md.GetUid()},
			// As the kubelet: the pod's start is its sandbox's creation.
			StartTime: metav1.NewTime(time.Unix(0, sb.CreatedAt)),
		}
	}
	byID := map[string]*runtimeapi.Container{}
	for _, c := range containers {
		byID[c.Id] = c
	}
	for _, s := range cstats {
		c := byID[s.GetAttributes().GetId()]
		if c == nil || pods[c.PodSandboxId] == nil {
			continue
		}
		ps := pods[c.PodSandboxId]
		ps.Containers = append(ps.Containers, p.containerStats(s, c, full))
	}
	if err := p.addPodLevel(ctx, pods, full); err != nil {
		return nil, err
	}
	out := make([]statsapi.PodStats, 0, len(pods))
	for _, ps := range pods {
		slices.SortFunc(ps.Containers, func(a, b statsapi.ContainerStats) int { return cmp.Compare(a.Name, b.Name) })
		out = append(out, *ps)
	}
	slices.SortFunc(out, func(a, b statsapi.PodStats) int {
		return cmp.Or(cmp.Compare(a.PodRef.Namespace, b.PodRef.Namespace),
			cmp.Compare(a.PodRef.Name, b.PodRef.Name), cmp.Compare(a.PodRef.UID, b.PodRef.UID))
	})
	return out, nil
}

// containerStats turns CRI's statistics of container c into the summary's.
func (p *Provider) containerStats(s *runtimeapi.ContainerStats, c *runtimeapi.Container, full bool) statsapi.ContainerStats {
	cs := statsapi.ContainerStats{
		Name: cmp.Or(s.GetAttributes().GetMetadata().GetName(), c.GetMetadata().GetName()),
		// As the kubelet: the container's start is its creation.
		StartTime: metav1.NewTime(time.Unix(0, c.CreatedAt)),
		CPU:       p.criCPU("container/"+c.Id, s.GetCpu()),
		Memory:    criMemory(s.GetMemory()),
	}
	if full && s.GetWritableLayer() != nil {
		cs.Rootfs = criFsStats(s.GetWritableLayer(), time.Unix(0, s.GetWritableLayer().GetTimestamp()))
	}
	if sw := s.GetSwap(); full && sw != nil {
		cs.Swap = &statsapi.SwapStats{
			Time:               metav1.NewTime(time.Unix(0, sw.GetTimestamp())),
			SwapUsageBytes:     value(sw.GetSwapUsageBytes()),
			SwapAvailableBytes: value(sw.GetSwapAvailableBytes()),
		}
	}
	return cs
}

// criCPU turns CRI's CPU usage into the summary's, computing the rate from
// the previous sample of key when the runtime gives none.
func (p *Provider) criCPU(key string, u *runtimeapi.CpuUsage) *statsapi.CPUStats {
	if u == nil {
		return nil
	}
	at := time.Unix(0, u.GetTimestamp())
	cpu := &statsapi.CPUStats{
		Time:                 metav1.NewTime(at),
		UsageCoreNanoSeconds: value(u.GetUsageCoreNanoSeconds()),
		UsageNanoCores:       value(u.GetUsageNanoCores()),
	}
	if cpu.UsageNanoCores == nil && cpu.UsageCoreNanoSeconds != nil {
		cpu.UsageNanoCores = p.rates.nanoCores(key, at, *cpu.UsageCoreNanoSeconds)
	}
	return cpu
}

func criMemory(u *runtimeapi.MemoryUsage) *statsapi.MemoryStats {
	if u == nil {
		return nil
	}
	return &statsapi.MemoryStats{
		Time:            metav1.NewTime(time.Unix(0, u.GetTimestamp())),
		AvailableBytes:  value(u.GetAvailableBytes()),
		UsageBytes:      value(u.GetUsageBytes()),
		WorkingSetBytes: value(u.GetWorkingSetBytes()),
		RSSBytes:        value(u.GetRssBytes()),
		PageFaults:      value(u.GetPageFaults()),
		MajorPageFaults: value(u.GetMajorPageFaults()),
	}
}

func value(v *runtimeapi.UInt64Value) *uint64 {
	if v == nil {
		return nil
	}
	return ptr(v.GetValue())
}

// addPodLevel adds the pods' own CPU and memory (and, when full, network and
// process count): from ListPodSandboxStats, or, from a runtime that does not
// implement it, from the pods' cgroups.
func (p *Provider) addPodLevel(ctx context.Context, pods map[string]*statsapi.PodStats, full bool) error {
	done := map[string]bool{}
	if !p.noSandboxStats {
		sbstats, err := p.cfg.Runtime.ListPodSandboxStats(ctx, &runtimeapi.PodSandboxStatsFilter{})
		switch {
		case status.Code(err) == codes.Unimplemented:
			klog.FromContext(ctx).Info("The runtime does not implement ListPodSandboxStats; reading pod cgroups instead")
			p.noSandboxStats = true
		case err != nil:
			return fmt.Errorf("list pod sandbox stats: %w", err)
		}
		for _, s := range sbstats {
			id := s.GetAttributes().GetId()
			if ps := pods[id]; ps != nil && s.GetLinux() != nil {
				p.addCRIPod(ps, id, s.GetLinux(), full)
				done[id] = true
			}
		}
	}
	now := p.cfg.Clock.Now()
	for id, ps := range pods {
		if done[id] {
			continue
		}
		if cs, ok := firstCgroup(podCgroupDirs(p.cfg.CgroupRoot, ps.PodRef.UID)); ok {
			ps.CPU, ps.Memory = p.cgroupCPUAndMemory("pod/"+id, cs, now)
			continue
		}
		sumContainers(ps)
	}
	return nil
}

func (p *Provider) addCRIPod(ps *statsapi.PodStats, id string, s *runtimeapi.LinuxPodSandboxStats, full bool) {
	ps.CPU = p.criCPU("pod/"+id, s.GetCpu())
	ps.Memory = criMemory(s.GetMemory())
	if !full {
		return
	}
	if n := s.GetNetwork(); n != nil {
		ns := &statsapi.NetworkStats{Time: metav1.NewTime(time.Unix(0, n.GetTimestamp()))}
		if d := n.GetDefaultInterface(); d != nil {
			ns.InterfaceStats = criInterface(d)
		}
		for _, i := range n.GetInterfaces() {
			ns.Interfaces = append(ns.Interfaces, criInterface(i))
		}
		ps.Network = ns
	}
	if pr := s.GetProcess(); pr != nil {
		ps.ProcessStats = &statsapi.ProcessStats{ProcessCount: value(pr.GetProcessCount())}
	}
}

func criInterface(i *runtimeapi.NetworkInterfaceUsage) statsapi.InterfaceStats {
	return statsapi.InterfaceStats{
		Name:     i.GetName(),
		RxBytes:  value(i.GetRxBytes()),
		RxErrors: value(i.GetRxErrors()),
		TxBytes:  value(i.GetTxBytes()),
		TxErrors: value(i.GetTxErrors()),
	}
}

// sumContainers sets a pod's CPU and memory to its containers' sums, the
// last resort of the kubelet too.
func sumContainers(ps *statsapi.PodStats) {
	for _, c := range ps.Containers {
		if c.CPU != nil {
			if ps.CPU == nil {
				ps.CPU = &statsapi.CPUStats{Time: c.CPU.Time}
			}
			ps.CPU.UsageCoreNanoSeconds = add(ps.CPU.UsageCoreNanoSeconds, c.CPU.UsageCoreNanoSeconds)
			ps.CPU.UsageNanoCores = add(ps.CPU.UsageNanoCores, c.CPU.UsageNanoCores)
		}
		if c.Memory != nil {
			if ps.Memory == nil {
				ps.Memory = &statsapi.MemoryStats{Time: c.Memory.Time}
			}
			m := ps.Memory
			m.UsageBytes = add(m.UsageBytes, c.Memory.UsageBytes)
			m.WorkingSetBytes = add(m.WorkingSetBytes, c.Memory.WorkingSetBytes)
			m.RSSBytes = add(m.RSSBytes, c.Memory.RSSBytes)
			m.PageFaults = add(m.PageFaults, c.Memory.PageFaults)
			m.MajorPageFaults = add(m.MajorPageFaults, c.Memory.MajorPageFaults)
		}
	}
}

// add sums two optional values; the sum is known once either is.
func add(a, b *uint64) *uint64 {
	switch {
	case a == nil && b == nil:
		return nil
	case a == nil:
		return ptr(*b)
	case b == nil:
		return a
	}
	return ptr(*a + *b)
}
