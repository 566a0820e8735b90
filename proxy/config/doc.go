// Package config reads kube-proxy's own settings, a KubeProxyConfiguration
// (kubeproxy.config.k8s.io/v1alpha1), from berth's optional file and from
// the cluster's kube-system/kube-proxy ConfigMap that kubeadm writes, merges
// them (the file wins where it sets a field), applies kube-proxy's
// defaults, and resolves the fields berth uses into typed Settings.
package config
