package csi

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"slices"
	"time"

	v1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/strategicpatch"
	"k8s.io/client-go/util/retry"
	"k8s.io/klog/v2"
)

// NodeIDAnnotation is the Node annotation that maps each registered CSI
// driver to its node ID (a JSON object), as the kubelet keeps it.
const NodeIDAnnotation = "csi.volume.kubernetes.io/nodeid"

var metav1GetOptions = metav1.GetOptions{}

// node returns the Node object.
func (m *Manager) node(ctx context.Context) (*v1.Node, error) {
	n, err := m.cfg.Client.CoreV1().Nodes().Get(ctx, m.cfg.NodeName, metav1GetOptions)
	if err != nil {
		return nil, fmt.Errorf("get node %s: %w", m.cfg.NodeName, err)
	}
	return n, nil
}

// initCSINode creates the node's CSINode object, owned by the Node, when
// it is missing, and replaces one left over from another Node of the same
// name (the owner's UID differs).
func (m *Manager) initCSINode(ctx context.Context) error {
	m.nodeInfo.Lock()
	defer m.nodeInfo.Unlock()
	_, err := m.csiNode(ctx)
	return err
}

// csiNode returns the node's CSINode object, creating it when missing.
// The caller holds m.nodeInfo.
func (m *Manager) csiNode(ctx context.Context) (*storagev1.CSINode, error) {
	node, err := m.node(ctx)
	if err != nil {
		return nil, err
	}
	client := m.cfg.Client.StorageV1().CSINodes()
	cn, err := client.Get(ctx, m.cfg.NodeName, metav1GetOptions)
	if err == nil && !ownedBy(cn, node) {
		klog.FromContext(ctx).Info("Deleting a CSINode object owned by another Node of this name", "csinode", cn.Name)
		if err := client.Delete(ctx, cn.Name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &cn.UID}}); err != nil && !apierrors.IsNotFound(err) {
			return nil, fmt.Errorf("delete CSINode %s of another node: %w", cn.Name, err)
		}
		err = apierrors.NewNotFound(storagev1.Resource("csinodes"), cn.Name)
	}
	if !apierrors.IsNotFound(err) {
		if err != nil {
			return nil, fmt.Errorf("get CSINode %s: %w", m.cfg.NodeName, err)
		}
		return cn, nil
	}
	want := &storagev1.CSINode{
		ObjectMeta: metav1.ObjectMeta{
			Name: m.cfg.NodeName,
			OwnerReferences: []metav1.OwnerReference{{
				APIVersion: "v1", Kind: "Node", Name: node.Name, UID: node.UID,
			}},
		},
		Spec: storagev1.CSINodeSpec{Drivers: []storagev1.CSINodeDriver{}},
	}
	cn, err = client.Create(ctx, want, metav1.CreateOptions{})
	if err != nil {
		return nil, fmt.Errorf("create CSINode %s: %w", m.cfg.NodeName, err)
	}
	return cn, nil
}

// ownedBy tells whether the CSINode's owner reference is node.
func ownedBy(cn *storagev1.CSINode, node *v1.Node) bool {
	for _, ref := range cn.OwnerReferences {
		if ref.Kind == "Node" && ref.Name == node.Name && ref.UID == node.UID {
			return true
		}
	}
	return false
}

// nodeWait bounds how long a registration waits for the Node object, which
// berth creates at start, maybe after a driver's socket was found.
const nodeWait = 30 * time.Second

// waitForNode waits until the Node object exists, up to nodeWait.
func (m *Manager) waitForNode(ctx context.Context) error {
	deadline := m.cfg.Clock.Now().Add(nodeWait)
	for {
		_, err := m.node(ctx)
		if err == nil || !apierrors.IsNotFound(err) || !m.cfg.Clock.Now().Before(deadline) {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-m.cfg.Clock.After(time.Second):
		}
	}
}

// installDriver records a registered driver on the Node (node ID
// annotation, topology labels) and in the CSINode object.
func (m *Manager) installDriver(ctx context.Context, d *driver) error {
	if err := m.waitForNode(ctx); err != nil {
		return err
	}
	m.nodeInfo.Lock()
	defer m.nodeInfo.Unlock()
	err := m.patchNode(ctx, func(n *v1.Node) error {
		ids, err := nodeIDs(n)
		if err != nil {
			return err
		}
		for k, v := range d.topology {
			if cur, ok := n.Labels[k]; ok && cur != v {
				return fmt.Errorf("detected topology value collision: driver reported %q:%q but existing label is %q:%q", k, v, k, cur)
			}
		}
		ids[d.name] = d.nodeID
		if n.Labels == nil && len(d.topology) > 0 {
			n.Labels = map[string]string{}
		}
		maps.Copy(n.Labels, d.topology)
		return setNodeIDs(n, ids)
	})
	if err != nil {
		return fmt.Errorf("error updating Node object with CSI driver node info: %w", err)
	}
	entry := storagev1.CSINodeDriver{
		Name:         d.name,
		NodeID:       d.nodeID,
		TopologyKeys: slices.Sorted(maps.Keys(d.topology)),
	}
	if d.maxVolumes > 0 {
		count := int32(min(d.maxVolumes, math.MaxInt32))
		entry.Allocatable = &storagev1.VolumeNodeResources{Count: &count}
	}
	err = m.updateCSINode(ctx, func(drivers []storagev1.CSINodeDriver) []storagev1.CSINodeDriver {
		drivers = slices.DeleteFunc(drivers, func(e storagev1.CSINodeDriver) bool { return e.Name == d.name })
		return append(drivers, entry)
	})
	if err != nil {
		return fmt.Errorf("error updating CSINode object with CSI driver node info: %w", err)
	}
	return nil
}

