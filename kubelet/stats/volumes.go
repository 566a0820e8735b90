package stats

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/apimachinery/pkg/types"
	statsapi "k8s.io/kubelet/pkg/apis/stats/v1alpha1"
)

// VolumeSource tells the statistics of the pods' volumes, such as the CSI
// node side's NodeGetVolumeStats answers.
type VolumeSource interface {
	// VolumeStats returns the volumes' statistics by pod UID.
	VolumeStats(ctx context.Context) map[types.UID][]statsapi.VolumeStats
}

// addVolumes gives each pod the statistics of its volumes.
func (p *Provider) addVolumes(ctx context.Context, pods []statsapi.PodStats) {
	if p.cfg.Volumes == nil {
		return
	}
	byPod := p.cfg.Volumes.VolumeStats(ctx)
	for i := range pods {
		pods[i].VolumeStats = append(pods[i].VolumeStats, byPod[types.UID(pods[i].PodRef.UID)]...)
	}
}

// The kubelet's volume statistics metrics, by claim.
var (
	volumeLabels        = []string{"namespace", "persistentvolumeclaim"}
	volumeCapacityDesc  = prometheus.NewDesc("kubelet_volume_stats_capacity_bytes", "[ALPHA] Capacity in bytes of the volume", volumeLabels, nil)
	volumeAvailableDesc = prometheus.NewDesc("kubelet_volume_stats_available_bytes", "[ALPHA] Number of available bytes in the volume", volumeLabels, nil)
	volumeUsedDesc      = prometheus.NewDesc("kubelet_volume_stats_used_bytes", "[ALPHA] Number of used bytes in the volume", volumeLabels, nil)
	volumeInodesDesc    = prometheus.NewDesc("kubelet_volume_stats_inodes", "[ALPHA] Maximum number of inodes in the volume", volumeLabels, nil)
	volumeInodesFree    = prometheus.NewDesc("kubelet_volume_stats_inodes_free", "[ALPHA] Number of free inodes in the volume", volumeLabels, nil)
	volumeInodesUsed    = prometheus.NewDesc("kubelet_volume_stats_inodes_used", "[ALPHA] Number of used inodes in the volume", volumeLabels, nil)
)

// volumeCollectTimeout bounds one scrape's wait for the volume statistics.
const volumeCollectTimeout = 10 * time.Second

// volumeCollector exports the statistics of volumes backed by a claim, once
// per claim, under the kubelet's kubelet_volume_stats_* names.
type volumeCollector struct {
	src VolumeSource
}

// NewVolumeStatsCollector returns the collector of the kubelet_volume_stats_*
// metrics over src, for the /metrics endpoint.
func NewVolumeStatsCollector(src VolumeSource) prometheus.Collector {
	return &volumeCollector{src: src}
}

// Describe sends the metrics' descriptions.
func (c *volumeCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{volumeCapacityDesc, volumeAvailableDesc, volumeUsedDesc, volumeInodesDesc, volumeInodesFree, volumeInodesUsed} {
		ch <- d
	}
}

// Collect sends one sample per claim and figure the source knows.
func (c *volumeCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), volumeCollectTimeout)
	defer cancel()
	seen := map[statsapi.PVCReference]bool{}
	for _, vols := range c.src.VolumeStats(ctx) {
		for _, v := range vols {
			if v.PVCRef == nil || seen[*v.PVCRef] {
				continue
			}
			seen[*v.PVCRef] = true
			for _, s := range []struct {
				desc *prometheus.Desc
				v    *uint64
			}{
				{volumeCapacityDesc, v.CapacityBytes}, {volumeAvailableDesc, v.AvailableBytes}, {volumeUsedDesc, v.UsedBytes},
				{volumeInodesDesc, v.Inodes}, {volumeInodesFree, v.InodesFree}, {volumeInodesUsed, v.InodesUsed},
			} {
				if s.v != nil {
					ch <- prometheus.MustNewConstMetric(s.desc, prometheus.GaugeValue, float64(*s.v), v.PVCRef.Namespace, v.PVCRef.Name)
				}
			}
		}
	}
}
