#!/bin/sh
# Install (or upgrade) the NextDeploy hub on a bastion.
#
#   install-hub.sh [--binary PATH] [--ssh-listen ADDR] [--http-listen ADDR]
#                  [--no-systemd] [--prefix DIR]
#
# * installs the binary as /usr/local/bin/nextdeploy;
# * creates the nextdeploy system user; state in /var/lib/nextdeploy (0700,
#   owned by it): the SQLite store and the SSH host key;
# * installs and starts deploy/systemd/nextdeploy-hub.service (listen
#   addresses in /etc/nextdeploy/hub/hub.env, a directory of the nextdeploy
#   user's, 0700), or with --no-systemd a supervised
#   background process (log /var/log/nextdeploy/hub.log, 0600, pid file
#   /run/nextdeploy-hub.pid). The first admin token is written only to
#   /var/lib/nextdeploy/initial-admin-token (0600), never to a log.
#
# Upgrading: run it again with the new binary; the store and host key are kept
# (take a `nextdeploy hub backup --to FILE --data-dir /var/lib/nextdeploy`
# first). An old /etc/nextdeploy/hub.env is moved to /etc/nextdeploy/hub/.
# On failure, everything this run did is undone.
set -eu

BINARY= SSH_LISTEN=0.0.0.0:2222 HTTP_LISTEN=0.0.0.0:8080 NO_SYSTEMD=0 PREFIX="${NEXTDEPLOY_PREFIX:-}"
HUB_USER=nextdeploy

die() { echo "install-hub: error: $*" >&2; exit 1; }
say() { echo "install-hub: $*"; }

while [ $# -gt 0 ]; do
  case "$1" in
    --binary) BINARY="${2:-}"; shift 2 ;;
    --ssh-listen) SSH_LISTEN="${2:-}"; shift 2 ;;
    --http-listen) HTTP_LISTEN="${2:-}"; shift 2 ;;
    --no-systemd) NO_SYSTEMD=1; shift ;;
    --prefix) PREFIX="${2:-}"; shift 2 ;;
    -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
    *) die "unknown argument $1 (see --help)" ;;
  esac
done

BIN_DIR="$PREFIX/usr/local/bin"
BIN="$BIN_DIR/nextdeploy"
DATA="$PREFIX/var/lib/nextdeploy"
ETC="$PREFIX/etc/nextdeploy"
ENV_DIR="$ETC/hub"
ENV_FILE="$ENV_DIR/hub.env"
OLD_ENV_FILE="$ETC/hub.env"  # layout before 2026-12: shared with the agent's files
LOG_DIR="$PREFIX/var/log/nextdeploy"
LOG="$LOG_DIR/hub.log"
PIDFILE="$PREFIX/run/nextdeploy-hub.pid"
UNIT="$PREFIX/etc/systemd/system/nextdeploy-hub.service"
HERE=$(cd "$(dirname "$0")" && pwd)

if [ -z "$BINARY" ]; then
  if [ -x "$HERE/nextdeploy" ]; then BINARY="$HERE/nextdeploy"
  else BINARY=$(command -v nextdeploy || true); fi
fi
[ -n "$BINARY" ] && [ -f "$BINARY" ] || die "no hub binary: pass --binary PATH"
"$BINARY" --version >/dev/null 2>&1 || die "$BINARY does not run here (wrong architecture?)"
if [ "$NO_SYSTEMD" = 0 ] && [ ! -d /run/systemd/system ]; then
  die "this machine does not run systemd (no /run/systemd/system). Run again with --no-systemd to run the hub as a supervised background process logging to $LOG."
fi
[ "$(id -u)" = 0 ] || die "run as root (it creates the $HUB_USER user)"

