package node

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	v1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/strategicpatch"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/component-helpers/apimachinery/lease"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/klog/v2"
	"k8s.io/utils/clock"

	"github.com/berthnode/berth/kubelet/config"
	"github.com/berthnode/berth/kubelet/devices"
)

// Runtime is the part of the CRI runtime service the node status needs.
type Runtime interface {
	// Status returns the runtime's conditions.
	Status(ctx context.Context, verbose bool) (*runtimeapi.StatusResponse, error)
	// Version returns the runtime's name and version.
	Version(ctx context.Context, apiVersion string) (*runtimeapi.VersionResponse, error)
}

// Check is one thing the node's Ready condition depends on.
type Check struct {
	// Name says what is checked, e.g. "pod workers".
	Name string
	// Ready returns nil when it is ready, else why not.
	Ready func() error
}

// Config says which node to keep current and how.
type Config struct {
	// NodeName is the Node's name.
	NodeName string
	// Client has the node's credentials.
	Client kubernetes.Interface
	// Runtime is the container runtime.
	Runtime Runtime
	// Kubelet holds the (defaulted) KubeletConfiguration.
	Kubelet *config.KubeletConfiguration
	// NodeIPs are the node's addresses from --node-ip; empty means the
	// addresses of the default route's interface.
	NodeIPs []net.IP
	// Labels are added at registration (--node-labels).
	Labels map[string]string
	// Taints are set at registration (--register-with-taints).
	Taints []v1.Taint
	// RootDir is the kubelet root directory: ephemeral-storage capacity and
	// disk pressure are those of its filesystem.
	RootDir string
	// Checks are the readiness checks besides the runtime's own.
	Checks []Check
	// Machine reads the machine's facts.
	Machine Machine
	// Clock tells the time.
	Clock clock.WithTicker
	// VolumesInUse returns the attachable volumes the node uses, for the
	// status's volumesInUse (the attach/detach controller does not detach
	// them); nil reports none.
	VolumesInUse func(ctx context.Context) []v1.UniqueVolumeName
	// ExtendedResources returns the capacity and allocatable of the
	// extended resources berth manages (device plugins'); nil for none.
	// Call Kick when they change.
	ExtendedResources func() (capacity, allocatable v1.ResourceList)
	// ResetExtendedResources tells, when berth adopts an existing Node,
	// whether its extended resources are stale (the device manager has no
	// checkpoint: the node's disk was wiped); they are set to 0 then, as
	// the kubelet does. nil: never.
	ResetExtendedResources func() bool
}

// Validate reports every problem of c.
func (c *Config) Validate() error {
	var errs []error
	if c.NodeName == "" {
		errs = append(errs, errors.New("node name: required"))
	}
	if c.Client == nil || c.Runtime == nil || c.Kubelet == nil || c.Machine == nil || c.Clock == nil {
		errs = append(errs, errors.New("client, runtime, kubelet configuration, machine and clock: required"))
	}
	if c.RootDir == "" {
		errs = append(errs, errors.New("root dir: required"))
	}
	return errors.Join(errs...)
}

// Controller registers the node and keeps its status and lease current.
type Controller struct {
	cfg        Config
	registered atomic.Bool
	kick       chan struct{}

	mu         sync.Mutex
	node       *v1.Node  // as last read from or written to the apiserver
	addresses  []net.IP  // the node's IPs, once known
	lastReport time.Time // when the status was last posted
	// postedNotReady is why the node was not ready in the last post
	// ("" when it was ready).
	postedNotReady string
	// runtimeVersion is the runtime's version as last asked.
	runtimeVersion string
}

// New returns a controller for cfg.
func New(cfg Config) (*Controller, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("node config: %w", err)
	}
	return &Controller{cfg: cfg, kick: make(chan struct{}, 1)}, nil
}

// Registered tells whether the Node object exists.
func (c *Controller) Registered() bool { return c.registered.Load() }

// NodeIPs returns the node's addresses, primary first (nil until known).
func (c *Controller) NodeIPs() []net.IP {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.addresses
}

// Kick asks for a status update now, e.g. after a readiness change.
func (c *Controller) Kick() {
	select {
	case c.kick <- struct{}{}:
	default:
	}
}

