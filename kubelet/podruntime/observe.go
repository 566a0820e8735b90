package podruntime

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"time"

	"k8s.io/apimachinery/pkg/types"
	internalapi "k8s.io/cri-api/pkg/apis"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/berthnode/berth/cri"
)

// Labels and annotations berth puts on sandboxes and containers. They are the
// kubelet's, so crictl and other tools show berth's pods the usual way and a
// restarted berth (or a kubelet) recognizes them.
const (
	labelPodName         = cri.LabelPodName
	labelPodNamespace    = cri.LabelPodNamespace
	labelPodUID          = cri.LabelPodUID
	labelContainerName   = cri.LabelContainerName
	annotationHash       = "io.kubernetes.container.hash"
	annotationRestarts   = cri.AnnotationRestartCount
	annotationTermPath   = "io.kubernetes.container.terminationMessagePath"
	annotationTermPolicy = "io.kubernetes.container.terminationMessagePolicy"
	annotationGrace      = "io.kubernetes.pod.terminationGracePeriod"
	// annotationTermFile is berth's own: the host file behind the
	// termination message path, read when the container exits.
	annotationTermFile = "berth.io/termination-message-file"
)

// PodState is what CRI runs for one pod: its sandboxes, newest first, and
// its containers in every sandbox, newest first.
type PodState struct {
	// Sandboxes are the pod's sandboxes, newest first.
	Sandboxes []*SandboxState
	// Containers are the pod's containers of every sandbox, newest first.
	Containers []*ContainerState
}

// SandboxState is one observed pod sandbox.
type SandboxState struct {
	// ID is the runtime's sandbox ID.
	ID string
	// Attempt counts the pod's sandboxes: 0 for the first.
	Attempt uint32
	// Ready tells whether the sandbox is ready (not stopped).
	Ready bool
	// CreatedAt is when the runtime made the sandbox.
	CreatedAt time.Time
	// IPs are the sandbox's pod IPs, primary first; known only for the
	// newest sandbox.
	IPs []string
	// HostNetwork tells whether the sandbox uses the node's network
	// namespace; known only for the newest sandbox, and only when the
	// runtime reports namespaces (NetworkKnown).
	HostNetwork  bool
	NetworkKnown bool
}

// ContainerState is one observed container.
type ContainerState struct {
	// ID is the runtime's container ID.
	ID string
	// Name is the container's name in the pod spec.
	Name string
	// SandboxID is the ID of the sandbox the container runs in.
	SandboxID string
	// State is the runtime's state of the container.
	State runtimeapi.ContainerState
	// CreatedAt, StartedAt and FinishedAt are when the runtime made,
	// started and saw the end of the container (zero: not yet).
	CreatedAt, StartedAt, FinishedAt time.Time
	// ExitCode, Reason and Message are how the container ended.
	ExitCode int32
	Reason   string
	Message  string
	// ImageRef is the image the container runs, as the runtime names it.
	ImageRef string
	// RestartCount is the restart count berth gave the container.
	RestartCount int32
	// Hash is the ContainerHash of the spec the container was made from.
	Hash string
	// TermFile is the host file behind the termination message path, and
	// TermPolicy the container's terminationMessagePolicy.
	TermFile   string
	TermPolicy string
	// LogPath is the container's log file on the host.
	LogPath string
}

// Running tells whether the container runs.
func (c *ContainerState) Running() bool {
	return c.State == runtimeapi.ContainerState_CONTAINER_RUNNING
}

// Exited tells whether the container ran and stopped.
func (c *ContainerState) Exited() bool { return c.State == runtimeapi.ContainerState_CONTAINER_EXITED }

// NewestSandbox returns the pod's newest sandbox or nil.
func (r *PodState) NewestSandbox() *SandboxState {
	if r == nil || len(r.Sandboxes) == 0 {
		return nil
	}
	return r.Sandboxes[0]
}

// Current returns the newest container named name in the newest sandbox.
func (r *PodState) Current(name string) *ContainerState {
	sb := r.NewestSandbox()
	if sb == nil {
		return nil
	}
	for _, c := range r.Containers {
		if c.Name == name && c.SandboxID == sb.ID {
			return c
		}
	}
	return nil
}

// Instances returns the containers named name of every sandbox, newest first.
func (r *PodState) Instances(name string) []*ContainerState {
	if r == nil {
		return nil
	}
	var out []*ContainerState
	for _, c := range r.Containers {
		if c.Name == name {
			out = append(out, c)
		}
	}
	return out
}

// NextRestartCount is the restart count for the next container named name:
// one more than the newest one's, counting across sandboxes.
func (r *PodState) NextRestartCount(name string) int32 {
	if inst := r.Instances(name); len(inst) > 0 {
		return inst[0].RestartCount + 1
	}
	return 0
}

