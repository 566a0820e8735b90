#!/bin/bash
# build-image.sh builds the disk of a berth test VM from Debian packages (see
# image.go, which runs it inside a mount namespace of its own, so that
# nothing it mounts outlives it).
#
# Usage: build-image.sh OUT
# Environment:
#   VM_SUITE     Debian suite (bookworm)
#   VM_MIRROR    Debian mirror, e.g. http://deb.debian.org/debian
#   VM_SECURITY  Debian security mirror, or empty
#   VM_PACKAGES  packages to install, space separated
#   VM_OVERLAY   folder copied over the root file system
#   VM_DISK_SIZE size of the disk in bytes
# Writes OUT/disk.raw (ext4, no partition table), OUT/vmlinuz,
# OUT/initrd.img and OUT/packages.txt.
set -euo pipefail

out="${1:?usage: build-image.sh OUT}"
root="${out}/root"
step() { echo "==> $*"; }

step "debootstrap ${VM_SUITE} from ${VM_MIRROR}"
mkdir -p "${root}"
debootstrap --variant=minbase --components=main "${VM_SUITE}" "${root}" "${VM_MIRROR}"

step "apt sources"
rm -f "${root}/etc/apt/sources.list"
{
	echo "deb ${VM_MIRROR} ${VM_SUITE} main"
	echo "deb ${VM_MIRROR} ${VM_SUITE}-updates main"
	if [[ -n "${VM_SECURITY}" ]]; then echo "deb ${VM_SECURITY} ${VM_SUITE}-security main"; fi
} > "${root}/etc/apt/sources.list.d/debian.list"
# No service starts inside the chroot.
printf '#!/bin/sh\nexit 101\n' > "${root}/usr/sbin/policy-rc.d"
chmod 0755 "${root}/usr/sbin/policy-rc.d"
# The overlay goes in before the packages (initramfs-tools reads its config
# when the kernel is installed) and again after them (it wins over the
# packages' own config files).
cp -a "${VM_OVERLAY}/." "${root}/"

mount -t proc proc "${root}/proc"
mount -t sysfs sysfs "${root}/sys"
mount -t devpts -o newinstance,ptmxmode=0666 devpts "${root}/dev/pts"

in_root() { chroot "${root}" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin DEBIAN_FRONTEND=noninteractive LANG=C.UTF-8 "$@"; }
apt_opts=(-q -y -o Acquire::Check-Valid-Until=false -o Dpkg::Options::=--force-confold -o Dpkg::Options::=--force-confdef)

step "install ${VM_PACKAGES}"
in_root apt-get "${apt_opts[@]}" update
# shellcheck disable=SC2086 # the package list is split on purpose
in_root apt-get "${apt_opts[@]}" install --no-install-recommends ${VM_PACKAGES}

step "configure"
cp -a "${VM_OVERLAY}/." "${root}/"
chmod 0755 "${root}/etc/initramfs-tools/hooks/"* "${root}/etc/initramfs-tools/scripts/init-bottom/"*
in_root systemctl enable systemd-networkd.service berth-vm-agent.service mnt-seed.mount
# Nothing in the VM reaches for the internet; ipvsadm's boot script would
# wait for the network to restore rules nobody saved; the rest loads
# modules or checks file systems the VM does not use, at seconds each
# under TCG.
in_root systemctl mask apt-daily.timer apt-daily-upgrade.timer ipvsadm.service \
	e2scrub_reap.service e2scrub_all.timer fstrim.timer \
	modprobe@drm.service modprobe@efi_pstore.service modprobe@fuse.service \
	modprobe@loop.service modprobe@dm_mod.service modprobe@configfs.service
in_root passwd -d root
# debootstrap copied these from the machine that builds the image; each VM
# gets its own through its seed (see seed.go).
echo berth-vm > "${root}/etc/hostname"
: > "${root}/etc/resolv.conf"
# Empty: systemd makes a machine ID of its own on each VM's first boot.
: > "${root}/etc/machine-id"
rm -f "${root}/var/lib/dbus/machine-id"
in_root update-initramfs -u -k all
in_root dpkg-query -W -f '${Package} ${Version}\n' > "${out}/packages.txt"
in_root apt-get clean
rm -rf "${root}/var/lib/apt/lists/"* "${root}/usr/sbin/policy-rc.d"

umount "${root}/dev/pts" "${root}/sys" "${root}/proc"

step "kernel and initrd"
kernels=("${root}"/boot/vmlinuz-*)
initrds=("${root}"/boot/initrd.img-*)
if [[ ${#kernels[@]} -ne 1 || ${#initrds[@]} -ne 1 ]]; then echo "want one kernel and one initrd, have: ${kernels[*]} ${initrds[*]}" >&2; exit 1; fi
cp "${kernels[0]}" "${out}/vmlinuz"
cp "${initrds[0]}" "${out}/initrd.img"

step "disk (${VM_DISK_SIZE})"
truncate -s "${VM_DISK_SIZE}" "${out}/disk.raw"
mkfs.ext4 -q -F -L berth-vm -d "${root}" "${out}/disk.raw"
step "done"
