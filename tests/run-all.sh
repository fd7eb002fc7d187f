#!/usr/bin/env bash
# Runs every pqgate test on Debian 12 as root: installs the system packages the tests need
# (idempotently: only what is missing), then unit, integration and real-client interop tests.
set -euo pipefail
cd "$(dirname "$0")/.."

# Real peers the interop tests drive.
packages=(chromium openssl ca-certificates curl iproute2 procps gcc libc6-dev
    wireguard-go wireguard-tools iperf3 iputils-ping nftables)

missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
    echo "installing: ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

if ! command -v cargo >/dev/null; then
    echo "cargo not found: pqgate needs Rust 1.95 or later (rustup) on PATH" >&2
    exit 1
fi

# A missing real client is a failure here, not a skip.
export REQUIRE_INTEROP_TOOLS=1
# Builds every artifact first, the SM4 run-time plugin (libpqgate_plugin_sm4.so) included.
cargo build -j2 --workspace --locked
cargo test -j2 --workspace --locked "$@"
# The same SM4 code compiled in (off by default, so the run-time plugin keeps its names).
cargo test -j2 -p pqgate-agility --features plugin-sm4 --locked "$@"
