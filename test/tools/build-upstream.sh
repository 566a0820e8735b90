#!/usr/bin/env bash
# build-upstream.sh builds the upstream control-plane binaries the test bed runs
# (kube-apiserver, kube-controller-manager, kube-scheduler, kubeadm, kubectl,
# etcd) from the Go module proxy, into a cache folder keyed by version, so a
# second run is a no-op.
#
# Usage: build-upstream.sh CACHE_DIR
# Prints the folder holding the binaries on its last line.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
cache="${1:?usage: build-upstream.sh CACHE_DIR}"

kube_version="v1.37.2"
etcd_version="v3.7.0"
go_version="$(go env GOVERSION)"
# The pins themselves are part of the key: a changed go.sum rebuilds.
pins="$(cat "${here}"/kube/go.mod "${here}"/kube/go.sum "${here}"/etcd/go.mod "${here}"/etcd/go.sum "$0" | sha256sum | cut -c1-12)"
key="kube-${kube_version}_etcd-${etcd_version}_${go_version}_${pins}"
out="${cache}/${key}"

if [[ -f "${out}/.complete" ]]; then
	echo "${out}"
	exit 0
fi
mkdir -p "${out}"

# Mirror hack/lib/version.sh: kubeadm's preflight and `kubectl version`
# compare these, and an unset version reads v0.0.0-master.
minor="${kube_version#v1.}"
minor="${minor%%.*}"
ldflags="-s -w"
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
	ldflags+=" -X ${pkg}.gitVersion=${kube_version}"
	ldflags+=" -X ${pkg}.gitMajor=1 -X ${pkg}.gitMinor=${minor}"
	ldflags+=" -X ${pkg}.gitTreeState=clean"
	ldflags+=" -X ${pkg}.buildDate=1970-01-01T00:00:00Z"
done

# -mod=readonly: the pinned go.sum is the whole truth.
export CGO_ENABLED=0 GOFLAGS=-mod=readonly
(
	cd "${here}/kube"
	for cmd in kube-apiserver kube-controller-manager kube-scheduler kubeadm kubectl; do
		if [[ ! -x "${out}/${cmd}" ]]; then
			echo "building ${cmd} ${kube_version}" >&2
			go build -trimpath -ldflags "${ldflags}" -o "${out}/${cmd}.tmp" "k8s.io/kubernetes/cmd/${cmd}"
			mv "${out}/${cmd}.tmp" "${out}/${cmd}"
		fi
	done
)
(
	cd "${here}/etcd"
	if [[ ! -x "${out}/etcd" ]]; then
		echo "building etcd ${etcd_version}" >&2
		go build -trimpath -ldflags "-s -w" -o "${out}/etcd.tmp" go.etcd.io/etcd/server/v3
		mv "${out}/etcd.tmp" "${out}/etcd"
	fi
)
touch "${out}/.complete"
echo "${out}"
