#!/usr/bin/env bash
# pqgate WireGuard benchmark (issue 4): iperf3 through (a) pqgate <-> pqgate, (b) Debian's
# wireguard-go <-> wireguard-go, (c) gotatun's own device <-> itself (benches/gotatun-device),
# (d) the bare veth, in two network namespaces joined by a veth (underlay MTU 1500, tunnel MTU
# 1420). TCP 1 and 4 streams both ways, UDP 1 stream A->B at fixed offered rates. Interleaved
# rounds (order rotated each round), medians; CPU seconds of both tunnel daemons per GB moved;
# UDP receive-buffer and interface drops. Writes benches/results/wg-<date>[-quick].md.
#
#   bash benches/wg.sh [--quick] [--rounds N] [--secs S] [--one-way] [--udp-rates R,R...]
#                      [--only tcp|udp] [--gotatun-buffer BYTES|default] [--skip-install]
#                      [--skip-build] [--keep] [--out FILE] [--no-perf]
#
#   --quick           5 s per iperf3 run (default 10 s); rounds stay 3 unless --rounds
#   --one-way         TCP only A->B (iperf3 client in A); default also B->A (iperf3 -R)
#   --udp-rates R,..  offered rates (iperf3 -b) of the UDP runs (default 500M,1G), the same
#                     for every contender
#   --only tcp|udp    run only the TCP or only the UDP measurements
#   --gotatun-buffer  SO_RCVBUF/SO_SNDBUF asked for by (c) (default 7340032, like pqgate; `default`:
#                     the kernel's); capped by net.core.[rw]mem_max
#   --skip-install    do not apt-get install missing packages
#   --skip-build      use the built target/release/pqgate and target/release/gotatun-device
#   --keep            keep the work directory (configs, iperf3 JSON, daemon logs)
#   --no-perf         skip the extra profiled pqgate run (perf record) after the rounds
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

ROUNDS=3
SECS=10
QUICK=0
DIRS="fwd rev"
INSTALL=1
BUILD=1
KEEP=0
OUT=""
PERF=1
TCP=1
UDP=1
UDP_RATES=500M,1G
UDP_LEN=1380   # inner UDP payload: 1380 + 8 + 20 <= tunnel MTU 1420, so nothing fragments
UDP_WIN=4M     # iperf3 -w for UDP: the receiving iperf3's socket buffer (capped by rmem_max)
GT_BUF=7340032
usage() { sed -n '2,23p' "$0"; exit 2; }
ONLY=""
parse_args --quick:'QUICK=1; SECS=5' --rounds=ROUNDS --secs=SECS --one-way:DIRS=fwd \
  --udp-rates=UDP_RATES --only=ONLY --gotatun-buffer=GT_BUF --skip-install:INSTALL=0 \
  --skip-build:BUILD=0 --keep:KEEP=1 --no-perf:PERF=0 --out=OUT -- "$@"
case $ONLY in "") ;; tcp) UDP=0 ;; udp) TCP=0 ;; *) echo "--only tcp|udp" >&2; exit 2 ;; esac
need_rounds
[[ $SECS =~ ^[1-9][0-9]*$ ]] || { echo "--secs must be >= 1" >&2; exit 2; }
[[ $UDP_RATES =~ ^[1-9][0-9]*[KMG]?(,[1-9][0-9]*[KMG]?)*$ ]] || { echo "--udp-rates: finite iperf3 -b values like 500M,1G" >&2; exit 2; }
IFS=, read -r -a RATES <<<"$UDP_RATES"
[[ $GT_BUF == default || $GT_BUF =~ ^[1-9][0-9]*$ ]] || { echo "--gotatun-buffer: BYTES or default" >&2; exit 2; }
[[ $(id -u) == 0 ]] || { echo "needs root (ip netns, /dev/net/tun)" >&2; exit 1; }

PQGATE=$REPO/target/release/pqgate
GOTATUN=$REPO/target/release/gotatun-device
GT_ARGS=()
[[ $GT_BUF == default ]] || GT_ARGS=(--udp-buffer "$GT_BUF")
DATE=$(date -u +%Y-%m-%d)
if [[ -z $OUT ]]; then
  OUT=$REPO/benches/results/wg-$DATE$( ((QUICK)) && echo -quick || true).md
fi
WORK=$(mktemp -d /tmp/pqgate-wgbench.XXXXXX)
T0=$(date +%s)

