#!/usr/bin/env bash
# Agile tunnel throughput per AEAD vs WireGuard mode (issue 5): two `pqgate run` peers with
# `[wireguard.pq]` (PQ PSK channel on the tunnel port) in two network namespaces joined by a veth,
# iperf3 TCP, one stream A->B, for each mode: `wireguard` (WireGuard data under the PQ PSK),
# `AES-256-GCM`, `ChaCha20-Poly1305`, `SM4-GCM` (the run-time plugin) as `agile =`. Interleaved
# rounds (order rotated), medians, CPU seconds of both daemons per GB, and the agile packet counts
# each daemon printed at exit (proof the data went through the agile path).
# Writes benches/results/agile-<date>.md.
#
#   bash benches/agile.sh [--rounds N] [--secs S] [--skip-build] [--out FILE]
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

ROUNDS=3 SECS=10 BUILD=1 OUT=""
usage() { sed -n '2,10p' "$0"; exit 2; }
parse_args --rounds=ROUNDS --secs=SECS --skip-build:BUILD=0 --out=OUT -- "$@"
[[ $(id -u) == 0 ]] || { echo "needs root (ip netns, /dev/net/tun)" >&2; exit 1; }
for t in iperf3 wg ip python3; do
  command -v "$t" >/dev/null || { echo "missing $t (tests/run-all.sh installs it)" >&2; exit 1; }
done

TARGET=${CARGO_TARGET_DIR:-$REPO/target}
PQ=$TARGET/release/pqgate
SO=$TARGET/release/libpqgate_plugin_sm4.so
OUT=${OUT:-$REPO/benches/results/agile-$(date -u +%Y-%m-%d).md}
MODES=(wireguard AES-256-GCM ChaCha20-Poly1305 SM4-GCM)
TAG=$$
NSA=pqag-$TAG-a NSB=pqag-$TAG-b
W=$(mktemp -d /tmp/pqgate-agile.XXXXXX)
PIDS=()

cleanup() {
  stop_pids
  ip netns exec "$NSB" pkill -f "iperf3 -s" 2>/dev/null || true
  ip netns del "$NSA" 2>/dev/null || true
  ip netns del "$NSB" 2>/dev/null || true
  rm -f /var/run/wireguard/aga$TAG.sock /var/run/wireguard/agb$TAG.sock
  rm -rf "$W"
}
trap cleanup EXIT

if ((BUILD)); then
  log "cargo build --release -j2 (pqgate, SM4 plugin)"
  # Two invocations: `--bin pqgate -p pqgate-plugin-sm4` looks for the bin in the plugin too.
  (cd "$REPO" && cargo build --release -j2 --locked --bin pqgate >&2 \
    && cargo build --release -j2 --locked -p pqgate-plugin-sm4 >&2)
fi
[[ -x $PQ && -f $SO ]] || { echo "$PQ or $SO missing (drop --skip-build)" >&2; exit 1; }

# Namespaces, veth, PKI (the built-in CA), WireGuard keys.
ip netns add "$NSA"; ip netns add "$NSB"
ip link add agva$TAG netns "$NSA" type veth peer name agvb$TAG netns "$NSB"
ip -n "$NSA" addr add 10.212.0.1/24 dev agva$TAG
ip -n "$NSB" addr add 10.212.0.2/24 dev agvb$TAG
for ns in "$NSA" "$NSB"; do ip -n "$ns" link set lo up; done
ip -n "$NSA" link set agva$TAG up; ip -n "$NSB" link set agvb$TAG up
"$PQ" ca init --dir "$W/ca" --alg ecdsa-p256 >/dev/null
for s in a b; do
  "$PQ" ca issue --dir "$W/ca" --name "$s.bench.test" --both \
    --out-key "$W/$s.key" --out-cert "$W/$s.pem" >/dev/null
done
KA=$(wg genkey); KB=$(wg genkey); PA=$(wg pubkey <<<"$KA"); PB=$(wg pubkey <<<"$KB")

# config SIDE(a|b) MODE
config() {
  local me=$1 mode=$2 key pub other n ip
  if [[ $me == a ]]; then key=$KA pub=$PB other=b n=1 ip=10.212.0.2; else key=$KB pub=$PA other=a n=2 ip=10.212.0.1; fi
  {
    [[ $mode == SM4-GCM ]] && printf '[[plugin]]\npath = "%s"\n\n' "$SO"
    printf '[admin]\nlisten = "127.0.0.1:9851"\n\n'
    printf '[[wireguard]]\nname = "ag%s%s"\nprivate_key = "%s"\nlisten_port = 51990\n' "$me" "$TAG" "$key"
    printf 'address = ["10.213.0.%s/24"]\n\n[wireguard.pq]\nca = "%s"\ncert = "%s"\nkey = "%s"\n\n' \
      "$n" "$W/ca/ca.pem" "$W/$me.pem" "$W/$me.key"
    printf '[[wireguard.peer]]\npublic_key = "%s"\nallowed_ips = ["10.213.0.%s/32"]\n' "$pub" "$((3 - n))"
    printf 'endpoint = "%s:51990"\n\n[wireguard.peer.pq]\nname = "%s.bench.test"\n' "$ip" "$other"
    [[ $mode != wireguard ]] && printf 'agile = "%s"\n' "$mode"
  } >"$W/$me-$mode.toml"
}

cpu() { awk '{print $14 + $15}' "/proc/$1/stat" 2>/dev/null || echo 0; }