// RunningContainers returns the containers in the running state.
func (r *PodState) RunningContainers() []*ContainerState {
	var out []*ContainerState
	for _, c := range r.Containers {
		if c.Running() {
			out = append(out, c)
		}
	}
	return out
}

// Observe lists the sandboxes and containers CRI holds for the pod with uid,
// with the details the pod worker needs.
func Observe(ctx context.Context, rt internalapi.RuntimeService, uid types.UID) (*PodState, error) {
	selector := map[string]string{labelPodUID: string(uid)}
	sandboxes, err := rt.ListPodSandbox(ctx, &runtimeapi.PodSandboxFilter{LabelSelector: selector})
	if err != nil {
		return nil, fmt.Errorf("list sandboxes of pod %s: %w", uid, err)
	}
	containers, err := rt.ListContainers(ctx, &runtimeapi.ContainerFilter{LabelSelector: selector})
	if err != nil {
		return nil, fmt.Errorf("list containers of pod %s: %w", uid, err)
	}
	out := &PodState{}
	for _, s := range sandboxes {
		out.Sandboxes = append(out.Sandboxes, &SandboxState{
			ID:        s.Id,
			Attempt:   s.GetMetadata().GetAttempt(),
			Ready:     s.State == runtimeapi.PodSandboxState_SANDBOX_READY,
			CreatedAt: time.Unix(0, s.CreatedAt),
		})
	}
	sort.SliceStable(out.Sandboxes, func(i, j int) bool {
		a, b := out.Sandboxes[i], out.Sandboxes[j]
		if !a.CreatedAt.Equal(b.CreatedAt) {
			return a.CreatedAt.After(b.CreatedAt)
		}
		return a.Attempt > b.Attempt
	})
	if sb := out.NewestSandbox(); sb != nil {
		if err := fillSandboxStatus(ctx, rt, sb); err != nil {
			return nil, err
		}
	}
	for _, c := range containers {
		st, err := rt.ContainerStatus(ctx, c.Id, false)
		if err != nil {
			return nil, fmt.Errorf("status of container %s of pod %s: %w", c.Id, uid, err)
		}
		out.Containers = append(out.Containers, toContainerState(c, st.GetStatus()))
	}
	sort.SliceStable(out.Containers, func(i, j int) bool {
		a, b := out.Containers[i], out.Containers[j]
		if !a.CreatedAt.Equal(b.CreatedAt) {
			return a.CreatedAt.After(b.CreatedAt)
		}
		return a.RestartCount > b.RestartCount
	})
	return out, nil
}

func fillSandboxStatus(ctx context.Context, rt internalapi.RuntimeService, sb *SandboxState) error {
	resp, err := rt.PodSandboxStatus(ctx, sb.ID, false)
	if err != nil {
		return fmt.Errorf("status of sandbox %s: %w", sb.ID, err)
	}
	st := resp.GetStatus()
	sb.Ready = st.GetState() == runtimeapi.PodSandboxState_SANDBOX_READY
	if opts := st.GetLinux().GetNamespaces().GetOptions(); opts != nil {
		sb.NetworkKnown = true
		sb.HostNetwork = opts.GetNetwork() == runtimeapi.NamespaceMode_NODE
	}
	if ip := st.GetNetwork().GetIp(); ip != "" {
		sb.IPs = append(sb.IPs, ip)
	}
	for _, ip := range st.GetNetwork().GetAdditionalIps() {
		if ip.GetIp() != "" {
			sb.IPs = append(sb.IPs, ip.GetIp())
		}
	}
	return nil
}

func toContainerState(c *runtimeapi.Container, st *runtimeapi.ContainerStatus) *ContainerState {
	ann := c.Annotations
	restarts, _ := strconv.ParseInt(ann[annotationRestarts], 10, 32)
	out := &ContainerState{
		ID:           c.Id,
		Name:         c.Labels[labelContainerName],
		SandboxID:    c.PodSandboxId,
		State:        c.State,
		CreatedAt:    time.Unix(0, c.CreatedAt),
		ImageRef:     c.ImageRef,
		RestartCount: int32(restarts),
		Hash:         ann[annotationHash],
		TermFile:     ann[annotationTermFile],
		TermPolicy:   ann[annotationTermPolicy],
	}
	if st != nil {
		out.State = st.State
		out.ExitCode = st.ExitCode
		out.Reason = st.Reason
		out.Message = st.Message
		out.LogPath = st.LogPath
		if st.ImageRef != "" {
			out.ImageRef = st.ImageRef
		}
		if st.StartedAt > 0 {
			out.StartedAt = time.Unix(0, st.StartedAt)
		}
		if st.FinishedAt > 0 {
			out.FinishedAt = time.Unix(0, st.FinishedAt)
		}
	}
	return out
}
