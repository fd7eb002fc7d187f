#!/usr/bin/env bash
# Builds version VERSION of the A/B appliance (image/ab/mkosi, with image/mkosi/mkosi.extra
# and this version's binary, units and os-release as extra trees): the full disk image
# (pqgate_VERSION.raw: ESP with systemd-boot, root slot A = this version, empty slot B, /var)
# and the update artifacts systemd-sysupdate installs (pqgate_VERSION.root.raw,
# .root-verity.raw, .conf), all in image/build/ab/VERSION. --bad builds a version whose
# pqgate cannot start (an invalid config), for the rollback test.
# Usage: image/ab/build.sh VERSION [--bad]   (needs target/release/pqgate: image/build.sh)
set -euo pipefail

repo=$(cd "$(dirname "$0")/../.." && pwd)
version=${1:?usage: $0 VERSION [--bad]}
bad=${2:-}
build="$repo/image/build/ab"
out="$build/$version"
extra="$build/extra-$version"
step() { printf '[ab build %s %4ds] %s\n' "$version" "$SECONDS" "$*"; }

"$repo/image/install-tools.sh"
command -v bootctl >/dev/null || {
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        -t bookworm-backports systemd-boot systemd-boot-efi
}
bin="${CARGO_TARGET_DIR:-$repo/target}/release/pqgate"
[ -x "$bin" ] || { echo "ab build: $bin missing: run image/build.sh first" >&2; exit 1; }
# The initrd comes from the direct-boot image (bookworm's systemd 252): mkosi 24's default
# initrd cannot be built against backports' systemd 254 (it asks for systemd-cryptsetup, a
# package that only exists from trixie on).
initrd="$repo/image/build/out/pqgate.initrd"
[ -e "$initrd" ] || { echo "ab build: $initrd missing: run image/build.sh first" >&2; exit 1; }

step "extra tree"
rm -rf "$extra"
install -d "$extra/usr/bin" "$extra/usr/lib/systemd/system" "$extra/etc/pqgate"
strip --strip-debug -o "$extra/usr/bin/pqgate" "$bin"
install -m 0644 "$repo"/systemd/*.service "$extra/usr/lib/systemd/system/"
cat > "$extra/usr/lib/os-release" <<OS
PRETTY_NAME="pqgate appliance $version (Debian 12)"
NAME="pqgate appliance"
ID=debian
VERSION_ID="12"
IMAGE_ID=pqgate
IMAGE_VERSION=$version
OS
if [ "$bad" = --bad ]; then
    # Fails `pqgate check` (ExecStartPre): pqgate never answers /healthz.
    printf '[listener\nthis is not TOML\n' > "$extra/etc/pqgate/pqgate.toml"
fi

step "mkosi build"
rm -rf "$out"
mkdir -p "$out" "$build/cache" "$repo/image/build/pkgcache"
mkosi -C "$repo/image/ab/mkosi" \
    --image-version="$version" \
    --output-dir="$out" \
    --cache-dir="$build/cache" \
    --package-cache-dir="$repo/image/build/pkgcache" \
    --incremental=yes \
    --extra-tree="$repo/image/mkosi/mkosi.extra" \
    --extra-tree="$extra" \
    --initrd="$initrd" \
    --force \
    build 2>&1 | sed -u 's/\x1b\[KProcessing [^\x1b]*//g'

step "boot entry"
raw="$out/pqgate.raw"
# The ESP's byte offset and the entry mkosi wrote (named after the kernel version).
esp_start=$(sfdisk --json "$raw" | python3 -c '
import json, sys
p = json.load(sys.stdin)["partitiontable"]["partitions"]
print(next(x["start"] for x in p if x["type"].upper() == "C12A7328-F81F-11D2-BA4B-00A0C93EC93B") * 512)')
esp="$raw@@$esp_start"
mk_entry=$(mdir -i "$esp" -b ::/loader/entries | head -n1)
mtype -i "$esp" "$mk_entry" | tr -d '\r' > "$out/mkosi-entry.conf"
roothash=$(sed -n 's/^options .*roothash=\([0-9a-f]*\).*/\1/p' "$out/mkosi-entry.conf")
[ -n "$roothash" ] || { echo "ab build: no roothash in $mk_entry" >&2; exit 1; }
# One entry per version; the partitions are found by label, since slot B's partition UUIDs
# are not this version's (systemd-sysupdate writes into an existing partition).
{
    echo "title pqgate appliance $version"
    echo "sort-key pqgate"
    echo "version $version"
    grep -E '^(linux|initrd) ' "$out/mkosi-entry.conf"
    echo "options roothash=$roothash systemd.verity_root_data=/dev/disk/by-partlabel/pqgate_$version systemd.verity_root_hash=/dev/disk/by-partlabel/pqgate_${version}_verity ro console=ttyS0,115200 systemd.firstboot=off"
} > "$out/pqgate_$version.conf"
mdel -i "$esp" "$mk_entry"
mcopy -i "$esp" "$out/pqgate_$version.conf" "::/loader/entries/pqgate_$version.conf"
printf 'timeout 0\ndefault pqgate_*\n' > "$out/loader.conf"
mcopy -o -i "$esp" "$out/loader.conf" ::/loader/loader.conf

step "update artifacts"
# Slot A's partitions (SplitName root, root-verity); the split empty B slots and the rest go.
mv "$out/pqgate.root.raw" "$out/pqgate_$version.root.raw"
mv "$out/pqgate.root-verity.raw" "$out/pqgate_$version.root-verity.raw"
rm -f "$out"/pqgate.root-x86-64*.raw "$out/pqgate.esp.raw" "$out/pqgate.var.raw"
ls -la "$out"
cat "$out/pqgate_$version.conf"
