#!/bin/sh
# Install (or upgrade) the NextDeploy agent on this server.
#
#   install-agent.sh --hub HOST:PORT --token ndj_... [--binary PATH] [--name N]
#                    [--labels k=v,...] [--no-systemd] [--prefix DIR]
#
# (the token may come in NEXTDEPLOY_JOIN_TOKEN instead, kept out of argv)
# * installs the binary as /usr/local/bin/nextdeploy-agent;
# * creates the nextdeploy-agent system user (in the docker group: that is
#   root-equivalent, see the README);
# * enrols: the agent makes its key pair HERE (the private key never leaves
#   this machine) and presents the one-time join token to the hub, pinning the
#   hub's host key the token carries; writes /etc/nextdeploy/agent.toml (0600);
# * installs and starts deploy/systemd/nextdeploy-agent.service, or with
#   --no-systemd a supervised background process (restart with back-off, log
#   in /var/log/nextdeploy/agent.log, pid file /run/nextdeploy-agent.pid).
#
# Already enrolled (agent.toml exists): the identity and config are kept, only
# the binary is replaced and the agent restarted (this is how to upgrade); the
# token is not used. On any failure everything this run did is undone.
# --name/--labels are checked against what the join token enrols (the hub
# decides them when it creates the token). --prefix installs under DIR (tests).
set -eu

HUB= TOKEN="${NEXTDEPLOY_JOIN_TOKEN:-}" BINARY= NAME= LABELS= NO_SYSTEMD=0 PREFIX="${NEXTDEPLOY_PREFIX:-}"
AGENT_USER=nextdeploy-agent

die() { echo "install-agent: error: $*" >&2; exit 1; }
say() { echo "install-agent: $*"; }

while [ $# -gt 0 ]; do
  case "$1" in
    --hub) HUB="${2:-}"; shift 2 ;;
    --token) TOKEN="${2:-}"; shift 2 ;;
    --binary) BINARY="${2:-}"; shift 2 ;;
    --name) NAME="${2:-}"; shift 2 ;;
    --labels) LABELS="${2:-}"; shift 2 ;;
    --no-systemd) NO_SYSTEMD=1; shift ;;
    --prefix) PREFIX="${2:-}"; shift 2 ;;
    -h|--help) sed -n '2,22p' "$0"; exit 0 ;;
    *) die "unknown argument $1 (see --help)" ;;
  esac
done

BIN_DIR="$PREFIX/usr/local/bin"
BIN="$BIN_DIR/nextdeploy-agent"
SUPERVISOR="$PREFIX/usr/local/lib/nextdeploy/agent-supervise"
CONF_DIR="$PREFIX/etc/nextdeploy"
CONF="$CONF_DIR/agent.toml"
LOG_DIR="$PREFIX/var/log/nextdeploy"
LOG="$LOG_DIR/agent.log"
PIDFILE="$PREFIX/run/nextdeploy-agent.pid"
UNIT_DIR="$PREFIX/etc/systemd/system"
UNIT="$UNIT_DIR/nextdeploy-agent.service"
HERE=$(cd "$(dirname "$0")" && pwd)

# ---- checks (nothing changed yet) -----------------------------------------
if [ -z "$BINARY" ]; then
  if [ -x "$HERE/nextdeploy-agent" ]; then BINARY="$HERE/nextdeploy-agent"
  else BINARY=$(command -v nextdeploy-agent || true); fi
fi
[ -n "$BINARY" ] && [ -f "$BINARY" ] || die "no agent binary: pass --binary PATH"
"$BINARY" --version >/dev/null 2>&1 || die "$BINARY does not run here (wrong architecture?)"
ENROLLED=0
[ -f "$CONF" ] && ENROLLED=1
if [ "$ENROLLED" = 0 ]; then
  [ -n "$HUB" ] || die "--hub HOST:PORT is required for a first install"
  [ -n "$TOKEN" ] || die "--token is required for a first install"
fi
if [ "$NO_SYSTEMD" = 0 ] && [ ! -d /run/systemd/system ]; then
  die "this machine does not run systemd (no /run/systemd/system). Run again with --no-systemd to install the agent as a supervised background process logging to $LOG."
