#!/usr/bin/env bash
# build-e2e-programs.sh builds the programs the upstream e2e conformance
# images carry: agnhost and nonewprivs' nnp from the Kubernetes release the
# test bed runs (module ./agnhost), and CoreDNS (module ./coredns), as static
# binaries into a cache folder keyed by their pins, so a second run is a no-op.
#
# Usage: build-e2e-programs.sh CACHE_DIR
# Prints the folder holding agnhost, nonewprivs, coredns and the images' data
# files on its last line.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
cache="${1:?usage: build-e2e-programs.sh CACHE_DIR}"

go_version="$(go env GOVERSION)"
pins="$(cat "${here}"/agnhost/go.mod "${here}"/agnhost/go.sum "${here}"/coredns/go.mod \
	"${here}"/coredns/go.sum "${here}"/coredns/main.go "$0" | sha256sum | cut -c1-12)"
out="${cache}/e2e-programs_${go_version}_${pins}"
# One build at a time per cache: a second caller waits, then finds it done.
mkdir -p "${cache}"
exec 9>>"${cache}/.lock"
flock 9
if [[ -f "${out}/.complete" ]]; then
	echo "${out}"
	exit 0
fi
mkdir -p "${out}"

# -mod=readonly: the pinned go.sum is the whole truth.
export CGO_ENABLED=0 GOFLAGS=-mod=readonly
build() { # build MODULE_DIR NAME PACKAGE
	if [[ ! -x "${out}/$2" ]]; then
		echo "building $2" >&2
		(cd "$1" && go build -trimpath -ldflags "-s -w" -o "${out}/$2.tmp" "$3")
		mv "${out}/$2.tmp" "${out}/$2"
	fi
}
build "${here}/agnhost" agnhost k8s.io/kubernetes/test/images/agnhost
build "${here}/agnhost" nonewprivs k8s.io/kubernetes/test/images/nonewprivs
build "${here}/coredns" coredns .
# Data files the upstream images hold beside the programs: porter's TLS pair
# (agnhost) and kitten's page.
kube_dir="$(cd "${here}/agnhost" && go list -m -f '{{.Dir}}' k8s.io/kubernetes)"
cp "${kube_dir}"/test/images/agnhost/porter/localhost.{crt,key} "${out}/"
cp "${kube_dir}"/test/images/kitten/html/{kitten.jpg,data.json} "${out}/"
chmod 0644 "${out}"/localhost.{crt,key} "${out}"/{kitten.jpg,data.json}
touch "${out}/.complete"
echo "${out}"
