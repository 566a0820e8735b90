// Package stats answers the kubelet's resource statistics endpoints from CRI
// and the node's cgroup and proc files, without cAdvisor:
//
//   - /stats/summary: the Summary API (k8s.io/kubelet/pkg/apis/stats/v1alpha1)
//     as JSON; ?only_cpu_and_memory=true keeps only CPU and memory, as the
//     kubelet does.
//   - /metrics/resource: the same CPU and memory figures in the Prometheus
//     text format, under the kubelet's stable metric names, each sample
//     stamped with the time it was taken (metrics-server computes rates from
//     those stamps). This is what `kubectl top` and the HorizontalPodAutoscaler
//     see through metrics-server.
//
// The pods' volume statistics come from a VolumeSource (the CSI node side's
// NodeGetVolumeStats answers); NewVolumeStatsCollector exports those of
// claims as the kubelet's kubelet_volume_stats_* metrics for /metrics.
//
// Node figures come from the root cgroup (cgroup v2: cpu.stat usage_usec;
// memory.current, or MemTotal-MemFree at the root where there is none;
// working set is usage less memory.stat's inactive_file) and from /proc.
// Pod and container figures come from CRI's ListPodSandboxStats and
// ListContainerStats; a runtime that does not implement the first has its
// pods read from their cgroups (or summed from their containers).
//
// A CPU rate (usageNanoCores) the runtime does not give is computed from the
// previous cumulative sample of the same node, pod or container, as the
// kubelet's CRI stats provider does; the first answer after start therefore
// has no rate.
package stats
