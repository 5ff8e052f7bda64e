#!/usr/bin/env bash
# Build the cached Debian trixie disk image of the VM test host (dev/testhost/vm.ts).
# Called by vm.ts (ensureImage); safe to run by hand.
#
# usage: vm-image.sh FINAL_DIR PACKAGES SID_PACKAGES MIRROR
#   FINAL_DIR     the image directory to produce, e.g. ~/.cache/workstations/vm/trixie-0123abcd
#   PACKAGES      comma-separated list for debootstrap --include (trixie)
#   SID_PACKAGES  comma-separated packages trixie does not have, installed from sid (may be empty)
#   MIRROR        Debian mirror URL
#
# FINAL_DIR holds:
#   disk.qcow2              the root filesystem (ext4 on the whole disk, no partition table)
#   vmlinuz, initrd.img     the image's kernel (linux-image-cloud-amd64) and initrd, booted
#                           directly by qemu (-kernel/-initrd), so no boot loader
#   id_ed25519{,.pub}       root's client key (its public half is root's authorized_keys)
#   ssh_host_ed25519_key.pub
#   image.env               kernel release, package versions, build date
#
# Unlike the nspawn rootfs, the identity (host key, root key, machine-id) is baked into the
# image: a VM test host is restored from a saved state of a booted image (vm.ts), so every
# host made from one image is the same machine until it diverges. The build goes into a
# temporary sibling directory renamed to FINAL_DIR only when complete; concurrent builders
# of the same FINAL_DIR serialise on a flock.
set -euo pipefail