// Run registers the node (retrying until it succeeds), then renews the
// lease and updates the status until ctx ends.
func (c *Controller) Run(ctx context.Context) error {
	log := klog.FromContext(ctx).WithValues("node", c.cfg.NodeName)
	ctx = klog.NewContext(ctx, log)
	info, err := c.cfg.Machine.Info()
	if err != nil {
		return fmt.Errorf("read machine info: %w", err)
	}
	ips := c.cfg.NodeIPs
	if len(ips) == 0 {
		if ips, err = c.cfg.Machine.DefaultRouteIPs(); err != nil {
			return err
		}
	}
	c.mu.Lock()
	c.addresses = ips
	c.mu.Unlock()
	if err := c.register(ctx, info); err != nil {
		return err
	}
	kc := c.cfg.Kubelet
	leases := lease.NewController(c.cfg.Clock, c.cfg.Client, c.cfg.NodeName, kc.NodeLeaseDurationSeconds,
		nil, time.Duration(kc.NodeLeaseDurationSeconds)*time.Second/4, c.cfg.NodeName, v1.NamespaceNodeLease,
		c.setLeaseOwner)
	go leases.Run(ctx)

	ticker := c.cfg.Clock.NewTicker(kc.NodeStatusUpdateFrequency.Duration)
	defer ticker.Stop()
	// Readiness is checked more often than the status is computed, so
	// that a runtime going away or coming back shows within a second or
	// two rather than a full status period.
	readiness := c.cfg.Clock.NewTicker(readinessCheckPeriod)
	defer readiness.Stop()
	for {
		if err := c.updateStatus(ctx, info); err != nil {
			log.Error(err, "Updating node status failed; will retry")
		}
		if !c.waitForUpdate(ctx, ticker, readiness) {
			return nil
		}
	}
}

// waitForUpdate blocks until the status is due (period, kick, or a
// readiness change) and returns true, or returns false when ctx ends.
func (c *Controller) waitForUpdate(ctx context.Context, period, readiness clock.Ticker) bool {
	for {
		select {
		case <-ctx.Done():
			return false
		case <-period.C():
			return true
		case <-c.kick:
			return true
		case <-readiness.C():
			if c.readinessChanged(ctx) {
				return true
			}
		}
	}
}

// readinessCheckPeriod is how often the node's readiness is checked between
// status updates.
const readinessCheckPeriod = time.Second

// readinessChanged tells whether the node's readiness differs from what
// was last posted.
func (c *Controller) readinessChanged(ctx context.Context) bool {
	_, notReady := c.readiness(ctx, false)
	c.mu.Lock()
	defer c.mu.Unlock()
	return strings.Join(notReady, "; ") != c.postedNotReady
}

// setLeaseOwner makes the Node own its Lease, as kubelet does, so the Lease
// goes with the Node.
func (c *Controller) setLeaseOwner(l *coordinationv1.Lease) error {
	c.mu.Lock()
	node := c.node
	c.mu.Unlock()
	if node == nil || len(l.OwnerReferences) > 0 {
		return nil
	}
	l.OwnerReferences = []metav1.OwnerReference{{
		APIVersion: "v1", Kind: "Node", Name: node.Name, UID: node.UID,
	}}
	return nil
}

// registerBackoff is the pause between registration attempts: 1 s doubling
// to 7 s, the kubelet's cap, then 7 s until the API server answers.
var registerBackoff = wait.Backoff{Duration: time.Second, Factor: 2, Cap: 7 * time.Second, Steps: math.MaxInt32}

// register creates the Node, or adopts the existing one, retrying with
// backoff until it succeeds or ctx ends. The pauses are waited on the
// injected clock, which tests replace.
func (c *Controller) register(ctx context.Context, info MachineInfo) error {
	log := klog.FromContext(ctx)
	backoff := registerBackoff
	for {
		node, err := c.registerOnce(ctx, info)
		if err == nil {
			c.mu.Lock()
			c.node = node
			c.mu.Unlock()
			c.registered.Store(true)
			log.Info("Node registered")
			return nil
		}
		log.Error(err, "Registering node failed; will retry")
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-c.cfg.Clock.After(backoff.Step()):
		}
	}
}