# run MODE ROUND: prints "gbps cpu_s bytes agile_rx_a agile_tx_a"
run() {
  local mode=$1 r=$2 since
  config a "$mode"; config b "$mode"
  : >"$W/a.log"; : >"$W/b.log"
  ip netns exec "$NSB" "$PQ" run -c "$W/b-$mode.toml" >"$W/b.log" 2>&1 & PIDS+=($!)
  ip netns exec "$NSA" "$PQ" run -c "$W/a-$mode.toml" >"$W/a.log" 2>&1 & PIDS+=($!)
  local want="PQ PSK installed"
  [[ $mode != wireguard ]] && want="agile tunnel keys installed"
  for _ in $(seq 150); do
    grep -q "$want" "$W/a.log" && grep -q "$want" "$W/b.log" && break
    sleep 0.2
  done
  grep -q "$want" "$W/a.log" || { echo "mode $mode: no '$want' in 30 s" >&2; cat "$W/a.log" >&2; exit 1; }
  for _ in $(seq 20); do ip netns exec "$NSA" ping -c1 -W1 10.213.0.2 >/dev/null 2>&1 && break; done
  ip netns exec "$NSB" iperf3 -s -1 -D >/dev/null
  sleep 0.3
  local c0=$(( $(cpu "${PIDS[0]}") + $(cpu "${PIDS[1]}") ))
  ip netns exec "$NSA" iperf3 -c 10.213.0.2 -t "$SECS" -J >"$W/iperf-$mode-$r.json"
  local c1=$(( $(cpu "${PIDS[0]}") + $(cpu "${PIDS[1]}") ))
  stop_pids
  python3 - "$W/iperf-$mode-$r.json" "$((c1 - c0))" "$W/a.log" <<'EOF'
import json, re, sys
j = json.load(open(sys.argv[1]))
bps = j["end"]["sum_received"]["bits_per_second"]
nbytes = j["end"]["sum_received"]["bytes"]
ticks = int(sys.argv[2])
m = re.search(r"agile rx (\d+) tx (\d+)", open(sys.argv[3]).read())
rx, tx = (m.group(1), m.group(2)) if m else ("-", "-")
print(f"{bps / 1e9:.3f} {ticks / 100:.2f} {nbytes} {rx} {tx}")
EOF
}

T0=$(date +%s)
declare -A RES
for ((r = 1; r <= ROUNDS; r++)); do
  n=${#MODES[@]}
  for ((k = 0; k < n; k++)); do
    mode=${MODES[$(((k + r - 1) % n))]}
    line=$(run "$mode" "$r")
    RES[$mode,$r]=$line
    log "round $r $mode: $line (Gbit/s, daemon CPU s, bytes, agile rx/tx at A)"
  done
done

{
  echo "# Agile tunnel vs WireGuard mode, $(date -u +%Y-%m-%dT%H:%MZ)"
  echo
  echo "\`bash benches/agile.sh\`: two \`pqgate run\` peers with \`[wireguard.pq]\` (the PQ PSK channel"
  echo "on the tunnel port, rotation 120 s) in two namespaces joined by a veth (MTU 1500, tunnel 1420),"
  echo "iperf3 TCP one stream A->B for ${SECS} s per run, $ROUNDS interleaved rounds (order rotated)."
  echo "\`wireguard\`: data as WireGuard messages (ChaCha20-Poly1305, gotatun) under the PQ PSK; the"
  echo "others: \`agile = \"AEAD\"\`, data as type-0x11 messages under that registry AEAD (SM4-GCM from"
  echo "the run-time plugin). Both daemons and both iperf3 share the 2 vCPUs. CPU: utime+stime of"
  echo "both daemons per 10^9 bytes received. Agile rx/tx: what daemon A's exit line counted."
  echo
  echo "- machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), nproc $(nproc), kernel $(uname -r)"
  echo "- pqgate: git $(cd "$REPO" && git rev-parse --short HEAD), release build; load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
  echo
  echo "| mode | Gbit/s (median) | per round | daemon CPU s/GB (median) | agile rx / tx at A (last round) | vs wireguard (median of per-round ratios) |"
  echo "|---|---|---|---|---|---|"
  python3 - "$ROUNDS" "${MODES[@]}" <<EOF
import statistics, sys
rounds = int(sys.argv[1]); modes = sys.argv[2:]
res = {$(for m in "${MODES[@]}"; do for ((r = 1; r <= ROUNDS; r++)); do printf '("%s",%d): "%s",' "$m" "$r" "${RES[$m,$r]}"; done; done)}
def row(m, r): g, c, b, rx, tx = res[(m, r)].split(); return float(g), float(c), int(b), rx, tx
for m in modes:
    g = [row(m, r)[0] for r in range(1, rounds + 1)]
    cpg = [row(m, r)[1] / (row(m, r)[2] / 1e9) for r in range(1, rounds + 1)]
    ratio = [row(m, r)[0] / row("wireguard", r)[0] for r in range(1, rounds + 1)]
    _, _, _, rx, tx = row(m, rounds)
    print(f"| {m} | {statistics.median(g):.3f} | {', '.join(f'{x:.3f}' for x in g)} | "
          f"{statistics.median(cpg):.3f} | {rx} / {tx} | {statistics.median(ratio):.2f}x |")
EOF
  echo
  echo "$(( $(date +%s) - T0 )) s wall."
} >"$OUT"
log "wrote $OUT"