if [[ $# -ne 4 ]]; then
  echo "usage: $0 FINAL_DIR PACKAGES SID_PACKAGES MIRROR" >&2
  exit 2
fi
final=$1
packages=$2
sid_packages=$3
mirror=$4

parent=$(dirname -- "$final")
base=$(basename -- "$final")
mkdir -p -- "$parent"

exec 9>"$parent/.$base.lock"
flock 9

if [[ -d $final ]]; then
  echo "vm-image: already built: $final"
  exit 0
fi
rm -rf -- "$parent/.tmp-$base".*
tmp=$(mktemp -d -- "$parent/.tmp-$base.XXXXXX")
root=$tmp/root
mkdir -m 0755 -- "$root"
debs="$parent/.debootstrap-debs"
mkdir -p -- "$debs"

echo "vm-image: debootstrap trixie into $root"
debootstrap --variant=minbase --cache-dir="$debs" --include="$packages" trixie "$root" "$mirror"

in_root() { chroot "$root" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin DEBIAN_FRONTEND=noninteractive LANG=C.UTF-8 "$@"; }

# Packages trixie lacks (ttyd), from sid: only the named packages come from sid (priority
# 100 < trixie's 500), their dependencies from trixie where it has them.
if [[ -n $sid_packages ]]; then
  echo "vm-image: from sid: $sid_packages"
  cp -- /etc/resolv.conf "$root/etc/resolv.conf"
  printf '#!/bin/sh\nexit 101\n' >"$root/usr/sbin/policy-rc.d"
  chmod 0755 -- "$root/usr/sbin/policy-rc.d"
  printf 'Types: deb\nURIs: %s\nSuites: sid\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' "$mirror" \
    >"$root/etc/apt/sources.list.d/sid.sources"
  printf 'Package: *\nPin: release n=sid\nPin-Priority: 100\n' >"$root/etc/apt/preferences.d/sid"
  mount -t proc proc "$root/proc"
  trap 'umount "$root/proc" 2>/dev/null || true' EXIT
  # sid's Release is valid for a week only; the archive these machines reach may lag more.
  in_root apt-get update -q -o Acquire::Check-Valid-Until=false
  mapfile -t wanted < <(tr ',' '\n' <<<"$sid_packages" | sed '/^$/d; s|$|/sid|')
  in_root apt-get install -y -q --no-install-recommends "${wanted[@]}"
  umount "$root/proc"
  trap - EXIT
  rm -f -- "$root/etc/apt/sources.list.d/sid.sources" "$root/etc/apt/preferences.d/sid" "$root/usr/sbin/policy-rc.d"
  in_root apt-get update -q
  in_root apt-get clean
fi

echo "vm-image: configuring"
kver=$(basename "$(ls -d "$root"/lib/modules/*)")

# A small initrd: the disk's modules only (the default, MODULES=most, loads every storage
# driver through udev, seconds of emulated CPU on every boot).
sed -i 's/^MODULES=.*/MODULES=list/' "$root/etc/initramfs-tools/initramfs.conf"
printf 'virtio_pci\nvirtio_blk\next4\n' >>"$root/etc/initramfs-tools/modules"
in_root update-initramfs -u -k "$kver"
cp -- "$root/boot/vmlinuz-$kver" "$tmp/vmlinuz"
cp -- "$root/boot/initrd.img-$kver" "$tmp/initrd.img"

# Identity, fixed per image (see above).
dbus-uuidgen >"$root/etc/machine-id" 2>/dev/null || od -An -N16 -tx1 /dev/urandom | tr -d ' \n' >"$root/etc/machine-id"
echo >>"$root/etc/machine-id"
rm -f -- "$root/var/lib/dbus/machine-id"
ln -s /etc/machine-id "$root/var/lib/dbus/machine-id"
rm -f -- "$root"/etc/ssh/ssh_host_*
ssh-keygen -q -t ed25519 -N '' -C root@testhost-vm -f "$root/etc/ssh/ssh_host_ed25519_key"
cp -- "$root/etc/ssh/ssh_host_ed25519_key.pub" "$tmp/"
ssh-keygen -q -t ed25519 -N '' -C testhost@testhost-vm -f "$tmp/id_ed25519"
install -d -m 0700 -- "$root/root/.ssh"
install -m 0600 -- "$tmp/id_ed25519.pub" "$root/root/.ssh/authorized_keys"

# sshd: these settings come first in sshd_config (before the Include), so they win.
sshd_config="$root/etc/ssh/sshd_config"
{
  echo "# --- workstations testhost (base) ---"
  echo "HostKey /etc/ssh/ssh_host_ed25519_key"
  echo "PermitRootLogin prohibit-password"
  echo "PasswordAuthentication no"
  echo "KbdInteractiveAuthentication no"
  echo "UseDNS no"
  echo "MaxStartups 100:30:200"
  echo "MaxSessions 100"
  echo "# --- end testhost (base) ---"
  cat -- "$sshd_config"
} >"$sshd_config.new"
mv -- "$sshd_config.new" "$sshd_config"
chmod 0644 -- "$sshd_config"

echo testhost-vm >"$root/etc/hostname"
printf '127.0.0.1\tlocalhost\n127.0.1.1\ttesthost-vm\n::1\tlocalhost ip6-localhost ip6-loopback\n' >"$root/etc/hosts"
echo 'LANG=C.UTF-8' >"$root/etc/default/locale"
echo '/dev/vda / ext4 rw,errors=remount-ro 0 1' >"$root/etc/fstab"

# qemu's user-mode network: the guest is always 10.0.2.15, the gateway 10.0.2.2, DNS 10.0.2.3.
# A static address: no DHCP round trip on every boot.
install -d -m 0755 -- "$root/etc/systemd/network"
printf '[Match]\nName=en* eth*\n\n[Network]\nAddress=10.0.2.15/24\nGateway=10.0.2.2\nDNS=10.0.2.3\nLinkLocalAddressing=no\nIPv6AcceptRA=no\n' \
  >"$root/etc/systemd/network/20-testhost.network"
rm -f -- "$root/etc/resolv.conf"
echo 'nameserver 10.0.2.3' >"$root/etc/resolv.conf"
systemctl --root="$root" enable systemd-networkd.service

# Units that are useless on a test host or act behind a test's back (see testhost-rootfs.sh);
# the serial console stays a log, not a login prompt.
for unit in getty.target getty@.service serial-getty@.service console-getty.service \
  systemd-networkd-wait-online.service \
  apt-daily.timer apt-daily.service apt-daily-upgrade.timer apt-daily-upgrade.service \
  dpkg-db-backup.timer dpkg-db-backup.service \
  e2scrub_all.timer e2scrub_all.service e2scrub_reap.service \
  fstrim.timer fstrim.service man-db.timer; do
  ln -sfn /dev/null "$root/etc/systemd/system/$unit"
done
# Generators for what a test VM has not got (sshd on vsock, TPM, GPT auto-mounts, hibernation,
# offline updates): each costs seconds of emulated CPU at every boot and daemon-reload
# (the ssh one probes AF_VSOCK, which loads the vmw_vsock modules).
install -d -m 0755 -- "$root/etc/systemd/system-generators"
for gen in systemd-ssh-generator systemd-tpm2-generator systemd-gpt-auto-generator \
  systemd-hibernate-resume-generator systemd-system-update-generator; do
  ln -sfn /dev/null "$root/etc/systemd/system-generators/$gen"
done
install -d -m 0755 -- "$root/etc/systemd/system.conf.d"
printf '[Manager]\nDefaultTimeoutStopSec=30s\n' >"$root/etc/systemd/system.conf.d/testhost.conf"
install -d -m 2755 -- "$root/var/log/journal"

rm -f -- "$root"/var/cache/apt/archives/*.deb
mapfile -t versions_of < <(printf '%s\n' systemd tmux nodejs openssh-server earlyoom "${sid_packages//,/$'\n'}" | sed '/^$/d')
{
  printf 'kernel=%s\nbuilt=%s\npackages=%s\nsid_packages=%s\n' "$kver" "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$packages" "$sid_packages"
  in_root dpkg-query -W -f='version_${Package}=${Version}\n' "${versions_of[@]}"
} >"$tmp/image.env"
cp -- "$tmp/image.env" "$root/etc/workstations-testhost"

echo "vm-image: making the disk"
mkfs.ext4 -q -F -L testhost -d "$root" "$tmp/disk.raw" 8G
qemu-img convert -f raw -O qcow2 "$tmp/disk.raw" "$tmp/disk.qcow2"
rm -rf -- "$tmp/disk.raw" "$root"
chmod 0444 -- "$tmp/disk.qcow2"
sync -f "$tmp" || true
mv -T -- "$tmp" "$final"
echo "vm-image: done: $final"
