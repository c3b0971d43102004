#!/usr/bin/env bash
# bench/agent-scale/run.sh -- one agent, many entries: the real `meshid ca serve` (SQLite, temp
# data dir) and `meshid agent run` on loopback, driven and measured by `meshid-bench-agent`.
#
# Measures: agent start -> all COUNT SVIDs cached; agent VmRSS/VmHWM at COUNT SVIDs; Workload API
# FetchX509SVID first-message latency p50/p99 with STREAMS concurrent streams (one connection each);
# rotation of all COUNT SVIDs (TTL short enough to rotate within the run) and how long the open
# streams take to receive the rotated SVID. Goals (issue): <= 50 MB RSS at 10k SVIDs, all 10k
# cached in < 10 s against a local CA.
#
#   bench/agent-scale/run.sh                       # builds once (release), runs, writes the table
#   COUNT=2000 STREAMS=200 SKIP_BUILD=1 bench/agent-scale/run.sh
#   MODE=key-rotation bench/agent-scale/run.sh     # CA key rotation instead (see below; needs root)
#
# MODE=key-rotation: the CA runs with [rotation] reissue_spread = "0s"; the entries select uids
# 20000.. (PER_UID=500 entries each) and `meshid-bench-agent key-rotation` watches every SVID with
# one Workload API stream per uid (a child run as that uid, so this must run as root), prepares a
# new X.509 CA key (admin PrepareKey), waits until every stream trusts the new root, activates it
# (ActivateKey, force) and times until every SVID served is signed by the new key. TTL defaults to
# 3600 there (no ordinary rotation during the run); STREAMS, ROUNDS, NO_ROTATION do not apply.
#
# Knobs: COUNT (10000) STREAMS (1000) TTL seconds (60, key-rotation 3600; >= 60, rotation at ~50%) BATCH agent
# batch_size (500) SYNC agent sync_interval (5s) JITTER agent rotation_jitter (0.1)
# ROUNDS (1) rounds of STREAMS streams opened and closed (agent RSS after each; the last round stays
# open for rotation) SETTLE seconds after closing before RSS is read (3)
# AGENT_WRAP (see below); NO_ROTATION=1 skips the rotation phase; BENCH_DIR (/tmp/meshid-bench); KEEP=1 keeps the run dir.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
MODE=${MODE:-scale} PER_UID=${PER_UID:-500}
case "$MODE" in
  scale) TTL=${TTL:-60} ;;
  key-rotation) TTL=${TTL:-3600} ;;
  *) echo "MODE must be scale or key-rotation, not $MODE" >&2; exit 2 ;;
esac
COUNT=${COUNT:-10000} STREAMS=${STREAMS:-1000}
BATCH=${BATCH:-500} SYNC=${SYNC:-5s} JITTER=${JITTER:-0.1} ROUNDS=${ROUNDS:-1} SETTLE=${SETTLE:-3}
BENCH_DIR=${BENCH_DIR:-/tmp/meshid-bench}
OUT=$BENCH_DIR/results/$(date -u +%Y%m%dT%H%M%SZ)
TD=bench.example
RUN=$(mktemp -d /tmp/meshid-agent-bench.XXXXXX)
chmod o+x "$RUN" # the agent refuses a Workload API socket others cannot reach
PIDS=()

