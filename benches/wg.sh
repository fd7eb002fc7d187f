#!/usr/bin/env bash
# pqgate WireGuard baseline (issue 4): iperf3 TCP through (a) pqgate <-> pqgate, (b) Debian's
# wireguard-go <-> wireguard-go, (d) the bare veth, in two network namespaces joined by a veth
# (underlay MTU 1500, tunnel MTU 1420). Interleaved A/B/D rounds, median of the rounds; CPU
# seconds of both tunnel daemons per GB moved; UDP receive-buffer drops in each namespace.
# Writes benches/results/wg-<date>[-quick].md. See benches/README.md.
#
#   bash benches/wg.sh [--quick] [--rounds N] [--secs S] [--one-way] [--skip-install]
#                      [--skip-build] [--keep] [--out FILE] [--no-perf]
#
#   --quick         5 s per iperf3 run (default 10 s); rounds stay 3 unless --rounds
#   --one-way       only A->B (iperf3 client in A); default also B->A (iperf3 -R)
#   --skip-install  do not apt-get install missing packages; --skip-build: use the built binary
#   --keep          keep the work directory (configs, iperf3 JSON, daemon logs)
#   --no-perf       skip the extra profiled pqgate run (perf record) after the rounds
set -euo pipefail

ROUNDS=3
SECS=10
QUICK=0
DIRS="fwd rev"
INSTALL=1
BUILD=1
KEEP=0
OUT=""
PERF=1
usage() { sed -n '2,15p' "$0"; exit 2; }
while (($#)); do
  case $1 in
    --quick) QUICK=1; SECS=5 ;;
    --rounds) ROUNDS=$2; shift ;;
    --secs) SECS=$2; shift ;;
    --one-way) DIRS="fwd" ;;
    --skip-install) INSTALL=0 ;;
    --skip-build) BUILD=0 ;;
    --keep) KEEP=1 ;;
    --no-perf) PERF=0 ;;
    --out) OUT=$2; shift ;;
    -h|--help) usage ;;
    *) echo "unknown option $1" >&2; usage ;;
  esac
  shift
done
((ROUNDS >= 1)) || { echo "--rounds must be >= 1" >&2; exit 2; }
[[ $(id -u) == 0 ]] || { echo "needs root (ip netns, /dev/net/tun)" >&2; exit 1; }

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PQGATE=$REPO/target/release/pqgate
DATE=$(date -u +%Y-%m-%d)
if [[ -z $OUT ]]; then
  OUT=$REPO/benches/results/wg-$DATE$( ((QUICK)) && echo -quick).md
fi
WORK=$(mktemp -d /tmp/pqgate-wgbench.XXXXXX)
T0=$(date +%s)
log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

TAG=$$
NSA=pqwb-$TAG-a
NSB=pqwb-$TAG-b
VA=wbva$TAG
VB=wbvb$TAG
# Interface names: the UAPI socket /var/run/wireguard/IFACE.sock is host-wide, so all four differ.
PQA=wbpa$TAG
PQB=wbpb$TAG
WGA=wbga$TAG
WGB=wbgb$TAG
PQ_PORT_A=51901 PQ_PORT_B=51902 WG_PORT_A=51903 WG_PORT_B=51904

