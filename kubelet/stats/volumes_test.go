package stats

import (
	"context"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"k8s.io/apimachinery/pkg/types"
	statsapi "k8s.io/kubelet/pkg/apis/stats/v1alpha1"
)

// fakeVolumes serves fixed volume statistics.
type fakeVolumes map[types.UID][]statsapi.VolumeStats

func (f fakeVolumes) VolumeStats(context.Context) map[types.UID][]statsapi.VolumeStats { return f }

func volumeFixture() fakeVolumes {
	claim := &statsapi.PVCReference{Name: "data", Namespace: "default"}
	return fakeVolumes{
		"uid-web": {
			{Name: "data", PVCRef: claim, FsStats: statsapi.FsStats{CapacityBytes: u64(1000), UsedBytes: u64(300), AvailableBytes: u64(700),
				Inodes: u64(100), InodesUsed: u64(10), InodesFree: u64(90)}},
			{Name: "scratch", FsStats: statsapi.FsStats{CapacityBytes: u64(5)}},
		},
		"uid-gone": {{Name: "old", PVCRef: &statsapi.PVCReference{Name: "old", Namespace: "default"}}},
	}
}

func TestSummaryHasVolumeStats(t *testing.T) {
	_, _, p, _ := statsFixture(t)
	p.cfg.Volumes = volumeFixture()
	s, err := p.Summary(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	for _, pod := range s.Pods {
		switch pod.PodRef.UID {
		case "uid-web":
			if len(pod.VolumeStats) != 2 || pod.VolumeStats[0].Name != "data" || *pod.VolumeStats[0].UsedBytes != 300 {
				t.Errorf("web's volume stats: %+v", pod.VolumeStats)
			}
		default:
			if len(pod.VolumeStats) != 0 {
				t.Errorf("%s has volume stats: %+v", pod.PodRef.Name, pod.VolumeStats)
			}
		}
	}
	s, err = p.CPUAndMemory(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	for _, pod := range s.Pods {
		if len(pod.VolumeStats) != 0 {
			t.Errorf("only_cpu_and_memory has volume stats for %s", pod.PodRef.Name)
		}
	}
}

func TestVolumeStatsMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(NewVolumeStatsCollector(volumeFixture()))
	want := `
# HELP kubelet_volume_stats_capacity_bytes [ALPHA] Capacity in bytes of the volume
# TYPE kubelet_volume_stats_capacity_bytes gauge
kubelet_volume_stats_capacity_bytes{namespace="default",persistentvolumeclaim="data"} 1000
# HELP kubelet_volume_stats_inodes_used [ALPHA] Number of used inodes in the volume
# TYPE kubelet_volume_stats_inodes_used gauge
kubelet_volume_stats_inodes_used{namespace="default",persistentvolumeclaim="data"} 10
# HELP kubelet_volume_stats_used_bytes [ALPHA] Number of used bytes in the volume
# TYPE kubelet_volume_stats_used_bytes gauge
kubelet_volume_stats_used_bytes{namespace="default",persistentvolumeclaim="data"} 300
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want),
		"kubelet_volume_stats_capacity_bytes", "kubelet_volume_stats_used_bytes", "kubelet_volume_stats_inodes_used"); err != nil {
		t.Error(err)
	}
	if n, err := testutil.GatherAndCount(reg); err != nil || n != 6 {
		t.Errorf("samples = %d (%v), want the claim's 6 (inline and empty volumes have none)", n, err)
	}
}