TAG=$$
NSA=pqwb-$TAG-a
NSB=pqwb-$TAG-b
VA=wbva$TAG
VB=wbvb$TAG
# Interface names: the UAPI socket /var/run/wireguard/IFACE.sock is host-wide, so all six differ.
PQA=wbpa$TAG
PQB=wbpb$TAG
WGA=wbga$TAG
WGB=wbgb$TAG
GTA=wbta$TAG
GTB=wbtb$TAG
PQ_PORT_A=51901 PQ_PORT_B=51902 WG_PORT_A=51903 WG_PORT_B=51904 GT_PORT_A=51905 GT_PORT_B=51906

# ---------------------------------------------------------------- cleanup
PIDS=()
cleanup() {
  local rc=$?
  stop_pids
  for i in $PQA $PQB $WGA $WGB $GTA $GTB; do rm -f "/var/run/wireguard/$i.sock"; done
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
  for p in wireguard-go wireguard-tools iperf3 iproute2 jq ethtool; do
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
  # Its own workspace and Cargo.lock; the repository's target/ shares the common dependencies.
  log "cargo build --release -j2 --locked --manifest-path benches/gotatun-device/Cargo.toml"
  (cd "$REPO" && CARGO_TARGET_DIR=$REPO/target cargo build --release -j2 --locked \
    --manifest-path benches/gotatun-device/Cargo.toml)
fi
[[ -x $PQGATE ]] || { echo "missing $PQGATE (drop --skip-build)" >&2; exit 1; }
[[ -x $GOTATUN ]] || { echo "missing $GOTATUN (drop --skip-build)" >&2; exit 1; }

# ---------------------------------------------------------------- namespaces and tunnels
ip netns add "$NSA"
ip netns add "$NSB"
ip link add "$VA" netns "$NSA" mtu 1500 type veth peer name "$VB" netns "$NSB" mtu 1500
for x in "$NSA:$VA:10.200.0.1/24" "$NSB:$VB:10.200.0.2/24"; do
  IFS=: read -r ns dev addr <<<"$x"
  ip -n "$ns" address add "$addr" dev "$dev"
  ip -n "$ns" link set dev "$dev" up
  ip -n "$ns" link set dev lo up
done

keypair() { local k; k=$(wg genkey); echo "$k $(echo "$k" | wg pubkey)"; }
read -r PQ_PRIV_A PQ_PUB_A < <(keypair)
read -r PQ_PRIV_B PQ_PUB_B < <(keypair)
read -r WG_PRIV_A WG_PUB_A < <(keypair)
read -r WG_PRIV_B WG_PUB_B < <(keypair)
read -r GT_PRIV_A GT_PUB_A < <(keypair)
read -r GT_PRIV_B GT_PUB_B < <(keypair)

# (a) pqgate <-> pqgate: `pqgate wg up FILE.conf` (interface named after the file).
# pq_conf FILE PRIV PORT N PEERPUB PEERPORT: side N (1 or 2) of the pair, its peer the other side.
pq_conf() {
  local peer=$((3 - $4))
  printf '[Interface]\nPrivateKey = %s\nListenPort = %s\nAddress = 10.201.0.%s/24\nMTU = 1420\n\n[Peer]\nPublicKey = %s\nAllowedIPs = 10.201.0.%s/32\nEndpoint = 10.200.0.%s:%s\n' \
    "$2" "$3" "$4" "$5" "$peer" "$peer" "$6" >"$1"
}
pq_conf "$WORK/$PQA.conf" "$PQ_PRIV_A" "$PQ_PORT_A" 1 "$PQ_PUB_B" "$PQ_PORT_B"
pq_conf "$WORK/$PQB.conf" "$PQ_PRIV_B" "$PQ_PORT_B" 2 "$PQ_PUB_A" "$PQ_PORT_A"
ip netns exec "$NSA" "$PQGATE" wg up "$WORK/$PQA.conf" >"$WORK/pq-a.log" 2>&1 &
PQ_PID_A=$!; PIDS+=("$PQ_PID_A")
ip netns exec "$NSB" "$PQGATE" wg up "$WORK/$PQB.conf" >"$WORK/pq-b.log" 2>&1 &
PQ_PID_B=$!; PIDS+=("$PQ_PID_B")

# (b) wireguard-go and (c) gotatun-device: a daemon serving the UAPI socket, configured with
# `wg setconf` and `ip`, the same way for both.
uapi_up() {  # KIND NS IFACE PRIV PORT PEERPUB PEERIP ADDR PEERPORT
  local kind=$1 ns=$2 ifc=$3 priv=$4 port=$5 peer=$6 peerip=$7 addr=$8 peerport=$9
  case $kind in
    wggo) ip netns exec "$ns" wireguard-go -f "$ifc" >"$WORK/$ifc.log" 2>&1 & ;;
    gotatun) ip netns exec "$ns" "$GOTATUN" "$ifc" "${GT_ARGS[@]}" >"$WORK/$ifc.log" 2>&1 & ;;
  esac
  LASTPID=$!; PIDS+=("$LASTPID")
  for _ in $(seq 100); do
    [[ -S /var/run/wireguard/$ifc.sock ]] && break
    kill -0 "$LASTPID" 2>/dev/null || break
    sleep 0.1
  done
  [[ -S /var/run/wireguard/$ifc.sock ]] || { cat "$WORK/$ifc.log" >&2; echo "$kind $ifc did not start" >&2; exit 1; }
  printf '[Interface]\nPrivateKey = %s\nListenPort = %s\n\n[Peer]\nPublicKey = %s\nAllowedIPs = %s/32\nEndpoint = 10.200.0.%s:%s\n' \
    "$priv" "$port" "$peer" "$peerip" "${peerip##*.}" "$peerport" >"$WORK/$ifc.wg"
  ip netns exec "$ns" wg setconf "$ifc" "$WORK/$ifc.wg"
  ip -n "$ns" address add "$addr" dev "$ifc"
  ip -n "$ns" link set dev "$ifc" mtu 1420 up
}
uapi_up wggo "$NSA" "$WGA" "$WG_PRIV_A" $WG_PORT_A "$WG_PUB_B" 10.202.0.2 10.202.0.1/24 $WG_PORT_B
WG_PID_A=$LASTPID
uapi_up wggo "$NSB" "$WGB" "$WG_PRIV_B" $WG_PORT_B "$WG_PUB_A" 10.202.0.1 10.202.0.2/24 $WG_PORT_A
WG_PID_B=$LASTPID
uapi_up gotatun "$NSA" "$GTA" "$GT_PRIV_A" $GT_PORT_A "$GT_PUB_B" 10.203.0.2 10.203.0.1/24 $GT_PORT_B
GT_PID_A=$LASTPID
uapi_up gotatun "$NSB" "$GTB" "$GT_PRIV_B" $GT_PORT_B "$GT_PUB_A" 10.203.0.1 10.203.0.2/24 $GT_PORT_A
GT_PID_B=$LASTPID
DAEMONS="$PQ_PID_A $PQ_PID_B $WG_PID_A $WG_PID_B $GT_PID_A $GT_PID_B"

