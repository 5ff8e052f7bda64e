#!/usr/bin/env bash
# Build the cached Debian bookworm base rootfs for the systemd-nspawn test host.
# Called by dev/testhost/testhost.ts (ensureRootfs); safe to run by hand.
#
# usage: testhost-rootfs.sh FINAL_DIR PACKAGES MIRROR
#   FINAL_DIR  the rootfs to produce, e.g. ~/.cache/workstations/rootfs/bookworm-0123abcd
#   PACKAGES   comma-separated list for debootstrap --include
#   MIRROR     Debian mirror URL
#
# The build goes into a temporary sibling directory that is renamed to FINAL_DIR only
# when it is complete, so an interrupted build never leaves a rootfs that looks done.
# Concurrent builders of the same FINAL_DIR serialise on a flock.
#
# Everything host-specific (machine-id, hostname, sshd port, host keys, root's
# authorized_keys) is left out here and filled in per host copy by createHost().
set -euo pipefail

if [[ $# -ne 3 ]]; then
  echo "usage: $0 FINAL_DIR PACKAGES MIRROR" >&2
  exit 2
fi
final=$1
packages=$2
mirror=$3

parent=$(dirname -- "$final")
base=$(basename -- "$final")
mkdir -p -- "$parent"

exec 9>"$parent/.$base.lock"
flock 9

if [[ -d $final ]]; then
  echo "testhost-rootfs: already built: $final"
  exit 0
fi

# Leftovers of interrupted builds of this same rootfs (we hold the lock, so nobody
# else is building it right now).
rm -rf -- "$parent/.tmp-$base".*

tmp=$(mktemp -d -- "$parent/.tmp-$base.XXXXXX")
chmod 0755 -- "$tmp"

debootstrap_cache="$parent/.debootstrap-debs"
mkdir -p -- "$debootstrap_cache"

echo "testhost-rootfs: debootstrap bookworm into $tmp"
debootstrap --variant=minbase --cache-dir="$debootstrap_cache" \
  --include="$packages" bookworm "$tmp" "$mirror"

echo "testhost-rootfs: configuring"

# machine-id: empty in the base; every host copy gets its own id (stable across that
# host's reboots, like a real machine). dbus reads the same id.
: >"$tmp/etc/machine-id"
rm -f -- "$tmp/var/lib/dbus/machine-id"
ln -s /etc/machine-id "$tmp/var/lib/dbus/machine-id"

# sshd: host keys are generated per host copy; the Port/ListenAddress lines are
# prepended per host copy. These settings come first in sshd_config (before the
# Include), so they win over anything in sshd_config.d.
rm -f -- "$tmp"/etc/ssh/ssh_host_*
sshd_config="$tmp/etc/ssh/sshd_config"
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

install -d -m 0700 -- "$tmp/root/.ssh"

# /etc/hosts and /etc/hostname: debootstrap copies the build machine's hostname and
# writes no hosts file. createHost() writes both per copy.
printf '127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n' >"$tmp/etc/hosts"
echo testhost >"$tmp/etc/hostname"
chmod 0644 -- "$tmp/etc/hosts" "$tmp/etc/hostname"

# minbase has no locales package; pam_env (sshd, su, login) warns on every session
# without this file. C.UTF-8 is built into glibc.
echo 'LANG=C.UTF-8' >"$tmp/etc/default/locale"

# Units that are useless or harmful in a test container:
#  - console-getty/getty.target: a login prompt on the (read-only) console;
#  - systemd-networkd-wait-online: the container shares the host network, nothing to wait for;
#  - apt-daily*, dpkg-db-backup: would run apt/dpkg in the background and take the dpkg
#    lock while a test installs something;
#  - e2scrub_*, fstrim: act on the build machine's block devices.
for unit in console-getty.service getty.target getty@.service \
  systemd-networkd-wait-online.service \
  apt-daily.timer apt-daily.service apt-daily-upgrade.timer apt-daily-upgrade.service \
  dpkg-db-backup.timer dpkg-db-backup.service \
  e2scrub_all.timer e2scrub_all.service e2scrub_reap.service \
  fstrim.timer fstrim.service; do
  ln -sfn /dev/null "$tmp/etc/systemd/system/$unit"
done

# Bound the worst case of a poweroff (a hung unit) below the harness timeouts.
install -d -m 0755 -- "$tmp/etc/systemd/system.conf.d"
printf '[Manager]\nDefaultTimeoutStopSec=30s\n' >"$tmp/etc/systemd/system.conf.d/testhost.conf"

# Persistent journal, so `journalctl -b -1` works after a reboot.
install -d -m 2755 -- "$tmp/var/log/journal"

# The downloaded .debs stay in the shared debootstrap cache, not in the image.
rm -f -- "$tmp"/var/cache/apt/archives/*.deb

printf 'packages=%s\nbuilt=%s\n' "$packages" "$(date -u +%Y-%m-%dT%H:%M:%SZ)" \
  >"$tmp/etc/workstations-testhost"

sync -f "$tmp" || true
mv -T -- "$tmp" "$final"
echo "testhost-rootfs: done: $final"
