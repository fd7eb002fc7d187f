#!/usr/bin/env bash
# TCP over QUIC vs the TLS pair (issue 5): bulk throughput and gateway CPU per GB through
#   loadgen bulk -> gateway A (connector) -> gateway B (listener) -> loadgen sink
# once with transport = "tls" (one TLS connection per TCP connection, #2's pair) and once with
# transport = "quic" (one QUIC connection, a stream per TCP connection), both hybrid-required
# X25519MLKEM768, the connector verifying the listener by CA. Rounds are interleaved (A/B/B/A)
# and the ratio is the median of per-round ratios, because this shared VM's speed swings.
#
#   bash benches/quic.sh [--quick] [--rounds N] [--bytes N] [--skip-build] [--debug] [--keep]
#
#   --quick       2 rounds of 256 MiB (a smoke run: indicative only)
#   --debug       use the debug binaries (no release build; numbers then mean nothing)
#   --skip-build  use the binaries already built
# Binaries come from $CARGO_TARGET_DIR (default target/). Writes
# benches/results/quic-<date>[-quick].md; needs openssl, ss.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

ROUNDS=5
BYTES=$((1024 * 1024 * 1024))
QUICK=0 BUILD=1 KEEP=0 PROFILE=release
usage() { sed -n 2,16p "$0" | sed 's/^# \{0,1\}//'; exit 2; }
parse_args --quick:'QUICK=1; ROUNDS=2; BYTES=$((256 * 1024 * 1024))' --rounds=ROUNDS --bytes=BYTES \
  --skip-build:BUILD=0 --debug:PROFILE=debug --keep:KEEP=1 -- "$@"
need_rounds

TARGET=${CARGO_TARGET_DIR:-$REPO/target}
PQGATE=$TARGET/$PROFILE/pqgate
LOADGEN=$TARGET/$PROFILE/examples/loadgen
WORK=$(mktemp -d /tmp/pqgate-quic-bench.XXXXXX)

