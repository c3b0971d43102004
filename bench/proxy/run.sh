#!/usr/bin/env bash
# bench/proxy/run.sh -- sidecar-to-sidecar benchmark of meshid against Envoy (and others on request):
#   wrk -> outbound proxy -> (mTLS, TLS 1.3) -> inbound proxy -> nginx, on loopback.
# Modes: keep-alive (pooled upstream) and one full handshake per request (wrk "Connection: close",
# meshid outbound `pool: false` = new upstream connection per request, no session resumption).
# Two meshid pairs: `meshid` (rustls, the default backend) and `meshid-openssl` (the same configs with
# `tls_backend: openssl`); the second needs a binary built with the OpenSSL backend, and is in the default
# PAIRS when the binary has it. Build the proxy once first:  cargo build --release -p meshid --features openssl
# (without the feature only the rustls pair can run). Profiling: bench/proxy/profile.sh.
# Knobs are those of mtls-baseline.sh (DUR WARM REPS CONNS THREADS PAIRS PIN_* SKIP_LIMITS ENVOY_BIN ...).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
export MESHID=${MESHID:-$ROOT/target/release/meshid}
[ -x "$MESHID" ] || { echo "meshid not built: run 'cargo build --release -p meshid --features openssl' first" >&2; exit 1; }
export DUR=${DUR:-5} WARM=${WARM:-1} REPS=${REPS:-1} SKIP_LIMITS=${SKIP_LIMITS:-1}
if "$MESHID" version 2>/dev/null | grep -qi '^tls backends:.*openssl'; then
  export PAIRS=${PAIRS:-"meshid meshid-openssl envoy1"}
else
  export PAIRS=${PAIRS:-"meshid envoy1"}
fi
exec "$ROOT/bench/proxy/mtls-baseline.sh"
