#!/usr/bin/env bash
# build-plugins.sh builds the plugins the end-to-end tests run on a test
# bed's nodes, from the tools module test/tools/plugins (Kubernetes v1.37.2
# and csi-test v5.6.0 from the Go module proxy), into a cache folder keyed by
# version and by a hash of the pins, this script and csimock's sources. What
# is built already is not built again.
#
# Usage: build-plugins.sh CACHE_DIR [TARGET...]
#   TARGET: csimock (upstream's mock CSI driver served on a node, see
#   test/tools/plugins/csimock), sample-device-plugin (upstream's
#   test/images/sample-device-plugin as is), csi-sanity (default: all three)
# Prints the folder holding the binaries on its last line.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
script="${here}/$(basename "$0")"
cache="${1:?usage: build-plugins.sh CACHE_DIR [TARGET...]}"
shift
targets=("$@")
if [[ ${#targets[@]} -eq 0 ]]; then
	targets=(csimock sample-device-plugin csi-sanity)
fi

kube_version="v1.37.2"
go_version="$(go env GOVERSION)"
mod="${here}/plugins"
pins="$(cd "${mod}" && cat go.mod go.sum "${script}" $(find . -name '*.go' | LC_ALL=C sort) | sha256sum | cut -c1-12)"
out="${cache}/plugins-${kube_version}_${go_version}_${pins}"
mkdir -p "${out}"

# -mod=readonly: the pinned go.sum is the whole truth.
export CGO_ENABLED=0 GOFLAGS=-mod=readonly
cd "${mod}"
for t in "${targets[@]}"; do
	[[ -x "${out}/${t}" ]] && continue
	start=${SECONDS}
	echo "building ${t}" >&2
	case "${t}" in
	csimock)
		pkg=./csimock ;;
	sample-device-plugin)
		pkg=k8s.io/kubernetes/test/images/sample-device-plugin ;;
	csi-sanity)
		pkg=github.com/kubernetes-csi/csi-test/v5/cmd/csi-sanity ;;
	*)
		echo "build-plugins.sh: unknown target ${t}" >&2
		exit 2 ;;
	esac
	go build -trimpath -ldflags "-s -w" -o "${out}/${t}.tmp" "${pkg}"
	mv "${out}/${t}.tmp" "${out}/${t}"
	echo "built ${t} in $((SECONDS - start)) s" >&2
done
echo "${out}"
