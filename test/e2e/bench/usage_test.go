package bench

import (
	"context"
	"time"

	"github.com/berthnode/berth/test/testbed"
)

// The classes of processes whose CPU a burst is charged with. On 2 CPUs a
// burst is bound by the runtime, so every process on the node counts, and
// the apiserver's, which every node of a cluster loads.
const (
	// classAgent is berth, or kubelet and kube-proxy (with the programs
	// they ran and waited for: iptables-restore, mount).
	classAgent = "agent"
	// classContainerd is containerd with the CNI plugins it ran.
	classContainerd = "containerd+CNI"
	// classShims is the containerd shims with the runc runs they waited
	// for.
	classShims = "shims+runc"
	// classAPIServer is the kube-apiserver.
	classAPIServer = "kube-apiserver"
)

// classes are the process classes in the order reports print them.
var classes = []string{classAgent, classContainerd, classShims, classAPIServer}

// processKinds are the command names (/proc/PID/comm, at most 15 bytes)
// of each class on the host it runs on; berth runs as kubelet.
var processKinds = []struct{ class, comm string }{
	{classAgent, "kubelet"},
	{classAgent, "kube-proxy"},
	{classContainerd, "containerd"},
	{classShims, "containerd-shim"},
}

// cpuSample is the CPU time (its own and its waited-for children's) of
// every process of the classes, by PID, at one moment.
type cpuSample map[int]classCPU

type classCPU struct {
	class string
	cpu   time.Duration
}

// sampleCPU reads the CPU time of every process of the classes on node
// and of the kube-apiserver.
func sampleCPU(node string) (cpuSample, error) {
	s := cpuSample{}
	add := func(host, class, comm string) error {
		pids, err := bed.FindProcesses(host, comm)
		if err != nil {
			return err
		}
		for _, pid := range pids {
			st, err := testbed.ReadProcessStats(pid)
			if err != nil {
				continue // exited since the listing
			}
			s[pid] = classCPU{class, st.CPU + st.ChildCPU}
		}
		return nil
	}
	for _, k := range processKinds {
		if err := add(node, k.class, k.comm); err != nil {
			return nil, err
		}
	}
	if err := add(testbed.ControlPlaneHost, classAPIServer, "kube-apiserver"); err != nil {
		return nil, err
	}
	return s, nil
}

// cpuSince returns the CPU time each class used from before to s:
// processes that started meanwhile count in full, processes that ended
// meanwhile not at all (unless their parent waited for them).
func (s cpuSample) cpuSince(before cpuSample) map[string]time.Duration {
	out := map[string]time.Duration{}
	for pid, c := range s {
		used := c.cpu
		if b, ok := before[pid]; ok && b.class == c.class {
			used -= b.cpu
		}
		out[c.class] += used
	}
	return out
}

// agentMemory returns the summed RSS of the agent's processes.
func agentMemory(ag agent) (testbed.ProcessStats, error) {
	var sum testbed.ProcessStats
	for _, p := range ag.programs {
		pid, err := bed.FindProcess(ag.node.Name, p)
		if err != nil {
			return sum, err
		}
		st, err := testbed.ReadProcessStats(pid)
		if err != nil {
			return sum, err
		}
		sum.RSS += st.RSS
		sum.AnonRSS += st.AnonRSS
		sum.CPU += st.CPU + st.ChildCPU
	}
	return sum, nil
}

// sampleAgentRSS samples the agent's summed RSS every interval until the
// returned function is called, which returns the highest sample.
func sampleAgentRSS(ctx context.Context, ag agent, interval time.Duration) (stop func() uint64) {
	return testbed.SamplePeak(ctx, interval, func() (uint64, error) {
		s, err := agentMemory(ag)
		return s.RSS, err
	})
}