# All tunnels up: one ping through each (bounded).
for dst in 10.201.0.2 10.202.0.2 10.203.0.2 10.200.0.2; do
  okp=0
  for _ in $(seq 20); do
    if ip netns exec "$NSA" ping -c1 -W1 "$dst" >/dev/null 2>&1; then okp=1; break; fi
    for p in $DAEMONS; do
      kill -0 "$p" 2>/dev/null || { tail -n 20 "$WORK"/*.log >&2; echo "a tunnel daemon exited" >&2; exit 1; }
    done
  done
  ((okp)) || { tail -n 20 "$WORK"/*.log >&2; echo "no ping reply from $dst" >&2; exit 1; }
done
log "tunnels up (pqgate $PQ_PID_A/$PQ_PID_B, wireguard-go $WG_PID_A/$WG_PID_B, gotatun $GT_PID_A/$GT_PID_B)"

# Offloads each TUN interface was given (TUNSETOFFLOAD shows as ethtool features).
tun_offloads() {  # NS IFACE
  command -v ethtool >/dev/null || { echo "n/a (no ethtool)"; return; }
  ip netns exec "$1" ethtool -k "$2" 2>/dev/null | awk -F': ' '
    $1 ~ /tx-tcp-segmentation$/ {t4 = $2} $1 ~ /tx-tcp6-segmentation$/ {t6 = $2}
    $1 ~ /tx-udp-segmentation$/ {u = $2} $1 ~ /tx-checksum-ip-generic$/ {c = $2}
    END {sub(/ .*/, "", t4); sub(/ .*/, "", t6); sub(/ .*/, "", u); sub(/ .*/, "", c)
         printf "csum %s, TSO4 %s, TSO6 %s, USO %s", c, t4, t6, u}'
}
declare -A OFFL
OFFL[pqgate]="A: $(tun_offloads "$NSA" "$PQA"); B: $(tun_offloads "$NSB" "$PQB")"
OFFL[wggo]="A: $(tun_offloads "$NSA" "$WGA"); B: $(tun_offloads "$NSB" "$WGB")"
OFFL[gotatun]="A: $(tun_offloads "$NSA" "$GTA"); B: $(tun_offloads "$NSB" "$GTB")"

