#!/bin/sh
# Install (or upgrade) the NextDeploy agent on this server.
#
#   install-agent.sh --hub HOST:PORT --token ndj_... [--binary PATH] [--name N]
#                    [--labels k=v,...] [--read-only] [--no-exec]
#                    [--no-systemd] [--prefix DIR]
#   install-agent.sh --uninstall [--prefix DIR]
#
# (the token may come in NEXTDEPLOY_JOIN_TOKEN instead, kept out of argv)
# * installs the binary as /usr/local/bin/nextdeploy-agent;
# * creates the nextdeploy-agent system user (in the docker group: that is
#   root-equivalent, see the README);
# * enrols: the agent makes its key pair HERE (the private key never leaves
#   this machine) and presents the one-time join token to the hub, pinning the
#   hub's host key the token carries; writes /etc/nextdeploy/agent/agent.toml
#   (0600; the directory is the agent user's own, 0700);
# * installs and starts deploy/systemd/nextdeploy-agent.service, or with
#   --no-systemd a supervised background process (restart with back-off, log
#   in /var/log/nextdeploy/agent.log, pid file /run/nextdeploy-agent.pid).
#
# Already enrolled (agent.toml exists): the identity and config are kept, only
# the binary is replaced and the agent restarted (this is how to upgrade); the
# token is not used. An install of the old layout (/etc/nextdeploy/agent.toml)
# is moved to /etc/nextdeploy/agent/. On any failure everything this run did
# is undone, on the hub too: a fresh enrolment is withdrawn (the agent proves
# its key) and the join token can be used again.
# --name/--labels are checked against what the join token enrols (the hub
# decides them when it creates the token). --read-only and --no-exec write the
# agent's own [policy] (read_only = true, exec = false) at enrolment: the
# agent then refuses those requests whatever the hub asks. An existing config
# is kept: on an upgrade they only check that it already says so.
# --prefix installs under DIR (tests).
# --uninstall stops the agent and removes its unit, binary, config, key and
# user; revoke it on the hub as well (nextdeploy agent revoke NAME).
set -eu

HUB= TOKEN="${NEXTDEPLOY_JOIN_TOKEN:-}" BINARY= NAME= LABELS= NO_SYSTEMD=0 UNINSTALL=0 PREFIX="${NEXTDEPLOY_PREFIX:-}"
READ_ONLY=0 NO_EXEC=0
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
    --read-only) READ_ONLY=1; shift ;;
    --no-exec) NO_EXEC=1; shift ;;
    --prefix) PREFIX="${2:-}"; shift 2 ;;
    --uninstall) UNINSTALL=1; shift ;;
    -h|--help) sed -n '2,34p' "$0"; exit 0 ;;
    *) die "unknown argument $1 (see --help)" ;;
  esac
done

BIN_DIR="$PREFIX/usr/local/bin"
BIN="$BIN_DIR/nextdeploy-agent"
SUPERVISOR="$PREFIX/usr/local/lib/nextdeploy/agent-supervise"
ETC="$PREFIX/etc/nextdeploy"
CONF_DIR="$ETC/agent"
CONF="$CONF_DIR/agent.toml"
OLD_CONF="$ETC/agent.toml"  # layout before 2026-12: shared with the hub's hub.env
LOG_DIR="$PREFIX/var/log/nextdeploy"
LOG="$LOG_DIR/agent.log"
PIDFILE="$PREFIX/run/nextdeploy-agent.pid"
UNIT_DIR="$PREFIX/etc/systemd/system"
UNIT="$UNIT_DIR/nextdeploy-agent.service"
HERE=$(cd "$(dirname "$0")" && pwd)

