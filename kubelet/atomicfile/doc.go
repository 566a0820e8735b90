// Package atomicfile replaces a whole file so that a reader, or a berth that
// starts again after a crash, sees either the old content or the new one,
// never a part of it: the kubelet's certificates and the checkpoints of
// allocated pod resources are written this way.
package atomicfile