cleanup() {
  local rc=$?
  for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for _ in $(seq 50); do
    local alive=0
    for p in "${PIDS[@]}"; do kill -0 "$p" 2>/dev/null && alive=1; done
    [ "$alive" = 0 ] && break
    sleep 0.1
  done
  for p in "${PIDS[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
  if [ "$rc" != 0 ]; then
    echo "run failed (exit $rc); last log lines:" >&2
    tail -n 20 "$RUN"/ca.log "$RUN"/agent.log 2>/dev/null >&2 || true
  fi
  if [ "${KEEP:-0}" = 1 ]; then echo "run dir kept: $RUN" >&2; else rm -rf "$RUN"; fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

echo "machine: $(nproc) cores, $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n1)"
if [ "${SKIP_BUILD:-0}" != 1 ]; then
  (cd "$ROOT" && cargo build --release -p meshid -p meshid-bench-agent)
fi
MESHID=$ROOT/target/release/meshid
BENCH=$ROOT/target/release/meshid-bench-agent
for b in "$MESHID" "$BENCH"; do [ -x "$b" ] || { echo "$b is not built" >&2; exit 1; }; done
# One descriptor per stream on both sides, plus the agent's own.
[ "$(ulimit -n)" -ge $((STREAMS + 256)) ] || ulimit -n $((STREAMS + 256))

# wait_for WHAT SECONDS PID TEST...: polls TEST every 0.1 s while PID lives.
wait_for() {
  local what=$1 secs=$2 pid=$3; shift 3
  for _ in $(seq $((secs * 10))); do
    "$@" && return 0
    kill -0 "$pid" 2>/dev/null || { echo "$what: process $pid exited" >&2; return 1; }
    sleep 0.1
  done
  echo "$what: not ready after ${secs}s" >&2
  return 1
}

# --- the CA.
CA_PORT=$("$BENCH" port) CA_OPS=$("$BENCH" port) AGENT_OPS=$("$BENCH" port)
SOCK=$RUN/ca/admin.sock
CA_CONFIG=()
if [ "$MODE" = key-rotation ]; then
  printf '[rotation]\nreissue_spread = "0s"\n' >"$RUN/ca.toml"
  CA_CONFIG=(--config "$RUN/ca.toml")
fi
"$MESHID" ca serve "${CA_CONFIG[@]}" --trust-domain "$TD" --data-dir "$RUN/ca" --listen "127.0.0.1:$CA_PORT" \
  --ops-listen "127.0.0.1:$CA_OPS" --admin-socket "$SOCK" >"$RUN/ca.log" 2>&1 &
CA_PID=$!
PIDS+=("$CA_PID")
wait_for "CA admin socket" 60 "$CA_PID" test -S "$SOCK"

# --- operator: join token, bundle, entries.
TOKEN_JSON=$(timeout 30 "$MESHID" token generate --ttl 10m --admin-socket "$SOCK" --output json)
TOKEN=$(sed -n 's/^ *"token": *"\([^"]*\)".*/\1/p' <<<"$TOKEN_JSON")
AGENT_ID=$(sed -n 's/^ *"spiffe_id": *"\([^"]*\)".*/\1/p' <<<"$TOKEN_JSON")
[ -n "$TOKEN" ] && [ -n "$AGENT_ID" ] || { echo "cannot read the join token: $TOKEN_JSON" >&2; exit 1; }
timeout 30 "$MESHID" bundle show --format pem --admin-socket "$SOCK" >"$RUN/bundle.pem"
UIDS=(--bench-uid "$(id -u)"); [ "$MODE" = key-rotation ] && UIDS=(--per-uid "$PER_UID")
timeout 300 "$BENCH" entries --admin-socket "$SOCK" --trust-domain "$TD" --parent-id "$AGENT_ID" \
  --count "$COUNT" "${UIDS[@]}" --ttl "$TTL" | tee "$RUN/entries.txt"

# --- the agent.
cat >"$RUN/agent.toml" <<TOML
trust_domain = "$TD"
ca_address = "127.0.0.1:$CA_PORT"
trust_bundle_file = "$RUN/bundle.pem"
data_dir = "$RUN/agent"
workload_api_socket = "$RUN/agent.sock"
ops_listen = "127.0.0.1:$AGENT_OPS"
sync_interval = "$SYNC"
batch_size = $BATCH
rotation_jitter = $JITTER
TOML
START_MS=$(date +%s%3N)
# AGENT_WRAP runs the agent under a profiler (e.g. "heaptrack -o $BENCH_DIR/agent"); the agent's
# own pid is then found by its command line, for RSS.
read -r -a WRAP <<<"${AGENT_WRAP:-}"
MESHID_JOIN_TOKEN=$TOKEN "${WRAP[@]}" "$MESHID" agent run --config "$RUN/agent.toml" >"$RUN/agent.log" 2>&1 &
AGENT_PID=$!
PIDS+=("$AGENT_PID")
if [ "${#WRAP[@]}" -gt 0 ]; then
  is_agent() { [ "$(readlink "/proc/$1/exe" 2>/dev/null)" = "$MESHID" ]; }
  find_agent() {
    local p
    for p in $(pgrep -f -- "--config $RUN/agent.toml"); do is_agent "$p" && AGENT_PID=$p && return 0; done
    return 1
  }
  wait_for "agent under ${WRAP[0]}" 60 "$AGENT_PID" find_agent
  PIDS+=("$AGENT_PID")
  echo "agent pid $AGENT_PID (under ${WRAP[*]})"
fi

mkdir -p "$OUT"
LABEL="agent: batch_size=$BATCH sync_interval=$SYNC rotation_jitter=$JITTER; CA: SQLite, $(head -n1 "$RUN/entries.txt")"
if [ "$MODE" = key-rotation ]; then
  # --- CA key rotation (bounded: each of its three waits at most 300 s).
  timeout 1000 "$BENCH" key-rotation --admin-socket "$SOCK" --socket "$RUN/agent.sock" \
    --agent-ops "127.0.0.1:$AGENT_OPS" --ca-ops "127.0.0.1:$CA_OPS" --count "$COUNT" \
    --per-uid "$PER_UID" --timeout 300 --out "$OUT/key-rotation.txt" \
    --label "$LABEL; [rotation] reissue_spread = 0s"
  cp "$RUN/ca.log" "$RUN/agent.log" "$OUT/" 2>/dev/null || true
  exit 0
fi

# --- measure (bounded: issuance, streams, one rotation at ~50% of TTL, stream updates).
ROT=(); [ "${NO_ROTATION:-0}" = 1 ] && ROT=(--no-rotation)
timeout $((TTL + 480 + ROUNDS * (60 + SETTLE))) "$BENCH" measure --agent-ops "127.0.0.1:$AGENT_OPS" --ca-ops "127.0.0.1:$CA_OPS" \
  --agent-pid "$AGENT_PID" --agent-started-ms "$START_MS" --socket "$RUN/agent.sock" \
  --count "$COUNT" --streams "$STREAMS" --ttl "$TTL" --rounds "$ROUNDS" --settle "$SETTLE" "${ROT[@]}" --out "$OUT/agent.txt" \
  --label "$LABEL"
cp "$RUN/ca.log" "$RUN/agent.log" "$OUT/" 2>/dev/null || true
