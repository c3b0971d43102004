#!/usr/bin/env bash
# bench/proxy/profile.sh -- profile one meshid proxy of the sidecar pair under wrk load.
#   TOOL=callgrind (default): instructions per request (valgrind counts instructions, so the number
#                             repeats whatever else the machine does); prints the top inclusive costs
#                             and the exclusive instructions per request of each shared object and of
#                             each crate inside meshid (profile-split.py).
#   TOOL=perf:                perf record -e cpu-clock -g on both proxies; prints user/kernel split
#                             and the top symbols of ROLE, and the same split by object and crate.
# ROLE=in|out (default in) picks the proxy. BACKEND=rustls|openssl (default rustls) picks the pair:
# the `meshid` or the `meshid-openssl` configs (the same but `tls_backend: openssl`; needs a binary
# built with --features openssl). MODE=ka (default: keep-alive, pooled mTLS connections) or close
# (wrk "Connection: close" to the outbound's pool:false listener: one full mTLS handshake per request).
# Uses the PKI and configs that bench/proxy/run.sh wrote under $BENCH_DIR (default /tmp/mtls-baseline):
# run that once first. Needs a release build. Every process started here is stopped on exit; load is
# bounded by wrk -d.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
MESHID=${MESHID:-$ROOT/target/release/meshid}
B=${BENCH_DIR:-/tmp/mtls-baseline}; C=$B/conf
TOOL=${TOOL:-callgrind}; ROLE=${ROLE:-in}; DUR=${DUR:-4}; BACKEND=${BACKEND:-rustls}; MODE=${MODE:-ka}
case $BACKEND in
  rustls)  CFG=meshid;         KA=10005; CLOSE=10015;;
  openssl) CFG=meshid-openssl; KA=10006; CLOSE=10016;;
  *) echo "BACKEND is rustls or openssl" >&2; exit 1;;
esac
case $MODE in
  ka)    PORT=$KA;    HDR=();;
  close) PORT=$CLOSE; HDR=(-H "Connection: close");;
  *) echo "MODE is ka or close" >&2; exit 1;;
esac
OUT=${OUT:-$B/profile/$BACKEND-$MODE}; mkdir -p "$OUT"
[ -x "$MESHID" ] || { echo "build first: cargo build --release -p meshid --features openssl" >&2; exit 1; }
[ -f "$C/$CFG-in.yaml" ] || { echo "run bench/proxy/run.sh once first (it writes $C)" >&2; exit 1; }
case $ROLE in in|out) ;; *) echo "ROLE is in or out" >&2; exit 1;; esac

PIDS=()
cleanup() { for p in "${PIDS[@]:-}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT

nginx -c "$C/backend-nginx.conf" -e "$OUT/backend.err" & PIDS+=($!)
wrap_in=(); wrap_out=()
if [ "$TOOL" = callgrind ]; then
  rm -f "$OUT"/callgrind.out.*
  w=(valgrind --tool=callgrind "--callgrind-out-file=$OUT/callgrind.out.%p")
  if [ "$ROLE" = in ]; then wrap_in=("${w[@]}"); else wrap_out=("${w[@]}"); fi
fi
"${wrap_in[@]}" "$MESHID" proxy run --config "$C/$CFG-in.yaml" >"$OUT/in.log" 2>&1 & PIDS+=($!); IN=$!
"${wrap_out[@]}" "$MESHID" proxy run --config "$C/$CFG-out.yaml" >"$OUT/out.log" 2>&1 & PIDS+=($!); OUTP=$!
for _ in $(seq 1 120); do
  [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$PORT/" || true)" = 200 ] && break
  sleep 0.5
done
wrk -t1 -c8 -d2 "${HDR[@]}" "http://127.0.0.1:$PORT/" >/dev/null   # warm up

if [ "$TOOL" = callgrind ]; then
  callgrind_control -z >/dev/null
  wrk -t1 -c8 -d"$DUR" "${HDR[@]}" "http://127.0.0.1:$PORT/" >"$OUT/wrk.txt"
  callgrind_control -d >/dev/null; sleep 1
  n=$(awk '/requests in/{print $1}' "$OUT/wrk.txt")
  f=$(ls -t "$OUT"/callgrind.out.*.1 | head -1)
  total=$(callgrind_annotate "$f" | awk '/PROGRAM TOTALS/{gsub(",","",$1); print $1; exit}')
  echo "$BACKEND $MODE $ROLE proxy: $n requests, $total instructions, $((total / n)) instructions/request ($f)"
  echo "-- exclusive instructions per request: by shared object, and by crate inside meshid"
  python3 "$ROOT/bench/proxy/profile-split.py" callgrind "$f" "$n" "$(basename "$MESHID")"
  echo "-- top inclusive"
  callgrind_annotate --inclusive=yes "$f" | grep -E 'meshid_proxy|hyper|rustls|ring|openssl|libssl|libcrypto|malloc|memcpy' | head -40 | cut -c1-180
  echo "-- top exclusive"
  callgrind_annotate "$f" | grep -E '^ *[0-9,]+ ' | sed -n 2,26p | cut -c1-180
else
  for r in in out; do
    pid=$IN; [ $r = out ] && pid=$OUTP
    perf record -e cpu-clock -F 2000 -g -p "$pid" -o "$OUT/perf-$r.data" -- sleep "$DUR" >/dev/null 2>&1 &
  done
  sleep 0.2
  wrk -t2 -c32 -d"$DUR" "${HDR[@]}" "http://127.0.0.1:$PORT/" >"$OUT/wrk.txt"
  sleep 1.5
  grep -E 'Requests/sec' "$OUT/wrk.txt"
  perf report -i "$OUT/perf-$ROLE.data" --no-children --sort dso --stdio -g none 2>/dev/null | grep '%' | head -8
  echo "-- share of $ROLE samples by shared object, and by crate inside meshid"
  perf report -i "$OUT/perf-$ROLE.data" --no-children --sort dso,symbol --stdio -g none 2>/dev/null \
    | python3 "$ROOT/bench/proxy/profile-split.py" perf "$(basename "$MESHID")"
  perf report -i "$OUT/perf-$ROLE.data" --no-children --sort symbol --stdio -g none 2>/dev/null | grep '%' | head -30 | cut -c1-140
fi
