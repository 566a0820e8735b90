package node

import (
	"context"
	"errors"
	"fmt"
	"net"

	v1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/klog/v2"
)

// updateStatus computes the node's status and posts it when it changed, or
// when NodeStatusReportFrequency has passed since the last post.
func (c *Controller) updateStatus(ctx context.Context, info MachineInfo) error {
	c.mu.Lock()
	old := c.node
	ips := c.addresses
	last := c.lastReport
	c.mu.Unlock()
	now := c.cfg.Clock.Now()

	status, err := c.status(ctx, info, ips, &old.Status)
	if err != nil {
		return err
	}
	updated := old.DeepCopy()
	// volumesAttached belongs to the attach/detach controller: keep what
	// was last read, so that the patch leaves it alone.
	status.VolumesAttached = old.Status.VolumesAttached
	updated.Status = status
	due := now.Sub(last) >= c.cfg.Kubelet.NodeStatusReportFrequency.Duration
	if !due && statusEqual(old.Status, updated.Status) {
		return nil
	}
	node, err := c.patch(ctx, old, updated, "status")
	if err != nil {
		return err
	}
	if ready := readyCondition(node); ready != nil && (last.IsZero() || ready.Status != readyStatus(old)) {
		klog.FromContext(ctx).Info("Node status posted", "ready", ready.Status, "reason", ready.Reason, "message", ready.Message)
	}
	posted := ""
	if ready := readyCondition(node); ready != nil && ready.Status != v1.ConditionTrue {
		posted = ready.Message
	}
	c.mu.Lock()
	c.node = node
	c.lastReport = now
	c.postedNotReady = posted
	c.mu.Unlock()
	return nil
}

// status computes the node's status from the machine and the runtime.
func (c *Controller) status(ctx context.Context, info MachineInfo, ips []net.IP, old *v1.NodeStatus) (v1.NodeStatus, error) {
	kc := c.cfg.Kubelet
	usage, err := c.cfg.Machine.Usage(c.cfg.RootDir)
	if err != nil {
		return v1.NodeStatus{}, err
	}
	capList := capacity(info, usage, kc.MaxPods)
	alloc, err := allocatable(capList, kc)
	if err != nil {
		return v1.NodeStatus{}, err
	}
	var extCap, extAlloc v1.ResourceList
	if c.cfg.ExtendedResources != nil {
		extCap, extAlloc = c.cfg.ExtendedResources()
	}
	mergeExtended(capList, alloc, old, extCap, extAlloc)
	p, err := computePressure(usage, info, kc)
	if err != nil {
		return v1.NodeStatus{}, err
	}
	runtimeVersion, notReady := c.readiness(ctx, true)
	var addrs []v1.NodeAddress
	for _, ip := range ips {
		addrs = append(addrs, v1.NodeAddress{Type: v1.NodeInternalIP, Address: ip.String()})
	}
	addrs = append(addrs, v1.NodeAddress{Type: v1.NodeHostName, Address: c.cfg.NodeName})
	var inUse []v1.UniqueVolumeName
	if c.cfg.VolumesInUse != nil {
		inUse = c.cfg.VolumesInUse(ctx)
	}
	return v1.NodeStatus{
		VolumesInUse:    inUse,
		Capacity:        capList,
		Allocatable:     alloc,
		Conditions:      conditions(old.Conditions, notReady, p, c.cfg.Clock.Now()),
		Addresses:       addrs,
		DaemonEndpoints: v1.NodeDaemonEndpoints{KubeletEndpoint: v1.DaemonEndpoint{Port: kc.Port}},
		NodeInfo: v1.NodeSystemInfo{
			MachineID:               info.MachineID,
			SystemUUID:              info.SystemUUID,
			BootID:                  info.BootID,
			KernelVersion:           info.KernelVersion,
			OSImage:                 info.OSImage,
			ContainerRuntimeVersion: runtimeVersion,
			KubeletVersion:          KubeletVersion,
			OperatingSystem:         "linux",
			Architecture:            info.Architecture,
		},
	}, nil
}