// uninstallDriver removes a driver from the CSINode object and the Node's
// node ID annotation.
func (m *Manager) uninstallDriver(ctx context.Context, name string) error {
	m.nodeInfo.Lock()
	defer m.nodeInfo.Unlock()
	err := m.updateCSINode(ctx, func(drivers []storagev1.CSINodeDriver) []storagev1.CSINodeDriver {
		return slices.DeleteFunc(drivers, func(e storagev1.CSINodeDriver) bool { return e.Name == name })
	})
	if err != nil {
		return fmt.Errorf("error uninstalling CSI driver from CSINode object: %w", err)
	}
	err = m.patchNode(ctx, func(n *v1.Node) error {
		ids, err := nodeIDs(n)
		if err != nil {
			return err
		}
		delete(ids, name)
		return setNodeIDs(n, ids)
	})
	if err != nil {
		return fmt.Errorf("error removing CSI driver node info from Node object: %w", err)
	}
	return nil
}

// updateCSINode applies change to the CSINode's drivers and updates the
// object when they changed, retrying on conflicts.
func (m *Manager) updateCSINode(ctx context.Context, change func([]storagev1.CSINodeDriver) []storagev1.CSINodeDriver) error {
	return retry.RetryOnConflict(retry.DefaultRetry, func() error {
		cn, err := m.csiNode(ctx)
		if err != nil {
			return err
		}
		drivers := change(slices.Clone(cn.Spec.Drivers))
		if apiequality.Semantic.DeepEqual(drivers, cn.Spec.Drivers) {
			return nil
		}
		cn = cn.DeepCopy()
		cn.Spec.Drivers = drivers
		_, err = m.cfg.Client.StorageV1().CSINodes().Update(ctx, cn, metav1.UpdateOptions{})
		return err
	})
}

// patchNode applies change to the Node's metadata and patches its status
// subresource, as the kubelet does: the node's credentials may patch
// nodes/status, and the patch carries the labels and annotations.
func (m *Manager) patchNode(ctx context.Context, change func(*v1.Node) error) error {
	node, err := m.node(ctx)
	if err != nil {
		return err
	}
	updated := node.DeepCopy()
	if err := change(updated); err != nil {
		return err
	}
	if apiequality.Semantic.DeepEqual(node.ObjectMeta, updated.ObjectMeta) {
		return nil
	}
	oldJSON, err := json.Marshal(node)
	if err != nil {
		return err
	}
	newJSON, err := json.Marshal(updated)
	if err != nil {
		return err
	}
	patch, err := strategicpatch.CreateTwoWayMergePatch(oldJSON, newJSON, v1.Node{})
	if err != nil {
		return fmt.Errorf("node patch: %w", err)
	}
	_, err = m.cfg.Client.CoreV1().Nodes().Patch(ctx, m.cfg.NodeName, types.StrategicMergePatchType, patch, metav1.PatchOptions{}, "status")
	if err != nil {
		return fmt.Errorf("patch node %s: %w", m.cfg.NodeName, err)
	}
	return nil
}

// nodeIDs parses the Node's NodeIDAnnotation.
func nodeIDs(n *v1.Node) (map[string]string, error) {
	ids := map[string]string{}
	if v := n.Annotations[NodeIDAnnotation]; v != "" {
		if err := json.Unmarshal([]byte(v), &ids); err != nil {
			return nil, fmt.Errorf("failed to parse node's %q annotation value (%q): %w", NodeIDAnnotation, v, err)
		}
	}
	return ids, nil
}

// setNodeIDs writes ids to the Node's NodeIDAnnotation, removing it when
// ids is empty.
func setNodeIDs(n *v1.Node, ids map[string]string) error {
	if len(ids) == 0 {
		delete(n.Annotations, NodeIDAnnotation)
		return nil
	}
	b, err := json.Marshal(ids)
	if err != nil {
		return err
	}
	if n.Annotations == nil {
		n.Annotations = map[string]string{}
	}
	n.Annotations[NodeIDAnnotation] = string(b)
	return nil
}
