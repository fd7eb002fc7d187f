#!/usr/bin/env bash
# pqgate TLS benchmarks (issue 2): handshakes/s and server CPU per handshake vs nginx, bulk
# throughput through the site-to-site pair vs stunnel and HAProxy pairs, memory per idle TLS
# connection. One command, one machine, interleaved rounds; writes benches/results/.
# See benches/README.md.
#
#   bash benches/run.sh [--quick] [--rounds N] [--only hs,bulk,idle] [--skip-install]
#                       [--skip-build] [--no-wait] [--keep]
#
#   --quick         3 rounds, 2 s handshake windows, 512 MiB transfers, 1 idle round (~2 min)
#   --only LIST     run only these parts (comma-separated: hs, bulk, idle)
#   --skip-install  do not apt-get install missing packages; --skip-build: use the built binaries
#   --no-wait       do not wait for other load on the machine to stop, nor repeat disturbed rounds
#   --keep          keep the work directory (configs, logs) even on success
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

ROUNDS=5
HS_SECS=5
HS_WARM=1
HS_CONC=32
VERIFY_EVERY=64
BULK_BYTES=$((2 * 1024 * 1024 * 1024))
IDLE_COUNT=10000
IDLE_ROUNDS=3
IDLE_TRAFFIC_SMALL=65536
IDLE_TRAFFIC_LARGE=262144
QUICK=0
INSTALL=1
BUILD=1
WAIT_QUIET=120
WAIT_BUDGET=240
KEEP=0
ONLY="hs,bulk,idle"

usage() { sed -n '2,14p' "$0"; exit 2; }
parse_args --quick:'QUICK=1; ROUNDS=3; HS_SECS=2; HS_WARM=0.5; BULK_BYTES=$((512 * 1024 * 1024)); IDLE_ROUNDS=1' \
  --rounds=ROUNDS --skip-install:INSTALL=0 --skip-build:BUILD=0 --no-wait:'WAIT_QUIET=0; WAIT_BUDGET=0' \
  --only=ONLY --keep:KEEP=1 -- "$@"
need_rounds
wants() { [[ ",$ONLY," == *",$1,"* ]]; }

RESULTS=$REPO/benches/results
PQGATE=$REPO/target/release/pqgate
LOADGEN=$REPO/target/release/examples/loadgen
WORK=$(mktemp -d /tmp/pqgate-bench.XXXXXX)
START_TS=$(date -u +%Y-%m-%dT%H:%M:%SZ)

