package stats

import (
	"os"
	"path/filepath"
	"testing"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// containerStats is what the runtime reports of container id at time ts
// (nanoseconds): cumulative CPU, the CPU rate if it computes one (nil
// otherwise), and the memory working set.
func containerStats(id, name string, ts int64, cpuNanos uint64, nanoCores *uint64, ws uint64) *runtimeapi.ContainerStats {
	s := &runtimeapi.ContainerStats{
		Attributes: &runtimeapi.ContainerAttributes{Id: id, Metadata: &runtimeapi.ContainerMetadata{Name: name}},
		Cpu: &runtimeapi.CpuUsage{
			Timestamp:            ts,
			UsageCoreNanoSeconds: &runtimeapi.UInt64Value{Value: cpuNanos},
		},
		Memory: &runtimeapi.MemoryUsage{
			Timestamp:       ts,
			WorkingSetBytes: &runtimeapi.UInt64Value{Value: ws},
			UsageBytes:      &runtimeapi.UInt64Value{Value: ws + 100},
		},
		WritableLayer: &runtimeapi.FilesystemUsage{
			Timestamp: ts,
			UsedBytes: &runtimeapi.UInt64Value{Value: 4096},
		},
	}
	if nanoCores != nil {
		s.Cpu.UsageNanoCores = &runtimeapi.UInt64Value{Value: *nanoCores}
	}
	return s
}

// sandboxStats is what the runtime reports of sandbox id at time ts.
func sandboxStats(id string, ts int64, cpuNanos uint64, ws uint64, procs uint64) *runtimeapi.PodSandboxStats {
	return &runtimeapi.PodSandboxStats{
		Attributes: &runtimeapi.PodSandboxAttributes{Id: id},
		Linux: &runtimeapi.LinuxPodSandboxStats{
			Cpu: &runtimeapi.CpuUsage{Timestamp: ts, UsageCoreNanoSeconds: &runtimeapi.UInt64Value{Value: cpuNanos}},
			Memory: &runtimeapi.MemoryUsage{
				Timestamp:       ts,
				WorkingSetBytes: &runtimeapi.UInt64Value{Value: ws},
			},
			Network: &runtimeapi.NetworkUsage{
				Timestamp: ts,
				DefaultInterface: &runtimeapi.NetworkInterfaceUsage{
					Name: "eth0", RxBytes: &runtimeapi.UInt64Value{Value: 10}, TxBytes: &runtimeapi.UInt64Value{Value: 20},
				},
			},
			Process: &runtimeapi.ProcessUsage{Timestamp: ts, ProcessCount: &runtimeapi.UInt64Value{Value: procs}},
		},
	}
}

// writeTree writes files below root, by relative path.
func writeTree(t *testing.T, root string, files map[string]string) {
	t.Helper()
	for name, content := range files {
		p := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