# iperf3 server in B (all addresses).
ip netns exec "$NSB" iperf3 -s -p 5201 >"$WORK/iperf3-server.log" 2>&1 &
IPERF_PID=$!; PIDS+=("$IPERF_PID")
for _ in $(seq 50); do ip netns exec "$NSB" ss -Htln 'sport = :5201' | grep -q . && break; sleep 0.1; done

# ---------------------------------------------------------------- measurement helpers
TCK=$(getconf CLK_TCK)
cpu_ticks() {  # a daemon that died counts 0 (the run is then flagged at the end)
  local s=0 p t
  for p in "$@"; do t=$(awk '{print $14 + $15}' "/proc/$p/stat" 2>/dev/null || true); s=$((s + ${t:-0})); done
  echo "$s"
}
rcvbuf() { ip netns exec "$1" nstat -asz UdpRcvbufErrors | awk '$1 == "UdpRcvbufErrors" {print $2}'; }
steal() { awk '/^cpu /{print $9, $2+$3+$4+$5+$6+$7+$8+$9}' /proc/stat; }
declare -A DST=([pqgate]=10.201.0.2 [wggo]=10.202.0.2 [gotatun]=10.203.0.2 [veth]=10.200.0.2)
declare -A IFACES=([pqgate]="$PQA $PQB" [wggo]="$WGA $WGB" [gotatun]="$GTA $GTB" [veth]="$VA $VB")
# tx_dropped of the contender's interface in A plus the one in B: packets the kernel could not
# queue to the daemon (TUN queue full) or the veth dropped.
txdrops() {
  local a b x y
  read -r a b <<<"${IFACES[$1]}"
  x=$(ip netns exec "$NSA" cat "/sys/class/net/$a/statistics/tx_dropped" 2>/dev/null || true)
  y=$(ip netns exec "$NSB" cat "/sys/class/net/$b/statistics/tx_dropped" 2>/dev/null || true)
  echo $(( ${x:-0} + ${y:-0} ))
}
declare -A DPIDS=([pqgate]="$PQ_PID_A $PQ_PID_B" [wggo]="$WG_PID_A $WG_PID_B"
  [gotatun]="$GT_PID_A $GT_PID_B" [veth]="")

