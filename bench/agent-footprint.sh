#!/usr/bin/env bash
# Agent footprint with N running containers at the default 5 s health interval:
# agent RSS and CPU share, dockerd's extra CPU (dockerd CPU with the agent
# minus dockerd CPU without it, same window), and the agent's stats sweep time.
# Usage: bench/agent-footprint.sh [N=50] [WINDOW_S=60] [ROUNDS=3]
# Needs release binaries (cargo build --release --workspace; in target/release,
# or in NEXTDEPLOY_BENCH_BIN_DIR, which the bench sets) and a Docker Engine.
set -euo pipefail
N=${1:-50}; WINDOW=${2:-60}; ROUNDS=${3:-3}
cd "$(dirname "$0")/.."
B=${NEXTDEPLOY_BENCH_BIN_DIR:-target/release}
[ -x "$B/nextdeploy" ] && [ -x "$B/nextdeploy-agent" ] || { echo "build first: cargo build --release --workspace" >&2; exit 1; }
docker info >/dev/null 2>&1 || { echo "no Docker Engine answers" >&2; exit 1; }
TMP=$(mktemp -d); trap 'kill $HUB $AGENT 2>/dev/null || true; docker rm -f $(docker ps -aq --filter label=nd-footprint=1) >/dev/null 2>&1 || true; rm -rf "$TMP"' EXIT
TICK=$(getconf CLK_TCK)
cputicks() { awk '{print $14+$15}' /proc/$1/stat; }

IMG=nd-footprint:busybox
if ! docker image inspect $IMG >/dev/null 2>&1; then
  mkdir -p "$TMP/img"; cp /bin/busybox "$TMP/img/"
  printf 'FROM scratch\nCOPY busybox /bin/busybox\nRUN ["/bin/busybox","--install","-s","/bin"]\n' > "$TMP/img/Dockerfile"
  docker build -q -t $IMG "$TMP/img" >/dev/null
fi
existing=$(docker ps -q --filter label=nd-footprint=1 | wc -l)
for i in $(seq $((existing + 1)) "$N"); do
  docker run -d --label nd-footprint=1 --name nd-footprint-$i $IMG sh -c 'while :; do sleep 5; done' >/dev/null
done

$B/nextdeploy hub --data-dir "$TMP/hub" --ssh-listen 127.0.0.1:0 --http-listen 127.0.0.1:0 >"$TMP/hub.out" 2>"$TMP/hub.err" & HUB=$!
for _ in $(seq 100); do grep -q "HTTP listening" "$TMP/hub.out" 2>/dev/null && break; sleep 0.1; done
SSH=$(awk '/SSH listening/{print $4}' "$TMP/hub.out"); HTTP=$(awk '/HTTP listening/{print $4}' "$TMP/hub.out")
export NEXTDEPLOY_HUB=$HTTP NEXTDEPLOY_TOKEN=$(cat "$TMP/hub/initial-admin-token")
JT=$($B/nextdeploy join-token create --name footprint -o json | python3 -c 'import json,sys;print(json.load(sys.stdin)["token"])')
$B/nextdeploy-agent enroll --hub "$SSH" --token "$JT" --config "$TMP/agent/agent.toml" >/dev/null
echo 'scope_label = "nd-footprint=1"' >> "$TMP/agent/agent.toml"
DOCKERD=$(pgrep -xo dockerd)

echo "containers=$N window=${WINDOW}s rounds=$ROUNDS"
for r in $(seq "$ROUNDS"); do
  d0=$(cputicks $DOCKERD); sleep "$WINDOW"; d1=$(cputicks $DOCKERD)
  base=$(( d1 - d0 ))
  $B/nextdeploy-agent run --config "$TMP/agent/agent.toml" 2>"$TMP/agent.err" & AGENT=$!
  sleep 12   # connect, first snapshots
  a0=$(cputicks $AGENT); d0=$(cputicks $DOCKERD); sleep "$WINDOW"; a1=$(cputicks $AGENT); d1=$(cputicks $DOCKERD)
  rss=$(awk '/VmRSS/{print $2}' /proc/$AGENT/status)
  sweep=$($B/nextdeploy agent status --server footprint -o json | python3 -c 'import json,sys;print(json.load(sys.stdin)[0]["sweep_ms"])')
  seen=$($B/nextdeploy agent status --server footprint -o json | python3 -c 'import json,sys;print(len(json.load(sys.stdin)[0]["containers"]))')
  kill $AGENT; wait $AGENT 2>/dev/null || true
  python3 - "$rss" "$a1" "$a0" "$d1" "$d0" "$base" "$TICK" "$WINDOW" "$sweep" "$seen" <<'PY'
import sys
rss,a1,a0,d1,d0,base,tick,win,sweep,seen = map(float, sys.argv[1:])
agent = (a1-a0)/tick/win*100; extra = ((d1-d0)-base)/tick/win*100
print(f"round: agent_rss_mib={rss/1024:.1f} agent_cpu_pct={agent:.3f} dockerd_extra_cpu_pct={extra:.3f} sweep_ms={sweep:.0f} containers_seen={seen:.0f}")
PY
done
ls -l $B/nextdeploy-agent | awk '{printf "agent binary: %.1f MiB (stripped release)\n", $5/1048576}'
