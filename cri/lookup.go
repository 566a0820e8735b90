package cri

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strconv"

	internalapi "k8s.io/cri-api/pkg/apis"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// This file finds a pod's sandboxes and a container's instances through CRI
// by the kubelet's labels, for the kubelet API (logs, exec, attach,
// port-forward) and stats: they name a pod by namespace and name, sometimes
// with a UID, and a container by its name in the pod's spec. A pod deleted
// and created again keeps its name, not its UID, and leaves its old
// sandboxes behind a while; a restarted container leaves its old instances.
// Both lists are ordered the same way everywhere: newest first.

// PodSandboxes returns the sandboxes of pod namespace/name, of every UID and
// state, newest first (see CompareSandboxes).
func PodSandboxes(ctx context.Context, rt internalapi.RuntimeService, namespace, name string) ([]*runtimeapi.PodSandbox, error) {
	sandboxes, err := rt.ListPodSandbox(ctx, &runtimeapi.PodSandboxFilter{
		LabelSelector: map[string]string{LabelPodNamespace: namespace, LabelPodName: name},
	})
	if err != nil {
		return nil, fmt.Errorf("list sandboxes of pod %s/%s: %w", namespace, name, err)
	}
	slices.SortStableFunc(sandboxes, func(a, b *runtimeapi.PodSandbox) int { return CompareSandboxes(b, a) })
	return sandboxes, nil
}

// CompareSandboxes orders sandboxes by age: the one created later is the
// greater, and of two created at the same time, the later attempt.
func CompareSandboxes(a, b *runtimeapi.PodSandbox) int {
	return cmp.Or(cmp.Compare(a.GetCreatedAt(), b.GetCreatedAt()),
		cmp.Compare(a.GetMetadata().GetAttempt(), b.GetMetadata().GetAttempt()))
}

// SandboxUID returns the UID of the pod of sb: its metadata's, else its
// label's.
func SandboxUID(sb *runtimeapi.PodSandbox) string {
	return cmp.Or(sb.GetMetadata().GetUid(), sb.GetLabels()[LabelPodUID])
}

// NewestPerPod keeps the newest of the sandboxes of each pod namespace/name
// (a pod created again under its name may leave its old one behind a
// while), in no particular order.
func NewestPerPod(sandboxes []*runtimeapi.PodSandbox) []*runtimeapi.PodSandbox {
	newest := map[[2]string]*runtimeapi.PodSandbox{}
	for _, sb := range sandboxes {
		key := [2]string{sb.GetMetadata().GetNamespace(), sb.GetMetadata().GetName()}
		if cur := newest[key]; cur == nil || CompareSandboxes(sb, cur) > 0 {
			newest[key] = sb
		}
	}
	out := make([]*runtimeapi.PodSandbox, 0, len(newest))
	for _, sb := range newest {
		out = append(out, sb)
	}
	return out
}

// InstanceQuery names the instances of one container of a pod.
type InstanceQuery struct {
	// Name is the container's name in the pod's spec.
	Name string
	// SandboxID, if set, keeps the instances in that sandbox.
	SandboxID string
	// PodUID, if set, keeps the instances of the pod of that UID, in any of
	// its sandboxes.
	PodUID string
}

// ContainerInstances returns the instances of the container q names, of
// every state, newest first (see CompareContainers).
func ContainerInstances(ctx context.Context, rt internalapi.RuntimeService, q InstanceQuery) ([]*runtimeapi.Container, error) {
	selector := map[string]string{LabelContainerName: q.Name}
	if q.PodUID != "" {
		selector[LabelPodUID] = q.PodUID
	}
	containers, err := rt.ListContainers(ctx, &runtimeapi.ContainerFilter{PodSandboxId: q.SandboxID, LabelSelector: selector})
	if err != nil {
		return nil, fmt.Errorf("list instances of container %q: %w", q.Name, err)
	}
	slices.SortStableFunc(containers, func(a, b *runtimeapi.Container) int { return CompareContainers(b, a) })
	return containers, nil
}

// CompareContainers orders instances of a container by age: the one
// created later is the greater; of two created at the same time, the one
// with the higher restart count, then the later attempt.
func CompareContainers(a, b *runtimeapi.Container) int {
	return cmp.Or(cmp.Compare(a.GetCreatedAt(), b.GetCreatedAt()),
		cmp.Compare(RestartCount(a), RestartCount(b)),
		cmp.Compare(a.GetMetadata().GetAttempt(), b.GetMetadata().GetAttempt()))
}

// RestartCount returns the restart count the kubelet's annotation gives c;
// 0 without one.
func RestartCount(c *runtimeapi.Container) int64 {
	n, _ := strconv.ParseInt(c.GetAnnotations()[AnnotationRestartCount], 10, 32)
	return n
}