# RAW columns: 1 contender, 2 proto, 3 streams, 4 dir, 5 round, 6 gbps, 7 bytes, 8 cpu_s,
# 9 drops_a, 10 drops_b, 11 steal_pct, 12 loss_pct (UDP; "-" for TCP), 13 iface tx_dropped (A+B)
RAW=$WORK/raw.tsv
: >"$RAW"
# measure CONTENDER PROTO STREAMS DIR ROUND
measure() {
  local c=$1 proto=$2 n=$3 dir=$4 r=$5 pids flags=()
  read -r -a pids <<<"${DPIDS[$c]}"
  [[ $dir == rev ]] && flags+=(-R)
  [[ $proto == udp-* ]] && flags+=(-u -b "${proto#udp-}" -l "$UDP_LEN" -w "$UDP_WIN")
  local c0=0 c1=0 da0 db0 da1 db1 s0 s1 t0 t1
  ((${#pids[@]})) && c0=$(cpu_ticks "${pids[@]}")
  da0=$(rcvbuf "$NSA"); db0=$(rcvbuf "$NSB"); s0=$(steal); t0=$(txdrops "$c")
  local json=$WORK/$c-$proto-$n-$dir-$r.json
  timeout -k 2 $((SECS + 20)) ip netns exec "$NSA" iperf3 -c "${DST[$c]}" -p 5201 -t "$SECS" -P "$n" \
    "${flags[@]}" -J >"$json" 2>"$json.err" || true
  ((${#pids[@]})) && c1=$(cpu_ticks "${pids[@]}")
  da1=$(rcvbuf "$NSA"); db1=$(rcvbuf "$NSB"); s1=$(steal); t1=$(txdrops "$c")
  local bps bytes loss="-" err
  bps=$(jq -r '.end.sum_received.bits_per_second // 0' "$json" 2>/dev/null || echo 0)
  bytes=$(jq -r '.end.sum_received.bytes // 0' "$json" 2>/dev/null || echo 0)
  if [[ $proto == udp-* ]]; then
    loss=$(jq -r '.end.sum_received.lost_percent // "nan"' "$json" 2>/dev/null || echo nan)
    loss=$(awk -v l="$loss" 'BEGIN{ if (l == "nan") print "nan"; else printf "%.2f", l}')
  fi
  err=$(jq -r '.error // empty' "$json" 2>/dev/null || echo "unreadable iperf3 output")
  local gbps cpu st
  gbps=$(awk -v b="$bps" 'BEGIN{printf "%.3f", b/1e9}')
  cpu=$(awk -v t=$((c1 - c0)) -v k="$TCK" 'BEGIN{printf "%.2f", t/k}')
  st=$(awk -v a="$s0" -v b="$s1" 'BEGIN{split(a,x," "); split(b,y," "); d=y[2]-x[2]; printf "%.0f", (d > 0) ? 100*(y[1]-x[1])/d : 0}')
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$c" "$proto" "$n" "$dir" "$r" "$gbps" \
    "$bytes" "$cpu" $((da1 - da0)) $((db1 - db0)) "$st" "$loss" $((t1 - t0)) >>"$RAW"
  log "round $r $c $proto P$n $dir: $gbps Gbit/s$([[ $proto == udp-* ]] && echo ", loss $loss%"), daemons ${cpu} CPU s, rcvbuf drops A=$((da1 - da0)) B=$((db1 - db0)), tx_dropped $((t1 - t0)), steal ${st}%${err:+, iperf3 error: $err}"
}

# ---------------------------------------------------------------- interleaved rounds
CONTENDERS=(pqgate wggo gotatun veth)
for r in $(seq "$ROUNDS"); do
  if ((TCP)); then
    for dir in $DIRS; do
      for n in 1 4; do
        for c in "${CONTENDERS[@]}"; do measure "$c" tcp "$n" "$dir" "$r"; sleep 1; done
      done
    done
  fi
  if ((UDP)); then
    for rate in "${RATES[@]}"; do
      for c in "${CONTENDERS[@]}"; do measure "$c" "udp-$rate" 1 fwd "$r"; sleep 1; done
    done
  fi
  CONTENDERS=("${CONTENDERS[@]:1}" "${CONTENDERS[0]}")   # rotate the order each round
done
for p in $DAEMONS; do
  kill -0 "$p" 2>/dev/null || log "WARNING: daemon $p died during the run"
done

# ---------------------------------------------------------------- profile (not measured)
# One extra single-stream A->B pqgate run with `perf record` on both daemons (sampling skews
# throughput, so it is not in the tables): where pqgate's CPU goes.
PROFILE=""
if ((PERF && TCP)) && command -v perf >/dev/null && perf stat -e task-clock true >/dev/null 2>&1; then
  log "profiling pqgate (perf record, ${SECS} s, not counted)"
  timeout -k 2 $((SECS + 20)) ip netns exec "$NSA" iperf3 -c 10.201.0.2 -p 5201 -t "$SECS" -J \
    >"$WORK/perf-iperf3.json" 2>&1 &
  IP3=$!
  sleep 0.5
  timeout -k 2 $((SECS + 10)) perf record -q -F 499 -p "$PQ_PID_A,$PQ_PID_B" -o "$WORK/perf.data" \
    -- sleep $((SECS > 1 ? SECS - 1 : 1)) >/dev/null 2>&1 || true
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

# pqgate's own counters over the whole run (drops by reason), printed when it stops.
for p in $PQ_PID_A $PQ_PID_B; do kill -TERM "$p" 2>/dev/null || true; done
for p in $PQ_PID_A $PQ_PID_B; do
  for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
done
PQDOWN=$(grep -h ' down: ' "$WORK/pq-a.log" "$WORK/pq-b.log" 2>/dev/null || true)

# ---------------------------------------------------------------- results
median() { sort -g | awk '{a[NR]=$1} END{if (NR==0) print "nan"; else if (NR%2) print a[(NR+1)/2]; else printf "%.3f\n", (a[NR/2]+a[NR/2+1])/2}'; }
sel() { awk -F'\t' -v c="$1" -v p="$2" -v n="$3" -v d="$4" '$1==c && $2==p && $3==n && $4==d' "$RAW"; }
col() { sel "$1" "$2" "$3" "$4" | cut -f"$5"; }          # CONTENDER PROTO STREAMS DIR FIELD
cpugb() { sel "$1" "$2" "$3" "$4" | awk -F'\t' '{ if ($7 > 0) printf "%.3f\n", $8/($7/1e9); else print "nan" }'; }
dropsum() { sel "$1" "$2" "$3" "$4" | awk -F'\t' '{s+=$9+$10} END{print s+0}'; }
txsum() { sel "$1" "$2" "$3" "$4" | awk -F'\t' '{s+=$13} END{print s+0}'; }
list() { paste -sd' ' | sed 's/ /, /g'; }
# rratio A B PROTO STREAMS DIR gbps|cpu: the median over rounds of A's value / B's in that round.
rratio() {
  awk -F'\t' -v a="$1" -v b="$2" -v p="$3" -v n="$4" -v d="$5" -v f="$6" '
    $2==p && $3==n && $4==d && ($1==a || $1==b) {
      v = (f == "cpu") ? (($7 > 0) ? $8/($7/1e9) : "") : $6
      if ($1 == a) A[$5] = v; else B[$5] = v }
    END { for (r in A) if ((r in B) && A[r] != "" && B[r] + 0 > 0) print A[r]/B[r] }' "$RAW" |
    median | awk '{ if ($1 == "nan") print "n/a"; else printf "%.2fx\n", $1 }'
}
goal() {  # RATIO(e.g. 2.31x) >=|<= TARGET
  awk -v v="${1%x}" -v op="$2" -v t="$3" 'BEGIN{
    if (v !~ /^[0-9.]+$/) { print "n/a"; exit }
    ok = (op == ">=") ? (v + 0 >= t) : (v + 0 <= t); print (ok ? "met" : "**MISSED**") }'
}
declare -A NAMES=([pqgate]="(a) pqgate" [wggo]="(b) wireguard-go" [gotatun]="(c) gotatun device"
  [veth]="(d) bare veth")
name() { echo "${NAMES[$1]}"; }

ELAPSED=$(( $(date +%s) - T0 ))
REV=$(cd "$REPO" && git rev-parse --short HEAD)$(cd "$REPO" && git diff --quiet HEAD -- gateway Cargo.toml Cargo.lock || echo "+dirty")
GT_BUF_TXT="kernel default"
[[ $GT_BUF == default ]] || GT_BUF_TXT="SO_RCVBUF/SO_SNDBUF $GT_BUF asked (net.core.rmem_max $(cat /proc/sys/net/core/rmem_max), wmem_max $(cat /proc/sys/net/core/wmem_max) cap them)"
{
  echo "# WireGuard: pqgate vs wireguard-go vs gotatun's device vs bare veth ($DATE$( ((QUICK)) && echo ', --quick'))"
  echo
  echo "Issue 4's goals, single-stream TCP: pqgate >= 5x Debian wireguard-go's throughput and <= 0.5x"
  echo "its daemon CPU per GB, >= 2x gotatun's own device's throughput. Each ratio below is the"
  echo "median over the rounds of the per-round ratio (contenders measured seconds apart)."
  ((ROUNDS >= 3)) || echo "**Only $ROUNDS round(s): a smoke run, not a result; issue 4 asks for the median of >= 3.**"
  echo
  echo "## Machine"
  echo
  echo "- CPU: $(lscpu | awk -F: '/Model name/{gsub(/^ +/,"",$2); print $2; exit}'), nproc $(nproc)"
  # shellcheck disable=SC1091
  echo "- kernel: $(uname -r); $(. /etc/os-release; echo "$PRETTY_NAME")"
  echo "- pqgate: git $REV (release build); wireguard-go: $(dpkg-query -W -f='${Version}' wireguard-go) ($(wireguard-go --version | head -1))"
  echo "- gotatun: $(awk '/^name = "gotatun"$/{getline; gsub(/[^0-9.]/, "", $0); print; exit}' "$REPO/benches/gotatun-device/Cargo.lock") device (benches/gotatun-device, release, aws-lc-rs; UDP buffers: $GT_BUF_TXT)"
  echo "- iperf3: $(iperf3 --version | head -1)"
  echo "- run: $(date -u +%Y-%m-%dT%H:%MZ), $ROUNDS interleaved round(s) (order rotated each round), ${SECS} s per iperf3 run; TCP: $( ((TCP)) && echo "1 and 4 streams, $DIRS" || echo "not run"); UDP: $( ((UDP)) && echo "1 stream fwd, -b ${RATES[*]}, -l $UDP_LEN -w $UDP_WIN" || echo "not run"); $ELAPSED s wall in total"
  echo
  echo "## Setup"
  echo
  echo "Two network namespaces joined by a veth (MTU 1500, 10.200.0.0/24). In them, at the same"
  echo "time: (a) \`pqgate wg up\` <-> \`pqgate wg up\` (10.201.0.0/24, tunnel MTU 1420, no PSK),"
  echo "(b) Debian wireguard-go <-> wireguard-go (\`wireguard-go -f\`, \`wg setconf\`, \`ip\`;"
  echo "10.202.0.0/24, MTU 1420), (c) gotatun's device <-> itself (\`gotatun-device IFACE\`, configured"
  echo "exactly like (b); 10.203.0.0/24, MTU 1420), (d) the bare veth. One iperf3 server in B; the"
  echo "client in A runs \`iperf3 -c DST -t $SECS -P 1|4\` (fwd: A->B) and with \`-R\` (rev: B->A)."
  echo "UDP: \`iperf3 -u -b RATE -l $UDP_LEN -w $UDP_WIN -P 1\` A->B at each offered RATE, the same for"
  echo "every contender: finite, so the sender paces itself instead of taking a whole vCPU from the"
  echo "tunnel; $UDP_LEN-byte payloads fit the tunnel MTU unfragmented; \`-w\` gives the receiving"
  echo "iperf3 a large socket buffer, so a tunnel that delivers in bursts is not penalised for"
  echo "iperf3's small default one. The bare veth row is the ceiling of the two iperf3 processes"
  echo "themselves on this machine. Throughput is iperf3's receiver-side sum; UDP loss is iperf3's"
  echo "receiver-side lost %. CPU/GB: utime+stime of both tunnel daemons (/proc/PID/stat, before/after"
  echo "each run) per 10^9 bytes received. Drops: \`nstat -asz UdpRcvbufErrors\` in each namespace"
  echo "(A+B) per run, summed over the rounds (UDP runs: iperf3's socket included); interface"
  echo "tx_dropped: the contender's interfaces in A and B (a TUN drops when its daemon does not read"
  echo "fast enough and the queue is full). pqgate forces 7 MiB"
  echo "UDP socket buffers (SO_RCVBUFFORCE/SO_SNDBUFFORCE); Debian's wireguard-go keeps the kernel"
  echo "default (208 KiB); gotatun's device: $GT_BUF_TXT."
  echo "Everything (two daemons, two iperf3) shares the $(nproc) vCPUs; steal is the hypervisor's share"
  echo "of CPU time during the run (/proc/stat)."
  if ((TCP)); then
    echo
    echo "## TCP (medians)"
    echo
    echo "| contender | streams | dir | Gbit/s (median) | Gbit/s per round | daemon CPU s/GB (median) | CPU s/GB per round | UDP rcvbuf drops (all rounds) |"
    echo "|---|---|---|---|---|---|---|---|"
    for dir in $DIRS; do
      for n in 1 4; do
        for c in pqgate wggo gotatun veth; do
          if [[ $c == veth ]]; then cg="-"; cgl="-"; else cg=$(cpugb $c tcp "$n" "$dir" | median); cgl=$(cpugb $c tcp "$n" "$dir" | list); fi
          echo "| $(name $c) | $n | $dir | $(col $c tcp "$n" "$dir" 6 | median) | $(col $c tcp "$n" "$dir" 6 | list) | $cg | $cgl | $(dropsum $c tcp "$n" "$dir") |"
        done
      done
    done
  fi
  if ((UDP)); then
    echo
    echo "## UDP, 1 stream A->B (medians)"
    echo
    echo "| contender | offered | received Gbit/s (median) | per round | loss % (median) | loss % per round | daemon CPU s/GB (median) | UDP rcvbuf drops (all rounds) | interface tx_dropped (all rounds) |"
    echo "|---|---|---|---|---|---|---|---|---|"
    for rate in "${RATES[@]}"; do
      for c in pqgate wggo gotatun veth; do
        if [[ $c == veth ]]; then cg="-"; else cg=$(cpugb $c "udp-$rate" 1 fwd | median); fi
        echo "| $(name $c) | $rate | $(col $c "udp-$rate" 1 fwd 6 | median) | $(col $c "udp-$rate" 1 fwd 6 | list) | $(col $c "udp-$rate" 1 fwd 12 | median) | $(col $c "udp-$rate" 1 fwd 12 | list) | $cg | $(dropsum $c "udp-$rate" 1 fwd) | $(txsum $c "udp-$rate" 1 fwd) |"
      done
    done
  fi
  echo
  echo "## Ratios (median of per-round ratios)"
  echo
  echo "| proto | streams | dir | (a)/(b) throughput | (a)/(c) throughput | (a)/(d) throughput | (a)/(b) CPU per GB | (a)/(c) CPU per GB |"
  echo "|---|---|---|---|---|---|---|---|"
  rows=()
  if ((TCP)); then for dir in $DIRS; do for n in 1 4; do rows+=("tcp $n $dir"); done; done; fi
  if ((UDP)); then for rate in "${RATES[@]}"; do rows+=("udp-$rate 1 fwd"); done; fi
  for row in "${rows[@]}"; do
    read -r p n dir <<<"$row"
    echo "| $p | $n | $dir | $(rratio pqgate wggo "$p" "$n" "$dir" gbps) | $(rratio pqgate gotatun "$p" "$n" "$dir" gbps) | $(rratio pqgate veth "$p" "$n" "$dir" gbps) | $(rratio pqgate wggo "$p" "$n" "$dir" cpu) | $(rratio pqgate gotatun "$p" "$n" "$dir" cpu) |"
  done
  if ((TCP)); then
    echo
    echo "## Goals (single-stream TCP)"
    echo
    echo "| dir | goal | measured | status |"
    echo "|---|---|---|---|"
    for dir in $DIRS; do
      v=$(rratio pqgate wggo tcp 1 "$dir" gbps); echo "| $dir | (a)/(b) throughput >= 5x | $v | $(goal "$v" ">=" 5) |"
      v=$(rratio pqgate gotatun tcp 1 "$dir" gbps); echo "| $dir | (a)/(c) throughput >= 2x | $v | $(goal "$v" ">=" 2) |"
      v=$(rratio pqgate wggo tcp 1 "$dir" cpu); echo "| $dir | (a)/(b) CPU per GB <= 0.5x | $v | $(goal "$v" "<=" 0.5) |"
    done
  fi
  echo
  echo "## Offloads"
  echo
  echo "TUN offloads as the kernel shows them (\`ethtool -k IFACE\`: tx-checksum-ip-generic,"
  echo "tx-tcp-segmentation, tx-tcp6-segmentation, tx-udp-segmentation; set by the daemon's"
  echo "TUNSETOFFLOAD), read once the tunnels were up, in namespace A and B:"
  echo
  echo "| contender | TUN offloads |"
  echo "|---|---|"
  for c in pqgate wggo gotatun; do echo "| $(name $c) | ${OFFL[$c]} |"; done
  echo
  pqoff=$(grep -ihE 'offload|gso|gro' "$WORK/pq-a.log" "$WORK/pq-b.log" 2>/dev/null | head -6 || true)
  if [[ -n $pqoff ]]; then
    echo "pqgate's own report (its log, both daemons):"
    echo
    echo '```'
    echo "$pqoff"
    echo '```'
  else
    echo "pqgate's log does not name its UDP GSO/GRO state, so it is not shown here."
  fi
  if [[ -n $PQDOWN ]]; then
    echo
    echo "pqgate's counters for the whole run, as each daemon printed them when stopped (A, B):"
    echo
    echo '```'
    echo "$PQDOWN"
    echo '```'
  fi
  echo
  echo "## Every run"
  echo
  echo "| contender | proto | streams | dir | round | Gbit/s | bytes | daemon CPU s | rcvbuf drops A | rcvbuf drops B | steal % | UDP loss % | interface tx_dropped |"
  echo "|---|---|---|---|---|---|---|---|---|---|---|---|---|"
  awk -F'\t' '{printf "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", $1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13}' "$RAW"
  if [[ -n $PROFILE ]]; then
    echo
    echo "## Profile: pqgate, 1 stream TCP A->B, both daemons (perf record -F 499, extra run, not in the tables)"
    echo
    echo "$PROFILE"
  fi
} >"$OUT"
log "wrote $OUT ($ELAPSED s)"
