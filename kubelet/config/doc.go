// Package config reads the kubelet's settings the way a kubeadm worker has
// them: the KubeletConfiguration file (/var/lib/kubelet/config.yaml, from the
// cluster's kubelet-config ConfigMap), the node-specific flags kubeadm join
// records in /var/lib/kubelet/kubeadm-flags.env, and the kubelet command-line
// flags kubeadm's systemd drop-in passes. Defaults follow upstream kubelet's,
// for the fields berth uses.
package config
