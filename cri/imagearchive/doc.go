// Package imagearchive writes a container image as a docker-archive tarball,
// the format that `docker load` and `ctr -n k8s.io images import` accept.
//
// berth's nodes may be air-gapped and its test bed has no registry, so the
// images a node needs (the sandbox image, test images) are assembled locally
// from a handful of files and imported into the runtime. An archive holds:
//
//	manifest.json       [{"Config":"<sha256>.json","RepoTags":["name:tag"],"Layers":["<sha256>/layer.tar"]}]
//	<sha256>.json       the image config (architecture, os, entrypoint, env, rootfs diff_ids)
//	<sha256>/layer.tar  one uncompressed layer holding every file of the image
//
// Output is reproducible: the same Image always yields byte-identical bytes
// (entries are sorted, timestamps fixed to the Unix epoch, owners are root),
// so callers can cache archives by content and runtimes see the same image ID.
package imagearchive