# ---- uninstall ----------------------------------------------------------------
if [ "$UNINSTALL" = 1 ]; then
  name=$(sed -n 's/^name = "\(.*\)"$/\1/p' "$CONF" "$OLD_CONF" 2>/dev/null | head -n 1)
  if [ -d /run/systemd/system ] && [ -z "$PREFIX" ]; then
    systemctl disable --now nextdeploy-agent >/dev/null 2>&1 || true
  fi
  if [ -f "$PIDFILE" ]; then
    kill -TERM "$(cat "$PIDFILE")" 2>/dev/null || true
    rm -f "$PIDFILE"
  fi
  rm -rf "$UNIT" "$UNIT.d" "$BIN" "$SUPERVISOR" "$CONF_DIR" "$OLD_CONF" "$OLD_CONF.lock" \
    "$ETC/agent_ed25519" "$ETC/agent_ed25519.pub" "$LOG"
  [ -d /run/systemd/system ] && [ -z "$PREFIX" ] && systemctl daemon-reload
  rmdir "$ETC" "$LOG_DIR" "$(dirname "$SUPERVISOR")" 2>/dev/null || true
  if [ "$(id -u)" = 0 ] && [ -z "$PREFIX" ] && id "$AGENT_USER" >/dev/null 2>&1; then
    userdel "$AGENT_USER" || say "warning: cannot remove the $AGENT_USER user"
  fi
  say "uninstalled${name:+ $name}; revoke it on the hub too: nextdeploy agent revoke ${name:-NAME}"
  exit 0
fi

# ---- checks (nothing changed yet) -----------------------------------------
# An existing config is kept: --read-only/--no-exec must already be in it.
# (`nextdeploy-agent enroll` writes [policy] last, one key a line.)
policy_has() { sed -n '/^\[policy\]/,/^\[/p' "$1" 2>/dev/null | grep -qx "$2"; }
for c in "$CONF" "$OLD_CONF"; do
  [ -f "$c" ] || continue
  { [ "$READ_ONLY" = 0 ] || policy_has "$c" 'read_only = true'; } \
    && { [ "$NO_EXEC" = 0 ] || policy_has "$c" 'exec = false'; } \
    || die "already enrolled ($c): --read-only/--no-exec are written at enrolment; set read_only = true / exec = false under [policy] in $c, then run this again"
  break
done
if [ -z "$BINARY" ]; then
  if [ -x "$HERE/nextdeploy-agent" ]; then BINARY="$HERE/nextdeploy-agent"
  else BINARY=$(command -v nextdeploy-agent || true); fi
