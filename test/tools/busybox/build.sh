#!/usr/bin/env bash
# build.sh builds a static busybox from Debian's busybox source package, for
# the upstream e2e images (registry.k8s.io/e2e-test-images/busybox and the
# shell of the others), into a cache folder keyed by the source version.
#
# Debian's own busybox-static drops environment variables whose names are not
# shell identifiers (data-1) when ash starts: Debian reverts the upstream
# change that keeps them, for its installer, and keeps upstream's behaviour
# behind the FEATURE_DI_ENV_HACK option. The e2e suite's ConfigMap and Secret
# env tests need upstream's behaviour, and its read-only root test needs ash's
# own error wording, so this build is Debian's, with that option on. It also
# turns off FEATURE_SH_STANDALONE and FEATURE_PREFER_APPLETS, as upstream's
# defconfig does, so that a real program on PATH (iproute2's ip, bind's
# nslookup) wins over the applet of the same name, and builds nc as upstream's
# defconfig does (NC_110_COMPAT: the e2e service checks run `nc -z`).
#
# The source comes through apt from the machine's own Debian mirrors, with a
# private apt state under the cache folder: the machine's apt configuration
# is read, never changed. Needs: build-essential, patch, bzip2, xz-utils.
#
# Usage: build.sh CACHE_DIR
# Prints the folder holding the busybox binary on its last line.
set -euo pipefail

cache="${1:?usage: build.sh CACHE_DIR}"

# The binary package's version names the source: a binNMU suffix (+b1)
# belongs to the binary only.
version="$(apt-cache policy busybox-static | awk '/Candidate:/ {print $2}')"
if [[ -z "${version}" || "${version}" == "(none)" ]]; then
	echo "build.sh: apt knows no busybox-static package (run apt-get update)" >&2
	exit 1
fi
apt_version="${version%+b[0-9]*}"
src_version="${apt_version#*:}"
key="busybox-${src_version}_$(sha256sum "$0" | cut -c1-12)"
out="${cache}/${key}"
# One build at a time per cache: a second caller waits, then finds it done.
mkdir -p "${cache}"
exec 9>>"${cache}/.lock"
flock 9
if [[ -f "${out}/.complete" ]]; then
	echo "${out}"
	exit 0
fi

work="${cache}/.work-${key}"
rm -rf "${work}"
mkdir -p "${work}/apt/lists/partial" "${work}/apt/cache/archives/partial" "${work}/src" "${out}"

# deb-src twins of the machine's deb sources (one-line and deb822 files).
shopt -s nullglob
for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
	[[ -f "${f}" ]] && sed -n 's/^deb \(.*\)$/deb-src \1/p' "${f}"
done >"${work}/apt/sources.list"
for f in /etc/apt/sources.list.d/*.sources; do
	sed 's/^Types:.*$/Types: deb-src/' "${f}" >"${work}/apt/$(basename "${f}")"
done
apt_opts=(
	-o "Dir::Etc::SourceList=${work}/apt/sources.list"
	-o "Dir::Etc::SourceParts=${work}/apt"
	-o "Dir::State::Lists=${work}/apt/lists"
	-o "Dir::Cache=${work}/apt/cache"
	-o "APT::Sandbox::User=root"
	-q
)
apt-get "${apt_opts[@]}" update >&2
(cd "${work}/src" && apt-get "${apt_opts[@]}" source --download-only "busybox=${apt_version}" >&2)

cd "${work}/src"
upstream="${src_version%-*}"
tar -xjf "busybox_${upstream}.orig.tar.bz2"
tar -xJf "busybox_${src_version}.debian.tar.xz"
cd "busybox-${upstream}"
grep -v '^#' ../debian/patches/series | while read -r patch; do
	[[ -n "${patch}" ]] && patch -p1 -s <"../debian/patches/${patch}"
done
# The banner's build date is the package's, not today's: a rebuild of the same
# source gives the same binary, so the images built from it stay cached.
SOURCE_DATE_EPOCH="$(date -d "$(dpkg-parsechangelog -l ../debian/changelog -S Date)" +%s)"
export SOURCE_DATE_EPOCH
cp ../debian/config/pkg/static .config
sed -i \
	-e 's/^# CONFIG_FEATURE_DI_ENV_HACK is not set$/CONFIG_FEATURE_DI_ENV_HACK=y/' \
	-e 's/^CONFIG_FEATURE_SH_STANDALONE=y$/# CONFIG_FEATURE_SH_STANDALONE is not set/' \
	-e 's/^CONFIG_FEATURE_PREFER_APPLETS=y$/# CONFIG_FEATURE_PREFER_APPLETS is not set/' \
	-e 's/^# CONFIG_NC_110_COMPAT is not set$/CONFIG_NC_110_COMPAT=y/' \
	.config
make oldconfig </dev/null >/dev/null
grep -qx 'CONFIG_FEATURE_DI_ENV_HACK=y' .config
grep -qx 'CONFIG_NC_110_COMPAT=y' .config
echo "building busybox ${src_version}" >&2
make -j"$(nproc)" busybox >&2
cp busybox "${out}/busybox"
cd /
rm -rf "${work}"
touch "${out}/.complete"
echo "${out}"
