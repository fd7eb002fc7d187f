#!/usr/bin/env bash
# pqgate WireGuard peer-set scale (issue 4): for 100 / 1,000 / 10,000 configured peers (one /32
# each, random public keys, no endpoints), `pqgate wg up` in a fresh network namespace; records
# start time (spawn to UAPI socket), VmRSS after start, idle CPU (utime+stime from
# /proc/PID/stat over IDLE seconds, after SETTLE seconds so start-up work is over), and the wall
# time of one `wg set` adding a peer and one removing it (each includes its `ip route` call).
# Writes a markdown table to stdout and to --out FILE. Root only. See benches/README.md.
#
#   bash benches/wg_peers.sh [--bin PATH] [--counts "100 1000 10000"] [--idle S] [--settle S]
#                            [--out FILE]
#
#   --bin     the pqgate binary (default target/release/pqgate, else target/debug/pqgate)
#   --idle    seconds of idle CPU sampling (default 10)
#   --settle  seconds to wait after start before sampling (default 10: new peers are ticked
#             at the fine rate for their first 7 s)
set -euo pipefail
cd "$(dirname "$0")/.."

BIN=""
COUNTS="100 1000 10000"
IDLE=10
SETTLE=10
OUT=""
source benches/lib.sh
usage() { sed -n '2,15p' "$0"; exit 2; }
parse_args --bin=BIN --counts=COUNTS --idle=IDLE --settle=SETTLE --out=OUT -- "$@"
if [ -z "$BIN" ]; then
  BIN=target/release/pqgate
  [ -x "$BIN" ] || BIN=target/debug/pqgate
fi
[ -x "$BIN" ] || { echo "no pqgate binary at $BIN (cargo build first)" >&2; exit 1; }
[ "$(id -u)" = 0 ] || { echo "needs root (ip netns, /dev/net/tun)" >&2; exit 1; }
for t in ip wg python3 timeout; do
  command -v "$t" >/dev/null || { echo "$t is required" >&2; exit 1; }
done

NS="pqgbench-$$"
IFACE="pb$$"
WORK=$(mktemp -d)
PID=""
cleanup() {
  if [ -n "$PID" ]; then kill "$PID" 2>/dev/null || true; wait "$PID" 2>/dev/null || true; fi
  ip netns del "$NS" 2>/dev/null || true
  rm -f "/var/run/wireguard/$IFACE.sock"
  rm -rf "$WORK"
}
trap cleanup EXIT
HZ=$(getconf CLK_TCK)

# N peers, random public keys, AllowedIPs 10.201.0.0 + k /32.
gen_conf() {
  python3 - "$1" "$(wg genkey)" <<'EOF'
import base64, ipaddress, os, sys
n, private = int(sys.argv[1]), sys.argv[2]
out = [f"[Interface]\nPrivateKey = {private}\nListenPort = 51870\nAddress = 10.200.0.1/32\n"]
base = int(ipaddress.IPv4Address("10.201.0.0"))
for k in range(n):
    key = base64.b64encode(os.urandom(32)).decode()
    out.append(f"\n[Peer]\nPublicKey = {key}\nAllowedIPs = {ipaddress.IPv4Address(base + k)}/32\n")
print("".join(out), end="")
EOF
}

cpu_ticks() { awk '{ sub(/.*\) /, ""); print $12 + $13 }' "/proc/$1/stat"; }
now_ms() { date +%s%3N; }

rows=()
for n in $COUNTS; do
  ip netns add "$NS"
  ip -n "$NS" link set dev lo up
  gen_conf "$n" > "$WORK/$IFACE.conf"
  chmod 600 "$WORK/$IFACE.conf"
  t0=$(now_ms)
  ip netns exec "$NS" "$BIN" wg up "$WORK/$IFACE.conf" 2> "$WORK/log-$n" &
  PID=$!
  for _ in $(seq 1 6000); do
    [ -S "/var/run/wireguard/$IFACE.sock" ] && break
    kill -0 "$PID" 2>/dev/null || { cat "$WORK/log-$n" >&2; exit 1; }
    sleep 0.05
  done
  start_ms=$(( $(now_ms) - t0 ))
  rss=$(awk '/^VmRSS:/ { print $2 }' "/proc/$PID/status")
  sleep "$SETTLE"
  c0=$(cpu_ticks "$PID")
  sleep "$IDLE"
  c1=$(cpu_ticks "$PID")
  idle_pct=$(awk -v d=$((c1 - c0)) -v hz="$HZ" -v s="$IDLE" 'BEGIN { printf "%.2f", 100 * d / hz / s }')
  key=$(wg genkey | wg pubkey)
  t=$(now_ms)
  ip netns exec "$NS" wg set "$IFACE" peer "$key" allowed-ips 10.202.0.1/32
  add_ms=$(( $(now_ms) - t ))
  t=$(now_ms)
  ip netns exec "$NS" wg set "$IFACE" peer "$key" remove
  rm_ms=$(( $(now_ms) - t ))
  listed=$(ip netns exec "$NS" wg show "$IFACE" peers | wc -l)
  rss_after=$(awk '/^VmRSS:/ { print $2 }' "/proc/$PID/status")
  rows+=("| $n | $listed | $start_ms | $((rss / 1024)) | $((rss_after / 1024)) | $idle_pct | $add_ms | $rm_ms |")
  kill "$PID"; wait "$PID" 2>/dev/null || true; PID=""
  ip netns del "$NS"
  rm -f "/var/run/wireguard/$IFACE.sock"
done

{
  echo "binary: \`$BIN\`; host: $(nproc) vCPU, kernel $(uname -r); idle sampled ${IDLE} s after ${SETTLE} s"
  echo
  echo "| peers | listed by wg show | start ms | VmRSS MiB | VmRSS MiB after set | idle CPU % of one core | wg set add ms | wg set remove ms |"
  echo "|---|---|---|---|---|---|---|---|"
  printf '%s\n' "${rows[@]}"
} | tee ${OUT:+"$OUT"}