fi
[ -n "$BINARY" ] && [ -f "$BINARY" ] || die "no agent binary: pass --binary PATH"
"$BINARY" --version >/dev/null 2>&1 || die "$BINARY does not run here (wrong architecture?)"
ENROLLED=0
{ [ -f "$CONF" ] || [ -f "$OLD_CONF" ]; } && ENROLLED=1
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
    case "$step" in
      "") ;;
      @withdraw) withdraw ;;
      *) sh -c "$step" >/dev/null 2>&1 || true ;;
    esac
  done
  exit "$rc"
}
withdraw() { # undo a fresh enrolment on the hub; says what happened
  if w=$(as_agent "$BIN" withdraw --config "$CONF" 2>&1); then
    echo "install-agent: $w" >&2
  else
    echo "install-agent: could not withdraw the enrolment on the hub ($w); revoke the agent there (nextdeploy agent revoke NAME)" >&2
  fi
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

# Why a unit did not start: its status line and every journal line naming it
# since the start, from the whole journal (systemd's own lines about the
# unit, such as a failed setup step before exec, are not all under -u).
unit_reason() {
  echo
  systemctl status "$1" --no-pager -n 0 2>&1 | sed -n '1,5p'
  journalctl --no-pager -q --since "$2" 2>/dev/null | grep -F "$1" | tail -n 20
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
    say "warning: no docker group here; the agent will report Docker as unavailable until it can reach the engine (once Docker is installed, run this script again, or usermod -aG docker $AGENT_USER and restart the agent)"
  fi
fi

# ---- binary (atomic replace) -------------------------------------------------
if [ ! -d "$BIN_DIR" ]; then mkdir -p "$BIN_DIR"; undo "rmdir '$BIN_DIR'"; fi
backup "$BIN"
cp "$BINARY" "$BIN.nd-new" && chmod 0755 "$BIN.nd-new" && mv -f "$BIN.nd-new" "$BIN" \
  || die "cannot install $BIN"
say "installed $BIN ($("$BIN" --version 2>/dev/null || echo '?'))"

# ---- configuration directories -------------------------------------------------
# /etc/nextdeploy is root's (0755); the agent's files live in agent/ (its
# user's, 0700) and the hub's in hub/, so neither user can touch the other's.
as_agent() { if [ -n "$RUN_AS" ]; then setpriv --reuid="$RUN_AS" --regid="$RUN_AS" --init-groups -- "$@"; else "$@"; fi; }
if [ ! -d "$ETC" ]; then mkdir -p "$ETC"; undo "rmdir '$ETC'"; fi
if [ "$IS_ROOT" = 1 ]; then
  old_owner=$(stat -c '%u:%g %a' "$ETC")
  chown root:root "$ETC" && chmod 0755 "$ETC"
  undo "chown '${old_owner% *}' '$ETC'; chmod '${old_owner#* }' '$ETC'"
fi
if [ ! -d "$CONF_DIR" ]; then mkdir -p "$CONF_DIR"; undo "rm -rf '$CONF_DIR'"; fi
chmod 0700 "$CONF_DIR"
[ -n "$RUN_AS" ] && chown "$RUN_AS:$RUN_AS" "$CONF_DIR"
if [ -f "$OLD_CONF" ] && [ ! -f "$CONF" ]; then
  # Move the old layout's agent files (config, key, deploy state) into agent/
  # (on failure: moved back, then the key path put back; the journal runs
  # backwards).
  undo "sed -i 's#^key_path = .*#key_path = \"$ETC/agent_ed25519\"#' '$OLD_CONF'"
  for f in agent.toml agent_ed25519 agent_ed25519.pub deploys; do
    if [ -e "$ETC/$f" ]; then mv "$ETC/$f" "$CONF_DIR/$f"; undo "mv '$CONF_DIR/$f' '$ETC/$f'"; fi
  done
  rm -f "$ETC/agent.toml.lock"
  sed -i "s#^key_path = \".*\"\$#key_path = \"$CONF_DIR/agent_ed25519\"#" "$CONF"
  [ -n "$RUN_AS" ] && chown -R "$RUN_AS:$RUN_AS" "$CONF_DIR"
  say "moved the agent's files from $ETC to $CONF_DIR"
fi

# ---- enrolment ---------------------------------------------------------------
if [ "$ENROLLED" = 1 ]; then
  say "already enrolled ($CONF): keeping its identity and config; the token is not used"
else
  undo "rm -rf '$CONF' '$CONF_DIR/agent_ed25519' '$CONF_DIR/deploys'"
  set --
  [ "$READ_ONLY" = 1 ] && set -- "$@" --read-only
  [ "$NO_EXEC" = 1 ] && set -- "$@" --no-exec
  out=$(NEXTDEPLOY_JOIN_TOKEN="$TOKEN" as_agent "$BIN" enroll --hub "$HUB" --config "$CONF" "$@" 2>&1) \
    || die "enrolment failed: $out"
  # Undone first on failure (the journal runs backwards): the agent proves its
  # new key to the hub, which forgets the enrolment and frees the join token.
  undo "@withdraw"
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
  since=$(date '+%Y-%m-%d %H:%M:%S')
  systemctl restart nextdeploy-agent || die "systemctl restart failed: $(unit_reason nextdeploy-agent "$since")"
  sleep 2
  systemctl is-active --quiet nextdeploy-agent \
    || die "the agent did not stay up: $(unit_reason nextdeploy-agent "$since")"
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