# ---------------------------------------------------------------- cleanup
PIDS=()
cleanup() {
  local rc=$?
  for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do
    for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$p" 2>/dev/null || true
  done
  for i in $PQA $PQB $WGA $WGB; do rm -f "/var/run/wireguard/$i.sock"; done
  ip netns del "$NSA" 2>/dev/null || true
  ip netns del "$NSB" 2>/dev/null || true
  if ((rc != 0 || KEEP)); then log "work directory kept: $WORK"; else rm -rf "$WORK"; fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---------------------------------------------------------------- install and build
if ((INSTALL)); then
  need=()
  for p in wireguard-go wireguard-tools iperf3 iproute2 jq; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || need+=("$p")
  done
  if ((${#need[@]})); then
    log "installing ${need[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}"
  fi
fi
if ((BUILD)); then
  log "cargo build --release -j2 --bin pqgate"
  (cd "$REPO" && cargo build --release -j2 --bin pqgate)
fi
[[ -x $PQGATE ]] || { echo "missing $PQGATE (drop --skip-build)" >&2; exit 1; }

# ---------------------------------------------------------------- namespaces and tunnels
ip netns add "$NSA"
ip netns add "$NSB"
ip link add "$VA" netns "$NSA" mtu 1500 type veth peer name "$VB" netns "$NSB" mtu 1500
for x in "$NSA $VA 10.200.0.1/24" "$NSB $VB 10.200.0.2/24"; do
  set -- $x
  ip -n "$1" address add "$3" dev "$2"
  ip -n "$1" link set dev "$2" up
  ip -n "$1" link set dev lo up
done

keypair() { local k; k=$(wg genkey); echo "$k $(echo "$k" | wg pubkey)"; }
read -r PQ_PRIV_A PQ_PUB_A < <(keypair)
read -r PQ_PRIV_B PQ_PUB_B < <(keypair)
read -r WG_PRIV_A WG_PUB_A < <(keypair)
read -r WG_PRIV_B WG_PUB_B < <(keypair)

# (a) pqgate <-> pqgate: `pqgate wg up FILE.conf` (interface named after the file).
cat >"$WORK/$PQA.conf" <<EOF
[Interface]
PrivateKey = $PQ_PRIV_A
ListenPort = $PQ_PORT_A
Address = 10.201.0.1/24
MTU = 1420

[Peer]
PublicKey = $PQ_PUB_B
AllowedIPs = 10.201.0.2/32
Endpoint = 10.200.0.2:$PQ_PORT_B
EOF
cat >"$WORK/$PQB.conf" <<EOF
[Interface]
PrivateKey = $PQ_PRIV_B
ListenPort = $PQ_PORT_B
Address = 10.201.0.2/24
MTU = 1420

[Peer]
PublicKey = $PQ_PUB_A
AllowedIPs = 10.201.0.1/32
Endpoint = 10.200.0.1:$PQ_PORT_A
EOF
ip netns exec "$NSA" "$PQGATE" wg up "$WORK/$PQA.conf" >"$WORK/pq-a.log" 2>&1 &
PQ_PID_A=$!; PIDS+=("$PQ_PID_A")
ip netns exec "$NSB" "$PQGATE" wg up "$WORK/$PQB.conf" >"$WORK/pq-b.log" 2>&1 &
PQ_PID_B=$!; PIDS+=("$PQ_PID_B")

# (b) wireguard-go <-> wireguard-go, configured with `wg setconf` and `ip`.
wggo_up() {  # NS IFACE PRIV PORT PEERPUB PEERIP ADDR PEERPORT
  local ns=$1 ifc=$2 priv=$3 port=$4 peer=$5 peerip=$6 addr=$7 peerport=$8
  ip netns exec "$ns" wireguard-go -f "$ifc" >"$WORK/$ifc.log" 2>&1 &
  LASTPID=$!; PIDS+=("$LASTPID")
  for _ in $(seq 100); do [[ -S /var/run/wireguard/$ifc.sock ]] && break; sleep 0.1; done
  [[ -S /var/run/wireguard/$ifc.sock ]] || { cat "$WORK/$ifc.log" >&2; echo "wireguard-go $ifc did not start" >&2; exit 1; }
  printf '[Interface]\nPrivateKey = %s\nListenPort = %s\n\n[Peer]\nPublicKey = %s\nAllowedIPs = %s/32\nEndpoint = 10.200.0.%s:%s\n' \
    "$priv" "$port" "$peer" "$peerip" "${peerip##*.}" "$peerport" >"$WORK/$ifc.wg"
  ip netns exec "$ns" wg setconf "$ifc" "$WORK/$ifc.wg"
  ip -n "$ns" address add "$addr" dev "$ifc"
  ip -n "$ns" link set dev "$ifc" mtu 1420 up
}
wggo_up "$NSA" "$WGA" "$WG_PRIV_A" $WG_PORT_A "$WG_PUB_B" 10.202.0.2 10.202.0.1/24 $WG_PORT_B
WG_PID_A=$LASTPID
wggo_up "$NSB" "$WGB" "$WG_PRIV_B" $WG_PORT_B "$WG_PUB_A" 10.202.0.1 10.202.0.2/24 $WG_PORT_A
WG_PID_B=$LASTPID

# Both tunnels up: one ping through each (bounded).
for dst in 10.201.0.2 10.202.0.2 10.200.0.2; do
  okp=0
  for _ in $(seq 20); do
    if ip netns exec "$NSA" ping -c1 -W1 "$dst" >/dev/null 2>&1; then okp=1; break; fi
    for p in $PQ_PID_A $PQ_PID_B $WG_PID_A $WG_PID_B; do
      kill -0 "$p" 2>/dev/null || { cat "$WORK"/*.log >&2; echo "a tunnel daemon exited" >&2; exit 1; }
    done
  done
  ((okp)) || { cat "$WORK"/*.log >&2; echo "no ping reply from $dst" >&2; exit 1; }
done
log "tunnels up (pqgate $PQ_PID_A/$PQ_PID_B, wireguard-go $WG_PID_A/$WG_PID_B)"

# iperf3 server in B (all addresses).
ip netns exec "$NSB" iperf3 -s -p 5201 >"$WORK/iperf3-server.log" 2>&1 &
IPERF_PID=$!; PIDS+=("$IPERF_PID")
for _ in $(seq 50); do ip netns exec "$NSB" ss -Htln 'sport = :5201' | grep -q . && break; sleep 0.1; done

# ---------------------------------------------------------------- measurement helpers
TCK=$(getconf CLK_TCK)
cpu_ticks() { local s=0 p; for p in "$@"; do s=$((s + $(awk '{print $14 + $15}' "/proc/$p/stat"))); done; echo "$s"; }
rcvbuf() { ip netns exec "$1" nstat -asz UdpRcvbufErrors | awk '$1 == "UdpRcvbufErrors" {print $2}'; }
steal() { awk '/^cpu /{print $9, $2+$3+$4+$5+$6+$7+$8+$9}' /proc/stat; }

RAW=$WORK/raw.tsv   # contender streams dir round gbps bytes cpu_s drops_a drops_b steal_pct
: >"$RAW"
# measure CONTENDER STREAMS DIR ROUND
measure() {
  local c=$1 n=$2 dir=$3 r=$4 dst pids=() rflag=()
  case $c in
    pqgate) dst=10.201.0.2; pids=("$PQ_PID_A" "$PQ_PID_B") ;;
    wggo) dst=10.202.0.2; pids=("$WG_PID_A" "$WG_PID_B") ;;
    veth) dst=10.200.0.2 ;;
  esac
  [[ $dir == rev ]] && rflag=(-R)
  local c0=0 c1=0 da0 db0 da1 db1 s0 s1
  ((${#pids[@]})) && c0=$(cpu_ticks "${pids[@]}")
  da0=$(rcvbuf "$NSA"); db0=$(rcvbuf "$NSB"); s0=$(steal)
  local json=$WORK/$c-$n-$dir-$r.json
  timeout -k 2 $((SECS + 20)) ip netns exec "$NSA" iperf3 -c "$dst" -p 5201 -t "$SECS" -P "$n" \
    "${rflag[@]}" -J >"$json" 2>&1 || true
  ((${#pids[@]})) && c1=$(cpu_ticks "${pids[@]}")
  da1=$(rcvbuf "$NSA"); db1=$(rcvbuf "$NSB"); s1=$(steal)
  local bps bytes
  bps=$(jq -r '.end.sum_received.bits_per_second // 0' "$json" 2>/dev/null || echo 0)
  bytes=$(jq -r '.end.sum_received.bytes // 0' "$json" 2>/dev/null || echo 0)
  local gbps cpu st
  gbps=$(awk -v b="$bps" 'BEGIN{printf "%.3f", b/1e9}')
  cpu=$(awk -v t=$((c1 - c0)) -v k="$TCK" 'BEGIN{printf "%.2f", t/k}')
  st=$(awk -v a="$s0" -v b="$s1" 'BEGIN{split(a,x," "); split(b,y," "); d=y[2]-x[2]; printf "%.0f", (d > 0) ? 100*(y[1]-x[1])/d : 0}')
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$c" "$n" "$dir" "$r" "$gbps" "$bytes" "$cpu" \
    $((da1 - da0)) $((db1 - db0)) "$st" >>"$RAW"
  log "round $r $c P$n $dir: $gbps Gbit/s, daemons ${cpu} CPU s, rcvbuf drops A=$((da1 - da0)) B=$((db1 - db0)), steal ${st}%"
}

# ---------------------------------------------------------------- interleaved rounds
CONTENDERS="pqgate wggo veth"
for r in $(seq "$ROUNDS"); do
  for dir in $DIRS; do
    for n in 1 4; do
      for c in $CONTENDERS; do measure "$c" "$n" "$dir" "$r"; sleep 1; done
    done
  done
  CONTENDERS=$(echo "$CONTENDERS" | awk '{print $2, $3, $1}')   # rotate the order each round
done
for p in $PQ_PID_A $PQ_PID_B $WG_PID_A $WG_PID_B; do
  kill -0 "$p" 2>/dev/null || log "WARNING: daemon $p died during the run"
done

# ---------------------------------------------------------------- profile (not measured)
# One extra single-stream A->B pqgate run with `perf record` on both daemons (sampling skews
# throughput, so it is not in the tables): where pqgate's CPU goes before batching.
PROFILE=""
if ((PERF)) && command -v perf >/dev/null && perf stat -e task-clock true >/dev/null 2>&1; then
  log "profiling pqgate (perf record, ${SECS} s, not counted)"
  timeout -k 2 $((SECS + 20)) ip netns exec "$NSA" iperf3 -c 10.201.0.2 -p 5201 -t "$SECS" -J \
    >"$WORK/perf-iperf3.json" 2>&1 &
  IP3=$!
  sleep 0.5
  timeout -k 2 $((SECS + 10)) perf record -q -F 499 -p "$PQ_PID_A,$PQ_PID_B" -o "$WORK/perf.data" \
    -- sleep $((SECS - 1)) >/dev/null 2>&1 || true
  wait "$IP3" || true
  if [[ -s $WORK/perf.data ]]; then
    PROFILE=$(
      echo "By kernel/user and object (share of both daemons' samples):"
      echo
      echo '```'
      perf report -i "$WORK/perf.data" --stdio --sort dso --percent-limit 1 2>/dev/null | grep -v '^#' | grep -v '^$' | head -15
      echo '```'
      echo
      echo "Top symbols:"
      echo
      echo '```'
      perf report -i "$WORK/perf.data" --stdio --sort dso,symbol --percent-limit 0.8 2>/dev/null | grep -v '^#' | grep -v '^$' | cut -c1-110 | head -40
      echo '```'
    )
  fi
fi

# ---------------------------------------------------------------- results
median() { sort -g | awk '{a[NR]=$1} END{if (NR==0) print "nan"; else if (NR%2) print a[(NR+1)/2]; else printf "%.3f\n", (a[NR/2]+a[NR/2+1])/2}'; }
col() { awk -F'\t' -v c="$1" -v n="$2" -v d="$3" -v k="$4" '$1==c && $2==n && $3==d {print $k}' "$RAW"; }
cpugb() { awk -F'\t' -v c="$1" -v n="$2" -v d="$3" '$1==c && $2==n && $3==d && $6>0 {printf "%.3f\n", $7/($6/1e9)}' "$RAW"; }
dropsum() { awk -F'\t' -v c="$1" -v n="$2" -v d="$3" '$1==c && $2==n && $3==d {s+=$8+$9} END{print s+0}' "$RAW"; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN{ if (b+0 > 0) printf "%.2f", a/b; else print "n/a"}'; }

ELAPSED=$(( $(date +%s) - T0 ))
REV=$(cd "$REPO" && git rev-parse --short HEAD)$(cd "$REPO" && git diff --quiet HEAD -- gateway Cargo.toml Cargo.lock || echo "+dirty")
{
  echo "# WireGuard baseline: pqgate first slice vs wireguard-go vs bare veth ($DATE$( ((QUICK)) && echo ', --quick'))"
  echo
  echo "Before batching: pqgate's first WireGuard slice does blocking IO, one packet per syscall."
  echo "Issue 4's goals (pqgate >= 5x wireguard-go single-stream TCP throughput, <= 0.5x its CPU"
  echo "per GB) are for the finished engine with batched IO and offloads; this file is the"
  echo "baseline they will be measured against, not a claim that they are met."
  echo
  echo "## Machine"
  echo
  echo "- CPU: $(lscpu | awk -F: '/Model name/{gsub(/^ +/,"",$2); print $2; exit}'), nproc $(nproc)"
  echo "- kernel: $(uname -r); $(. /etc/os-release; echo "$PRETTY_NAME")"
  echo "- pqgate: git $REV (release build); wireguard-go: $(dpkg-query -W -f='${Version}' wireguard-go) ($(wireguard-go --version | head -1))"
  echo "- iperf3: $(iperf3 --version | head -1)"
  echo "- run: $(date -u +%Y-%m-%dT%H:%MZ), $ROUNDS interleaved rounds (order rotated each round), ${SECS} s per iperf3 run, directions: $DIRS; $ELAPSED s wall in total"
  echo
  echo "## Setup"
  echo
  echo "Two network namespaces joined by a veth (MTU 1500, 10.200.0.0/24). In them, at the same"
  echo "time: (a) \`pqgate wg up\` <-> \`pqgate wg up\` (10.201.0.0/24, tunnel MTU 1420, no PSK),"
  echo "(b) Debian wireguard-go <-> wireguard-go (\`wireguard-go -f\`, \`wg setconf\`, \`ip\`;"
  echo "10.202.0.0/24, MTU 1420), (d) the bare veth. One iperf3 server in B; the client in A runs"
  echo "\`iperf3 -c DST -t $SECS -P 1|4\` (fwd: A->B) and with \`-R\` (rev: B->A). Throughput is"
  echo "iperf3's receiver-side sum. CPU/GB: utime+stime of both tunnel daemons (/proc/PID/stat,"
  echo "before/after each run) per 10^9 bytes received. Drops: \`nstat -asz UdpRcvbufErrors\` in each"
  echo "namespace (A+B) per run, summed over the rounds. pqgate forces 7 MiB UDP socket buffers"
  echo "(SO_RCVBUFFORCE/SO_SNDBUFFORCE); Debian's wireguard-go keeps the kernel default (208 KiB),"
  echo "which is where its receive drops come from."
  echo "Everything (two daemons, two iperf3) shares the 2 vCPUs; steal is the hypervisor's share"
  echo "of CPU time during the run (/proc/stat)."
  echo
  echo "## Medians"
  echo
  echo "| contender | streams | dir | Gbit/s (median) | Gbit/s per round | daemon CPU s per GB (median) | UDP rcvbuf drops (all rounds) |"
  echo "|---|---|---|---|---|---|---|"
  for dir in $DIRS; do
    for n in 1 4; do
      for c in pqgate wggo veth; do
        g=$(col $c $n $dir 5 | median)
        per=$(col $c $n $dir 5 | paste -sd' ' | sed 's/ /, /g')
        if [[ $c == veth ]]; then cg="-"; else cg=$(cpugb $c $n $dir | median); fi
        name=$c; [[ $c == pqgate ]] && name="(a) pqgate"; [[ $c == wggo ]] && name="(b) wireguard-go"; [[ $c == veth ]] && name="(d) bare veth"
        echo "| $name | $n | $dir | $g | $per | $cg | $(dropsum $c $n $dir) |"
      done
    done
  done
  echo
  echo "## Ratios (medians)"
  echo
  echo "| streams | dir | (a)/(b) throughput | (a)/(b) CPU per GB | (a)/(d) throughput | goal (finished engine) |"
  echo "|---|---|---|---|---|---|"
  for dir in $DIRS; do
    for n in 1 4; do
      ga=$(col pqgate $n $dir 5 | median); gb=$(col wggo $n $dir 5 | median); gd=$(col veth $n $dir 5 | median)
      ca=$(cpugb pqgate $n $dir | median); cb=$(cpugb wggo $n $dir | median)
      goal="-"; ((n == 1)) && goal=">= 5x throughput, <= 0.5x CPU/GB"
      echo "| $n | $dir | $(ratio "$ga" "$gb")x | $(ratio "$ca" "$cb")x | $(ratio "$ga" "$gd")x | $goal |"
    done
  done
  echo
  echo "## Every run"
  echo
  echo "| contender | streams | dir | round | Gbit/s | bytes | daemon CPU s | rcvbuf drops A | rcvbuf drops B | steal % |"
  echo "|---|---|---|---|---|---|---|---|---|---|"
  awk -F'\t' '{printf "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", $1,$2,$3,$4,$5,$6,$7,$8,$9,$10}' "$RAW"
  if [[ -n $PROFILE ]]; then
    echo
    echo "## Profile: pqgate, 1 stream A->B, both daemons (perf record -F 499, extra run, not in the tables)"
    echo
    echo "$PROFILE"
  fi
} >"$OUT"
log "wrote $OUT ($ELAPSED s)"
