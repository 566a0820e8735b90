// Package config reads the kubelet's settings the way a kubeadm worker has
// them: the KubeletConfiguration file (/var/lib/kubelet/config.yaml, from the
// cluster's kubelet-config ConfigMap), the node-specific flags kubeadm join
// records in /var/lib/kubelet/kubeadm-flags.env, and the kubelet command-line
// flags kubeadm's systemd drop-in passes, and composes them one value per
// field as kubelet does (Compose): a flag given wins over the file, a flag
// not given never does, and defaults, upstream kubelet's, fill only what no
// source sets.
package config