func (c *Controller) registerOnce(ctx context.Context, info MachineInfo) (*v1.Node, error) {
	want := c.initialNode(info)
	created, err := c.cfg.Client.CoreV1().Nodes().Create(ctx, want, metav1.CreateOptions{})
	if err == nil {
		return created, nil
	}
	if !apierrors.IsAlreadyExists(err) {
		return nil, fmt.Errorf("create node: %w", err)
	}
	existing, err := c.cfg.Client.CoreV1().Nodes().Get(ctx, c.cfg.NodeName, metav1.GetOptions{})
	if err != nil {
		return nil, fmt.Errorf("get existing node: %w", err)
	}
	// Reconcile the labels berth owns; keep everything else the cluster
	// has set since.
	updated := existing.DeepCopy()
	if updated.Labels == nil {
		updated.Labels = map[string]string{}
	}
	for k, v := range want.Labels {
		updated.Labels[k] = v
	}
	node := existing
	if !apiequality.Semantic.DeepEqual(existing.Labels, updated.Labels) {
		if node, err = c.patch(ctx, existing, updated, ""); err != nil {
			return nil, err
		}
	}
	if c.cfg.ResetExtendedResources != nil && c.cfg.ResetExtendedResources() {
		return c.zeroExtended(ctx, node)
	}
	return node, nil
}

// zeroExtended sets the existing Node's extended resources to 0, as the
// kubelet does when it finds a Node it has no device state for: what the
// Node says was true of devices this node no longer knows. Device
// plugins set theirs again when they register.
func (c *Controller) zeroExtended(ctx context.Context, node *v1.Node) (*v1.Node, error) {
	updated := node.DeepCopy()
	var zeroed []v1.ResourceName
	for name, q := range node.Status.Capacity {
		if devices.IsExtendedResourceName(name) && !q.IsZero() {
			zeroed = append(zeroed, name)
			updated.Status.Capacity[name] = *resource.NewQuantity(0, resource.DecimalSI)
			if updated.Status.Allocatable == nil {
				updated.Status.Allocatable = v1.ResourceList{}
			}
			updated.Status.Allocatable[name] = *resource.NewQuantity(0, resource.DecimalSI)
		}
	}
	if len(zeroed) == 0 {
		return node, nil
	}
	klog.FromContext(ctx).Info("Zeroing the extended resources of the existing Node: berth has no device state for them", "resources", zeroed)
	return c.patch(ctx, node, updated, "status")
}

// initialNode is the Node berth creates.
func (c *Controller) initialNode(info MachineInfo) *v1.Node {
	labels := map[string]string{
		v1.LabelHostname:          c.cfg.NodeName,
		v1.LabelOSStable:          "linux",
		v1.LabelArchStable:        info.Architecture,
		"beta.kubernetes.io/os":   "linux",
		"beta.kubernetes.io/arch": info.Architecture,
	}
	for k, v := range c.cfg.Labels {
		labels[k] = v
	}
	return &v1.Node{
		ObjectMeta: metav1.ObjectMeta{
			Name:        c.cfg.NodeName,
			Labels:      labels,
			Annotations: map[string]string{"volumes.kubernetes.io/controller-managed-attach-detach": "true"},
		},
		Spec: v1.NodeSpec{Taints: c.cfg.Taints},
	}
}

// patch sends the strategic merge patch from old to new (of the status
// subresource when subresource is "status").
func (c *Controller) patch(ctx context.Context, old, updated *v1.Node, subresource string) (*v1.Node, error) {
	oldJSON, err := json.Marshal(old)
	if err != nil {
		return nil, err
	}
	newJSON, err := json.Marshal(updated)
	if err != nil {
		return nil, err
	}
	patch, err := strategicpatch.CreateTwoWayMergePatch(oldJSON, newJSON, v1.Node{})
	if err != nil {
		return nil, fmt.Errorf("node patch: %w", err)
	}
	var sub []string
	if subresource != "" {
		sub = []string{subresource}
	}
	node, err := c.cfg.Client.CoreV1().Nodes().Patch(ctx, c.cfg.NodeName, types.StrategicMergePatchType, patch, metav1.PatchOptions{}, sub...)
	if err != nil {
		return nil, fmt.Errorf("patch node %s: %w", subresource, err)
	}
	return node, nil
}