PIDS=()
cleanup() {
  local rc=$?
  stop_pids
  if ((rc != 0 || KEEP)); then log "work directory kept: $WORK"; else rm -rf "$WORK"; fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# start NAME CMD...: background, logging to $WORK/NAME.log; sets LASTPID.
start() {
  local name=$1
  shift
  "$@" >"$WORK/$name.log" 2>&1 &
  LASTPID=$!
  PIDS+=("$LASTPID")
}

# wait_port PROTO PORT PID NAME: until 127.0.0.1:PORT is bound (t: TCP listen, u: UDP), 10 s.
wait_port() {
  local proto=$1 port=$2 pid=$3 name=$4
  for _ in $(seq 100); do
    kill -0 "$pid" 2>/dev/null || { cat "$WORK/$name.log" >&2; echo "$name exited" >&2; return 1; }
    ss -Hl"$proto"n "sport = :$port" | grep -q . && return 0
    sleep 0.1
  done
  cat "$WORK/$name.log" >&2
  echo "$name did not bind $port" >&2
  return 1
}


if ((BUILD)); then
  if [[ $PROFILE == release ]]; then
    log "building release pqgate and loadgen"
    (cd "$REPO" && cargo build --release -j2 --bin pqgate --example loadgen)
  else
    (cd "$REPO" && cargo build -j2 --bin pqgate --example loadgen)
  fi
fi
[[ -x $PQGATE && -x $LOADGEN ]] || { echo "missing $PQGATE or $LOADGEN" >&2; exit 1; }

PKI=$WORK/pki
make_pki "$PKI" "pqgate quic bench CA"

head_toml() {
  printf '[log]\nlevel = "info"\n\n[admin]\nlisten = "127.0.0.1:%s"\n\n[service]\nstate_dir = "%s"\ndrain_timeout_secs = 1\n\n' \
    "$1" "$WORK/state"
}
# pair TRANSPORT: starts listener B and connector A; sets PAIR_ADDR and PAIR_PIDS.
pair() {
  local t=$1 pa pb aa ab proto=t
  pa=$(free_port); pb=$(free_port); aa=$(free_port); ab=$(free_port)
  [[ $t == quic ]] && proto=u
  {
    head_toml "$ab"
    printf '[[listener]]\nname = "from-a"\nlisten = "127.0.0.1:%s"\nbackend = "127.0.0.1:%s"\npolicy = "hybrid-required"\ntransport = "%s"\ncert = "%s"\nkey = "%s"\n\n[listener.limits]\nidle_timeout_secs = 3600\n' \
      "$pb" "$SINK" "$t" "$PKI/leaf.pem" "$PKI/leaf.key"
  } >"$WORK/$t-b.toml"
  start "$t-b" "$PQGATE" run -c "$WORK/$t-b.toml"
  local gb=$LASTPID
  wait_port "$proto" "$pb" "$gb" "$t-b"
  {
    head_toml "$aa"
    printf '[[connector]]\nname = "to-b"\nlisten = "127.0.0.1:%s"\nremote = "127.0.0.1:%s"\nserver_name = "localhost"\npolicy = "hybrid-required"\ntransport = "%s"\nca = "%s"\n\n[connector.limits]\nidle_timeout_secs = 3600\n' \
      "$pa" "$pb" "$t" "$PKI/ca.pem"
  } >"$WORK/$t-a.toml"
  start "$t-a" "$PQGATE" run -c "$WORK/$t-a.toml"
  local ga=$LASTPID
  wait_port t "$pa" "$ga" "$t-a"
  PAIR_ADDR=$pa
  PAIR_PIDS="--pid $ga --pid $gb"
}

SINK=$(free_port)
start sink "$LOADGEN" sink --listen "127.0.0.1:$SINK"
SINKPID=$LASTPID
wait_port t "$SINK" "$SINKPID" sink
declare -A ADDR PIDARGS
for t in tls quic; do
  pair "$t"
  ADDR[$t]=$PAIR_ADDR
  PIDARGS[$t]=$PAIR_PIDS
done

# Warm-up: the QUIC connector connects at its first TCP connection; keep that handshake (and
# the TLS pair's first one) out of the measured transfers.
for t in tls quic; do
  # shellcheck disable=SC2086
  timeout 120 "$LOADGEN" bulk --addr "127.0.0.1:${ADDR[$t]}" --bytes $((1024 * 1024)) ${PIDARGS[$t]} >/dev/null
done

RAW=$WORK/raw.txt
: >"$RAW"
log "bulk: $((BYTES / 1024 / 1024)) MiB per transfer, $ROUNDS rounds, tls and quic interleaved"
for ((r = 1; r <= ROUNDS; r++)); do
  order=(tls quic)
  ((r % 2 == 0)) && order=(quic tls)
  for t in "${order[@]}"; do
    # shellcheck disable=SC2086
    line=$(timeout 600 "$LOADGEN" bulk --addr "127.0.0.1:${ADDR[$t]}" --bytes "$BYTES" \
      ${PIDARGS[$t]} --aux-pid "$SINKPID" | grep '^RESULT')
    echo "$t $r $line" >>"$RAW"
    log "  round $r $t: $(field mb_per_s "$line") MB/s, $(field cpu_s_per_gb "$line") gateway CPU s/GB, others $(field other_util "$line") cores"
  done
done

# med TRANSPORT FIELD; ratio FIELD: median of quic/tls per round.
med() { awk -v t="$1" '$1 == t' "$RAW" | while read -r l; do field "$2" " $l"; done | sort -g | awk '{a[NR]=$1} END {if (NR) print (NR % 2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
ratio() {
  for ((r = 1; r <= ROUNDS; r++)); do
    q=$(field "$1" " $(awk -v r="$r" '$1 == "quic" && $2 == r' "$RAW")")
    s=$(field "$1" " $(awk -v r="$r" '$1 == "tls" && $2 == r' "$RAW")")
    awk -v q="$q" -v s="$s" 'BEGIN { if (s > 0) printf "%.3f\n", q / s }'
  done | sort -g | awk '{a[NR]=$1} END {if (NR) printf "%.2f", (NR % 2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'
}
NEG_QUIC=$(grep -m1 -o 'group="[^"]*" suite="[^"]*"' "$WORK/quic-b.log" | tr -d '"' || true)
NEG_TLS=$(grep -m1 -o 'group="[^"]*" suite="[^"]*"' "$WORK/tls-b.log" | tr -d '"' || true)

mkdir -p "$REPO/benches/results"
DATE=$(date -u +%Y-%m-%d)
SUFFIX=""
((QUICK)) && SUFFIX=-quick
OUT=$REPO/benches/results/quic-$DATE$SUFFIX.md
if [[ $PROFILE == debug ]]; then OUT=$WORK/quic-debug.md; fi
{
  echo "# TCP over QUIC vs TLS pair, $DATE"
  echo
  ((QUICK)) && echo "**Quick run: $ROUNDS rounds of $((BYTES / 1024 / 1024)) MiB. Indicative only.**" && echo
  [[ $PROFILE == debug ]] && echo "**Debug binaries: a smoke test of the script; the numbers mean nothing.**" && echo
  echo "\`bash benches/quic.sh$( ((QUICK)) && echo ' --quick')\`: loadgen bulk -> connector -> listener -> loadgen sink, one TCP"
  echo "connection per transfer, both pairs hybrid-required on one machine, rounds interleaved."
  echo "TLS pair negotiated: ${NEG_TLS:-?}; QUIC pair negotiated: ${NEG_QUIC:-?}."
  echo
  echo "| pair | MB/s (median) | gateway CPU s/GB (median) | gateway CPU (cores) |"
  echo "|---|---|---|---|"
  for t in tls quic; do
    echo "| $t | $(med "$t" mb_per_s) | $(med "$t" cpu_s_per_gb) | $(med "$t" server_util) |"
  done
  echo
  echo "QUIC/TLS throughput (median of per-round ratios): $(ratio mb_per_s)x;"
  echo "QUIC/TLS gateway CPU per GB: $(ratio cpu_s_per_gb)x."
  echo
  echo "Raw lines:"
  echo
  echo '```'
  cat "$RAW"
  echo '```'
} >"$OUT"
log "results: $OUT"
cat "$OUT"