# ---------------------------------------------------------------- processes and cleanup
PIDS=()
cleanup() {
  local rc=$?
  stop_pids
  if ((rc != 0 || KEEP)); then
    log "work directory (logs, configs) kept: $WORK"
  else
    rm -rf "$WORK"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# start NAME CPUS CMD...: runs CMD in the background (pinned to CPUS unless empty), logging to
# $WORK/NAME.log; sets LASTPID.
start() {
  local name=$1 cpus=$2
  shift 2
  if [[ -n $cpus ]]; then
    taskset -c "$cpus" "$@" >"$WORK/$name.log" 2>&1 &
  else
    "$@" >"$WORK/$name.log" 2>&1 &
  fi
  LASTPID=$!
  PIDS+=("$LASTPID")
}

# stop PID: SIGTERM, wait up to 5 s, then SIGKILL.
stop() {
  local p=$1
  kill "$p" 2>/dev/null || return 0
  for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || return 0; sleep 0.1; done
  kill -9 "$p" 2>/dev/null || true
}

# wait_listen PORT PID NAME: until 127.0.0.1:PORT listens (10 s), failing if PID exits.
wait_listen() {
  local port=$1 pid=$2 name=$3
  for _ in $(seq 100); do
    kill -0 "$pid" 2>/dev/null || { cat "$WORK/$name.log" >&2; echo "$name exited during start" >&2; return 1; }
    ss -Htln "sport = :$port" | grep -q . && return 0
    sleep 0.1
  done
  cat "$WORK/$name.log" >&2
  echo "$name did not listen on $port" >&2
  return 1
}


# children PID: PID and its direct children (nginx master + worker).
with_children() { echo "$1" $(pgrep -P "$1" || true); }
pid_args() { local a=() p; for p in "$@"; do a+=(--pid "$p"); done; echo "${a[@]}"; }

# Other people's builds and tests on this shared machine compete for the same 2 vCPUs.
# wait_quiet SECONDS: until the machine is idle (< 0.15 cores busy for 3 s in a row), at most
# SECONDS and at most what is left of WAIT_BUDGET (the whole run's waiting, so it stays short).
wait_quiet() {
  local limit=$1 quiet=0 b=? t0=$SECONDS said=0
  ((limit > WAIT_BUDGET)) && limit=$WAIT_BUDGET
  ((limit > 0)) || return 0
  while ((SECONDS - t0 < limit)); do
    b=$(busy_cores '$2+$3+$4+$7+$8')
    if awk -v b="$b" 'BEGIN{ exit !(b < 0.15) }'; then
      quiet=$((quiet + 1))
      ((quiet >= 3)) && break
    else
      quiet=0
      ((said)) || { log "waiting for other load on the machine to stop ($b cores busy; up to ${limit}s)"; said=1; }
    fi
  done
  WAIT_BUDGET=$((WAIT_BUDGET - (SECONDS - t0)))
  ((WAIT_BUDGET < 0)) && WAIT_BUDGET=0
  ((quiet >= 3)) || log "WARNING: the machine is still busy ($b cores); measuring anyway"
  return 0
}
# A measurement during which others used more than this many cores is repeated (at most twice).
OTHER_MAX=0.25
disturbed() { awk -v o="$(field other_util "$1")" -v m="$OTHER_MAX" 'BEGIN{ exit !(o + 0 > m) }'; }
# measured KIND CONTENDER ROUND CMD...: runs the load generator CMD and sets line to its RESULT
# line, kept in RAW as "KIND CONTENDER ROUND ..."; a run others disturbed is kept as
# KIND-disturbed and repeated (at most twice) after waiting for quiet.
measured() {
  local kind=$1 c=$2 r=$3 attempt
  shift 3
  for attempt in 1 2 3; do
    line=$("$@" | grep '^RESULT')
    if ((attempt < 3 && WAIT_QUIET > 0)) && disturbed "$line"; then
      echo "$kind-disturbed $c $r $line" >>"$RAW"
      log "  round $r $c: others used $(field other_util "$line") cores, repeating"
      wait_quiet 20
      continue
    fi
    break
  done
  echo "$kind $c $r $line" >>"$RAW"
}

# ---------------------------------------------------------------- install and build
if ((INSTALL)); then
  need=()
  for p in nginx-light stunnel4 haproxy openssl iproute2 procps util-linux; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || need+=("$p")
  done
  if ((${#need[@]})); then
    log "installing ${need[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}"
  fi
fi
for tool in nginx stunnel4 haproxy openssl taskset ss pgrep; do
  command -v "$tool" >/dev/null || { echo "missing $tool (run without --skip-install)" >&2; exit 1; }
done

BUILD_START=$SECONDS
if ((BUILD)); then
  log "building release pqgate and loadgen (cargo build --release -j2)"
  (cd "$REPO" && cargo build --release -j2 --bin pqgate --example loadgen)
fi
BUILD_SECS=$((SECONDS - BUILD_START))
[[ -x $PQGATE && -x $LOADGEN ]] || { echo "missing $PQGATE or $LOADGEN (run without --skip-build)" >&2; exit 1; }

# One shell for everything below: 20000 is this container's hard limit; take what is allowed.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
NOFILE=$(ulimit -n)

# ---------------------------------------------------------------- certificates (ECDSA P-256)
PKI=$WORK/pki
make_pki "$PKI" "pqgate bench CA"
cat "$PKI/leaf.pem" "$PKI/leaf.key" >"$PKI/leaf-combined.pem"
CERT=$PKI/leaf.pem
KEY=$PKI/leaf.key

# pqgate_config FILE WORKERS LOGLEVEL ADMINPORT: the common head of a pqgate config.
pqgate_head() {
  local workers=$1 level=$2 admin=$3
  printf '[log]\nlevel = "%s"\n\n[admin]\nlisten = "127.0.0.1:%s"\n\n[service]\nstate_dir = "%s"\ndrain_timeout_secs = 1\nworker_threads = %s\n\n' \
    "$level" "$admin" "$WORK/state" "$workers"
}
# pqgate_listener NAME PORT BACKEND POLICY MAXCONN
pqgate_listener() {
  printf '[[listener]]\nname = "%s"\nlisten = "127.0.0.1:%s"\nbackend = "%s"\npolicy = "%s"\ncert = "%s"\nkey = "%s"\n\n[listener.limits]\nmax_connections = %s\nhandshake_timeout_secs = 30\nidle_timeout_secs = 3600\n\n' \
    "$1" "$2" "$3" "$4" "$CERT" "$KEY" "$5"
}

((WAIT_QUIET > 0)) && wait_quiet "$WAIT_QUIET"
STEAL0=$(steal_snapshot)
RUN_START=$SECONDS
RAW=$WORK/raw.txt
: >"$RAW"

# ---------------------------------------------------------------- 1. handshakes
HS_CONTENDERS=(nginx pq-hybrid pq-classical pq-hybrid-on-preferred pq-hybrid-log-warn pq-hybrid-aes128 pq-classical-aes128)
declare -A HS_ADDR HS_GROUPS HS_PIDS HS_SUITES
run_handshakes() {
  log "handshakes: servers pinned to CPU 0, load generator to CPU 1, $ROUNDS rounds x ${HS_SECS}s"
  local p_req p_pref p_quiet p_nginx a1 a2
  p_req=$(free_port); p_pref=$(free_port); p_quiet=$(free_port); p_nginx=$(free_port)
  a1=$(free_port); a2=$(free_port)

  # pqgate: one worker thread, the default per-connection log line (info) to a file.
  {
    pqgate_head 1 info "$a1"
    pqgate_listener hybrid "$p_req" builtin:info hybrid-required 4096
    pqgate_listener preferred "$p_pref" builtin:info hybrid-preferred 4096
  } >"$WORK/pq-hs.toml"
  start pq-hs 0 "$PQGATE" run -c "$WORK/pq-hs.toml"
  local pq=$LASTPID
  wait_listen "$p_req" "$pq" pq-hs
  wait_listen "$p_pref" "$pq" pq-hs
  # The same, logging only warnings: shows what the per-connection log line costs.
  {
    pqgate_head 1 warn "$a2"
    pqgate_listener hybrid "$p_quiet" builtin:info hybrid-required 4096
  } >"$WORK/pq-hs-quiet.toml"
  start pq-hs-quiet 0 "$PQGATE" run -c "$WORK/pq-hs-quiet.toml"
  local pqq=$LASTPID
  wait_listen "$p_quiet" "$pqq" pq-hs-quiet

  # nginx: one worker, OpenSSL 3.0, X25519 only, TLS 1.3, defaults otherwise (session tickets on,
  # like pqgate's two TLS 1.3 tickets; no session cache).
  mkdir -p "$WORK/nginx"
  cat >"$WORK/nginx/nginx.conf" <<EOF
worker_processes 1;
daemon off;
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $WORK/nginx/body;
  proxy_temp_path $WORK/nginx/proxy;
  fastcgi_temp_path $WORK/nginx/fastcgi;
  uwsgi_temp_path $WORK/nginx/uwsgi;
  scgi_temp_path $WORK/nginx/scgi;
  server {
    listen 127.0.0.1:$p_nginx ssl;
    ssl_certificate $CERT;
    ssl_certificate_key $KEY;
    ssl_protocols TLSv1.3;
    ssl_ecdh_curve X25519;
    location / { return 200 "ok\n"; }
  }
}
EOF
  start nginx 0 nginx -p "$WORK/nginx" -c "$WORK/nginx/nginx.conf"
  local ng=$LASTPID
  wait_listen "$p_nginx" "$ng" nginx
  sleep 0.5

  HS_ADDR=([nginx]=$p_nginx [pq-hybrid]=$p_req [pq-classical]=$p_pref
    [pq-hybrid-on-preferred]=$p_pref [pq-hybrid-log-warn]=$p_quiet [pq-hybrid-aes128]=$p_req [pq-classical-aes128]=$p_pref)
  HS_GROUPS=([nginx]=classical [pq-hybrid]=hybrid [pq-classical]=classical
    [pq-hybrid-on-preferred]=hybrid [pq-hybrid-log-warn]=hybrid [pq-hybrid-aes128]=hybrid [pq-classical-aes128]=classical)
  HS_PIDS=([nginx]="$(with_children "$ng")" [pq-hybrid]=$pq [pq-classical]=$pq
    [pq-hybrid-on-preferred]=$pq [pq-hybrid-log-warn]=$pqq [pq-hybrid-aes128]=$pq [pq-classical-aes128]=$pq)
  HS_SUITES=([nginx]=default [pq-hybrid]=default [pq-classical]=default
    [pq-hybrid-on-preferred]=default [pq-hybrid-log-warn]=default [pq-hybrid-aes128]=aes128 [pq-classical-aes128]=aes128)

  local n=${#HS_CONTENDERS[@]} r i c line
  for ((r = 1; r <= ROUNDS; r++)); do
    for ((i = 0; i < n; i++)); do
      c=${HS_CONTENDERS[$(((i + r - 1) % n))]}
      # shellcheck disable=SC2046
      measured hs "$c" "$r" timeout $((${HS_SECS%.*} + 60)) taskset -c 1 "$LOADGEN" handshakes \
        --addr "127.0.0.1:${HS_ADDR[$c]}" --groups "${HS_GROUPS[$c]}" --suites "${HS_SUITES[$c]}" --cert "$CERT" \
        --seconds "$HS_SECS" --warmup "$HS_WARM" --concurrency "$HS_CONC" \
        --verify-every "$VERIFY_EVERY" $(pid_args ${HS_PIDS[$c]})
      log "  round $r $c: $(field rate "$line") hs/s, $(field cpu_ms_per_hs "$line") ms CPU/hs, server util $(field server_util "$line"), client util $(field client_util "$line"), other $(field other_util "$line")"
    done
  done
  HS_SUITE=$(grep -m1 -o 'suite="[^"]*"' "$WORK/pq-hs.log" | cut -d'"' -f2 || true)
  NGINX_NEG=$(timeout 5 openssl s_client -connect "127.0.0.1:$p_nginx" -servername localhost </dev/null 2>/dev/null |
    grep -E '^New,|Server Temp Key' | tr '\n' ' ' || true)
  stop "$ng"; stop "$pq"; stop "$pqq"
}

# ---------------------------------------------------------------- 2. bulk
BULK_CONTENDERS=(direct pqgate stunnel haproxy)
declare -A BULK_ADDR BULK_PIDS
run_bulk() {
  log "bulk: $((BULK_BYTES / 1024 / 1024)) MiB per transfer, $ROUNDS rounds, no pinning"
  local sink pa pb sa sb ha hb a1 a2
  sink=$(free_port); pa=$(free_port); pb=$(free_port); sa=$(free_port); sb=$(free_port)
  ha=$(free_port); hb=$(free_port); a1=$(free_port); a2=$(free_port)
  start sink "" "$LOADGEN" sink --listen "127.0.0.1:$sink"
  local sinkpid=$LASTPID
  wait_listen "$sink" "$sinkpid" sink

  # pqgate pair: connector (plaintext in, X25519MLKEM768 TLS out) -> listener -> sink.
  { pqgate_head 0 info "$a2"; pqgate_listener from-a "$pb" "127.0.0.1:$sink" hybrid-required 4096; } >"$WORK/pq-b.toml"
  start pq-b "" "$PQGATE" run -c "$WORK/pq-b.toml"
  local gb=$LASTPID
  wait_listen "$pb" "$gb" pq-b
  {
    pqgate_head 0 info "$a1"
    printf '[[connector]]\nname = "to-b"\nlisten = "127.0.0.1:%s"\nremote = "127.0.0.1:%s"\nserver_name = "localhost"\nca = "%s"\n' \
      "$pa" "$pb" "$PKI/ca.pem"
  } >"$WORK/pq-a.toml"
  start pq-a "" "$PQGATE" run -c "$WORK/pq-a.toml"
  local ga=$LASTPID
  wait_listen "$pa" "$ga" pq-a

  # stunnel pair (OpenSSL 3.0, TLS 1.3, X25519), client verifies the server by CA and name.
  cat >"$WORK/stunnel-b.conf" <<EOF
foreground = yes
pid =
debug = 4
[tls-in]
accept = 127.0.0.1:$sb
connect = 127.0.0.1:$sink
cert = $CERT
key = $KEY
sslVersionMin = TLSv1.3
curves = X25519
EOF
  cat >"$WORK/stunnel-a.conf" <<EOF
foreground = yes
pid =
debug = 4
[tls-out]
client = yes
accept = 127.0.0.1:$sa
connect = 127.0.0.1:$sb
CAfile = $PKI/ca.pem
verifyChain = yes
checkHost = localhost
sni = localhost
sslVersionMin = TLSv1.3
curves = X25519
EOF
  start stunnel-b "" stunnel4 "$WORK/stunnel-b.conf"
  local sbp=$LASTPID
  wait_listen "$sb" "$sbp" stunnel-b
  start stunnel-a "" stunnel4 "$WORK/stunnel-a.conf"
  local sap=$LASTPID
  wait_listen "$sa" "$sap" stunnel-a

  # haproxy_head: the global and defaults sections both HAProxies run with.
  haproxy_head() { printf 'global\n  maxconn 4096\ndefaults\n  mode tcp\n  timeout connect 5s\n  timeout client 300s\n  timeout server 300s\n'; }
  # HAProxy pair: frontend plaintext -> backend ssl -> second HAProxy "bind ... ssl crt" -> sink.
  haproxy_head >"$WORK/haproxy-b.cfg"
  cat >>"$WORK/haproxy-b.cfg" <<EOF
frontend tls_in
  bind 127.0.0.1:$hb ssl crt $PKI/leaf-combined.pem ssl-min-ver TLSv1.3 curves X25519
  default_backend sink
backend sink
  server sink 127.0.0.1:$sink
EOF
  haproxy_head >"$WORK/haproxy-a.cfg"
  cat >>"$WORK/haproxy-a.cfg" <<EOF
frontend plain_in
  bind 127.0.0.1:$ha
  default_backend tls_out
backend tls_out
  server b 127.0.0.1:$hb ssl verify required ca-file $PKI/ca.pem sni str(localhost) verifyhost localhost ssl-min-ver TLSv1.3
EOF
  start haproxy-b "" haproxy -db -f "$WORK/haproxy-b.cfg"
  local hbp=$LASTPID
  wait_listen "$hb" "$hbp" haproxy-b
  start haproxy-a "" haproxy -db -f "$WORK/haproxy-a.cfg"
  local hap=$LASTPID
  wait_listen "$ha" "$hap" haproxy-a

  BULK_ADDR=([direct]=$sink [pqgate]=$pa [stunnel]=$sa [haproxy]=$ha)
  BULK_PIDS=([direct]="" [pqgate]="$ga $gb" [stunnel]="$sap $sbp" [haproxy]="$hap $hbp")
  local n=${#BULK_CONTENDERS[@]} r i c line
  for ((r = 1; r <= ROUNDS; r++)); do
    for ((i = 0; i < n; i++)); do
      c=${BULK_CONTENDERS[$(((i + r - 1) % n))]}
      # shellcheck disable=SC2046
      measured bulk "$c" "$r" timeout 300 "$LOADGEN" bulk --addr "127.0.0.1:${BULK_ADDR[$c]}" \
        --bytes "$BULK_BYTES" $(pid_args ${BULK_PIDS[$c]}) --aux-pid "$sinkpid"
      log "  round $r $c: $(field mb_per_s "$line") MB/s, $(field cpu_s_per_gb "$line") gateway CPU s/GB, other $(field other_util "$line")"
    done
  done
  BULK_PQ_NEG=$(grep -m1 -o 'group="[^"]*" suite="[^"]*"' "$WORK/pq-b.log" | tr -d '"' || true)
  BULK_ST_NEG=$(timeout 5 openssl s_client -connect "127.0.0.1:$sb" -servername localhost </dev/null 2>/dev/null |
    grep -E '^New,|Server Temp Key' | tr '\n' ' ' || true)
  BULK_HA_NEG=$(timeout 5 openssl s_client -connect "127.0.0.1:$hb" -servername localhost </dev/null 2>/dev/null |
    grep -E '^New,|Server Temp Key' | tr '\n' ' ' || true)
  stop "$hap"; stop "$hbp"; stop "$sap"; stop "$sbp"; stop "$ga"; stop "$gb"
  IDLE_SINK=$sink
}

# ---------------------------------------------------------------- 3. idle connections
run_idle() {
  # A relayed connection holds two sockets in pqgate: keep under the per-process fd limit.
  local relay_count=$IDLE_COUNT
  if ((relay_count * 2 + 200 > NOFILE)); then relay_count=$(((NOFILE - 200) / 2)); fi
  IDLE_RELAY_COUNT=$relay_count
  local sink=${IDLE_SINK:-}
  if [[ -z $sink ]]; then
    sink=$(free_port)
    start sink "" "$LOADGEN" sink --listen "127.0.0.1:$sink"
    wait_listen "$sink" "$LASTPID" sink
  fi
  log "idle: $IDLE_COUNT connections (builtin backend), $relay_count (TCP backend), $IDLE_ROUNDS rounds, fd limit $NOFILE"
  local r v port admin backend count traffic gw line
  for ((r = 1; r <= IDLE_ROUNDS; r++)); do
    for v in builtin relay relay-traffic relay-traffic-large; do
      port=$(free_port); admin=$(free_port)
      case $v in
        builtin) backend=builtin:info; count=$IDLE_COUNT; traffic=0 ;;
        relay) backend=127.0.0.1:$sink; count=$relay_count; traffic=0 ;;
        relay-traffic) backend=127.0.0.1:$sink; count=$relay_count; traffic=$IDLE_TRAFFIC_SMALL ;;
        relay-traffic-large) backend=127.0.0.1:$sink; count=$relay_count; traffic=$IDLE_TRAFFIC_LARGE ;;
      esac
      { pqgate_head 0 info "$admin"; pqgate_listener idle "$port" "$backend" hybrid-required 30000; } >"$WORK/pq-idle-$v.toml"
      start "pq-idle-$v-$r" "" "$PQGATE" run -c "$WORK/pq-idle-$v.toml"
      gw=$LASTPID
      wait_listen "$port" "$gw" "pq-idle-$v-$r"
      line=$(timeout 300 "$LOADGEN" idle --addr "127.0.0.1:$port" --groups hybrid --cert "$CERT" \
        --count "$count" --traffic "$traffic" --pid "$gw" --admin "127.0.0.1:$admin" | grep '^RESULT')
      echo "idle $v $r $line" >>"$RAW"
      log "  round $r $v: $(field open "$line") open, server active $(field server_active "$line"), $(field kib_per_conn "$line") KiB/connection"
      stop "$gw"
    done
  done
}

wants hs && run_handshakes
wants bulk && run_bulk
wants idle && run_idle

RUN_SECS=$((SECONDS - RUN_START))
STEAL1=$(steal_snapshot)
STEAL_PCT=$(awk -v a="$STEAL0" -v b="$STEAL1" 'BEGIN{split(a,x," "); split(b,y," "); d=y[2]-x[2]; printf "%.1f", (d > 0) ? 100 * (y[1] - x[1]) / d : 0 }')

# ---------------------------------------------------------------- report
# values KIND CONTENDER FIELD: that field of every round, one per line.
values() { awk -v k="$1" -v c="$2" -v f="$3" '$1==k && $2==c { for(i=4;i<=NF;i++) { split($i,kv,"="); if (kv[1]==f) print kv[2] } }' "$RAW"; }
median() { sort -g | awk '{v[NR]=$1} END{ if (NR==0) { print "n/a"; exit } m = (NR%2) ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2; print m }'; }
med() { values "$1" "$2" "$3" | median; }
rounds_list() { values "$1" "$2" "$3" | paste -sd' ' -; }
# paired KIND A B FIELD: median over rounds of A/B within the same round.
paired() {
  awk -v k="$1" -v a="$2" -v b="$3" -v f="$4" '$1==k && ($2==a || $2==b) {
      for(i=4;i<=NF;i++){ split($i,kv,"="); if (kv[1]==f) v[$2,$3]=kv[2] } r[$3]=1 }
    END { for (x in r) if (v[a,x] > 0 && v[b,x] > 0) printf "%.4f\n", v[a,x]/v[b,x] }' "$RAW" | median
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN{ if (a=="n/a" || b=="n/a" || b==0) print "n/a"; else printf "%.2f", a/b }'; }
fmt2() { awk -v a="$1" 'BEGIN{ if (a=="n/a") print a; else printf "%.2f", a }'; }
verdict() { awk -v v="$1" -v op="$2" -v g="$3" 'BEGIN{ if (v=="n/a") { print "not measured"; exit }
  ok = (op==">=") ? (v+0 >= g+0) : (v+0 <= g+0); print ok ? "**met**" : "**MISSED**" }'; }

DATE=$(date -u +%Y-%m-%d)
mkdir -p "$RESULTS"
if ((QUICK)); then OUTFILE=$RESULTS/tls-$DATE-quick.md; else OUTFILE=$RESULTS/tls-$DATE.md; fi
GIT_REV=$(cd "$REPO" && git rev-parse --short HEAD 2>/dev/null || echo unknown)
GIT_DIRTY=$(cd "$REPO" && { git diff --quiet HEAD -- gateway 2>/dev/null && echo "" || echo " + uncommitted changes in gateway/"; })

{
  echo "# pqgate TLS benchmarks, $START_TS"
  echo
  ((QUICK)) && echo "**Quick run (--quick): fewer rounds, shorter windows, smaller transfers. Indicative only.**" && echo
  echo "Produced by \`bash benches/run.sh$( ((QUICK)) && echo ' --quick')\` in one run on one machine; every ratio compares"
  echo "contenders measured in the same run, interleaved round by round (the VM has noisy hypervisor steal)."
  echo "Values are medians over $ROUNDS rounds; ratios are the median of the per-round ratios (paired)."
  echo "A measurement during which processes outside the benchmark used more than $OTHER_MAX cores is"
  echo "repeated (at most twice; the disturbed ones are kept at the end as \`*-disturbed\` lines):"
  echo "$(grep -c -- '-disturbed ' "$RAW" || true) repeated in this run."
  echo "Method and caveats: [benches/README.md](../README.md)."
  echo
  echo "## Machine"
  echo
  echo "| | |"
  echo "|---|---|"
  echo "| CPU | $(lscpu | sed -n 's/^Model name: *//p' | head -1) (family $(lscpu | sed -n 's/^CPU family: *//p'), model $(lscpu | sed -n 's/^Model: *//p')), $(lscpu | sed -n 's/^Hypervisor vendor: *//p') guest |"
  echo "| nproc | $(nproc) |"
  echo "| memory | $(awk '/MemTotal/{printf "%.1f GiB", $2/1048576}' /proc/meminfo) |"
  echo "| kernel | $(uname -r) |"
  echo "| OS | $(. /etc/os-release && echo "$PRETTY_NAME") |"
  echo "| date | $START_TS |"
  echo "| hypervisor steal during the measurements | $STEAL_PCT % of all CPU time |"
  echo "| pqgate | git $GIT_REV$GIT_DIRTY, release profile (lto thin), rustls $(lockver rustls), aws-lc-rs $(lockver aws-lc-rs), tokio $(lockver tokio), $(rustc --version | cut -d' ' -f1-2) |"
  echo "| nginx | $(nginx -v 2>&1 | sed 's/^nginx version: //') ($(dpkg-query -W -f='${Package} ${Version}' nginx-light 2>/dev/null)) |"
  echo "| stunnel | $(stunnel4 -version 2>&1 | grep -m1 '^stunnel' | cut -d' ' -f1-2) ($(dpkg-query -W -f='${Version}' stunnel4 2>/dev/null)) |"
  echo "| HAProxy | $(haproxy -v | head -1 | cut -d' ' -f3) ($(dpkg-query -W -f='${Version}' haproxy 2>/dev/null)) |"
  echo "| OpenSSL | $(openssl version) |"
  echo "| fd limit | $NOFILE |"
  echo "| time | release build ${BUILD_SECS}s$( ((BUILD)) || echo " (--skip-build: binaries already built)"), measurements ${RUN_SECS}s |"
  echo

  if wants hs; then
    echo "## 1. Full TLS 1.3 handshakes"
    echo
    echo "Server pinned to CPU 0 (\`taskset -c 0\`; nginx \`worker_processes 1\`, pqgate \`worker_threads = 1\`),"
    echo "load generator (\`loadgen handshakes\`, one thread) pinned to CPU 1, $HS_CONC handshakes in flight,"
    echo "${HS_WARM}s run-in then a ${HS_SECS}s window per round. Each connection: TCP connect, full handshake"
    echo "(resumption disabled), close_notify, read until the server closes. Same ECDSA P-256 certificate"
    echo "(\`openssl ecparam\`/\`openssl req\`). Server CPU = utime+stime of the server process(es) over the window."
    echo "The load generator reuses its key share and verifies the server's handshake signature on one"
    echo "handshake in $VERIFY_EVERY (the server's work is unchanged; see the README's caveats)."
    echo "pqgate negotiated suite: ${HS_SUITE:-?}; nginx: ${NGINX_NEG:-?}"
    echo
    echo "| contender | listener policy | client offers | handshakes/s | server CPU ms/handshake | server CPU (cores) | loadgen CPU (cores) | others' CPU (cores) | handshakes/s per round |"
    echo "|---|---|---|---:|---:|---:|---:|---:|---|"
    for c in "${HS_CONTENDERS[@]}"; do
      case $c in
        nginx) d="nginx (OpenSSL 3.0) | - | X25519" ;;
        pq-hybrid) d="pqgate | hybrid-required | X25519MLKEM768" ;;
        pq-classical) d="pqgate | hybrid-preferred | X25519" ;;
        pq-hybrid-on-preferred) d="pqgate (info) | hybrid-preferred | X25519MLKEM768" ;;
        pq-hybrid-log-warn) d="pqgate, log level warn (info) | hybrid-required | X25519MLKEM768" ;;
        pq-hybrid-aes128) d="pqgate, client offers only AES-128-GCM-SHA256 (info) | hybrid-required | X25519MLKEM768" ;;
        pq-classical-aes128) d="pqgate, client offers only AES-128-GCM-SHA256 (info) | hybrid-preferred | X25519" ;;
      esac
      echo "| $d | $(med hs "$c" rate) | $(med hs "$c" cpu_ms_per_hs) | $(med hs "$c" server_util) | $(med hs "$c" client_util) | $(med hs "$c" other_util) | $(rounds_list hs "$c" rate) |"
    done
    errs=$(awk '$1=="hs"{for(i=4;i<=NF;i++){split($i,kv,"="); if(kv[1]=="errors") s+=kv[2]}} END{print s+0}' "$RAW")
    echo
    echo "Failed handshakes inside the windows: $errs."
    echo
    r1=$(paired hs pq-hybrid nginx rate); c1=$(paired hs nginx pq-hybrid cpu_ms_per_hs)
    r2=$(paired hs pq-hybrid pq-classical rate); c2=$(paired hs pq-classical pq-hybrid cpu_ms_per_hs)
    echo "| goal | handshakes/s ratio | result | server CPU/handshake ratio (inverse) |"
    echo "|---|---:|---|---:|"
    echo "| pqgate hybrid >= 1.2x nginx classical | $(fmt2 "$r1")x | $(verdict "$r1" ">=" 1.2) | $(fmt2 "$c1")x |"
    echo "| pqgate hybrid >= 0.85x pqgate classical | $(fmt2 "$r2")x | $(verdict "$r2" ">=" 0.85) | $(fmt2 "$c2")x |"
    r5=$(paired hs pq-hybrid-aes128 pq-classical-aes128 rate); c5=$(paired hs pq-classical-aes128 pq-hybrid-aes128 cpu_ms_per_hs)
    echo "| (information) the same with TLS_AES_128_GCM_SHA256 | $(fmt2 "$r5")x | - | $(fmt2 "$c5")x |"
    echo
    echo "The CPU column is nginx ms/handshake over pqgate ms/handshake (resp. classical over hybrid):"
    echo "the capacity ratio at equal CPU, which does not depend on whether the load generator kept the"
    echo "server busy. A server CPU use well under 1.00 means the load generator, not the server, set the rate."
    echo
  fi

  if wants bulk; then
    echo "## 2. Bulk throughput through a gateway pair"
    echo
    echo "\`loadgen bulk\` -> gateway A (plaintext in, TLS out) -> gateway B (TLS in, plaintext out) -> \`loadgen sink\`,"
    echo "$BULK_BYTES bytes ($((BULK_BYTES / 1024 / 1024)) MiB) per transfer on one connection, timed from connect until the sink"
    echo "acknowledges the last byte; nothing pinned (the four processes share the $(nproc) vCPUs). Gateway CPU ="
    echo "utime+stime of both gateway processes during the transfer. MB = 10^6 bytes, GB = 10^9 bytes."
    echo "Negotiated: pqgate ${BULK_PQ_NEG:-?}; stunnel ${BULK_ST_NEG:-?}; HAProxy ${BULK_HA_NEG:-?}"
    echo
    echo "| pair | MB/s | gateway CPU s/GB | gateway CPU (cores) | others' CPU (cores) | MB/s per round |"
    echo "|---|---:|---:|---:|---:|---|"
    for c in "${BULK_CONTENDERS[@]}"; do
      case $c in
        direct) d="no gateway (source -> sink, ceiling)" ;;
        pqgate) d="pqgate connector -> pqgate listener (X25519MLKEM768)" ;;
        stunnel) d="stunnel client -> stunnel server" ;;
        haproxy) d="HAProxy (ssl backend) -> HAProxy (bind ssl)" ;;
      esac
      cpu=$(med bulk "$c" cpu_s_per_gb); cores=$(med bulk "$c" server_util)
      [[ $c == direct ]] && cpu="-" && cores="-"
      echo "| $d | $(med bulk "$c" mb_per_s) | $cpu | $cores | $(med bulk "$c" other_util) | $(rounds_list bulk "$c" mb_per_s) |"
    done
    echo
    r3=$(paired bulk pqgate stunnel mb_per_s); r4=$(paired bulk pqgate haproxy mb_per_s)
    c3=$(paired bulk stunnel pqgate cpu_s_per_gb); c4=$(paired bulk haproxy pqgate cpu_s_per_gb)
    echo "\"Others' CPU\" is the machine's busy time minus gateways, source and sink: outside load."
    echo
    echo "| goal | MB/s ratio | result | gateway CPU/GB ratio (inverse) |"
    echo "|---|---:|---|---:|"
    echo "| pqgate pair >= 1.5x stunnel pair | $(fmt2 "$r3")x | $(verdict "$r3" ">=" 1.5) | $(fmt2 "$c3")x |"
    echo "| pqgate pair >= 1.0x HAProxy pair | $(fmt2 "$r4")x | $(verdict "$r4" ">=" 1.0) | $(fmt2 "$c4")x |"
    echo
  fi

  if wants idle; then
    echo "## 3. Memory per idle TLS connection"
    echo
    echo "A fresh pqgate per round (default worker threads, hybrid-required, \`max_connections = 30000\`,"
    echo "\`idle_timeout_secs = 3600\`). \`loadgen idle\` runs 100 handshakes first (run-in), reads VmRSS, opens"
    echo "the connections (X25519MLKEM768, 64 handshakes in flight), waits 3 s, reads VmRSS again and pqgate's"
    echo "\`pqgate_active_connections\` gauge. KiB/connection = (RSS after - RSS before) / connections."
    echo "With a TCP backend every connection also holds a backend socket in pqgate; the fd limit here"
    echo "($NOFILE per process, not raisable in this container) caps that variant at ${IDLE_RELAY_COUNT:-?} connections."
    echo
    echo "The last two rows first move $((IDLE_TRAFFIC_SMALL / 1024)) KiB (resp. $((IDLE_TRAFFIC_LARGE / 1024)) KiB) each way through every connection"
    echo "(to \`loadgen sink\`), then leave it idle: the state of a connection that has carried traffic and gone quiet."
    echo
    echo "| backend | connections | open by pqgate's gauge | RSS before (KiB) | RSS after (KiB) | KiB/connection | KiB/connection per round |"
    echo "|---|---:|---:|---:|---:|---:|---|"
    for v in builtin relay relay-traffic relay-traffic-large; do
      case $v in
        builtin) d="builtin:info (handshake done, waiting for a request)" ;;
        relay) d="TCP backend (handshake done, relay idle, no data yet)" ;;
        relay-traffic) d="TCP backend, after $((IDLE_TRAFFIC_SMALL / 1024)) KiB each way, then idle" ;;
        relay-traffic-large) d="TCP backend, after $((IDLE_TRAFFIC_LARGE / 1024)) KiB each way, then idle" ;;
      esac
      echo "| $d | $(med idle "$v" open) | $(med idle "$v" server_active) | $(med idle "$v" rss_before_kib) | $(med idle "$v" rss_after_kib) | $(med idle "$v" kib_per_conn) | $(rounds_list idle "$v" kib_per_conn) |"
    done
    echo
    k1=$(med idle builtin kib_per_conn); k2=$(med idle relay kib_per_conn); k3=$(med idle relay-traffic kib_per_conn)
    k4=$(med idle relay-traffic-large kib_per_conn)
    echo "| goal: <= 64 KiB per idle connection | measured | result |"
    echo "|---|---:|---|"
    echo "| builtin backend, $IDLE_COUNT connections | $(fmt2 "$k1") KiB | $(verdict "$k1" "<=" 64) |"
    echo "| TCP backend, no data yet | $(fmt2 "$k2") KiB | $(verdict "$k2" "<=" 64) |"
    echo "| TCP backend, after $((IDLE_TRAFFIC_SMALL / 1024)) KiB each way | $(fmt2 "$k3") KiB | $(verdict "$k3" "<=" 64) |"
    echo "| TCP backend, after $((IDLE_TRAFFIC_LARGE / 1024)) KiB each way | $(fmt2 "$k4") KiB | $(verdict "$k4" "<=" 64) |"
    echo
  fi

  echo "## Raw results"
  echo
  echo '```'
  cat "$RAW"
  echo '```'
} >"$OUTFILE"

((QUICK)) || cp "$OUTFILE" "$RESULTS/latest.md"
log "wrote $OUTFILE$( ((QUICK)) || echo " and $RESULTS/latest.md") (build ${BUILD_SECS}s, measurements ${RUN_SECS}s)"
