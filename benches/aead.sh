#!/usr/bin/env bash
# pqgate AEAD throughput (issue 3): every registered AEAD through the registry's AeadKey trait,
# seal and open at 1,400 and 16,384 bytes with 13 bytes of AAD, including SM4-GCM both compiled
# in and through the run-time plugin (libpqgate_plugin_sm4.so), so the cost of the C ABI boundary
# is visible (goal: plugin >= 0.95x compiled in at 1,400 bytes). Writes
# benches/results/aead-<date>.md and benches/results/aead-latest.md.
#
#   bash benches/aead.sh [--quick] [--rounds N] [--batch-ms MS] [--skip-build] [--no-wait]
#
#   --quick       5 rounds of 40 ms batches (~15 s of measurement instead of ~60 s)
#   --rounds N    measurement rounds (default 15)
#   --batch-ms MS length of one timed batch (default 80)
#   --skip-build  use the already built plugin and example
#   --no-wait     do not wait (up to 45 s) for other load on the machine to stop
#
# Measurement is bounded: at most 45 s of waiting plus a 170 s timeout on the benchmark itself.
# The release build comes first (cargo build -j2; seconds when up to date).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

ROUNDS=15
BATCH_MS=80
BUILD=1
WAIT_QUIET=45
QUICK=0

usage() { sed -n '2,16p' "$0"; exit 2; }
parse_args --quick:'QUICK=1; ROUNDS=5; BATCH_MS=40' --rounds=ROUNDS --batch-ms=BATCH_MS \
  --skip-build:BUILD=0 --no-wait:WAIT_QUIET=0 -- "$@"
need_rounds

RESULTS=$REPO/benches/results
BENCH=$REPO/target/release/examples/aead
PLUGIN=$REPO/target/release/libpqgate_plugin_sm4.so
START_TS=$(date -u +%Y-%m-%dT%H:%M:%SZ)
DAY=$(date -u +%Y-%m-%d)
SUFFIX=""
((QUICK)) && SUFFIX="-quick"
OUT=$RESULTS/aead-$DAY$SUFFIX.md
TMP=$(mktemp -d /tmp/pqgate-aead.XXXXXX)
trap 'rm -rf "$TMP"' EXIT

# ---------------------------------------------------------------- build
BUILD_START=$SECONDS
if ((BUILD)); then
  # One invocation for the plugin's cdylib and the example. Built separately (`-p
  # pqgate-plugin-sm4`, then `--example aead --features plugin-sm4`) the two builds resolve the
  # plugin's dependencies' features differently and write the same unhashed .so, so each would
  # rebuild the plugin, pqgate-agility, pqgate-core and pqgate every time.
  log "building the release plugin and the aead example (cargo build --release -j2)"
  (cd "$REPO" && cargo build --release -j2 -p pqgate-plugin-sm4 -p pqgate --lib --example aead \
    --features pqgate/plugin-sm4)
fi
BUILD_SECS=$((SECONDS - BUILD_START))
[[ -x $BENCH && -f $PLUGIN ]] || { echo "missing $BENCH or $PLUGIN (run without --skip-build)" >&2; exit 1; }

# ---------------------------------------------------------------- quiet machine
# cpu_busy: cores the whole machine kept busy over the last second (/proc/stat), steal included.
cpu_busy() { busy_cores '$2+$3+$4+$7+$8+$9'; }
BUSY_BEFORE=$(cpu_busy)
if ((WAIT_QUIET > 0)); then
  t0=$SECONDS quiet=0
  while ((SECONDS - t0 < WAIT_QUIET)); do
    BUSY_BEFORE=$(cpu_busy)
    if awk -v b="$BUSY_BEFORE" 'BEGIN { exit !(b < 0.15) }'; then
      quiet=$((quiet + 1)); ((quiet >= 2)) && break
    else
      ((quiet == 0 && SECONDS - t0 <= 1)) && log "waiting up to ${WAIT_QUIET}s for other load to stop ($BUSY_BEFORE cores busy)"
      quiet=0
    fi
  done
fi

# ---------------------------------------------------------------- measure
log "measuring: $ROUNDS rounds, ${BATCH_MS} ms batches (machine busy before: $BUSY_BEFORE cores)"
RUN_START=$SECONDS
if ! (cd "$REPO" && timeout 170 "$BENCH" --plugin "$PLUGIN" --rounds "$ROUNDS" --batch-ms "$BATCH_MS" \
  >"$TMP/body.md" 2>"$TMP/stderr"); then
  cat "$TMP/stderr" >&2
  echo "the benchmark failed or ran past 170 s" >&2
  exit 1
fi
RUN_SECS=$((SECONDS - RUN_START))
grep '^RESULT' "$TMP/stderr" >&2 || true

# ---------------------------------------------------------------- machine description
lscpu_field() { lscpu | sed -n "s/^$1:[[:space:]]*//p" | head -1; }
CPU_MODEL=$(lscpu_field "Model name")
CPU_DETAIL="$(lscpu_field "Vendor ID"), family $(lscpu_field "CPU family"), model $(lscpu_field "Model")"
HYPERVISOR=$(lscpu_field "Hypervisor vendor")
[[ -n $HYPERVISOR ]] && CPU_DETAIL+=", $HYPERVISOR guest"
FLAGS=$(lscpu_field "Flags")
HW=""
for f in aes pclmulqdq vaes vpclmulqdq avx2 avx512f gfni; do
  [[ " $FLAGS " == *" $f "* ]] && HW+="$f "
