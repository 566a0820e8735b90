#!/usr/bin/env bash
# build-e2e.sh builds what `make conformance` needs besides the control plane:
# the upstream e2e suite (e2e.test), the ginkgo CLI that drives it and, for
# AGENT=upstream, the upstream kubelet and kube-proxy, all of Kubernetes
# v1.37.2 from the Go module proxy (through the tools module test/tools/e2e),
# into a cache folder keyed by version and pins. What is built already is not
# built again. Kept out of `make setup`: e2e.test alone takes many minutes.
#
# Usage: build-e2e.sh CACHE_DIR [TARGET...]
#   TARGET: e2e.test, ginkgo, kubelet, kube-proxy (default: e2e.test ginkgo)
# Prints the folder holding the binaries on its last line.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
cache="${1:?usage: build-e2e.sh CACHE_DIR [TARGET...]}"
shift
targets=("$@")
if [[ ${#targets[@]} -eq 0 ]]; then
	targets=(e2e.test ginkgo)
fi

kube_version="v1.37.2"
go_version="$(go env GOVERSION)"
pins="$(cat "${here}"/e2e/go.mod "${here}"/e2e/go.sum "$0" | sha256sum | cut -c1-12)"
out="${cache}/e2e-${kube_version}_${go_version}_${pins}"
mkdir -p "${out}"

# The same version stamps as build-upstream.sh: the suite logs and compares
# the server's version with its own.
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
cd "${here}/e2e"
for t in "${targets[@]}"; do
	[[ -x "${out}/${t}" ]] && continue
	start=${SECONDS}
	echo "building ${t} ${kube_version}" >&2
	case "${t}" in
	e2e.test)
		# -vet=off: Go vets every dependency of a test binary after
		# linking, which adds minutes and checks nothing of ours.
		go test -c -vet=off -trimpath -ldflags "${ldflags}" -o "${out}/${t}.tmp" k8s.io/kubernetes/test/e2e ;;
	ginkgo)
		go build -trimpath -ldflags "-s -w" -o "${out}/${t}.tmp" github.com/onsi/ginkgo/v2/ginkgo ;;
	kubelet | kube-proxy)
		go build -trimpath -ldflags "${ldflags}" -o "${out}/${t}.tmp" "k8s.io/kubernetes/cmd/${t}" ;;
	*)
		echo "build-e2e.sh: unknown target ${t}" >&2
		exit 2 ;;
	esac
	mv "${out}/${t}.tmp" "${out}/${t}"
	echo "built ${t} in $((SECONDS - start)) s" >&2
done
echo "${out}"