UNDO=""
undo() { UNDO="$1
$UNDO"; }
rollback() {
  rc=$?
  [ "$rc" = 0 ] && return 0
  echo "install-hub: failed; undoing what this run did" >&2
  printf '%s\n' "$UNDO" | while IFS= read -r step; do
    [ -n "$step" ] && sh -c "$step" >/dev/null 2>&1 || true
  done
  exit "$rc"
}
trap rollback EXIT
trap 'exit 130' INT TERM
backup() {
  if [ -e "$1" ]; then cp -p "$1" "$1.nd-old"; undo "mv -f '$1.nd-old' '$1'"; else undo "rm -f '$1'"; fi
}
# Why a unit did not start: its status line and every journal line naming it
# since the start, from the whole journal (systemd's own lines about the
# unit, such as a failed setup step before exec, are not all under -u).
unit_reason() {
  echo
  systemctl status "$1" --no-pager -n 0 2>&1 | sed -n '1,5p'
  journalctl --no-pager -q --since "$2" 2>/dev/null | grep -F "$1" | tail -n 20
}
mkdir_undo() { if [ ! -d "$1" ]; then mkdir -p "$1"; undo "rm -rf '$1'"; fi; }

if ! id "$HUB_USER" >/dev/null 2>&1; then
  useradd --system --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin "$HUB_USER" \
    || die "cannot create the $HUB_USER user"
  undo "userdel '$HUB_USER'"
  say "created system user $HUB_USER"
fi

mkdir_undo "$BIN_DIR"
backup "$BIN"
cp "$BINARY" "$BIN.nd-new" && chmod 0755 "$BIN.nd-new" && mv -f "$BIN.nd-new" "$BIN" || die "cannot install $BIN"
say "installed $BIN ($("$BIN" --version 2>/dev/null || echo '?'))"

FRESH=1
[ -f "$DATA/nextdeploy.db" ] && FRESH=0
mkdir_undo "$DATA"
chown "$HUB_USER:$HUB_USER" "$DATA" && chmod 0700 "$DATA"
[ "$FRESH" = 0 ] && say "keeping the existing store and host key in $DATA"
# /etc/nextdeploy is root's (0755); the hub's file lives in hub/ (its user's,
# 0700), the agent's in agent/, so neither user can touch the other's.
mkdir_undo "$ETC"
old_mode=$(stat -c '%u:%g %a' "$ETC")
chown root:root "$ETC" && chmod 0755 "$ETC"
undo "chown '${old_mode% *}' '$ETC'; chmod '${old_mode#* }' '$ETC'"
mkdir_undo "$ENV_DIR"
chown "$HUB_USER:$HUB_USER" "$ENV_DIR" && chmod 0700 "$ENV_DIR"
if [ -f "$OLD_ENV_FILE" ]; then
  cp -p "$OLD_ENV_FILE" "$OLD_ENV_FILE.nd-old" && undo "mv -f '$OLD_ENV_FILE.nd-old' '$OLD_ENV_FILE'"
  rm -f "$OLD_ENV_FILE"
  say "moved $OLD_ENV_FILE to $ENV_FILE"
fi
backup "$ENV_FILE"
printf 'NEXTDEPLOY_HUB_ARGS="--ssh-listen %s --http-listen %s"\n' "$SSH_LISTEN" "$HTTP_LISTEN" >"$ENV_FILE"
chown "$HUB_USER:$HUB_USER" "$ENV_FILE" && chmod 0600 "$ENV_FILE"

if [ "$NO_SYSTEMD" = 0 ]; then
  [ -f "$HERE/systemd/nextdeploy-hub.service" ] || die "$HERE/systemd/nextdeploy-hub.service is missing"
  was_active=0
  systemctl is-active --quiet nextdeploy-hub 2>/dev/null && was_active=1
  backup "$UNIT"
  cp "$HERE/systemd/nextdeploy-hub.service" "$UNIT"
  systemctl daemon-reload
  undo "systemctl daemon-reload"
  [ "$was_active" = 0 ] && undo "systemctl disable --now nextdeploy-hub"
  systemctl enable nextdeploy-hub >/dev/null 2>&1 || die "systemctl enable failed"
  since=$(date '+%Y-%m-%d %H:%M:%S')
  systemctl restart nextdeploy-hub || die "systemctl restart failed: $(unit_reason nextdeploy-hub "$since")"
  sleep 2
  systemctl is-active --quiet nextdeploy-hub \
    || die "the hub did not stay up: $(unit_reason nextdeploy-hub "$since")"
  say "started nextdeploy-hub.service (journalctl -u nextdeploy-hub)"
else
  mkdir_undo "$LOG_DIR"
  mkdir -p "$(dirname "$PIDFILE")"
  if [ -f "$PIDFILE" ]; then
    pid=$(cat "$PIDFILE"); kill -TERM "$pid" 2>/dev/null || true
    i=0; while kill -0 "$pid" 2>/dev/null && [ $i -lt 300 ]; do sleep 0.1; i=$((i+1)); done
  fi
  # The log is root's and 0600 (also one an older version left readable):
  # the hub's output is for the administrator only.
  (umask 077 && : >>"$LOG") && chmod 0600 "$LOG" || die "cannot create $LOG"
  setsid sh -c "delay=1; while :; do setpriv --reuid=$HUB_USER --regid=$HUB_USER --init-groups -- '$BIN' hub --data-dir '$DATA' --ssh-listen '$SSH_LISTEN' --http-listen '$HTTP_LISTEN' >>'$LOG' 2>&1 && exit 0; sleep \$delay; delay=\$((delay*2)); [ \$delay -gt 60 ] && delay=60; done" </dev/null >/dev/null 2>&1 &
  echo $! >"$PIDFILE"
  undo "kill -TERM \$(cat '$PIDFILE') 2>/dev/null; rm -f '$PIDFILE'"
  sleep 2
  kill -0 "$(cat "$PIDFILE")" 2>/dev/null || die "the hub did not stay up: $(tail -n 20 "$LOG")"
  say "started the hub in the background (no systemd): pid file $PIDFILE, log $LOG"
fi

UNDO=""
rm -f "$BIN.nd-old" "$UNIT.nd-old" "$ENV_FILE.nd-old" "$OLD_ENV_FILE.nd-old"
# Only a first install has a first admin token to show (the hub removes the
# file once that token has logged in or a second admin token exists).
# The token itself never reaches the log or the journal: the hub prints it
# only to a terminal, and here it says only where the file is.
if [ "$FRESH" = 1 ]; then
  i=0; while [ ! -f "$DATA/initial-admin-token" ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done
fi
if [ "$FRESH" = 1 ] && [ -f "$DATA/initial-admin-token" ]; then
  PIN=""
  if command -v openssl >/dev/null 2>&1 && [ -f "$DATA/api-cert.pem" ]; then
    PIN="sha256:$(openssl x509 -pubkey -noout -in "$DATA/api-cert.pem" | openssl pkey -pubin -outform der | sha256sum | cut -d' ' -f1)"
  fi
  say "first admin token: $DATA/initial-admin-token (0600, removed once a second admin token exists; nextdeploy login --hub https://HOST:PORT --token \$(cat $DATA/initial-admin-token) --tls-pin ${PIN:-<the API pin the hub logs at start>})"
fi
say "done"