fi
IS_ROOT=0
[ "$(id -u)" = 0 ] && IS_ROOT=1
if [ "$NO_SYSTEMD" = 0 ] && [ "$IS_ROOT" = 0 ]; then die "installing the systemd unit needs root"; fi

# ---- rollback journal -------------------------------------------------------
UNDO=""
undo() { UNDO="$1
$UNDO"; }
rollback() {
  rc=$?
  [ "$rc" = 0 ] && return 0
  echo "install-agent: failed; undoing what this run did" >&2
  printf '%s\n' "$UNDO" | while IFS= read -r step; do
    [ -n "$step" ] && sh -c "$step" >/dev/null 2>&1 || true
  done
  exit "$rc"
}
trap rollback EXIT
trap 'exit 130' INT TERM

backup() { # keep a file we are about to replace, restore it on failure
  if [ -e "$1" ]; then cp -p "$1" "$1.nd-old"; undo "mv -f '$1.nd-old' '$1'"; else undo "rm -f '$1'"; fi
}

stop_supervised() {
  if [ -f "$PIDFILE" ]; then
    pid=$(cat "$PIDFILE" 2>/dev/null || true)
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
      kill -TERM "$pid" 2>/dev/null || true
      i=0; while kill -0 "$pid" 2>/dev/null && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done
    fi
    rm -f "$PIDFILE"
  fi
}

# ---- user -------------------------------------------------------------------
RUN_AS=""
if [ "$IS_ROOT" = 1 ]; then
  RUN_AS="$AGENT_USER"
  if ! id "$AGENT_USER" >/dev/null 2>&1; then
    useradd --system --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin "$AGENT_USER" \
      || die "cannot create the $AGENT_USER user"
    undo "userdel '$AGENT_USER'"
    say "created system user $AGENT_USER"
  fi
  if getent group docker >/dev/null 2>&1; then
    if ! id -nG "$AGENT_USER" | tr ' ' '\n' | grep -qx docker; then
      usermod -aG docker "$AGENT_USER" || die "cannot add $AGENT_USER to the docker group"
      undo "gpasswd -d '$AGENT_USER' docker"
    fi
  else
    say "warning: no docker group here; the agent will report Docker as unavailable until it can reach the engine"
  fi
fi

# ---- binary (atomic replace) -------------------------------------------------
if [ ! -d "$BIN_DIR" ]; then mkdir -p "$BIN_DIR"; undo "rmdir '$BIN_DIR'"; fi
backup "$BIN"
cp "$BINARY" "$BIN.nd-new" && chmod 0755 "$BIN.nd-new" && mv -f "$BIN.nd-new" "$BIN" \
  || die "cannot install $BIN"
say "installed $BIN ($("$BIN" --version 2>/dev/null || echo '?'))"

# ---- enrolment ---------------------------------------------------------------
if [ "$ENROLLED" = 1 ]; then
  say "already enrolled ($CONF): keeping its identity and config; the token is not used"
else
  if [ ! -d "$CONF_DIR" ]; then mkdir -p "$CONF_DIR"; undo "rm -rf '$CONF_DIR'"; fi
  chmod 0700 "$CONF_DIR"
  [ -n "$RUN_AS" ] && chown "$RUN_AS:$RUN_AS" "$CONF_DIR"
  undo "rm -f '$CONF' '$CONF_DIR/agent_ed25519'"
  if [ -n "$RUN_AS" ]; then
    out=$(NEXTDEPLOY_JOIN_TOKEN="$TOKEN" setpriv --reuid="$RUN_AS" --regid="$RUN_AS" --init-groups -- \
      "$BIN" enroll --hub "$HUB" --config "$CONF" 2>&1) || die "enrolment failed: $out"
  else
    out=$(NEXTDEPLOY_JOIN_TOKEN="$TOKEN" "$BIN" enroll --hub "$HUB" --config "$CONF" 2>&1) \
      || die "enrolment failed: $out"
  fi
  printf '%s\n' "$out" | sed 's/^/  /'
  got=$(sed -n 's/^name = "\(.*\)"$/\1/p' "$CONF")
  if [ -n "$NAME" ] && [ "$got" != "$NAME" ]; then
    die "the join token enrolled this agent as $got, not $NAME (revoke $got on the hub)"
  fi
fi
[ -n "$LABELS" ] && say "labels come from the join token; --labels $LABELS is informational"

# ---- service -------------------------------------------------------------------
if [ "$NO_SYSTEMD" = 0 ]; then
  [ -f "$HERE/systemd/nextdeploy-agent.service" ] || die "$HERE/systemd/nextdeploy-agent.service is missing"
  was_active=0
  systemctl is-active --quiet nextdeploy-agent 2>/dev/null && was_active=1
  mkdir -p "$UNIT_DIR"
  backup "$UNIT"
  cp "$HERE/systemd/nextdeploy-agent.service" "$UNIT"
  systemctl daemon-reload
  undo "systemctl daemon-reload"
  if [ "$was_active" = 0 ]; then undo "systemctl disable --now nextdeploy-agent"; fi
  systemctl enable nextdeploy-agent >/dev/null 2>&1 || die "systemctl enable failed"
  systemctl restart nextdeploy-agent || die "systemctl restart failed: $(journalctl -u nextdeploy-agent -n 20 --no-pager 2>&1)"
  sleep 2
  systemctl is-active --quiet nextdeploy-agent \
    || die "the agent did not stay up: $(journalctl -u nextdeploy-agent -n 20 --no-pager 2>&1)"
  say "started nextdeploy-agent.service (journalctl -u nextdeploy-agent)"
else
  for d in "$(dirname "$SUPERVISOR")" "$LOG_DIR"; do
    if [ ! -d "$d" ]; then mkdir -p "$d"; undo "rm -rf '$d'"; fi
  done
  mkdir -p "$(dirname "$PIDFILE")"
  backup "$SUPERVISOR"
  cat >"$SUPERVISOR.nd-new" <<EOF
#!/bin/sh
# Written by install-agent.sh: runs the agent, restarting it on failure with
# exponential back-off (1 s doubling to 60 s, reset after a minute of running).
child=
trap '[ -n "\$child" ] && kill -TERM "\$child" 2>/dev/null; wait "\$child" 2>/dev/null; exit 0' TERM INT
delay=1
while :; do
  start=\$(date +%s)
  if [ -n "$RUN_AS" ]; then
    setpriv --reuid="$RUN_AS" --regid="$RUN_AS" --init-groups -- "$BIN" run --config "$CONF" >>"$LOG" 2>&1 &
  else
    "$BIN" run --config "$CONF" >>"$LOG" 2>&1 &
  fi
  child=\$!
  wait "\$child"; rc=\$?
  [ "\$rc" = 0 ] && exit 0
  [ \$((\$(date +%s) - start)) -ge 60 ] && delay=1
  echo "supervisor: agent exited with \$rc; restarting in \${delay}s" >>"$LOG"
  sleep "\$delay"
  delay=\$((delay * 2)); [ "\$delay" -gt 60 ] && delay=60
done
EOF
  chmod 0755 "$SUPERVISOR.nd-new" && mv -f "$SUPERVISOR.nd-new" "$SUPERVISOR"
  old_pid=$(cat "$PIDFILE" 2>/dev/null || true)
  stop_supervised
  if [ -n "$old_pid" ]; then undo "setsid '$SUPERVISOR' </dev/null >/dev/null 2>&1 & echo \$! >'$PIDFILE'"; fi
  touch "$LOG" && chmod 0640 "$LOG"
  setsid "$SUPERVISOR" </dev/null >/dev/null 2>&1 &
  echo $! >"$PIDFILE"
  undo "kill -TERM \$(cat '$PIDFILE') 2>/dev/null; rm -f '$PIDFILE'"
  sleep 2
  kill -0 "$(cat "$PIDFILE")" 2>/dev/null && pgrep -P "$(cat "$PIDFILE")" >/dev/null \
    || die "the agent did not stay up: $(tail -n 20 "$LOG")"
  say "started the agent in the background (no systemd): pid file $PIDFILE, log $LOG"
fi

UNDO=""  # success: keep everything
find "$PREFIX/usr/local/bin" "$PREFIX/usr/local/lib/nextdeploy" "$UNIT_DIR" -name '*.nd-old' -delete 2>/dev/null || true
say "done"
