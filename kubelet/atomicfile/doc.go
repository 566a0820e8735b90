// Package atomicfile replaces a whole file so that a reader, or a berth that
// starts again after a crash, sees either the old content or the new one,
// never a part of it. Every file berth and its test bed replace in place is
// written this way: the kubelet's certificates, kubeconfig and join files,
// the checkpoints of allocated pod resources, the CNI config list (which
// containerd reloads as soon as it changes), systemd units, image archives
// and the test bed's state.
//
// A volume's files are not: their readers see a whole set change at once,
// which kubelet/volume/atomicwriter does with a symlink swap.
package atomicfile
