#!/usr/bin/env bash
# A/B update and rollback under qemu (UEFI: OVMF + systemd-boot, TCG), on a copy of version
# 1's disk (image/ab/build.sh 1, 2 and 3 --bad first). An update is offered by hot-plugging a
# disk labelled PQUPDATE (through qemu's monitor); the guest polls for it
# (pqgate-update.timer) and installs with systemd-sysupdate.
#   update:   1 boots; 2 is offered; the guest installs 2 into slot B and reboots; 2 boots
#             with one try, pqgate answers /healthz, systemd-bless-boot marks 2 good.
#   rollback: 3 (pqgate cannot start) is offered; the guest installs 3 into slot A and reboots;
#             3 fails its health gate and reboots; systemd-boot, 3's try used up, boots 2;
#             2 answers /healthz; on the disk 3's entry is left marked bad (+0-1).
# Env: AB_PHASE_TIMEOUT (s per phase, default 400).
set -euo pipefail

repo=$(cd "$(dirname "$0")/../.." && pwd)
# shellcheck source=image/qemu.sh
. "$repo/image/qemu.sh"
ab="$repo/image/build/ab"
limit=${AB_PHASE_TIMEOUT:-400}
for v in 1 2 3; do
    [ -e "$ab/$v/pqgate_$v.conf" ] || { echo "ab-test: run image/ab/build.sh 1, 2, '3 --bad' first" >&2; exit 1; }
