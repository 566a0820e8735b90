// Package config reads kube-proxy's own settings, a KubeProxyConfiguration
// (kubeproxy.config.k8s.io/v1alpha1), from berth's optional file and from
// the cluster's kube-system/kube-proxy ConfigMap that kubeadm writes, merges
// them (the file wins where it sets a field), applies kube-proxy's
// defaults, and resolves the fields berth uses into typed Settings.
//
// The proxy mode has one precedence (ChooseMode): berth's own proxy.mode,
// then the file's, then the ConfigMap's, then DefaultMode; a source that
// loses with another mode is logged as a conflict naming both. Every
// setting Resolve parses is either applied (Conntrack.Sysctls gives the
// kernel parameters of the conntrack ones) or listed by Settings.Refused
// with the reason, which berth logs at startup. docs/proxy.md has the
// table.
package config
