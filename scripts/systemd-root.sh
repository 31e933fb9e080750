#!/bin/sh
# Build (once, cached by content) the minimal Debian bookworm root with
# systemd that tests/tests/systemd_boot.rs boots with systemd-nspawn.
#
#   systemd-root.sh            print the root's path, building it if missing
#
# The cache key is a hash of this file, so a change to the package list below
# builds a new root. Several test processes may start at once: the build runs
# under an exclusive lock (flock) and the root appears by an atomic rename, so
# a reader sees either no root or a complete one. Needs root, debootstrap and
# network access to deb.debian.org for the first build.
set -eu

SUITE=bookworm
MIRROR="${NEXTDEPLOY_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
# Only what the install scripts and the suite use: systemd as PID 1, dbus for
# systemctl, passwd (useradd/usermod/gpasswd), util-linux (setpriv), procps
# (pgrep for the --no-systemd path), ca-certificates not needed (no TLS).
PACKAGES=systemd,systemd-sysv,dbus,passwd,util-linux,procps
CACHE="${NEXTDEPLOY_ROOT_CACHE:-/var/cache/nextdeploy-tests}"

die() { echo "systemd-root: error: $*" >&2; exit 1; }

hash=$(sha256sum "$0" | cut -c1-16)
ROOT="$CACHE/$SUITE-$hash"
if [ -f "$ROOT/.complete" ]; then echo "$ROOT"; exit 0; fi

[ "$(id -u)" = 0 ] || die "building the root needs root"
command -v debootstrap >/dev/null 2>&1 || die "debootstrap is missing (apt-get install debootstrap; scripts/test.sh does)"
mkdir -p "$CACHE"
exec 9>"$CACHE/.lock"
flock -w 1200 9 || die "timed out waiting 20 min for another build of the root ($CACHE/.lock)"
if [ -f "$ROOT/.complete" ]; then echo "$ROOT"; exit 0; fi

tmp="$ROOT.building.$$"
rm -rf "$tmp"
start=$(date +%s)
echo "systemd-root: debootstrap $SUITE into $tmp (once per machine)" >&2
debootstrap --variant=minbase --include="$PACKAGES" "$SUITE" "$tmp" "$MIRROR" >"$tmp.log" 2>&1 \
  || { tail -n 30 "$tmp.log" >&2; rm -rf "$tmp"; die "debootstrap failed (log above)"; }
# Small and quiet: no apt lists or caches, no getty on the console, a fixed
# machine id so every boot of a copy is the same machine.
rm -rf "$tmp/var/cache/apt/archives/"*.deb "$tmp/var/lib/apt/lists/"*
ln -sf /dev/null "$tmp/etc/systemd/system/console-getty.service"
ln -sf /dev/null "$tmp/etc/systemd/system/getty@.service"
ln -sf /dev/null "$tmp/etc/systemd/system/systemd-networkd-wait-online.service"
echo nextdeploy-test >"$tmp/etc/hostname"
: >"$tmp/etc/machine-id"
echo "$(( $(date +%s) - start ))" >"$tmp/.debootstrap-seconds"
touch "$tmp/.complete"
mv "$tmp.log" "$tmp/.debootstrap.log"
mv "$tmp" "$ROOT"
echo "systemd-root: built $ROOT in $(cat "$ROOT/.debootstrap-seconds") s" >&2
echo "$ROOT"
