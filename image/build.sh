#!/usr/bin/env bash
# Builds the pqgate appliance disk image: host tools (image/install-tools.sh), the release
# binary, then mkosi (image/mkosi/) with the binary and systemd/*.service as an extra tree.
# Output in image/build/out (git-ignored): pqgate.raw (GPT: erofs root + dm-verity hash + ext4
# /var), pqgate.vmlinuz and pqgate.initrd (direct kernel boot), pqgate.cmdline (the kernel
# command line, roothash included), pqgate.raw.zst and sizes.txt.
# Usage: image/build.sh [--no-install] [--no-cargo]
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
build="$repo/image/build"
out="$build/out"
extra="$build/extra"
install=1
cargo_build=1
for arg in "$@"; do
    case "$arg" in
        --no-install) install=0 ;;
        --no-cargo) cargo_build=0 ;;
        *) echo "usage: $0 [--no-install] [--no-cargo]" >&2; exit 2 ;;
    esac
done

step() { printf '[build %4ds] %s\n' "$SECONDS" "$*"; }

if [ "$install" = 1 ]; then
    step "host tools"
    "$repo/image/install-tools.sh"
fi

bin="${CARGO_TARGET_DIR:-$repo/target}/release/pqgate"
if [ "$cargo_build" = 1 ]; then
    step "cargo build --release"
    (cd "$repo" && cargo build --release -j2 --locked --bin pqgate)
fi
[ -x "$bin" ] || { echo "build: $bin missing (drop --no-cargo)" >&2; exit 1; }

step "extra tree"
rm -rf "$extra"
install -d "$extra/usr/bin" "$extra/usr/lib/systemd/system"
# Debug line tables stay in target/; the image gets a stripped copy.
strip --strip-debug -o "$extra/usr/bin/pqgate" "$bin"
units=("$repo"/systemd/*.service)
[ -e "${units[0]}" ] || { echo "build: no systemd/*.service" >&2; exit 1; }
install -m 0644 "${units[@]}" "$extra/usr/lib/systemd/system/"
for extra_unit in "$repo"/systemd/*.timer "$repo"/systemd/*.path; do
    [ -e "$extra_unit" ] && install -m 0644 "$extra_unit" "$extra/usr/lib/systemd/system/"
done
printf 'units: %s\n' "$(cd "$extra/usr/lib/systemd/system" && echo *)"

step "mkosi build"
mkdir -p "$out" "$build/cache" "$build/pkgcache"
mkosi -C "$repo/image/mkosi" \
    --output-dir="$out" \
    --cache-dir="$build/cache" \
    --package-cache-dir="$build/pkgcache" \
    --incremental=yes \
    --extra-tree="$extra" \
    --force \
    build 2>&1 | sed -u 's/\x1b\[KProcessing [^\x1b]*//g'

step "kernel command line"
raw="$out/pqgate.raw"
# systemd-repart derives the verity partition UUIDs from the root hash: data = first 128 bits,
# hash tree = last 128 bits. The initrd's veritysetup generator finds both from roothash= alone.
read -r data_uuid hash_uuid < <(sfdisk --json "$raw" | python3 -c '
import json, sys
parts = json.load(sys.stdin)["partitiontable"]["partitions"]
def uuid(name):
    return next(p["uuid"] for p in parts if p.get("name") == name)
print(uuid("root-x86-64"), uuid("root-x86-64-verity"))')
roothash=$(printf '%s%s' "$data_uuid" "$hash_uuid" | tr -d '-' | tr 'A-F' 'a-f')
# No boot loader reads a command line from the image: this file is it (boot-test.sh passes it).
# The root is read-only; systemd-firstboot would wait for a key on the serial console.
echo "roothash=$roothash ro console=ttyS0,115200 systemd.firstboot=off" > "$out/pqgate.cmdline"
cat "$out/pqgate.cmdline"

step "sizes"
rm -f "$raw.zst"
zstd -q -T2 -10 "$raw" -o "$raw.zst"
{
    echo "raw_apparent_bytes $(stat -c %s "$raw")"
    echo "raw_allocated_bytes $(( $(stat -c %b "$raw") * $(stat -c %B "$raw") ))"
    echo "raw_zstd10_bytes $(stat -c %s "$raw.zst")"
    echo "initrd_bytes $(stat -c %s "$out/pqgate.initrd")"
    echo "vmlinuz_bytes $(stat -c %s "$out/pqgate.vmlinuz")"
    echo "build_seconds $SECONDS"
} | tee "$out/sizes.txt"
sfdisk --list "$raw" | tail -n +1