// readiness returns the runtime's version and every reason the node is not
// ready. With fresh, the version is asked of the runtime; otherwise the
// one last asked serves while the runtime answers Status.
func (c *Controller) readiness(ctx context.Context, fresh bool) (string, []string) {
	runtimeVersion, notReady := c.runtimeState(ctx, fresh)
	for _, check := range c.cfg.Checks {
		if err := check.Ready(); err != nil {
			notReady = append(notReady, fmt.Sprintf("%s not ready: %v", check.Name, err))
		}
	}
	return runtimeVersion, notReady
}

// runtimeState returns the runtime's version ("containerd://1.6.20") and
// why it makes the node not ready, if it does. The readiness check runs
// every second: it asks the runtime's Status only, and its Version (that
// is, whether it is down or its status check fails) only when Status
// fails, when fresh, or when no version is known yet.
func (c *Controller) runtimeState(ctx context.Context, fresh bool) (string, []string) {
	c.mu.Lock()
	version := c.runtimeVersion
	c.mu.Unlock()
	st, statusErr := c.cfg.Runtime.Status(ctx, false)
	if statusErr != nil || fresh || version == "" {
		v, err := c.cfg.Runtime.Version(ctx, "v1")
		if err != nil {
			return "", []string{fmt.Sprintf("container runtime is down: %v", err)}
		}
		version = v.RuntimeName + "://" + v.RuntimeVersion
		c.mu.Lock()
		c.runtimeVersion = version
		c.mu.Unlock()
	}
	if statusErr != nil {
		return version, []string{fmt.Sprintf("container runtime status check failed: %v", statusErr)}
	}
	var notReady []string
	for _, want := range []string{runtimeapi.RuntimeReady, runtimeapi.NetworkReady} {
		cond := findRuntimeCondition(st.GetStatus(), want)
		switch {
		case cond == nil:
			notReady = append(notReady, fmt.Sprintf("container runtime does not report %s", want))
		case !cond.Status && want == runtimeapi.NetworkReady:
			notReady = append(notReady, fmt.Sprintf("container runtime network not ready: %s=false reason:%s message:%s", want, cond.Reason, cond.Message))
		case !cond.Status:
			notReady = append(notReady, fmt.Sprintf("container runtime not ready: %s=false reason:%s message:%s", want, cond.Reason, cond.Message))
		}
	}
	return version, notReady
}

func findRuntimeCondition(st *runtimeapi.RuntimeStatus, kind string) *runtimeapi.RuntimeCondition {
	for _, c := range st.GetConditions() {
		if c.Type == kind {
			return c
		}
	}
	return nil
}

// statusEqual compares two statuses ignoring heartbeat times.
func statusEqual(a, b v1.NodeStatus) bool {
	strip := func(s v1.NodeStatus) v1.NodeStatus {
		s = *s.DeepCopy()
		for i := range s.Conditions {
			s.Conditions[i].LastHeartbeatTime = metav1.Time{}
		}
		return s
	}
	return apiequality.Semantic.DeepEqual(strip(a), strip(b))
}

func readyCondition(n *v1.Node) *v1.NodeCondition {
	for i := range n.Status.Conditions {
		if n.Status.Conditions[i].Type == v1.NodeReady {
			return &n.Status.Conditions[i]
		}
	}
	return nil
}

func readyStatus(n *v1.Node) v1.ConditionStatus {
	if c := readyCondition(n); c != nil {
		return c.Status
	}
	return v1.ConditionUnknown
}

// ErrNotRegistered is returned by Healthy before the node is registered.
var ErrNotRegistered = errors.New("node not registered yet")

// Healthy returns nil once the node is registered.
func (c *Controller) Healthy() error {
	if !c.Registered() {
		return ErrNotRegistered
	}
	return nil
}
