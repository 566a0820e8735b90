// Package csi is the node side of the Container Storage Interface: it
// registers CSI drivers found through plugin registration, keeps the node's
// CSINode object, and stages, publishes, unpublishes and unstages CSI
// volumes for pods at the paths the kubelet uses, so that drivers written
// for the kubelet find what they expect.
package csi
