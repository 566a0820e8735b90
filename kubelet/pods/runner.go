package pods

import (
	"runtime"

	"github.com/berthnode/berth/kubelet/podruntime"
)

// newRunner makes the runtime side of the pods from the manager's
// configuration.
func (m *Manager) newRunner() (*podruntime.Runner, error) {
	k := m.cfg.Kubelet
	resolv := ""
	if k.ResolverConfig != nil {
		resolv = *k.ResolverConfig
	}
	return podruntime.NewRunner(podruntime.Config{
		Runtime:        m.cfg.Runtime,
		Images:         m.cfg.Images,
		Recorder:       m.cfg.Recorder,
		Clock:          m.cfg.Clock,
		Objects:        m.cfg.Client.CoreV1(),
		RuntimeClasses: m.cfg.Client.NodeV1(),
		Services:       m.servicesFor,
		HostIPs:        m.hostIPs,
		Devices:        m.cfg.Devices,
		// The runtime makes sandboxes (network namespace, CNI, pause
		// container) far faster a few at a time than all at once, so a
		// burst of pods is Ready sooner, and the first of them much
		// sooner (docs/kubelet.md has the measurement).
		SandboxSlots: max(2, 2*runtime.NumCPU()),
		Settings: podruntime.Settings{
			RootDir:        m.cfg.RootDir,
			PodLogsDir:     m.cfg.PodLogsDir,
			ClusterDNS:     k.ClusterDNS,
			ClusterDomain:  k.ClusterDomain,
			ResolverConfig: resolv,
			CgroupRoot:     k.CgroupRoot,
			CgroupDriver:   k.CgroupDriver,
			CgroupsPerQOS:  m.cfg.cgroupsPerQOS(),
			Resources:      m.resourceParams(),
			NodeCPUMilli:   m.nodeCPU,
			NodeMemory:     m.nodeMem,
		},
	})
}