done
work=$(mktemp -d /tmp/pqgate-ab.XXXXXX)
qemu_pid=
cleanup() {
    stop_qemu "$qemu_pid"
    cp "$work/serial.log" "$ab/ab-serial.log" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT INT TERM

cp --sparse=always "$ab/1/pqgate.raw" "$work/disk.raw"
cp /usr/share/OVMF/OVMF_VARS_4M.fd "$work/vars.fd"
# update_disk VERSION: an ext4 image labelled PQUPDATE with that version's artifacts.
update_disk() {
    mkdir -p "$work/upd$1"
    cp --sparse=always "$ab/$1/pqgate_$1.root.raw" "$ab/$1/pqgate_$1.root-verity.raw" \
        "$ab/$1/pqgate_$1.conf" "$work/upd$1/"
    mke2fs -q -F -t ext4 -L PQUPDATE -d "$work/upd$1" "$work/upd$1.img" 400M
}
# hmp COMMAND: one qemu monitor command, its answer printed.
hmp() {
    python3 - "$work/mon.sock" "$1" <<'PY'
import socket, sys, time
s = socket.socket(socket.AF_UNIX)
s.connect(sys.argv[1])
s.settimeout(5)
time.sleep(0.3)
s.recv(65536)
s.sendall(sys.argv[2].encode() + b"\n")
time.sleep(1)
try:
    print(s.recv(65536).decode(errors="replace"))
except socket.timeout:
    pass
PY
}
# offer VERSION SLOT: hot-plug that version's update disk into PCIe root port SLOT.
offer() {
    hmp "drive_add 0 if=none,id=upd$1,format=raw,readonly=on,file=$work/upd$1.img" >/dev/null
    hmp "device_add virtio-blk-pci,drive=upd$1,id=updev$1,bus=rp$2" >/dev/null
    log "offered version $1"
}
read -r p_admin < <(python3 -c '
import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')

start=$SECONDS
log() { printf '[ab %4ds] %s\n' "$((SECONDS - start))" "$*"; }
# Plain console text (colour codes removed).
console() { sed 's/\x1b\[[0-9;]*m//g' "$work/serial.log" 2>/dev/null; }
# wait_for PATTERN N: until the console holds N lines matching PATTERN.
wait_for() {
    local deadline=$((SECONDS + limit))
    while [ "$(console | grep -acE "$1" || true)" -lt "$2" ]; do
        kill -0 "$qemu_pid" 2>/dev/null || { log "qemu exited"; return 1; }
        [ "$SECONDS" -lt "$deadline" ] || { log "timeout waiting for '$1' x$2"; return 1; }
        sleep 1
    done
    log "seen x$2: $1"
}
healthz() {
    local deadline=$((SECONDS + limit))
    until curl -sf --max-time 2 -o /dev/null "http://127.0.0.1:$p_admin/healthz"; do
        [ "$SECONDS" -lt "$deadline" ] || { log "no /healthz 200"; return 1; }
        sleep 1
    done
    log "/healthz 200"
}
fail() {
    log "FAIL: $*"
    echo "---- serial console (last 60 lines) ----" >&2
    console | tail -n 60 >&2
    exit 1
}

update_disk 2
update_disk 3
qemu-system-x86_64 -machine q35 -m 1024 -smp 2 -nodefaults -display none -accel tcg -cpu max \
    -drive if=pflash,format=raw,unit=0,readonly=on,file=/usr/share/OVMF/OVMF_CODE_4M.fd \
    -drive "if=pflash,format=raw,unit=1,file=$work/vars.fd" \
    -drive "file=$work/disk.raw,if=none,id=sys,format=raw" -device virtio-blk-pci,drive=sys,bootindex=0 \
    -device pcie-root-port,id=rp1,chassis=1,slot=1 -device pcie-root-port,id=rp2,chassis=2,slot=2 \
    -monitor "unix:$work/mon.sock,server,nowait" \
    -netdev "user,id=n0,hostfwd=tcp:127.0.0.1:$p_admin-:9851" -device virtio-net-pci,netdev=n0,romfile= \
    -device virtio-rng-pci -serial "file:$work/serial.log" &
qemu_pid=$!

welcome='Welcome to pqgate appliance'
wait_for "$welcome 1 " 1 || fail "version 1 did not boot"
healthz || fail "version 1 not healthy"
offer 2 1
wait_for 'pqgate-update: installed; rebooting' 1 || fail "version 2 not installed"
wait_for "$welcome 2 " 1 || fail "version 2 did not boot"
healthz || fail "version 2 not healthy"
wait_for 'Finished systemd-bless-boot' 1 || fail "version 2 not marked good"
echo "PASS update: 1 -> 2 installed by systemd-sysupdate, booted, healthy, blessed"

# Unplug version 2's disk (the guest's PCIe hot-plug takes a few seconds), offer version 3.
hmp "device_del updev2" >/dev/null
for _ in $(seq 30); do hmp "info pci" | grep -q updev2 || break; sleep 1; done
offer 3 2
wait_for 'pqgate-update: installed; rebooting' 2 || fail "version 3 not installed"
wait_for "$welcome 3 " 1 || fail "version 3 did not boot"
wait_for "$welcome 2 " 2 || fail "no rollback to version 2"
healthz || fail "version 2 not healthy after the rollback"
echo "PASS rollback: 3 installed, failed its health gate, 2 booted again and is healthy"

# The boot entries as systemd-boot left them (read from the disk after qemu stops).
kill "$qemu_pid"; wait "$qemu_pid" 2>/dev/null || true; qemu_pid=
esp_start=$(sfdisk --json "$work/disk.raw" | python3 -c '
import json, sys
p = json.load(sys.stdin)["partitiontable"]["partitions"]
print(next(x["start"] for x in p if x["type"].upper() == "C12A7328-F81F-11D2-BA4B-00A0C93EC93B") * 512)')
entries=$(mdir -i "$work/disk.raw@@$esp_start" -b ::/loader/entries | sed 's#.*/##' | sort | tr '\n' ' ')
log "entries: $entries"
has() { printf '%s\n' $entries | grep -qx "$1"; }
if has pqgate_2.conf && has 'pqgate_3+0-1.conf'; then
    echo "PASS entries: 2 good (blessed), 3 marked bad (+0-1: no tries left, one failed)"
else
    fail "unexpected boot entries: $entries"
fi
log "done"