done
MEM=$(awk '/^MemTotal/{printf "%.1f GiB", $2 / 1048576}' /proc/meminfo)
OS=$(. /etc/os-release 2>/dev/null && echo "${PRETTY_NAME:-unknown}")
RUSTC=$(rustc -V 2>/dev/null || echo unknown)
GIT=$(cd "$REPO" && git rev-parse --short HEAD 2>/dev/null || echo unknown)
if ! (cd "$REPO" && git diff --quiet HEAD -- gateway Cargo.toml 2>/dev/null); then
  GIT+=" + uncommitted changes in gateway/ or Cargo.toml"
fi
PLUGIN_SHA=$(sha256sum "$PLUGIN" | cut -c1-16)

# ---------------------------------------------------------------- results file
mkdir -p "$RESULTS"
{
  echo "# pqgate AEAD throughput, $START_TS"
  echo
  ((QUICK)) && { echo "**Quick run (--quick): fewer rounds, shorter batches. Indicative only.**"; echo; }
  echo "Produced by \`bash benches/aead.sh$( ((QUICK)) && echo " --quick")\` in one run on one machine: every"
  echo "implementation measured in the same process, interleaved round by round. Compare ratios"
  echo "from one file, not absolute numbers across runs (this VM's speed varies between runs)."
  echo
  echo "## Machine"
  echo
  echo "| | |"
  echo "|---|---|"
  echo "| CPU (lscpu model name) | $CPU_MODEL ($CPU_DETAIL) |"
  echo "| CPU flags (AES-GCM/GHASH-relevant) | $HW|"
  echo "| nproc | $(nproc) |"
  echo "| memory | $MEM |"
  echo "| kernel | $(uname -r) |"
  echo "| OS | $OS |"
  echo "| rustc | $RUSTC |"
  echo "| pqgate | git $GIT; release profile (lto thin, codegen-units 4), aws-lc-rs $(lockver aws-lc-rs), sm4 $(lockver sm4), aes-gcm $(lockver aes-gcm) |"
  echo "| plugin | target/release/libpqgate_plugin_sm4.so, sha256 $PLUGIN_SHA... |"
  echo "| machine busy before the run | $BUSY_BEFORE cores |"
  echo "| time | build ${BUILD_SECS}s, benchmark ${RUN_SECS}s ($ROUNDS rounds of ${BATCH_MS} ms batches) |"
  echo
  echo "## Method"
  echo
  echo "\`target/release/examples/aead\` (benches/aead.rs; built together with the plugin by"
  echo "\`cargo build --release -j2 -p pqgate-plugin-sm4 -p pqgate --lib --example aead --features"
  echo "pqgate/plugin-sm4\`, the same as \`--example aead --features plugin-sm4\`) measures, through the"
  echo "registry's \`AeadKey\` trait (\`seal(nonce, aad, msg, &mut out)\` / \`open\`, \`out\` reserved once"
  echo "and cleared before every call):"
  echo
  echo "- the built-in AEADs (\`pqgate_agility::builtin::aeads()\`: aws-lc-rs AES-128-GCM, AES-256-GCM,"
  echo "  ChaCha20-Poly1305);"
  echo "- SM4-GCM compiled in (\`plugin::builtin_sm4::Sm4Gcm\`, feature \`plugin-sm4\`);"
  echo "- SM4-GCM from the run-time plugin (\`plugin::loader::load\` of libpqgate_plugin_sm4.so): the"
  echo "  same cipher code (crate pqgate-plugin-sm4) behind the C ABI and the loader's \`RuntimeKey\`;"
  echo "- for reference, the plugin's C ABI seal/open called directly (dlopen + the descriptor's"
  echo "  function pointers, output buffer allocated once at its final size, no loader wrapper)."
  echo "  The plugin crate's Rust API itself is what \"compiled in\" runs (through the trait)."
  echo
  echo "Messages of 1,400 and 16,384 bytes (and 0 bytes, for the fixed cost of a call), 13 bytes of"
  echo "AAD, one fixed key and nonce. Before timing, once per implementation and size:"
  echo "open(seal(x)) == x, a flipped tag bit is refused, and all SM4-GCM implementations produce"
  echo "identical ciphertexts; the plugin's own known-answer vectors pass (\`check_aead\`)."
  echo "Each cell (implementation, size, direction) is warmed up and calibrated to a fixed number"
  echo "of iterations per batch (about ${BATCH_MS} ms; the SM4-GCM implementations share the"
  echo "compiled-in count, so they do identical work). Then $ROUNDS rounds: in each round every cell"
  echo "runs all implementations back to back, in forward order in even rounds and reverse order in"
  echo "odd ones (A/B, B/A), timed with the monotonic clock. A batch during which the thread had"
  echo "less than 95% of the wall time on CPU (thread CPU clock: preempted by other load) is"
  echo "repeated, at most twice. Values are medians over rounds with min-max; the plugin/compiled-in"
  echo "ratio is the median of the per-round ratios of adjacent batches. MB/s = 10^6 message bytes/s."
  echo "Not measured here: the TLS record layer around the trait (plugin/tls.rs), which is the same"
  echo "for compiled-in and plugin AEADs."
  echo
  cat "$TMP/body.md"
} >"$OUT"
cp "$OUT" "$RESULTS/aead-latest.md"
log "wrote $OUT and $RESULTS/aead-latest.md"
sed -n '/^## Plugin path/,/^## Fixed cost/p' "$OUT" | grep '^| [0-9]' >&2 || true
