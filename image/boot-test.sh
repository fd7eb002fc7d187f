#!/usr/bin/env bash
# Boots the appliance image (image/build.sh output) under qemu-system-x86_64 and checks it
# from the host through user-mode networking:
#   - the TLS listener (guest 8443) negotiates X25519MLKEM768 (`pqgate probe --require-pq`);
#   - a classical-only client (host curl, OpenSSL 3.0: X25519 only) is refused;
#   - GET /healthz on the admin endpoint (guest 9851) answers 200;
#   - forwarded but unconfigured ports (guest 22 and 8080) do not answer.
# Reports boot-to-ready (qemu start -> first /healthz 200) and the image sizes.
# The disk is attached with snapshot=on: the image file is never written.
# Env: BOOT_TIMEOUT (s, default 240), BOOT_ACCEL (tcg|kvm, default tcg: /dev/kvm on these
# machines cannot run guests), BOOT_OUT (image dir, default image/build/out), PROBE_BIN
# (pqgate binary on the host, default target/release/pqgate or target/debug/pqgate),
# BOOT_CPU (qemu -cpu model, default max), BOOT_APPEND (extra kernel arguments, e.g.
# "systemd.log_target=kmsg printk.devkmsg=on" for a timestamped unit log on the console).
# The serial console is kept in $BOOT_OUT/serial.log.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=image/qemu.sh
. "$repo/image/qemu.sh"
out=${BOOT_OUT:-$repo/image/build/out}
timeout_s=${BOOT_TIMEOUT:-240}
accel=${BOOT_ACCEL:-tcg}
cpu=${BOOT_CPU:-max}
probe=${PROBE_BIN:-}
if [ -z "$probe" ]; then
    target="${CARGO_TARGET_DIR:-$repo/target}"
    for b in "$target/release/pqgate" "$target/debug/pqgate"; do
        [ -x "$b" ] && probe=$b && break
    done
fi
for f in pqgate.raw pqgate.vmlinuz pqgate.initrd pqgate.cmdline; do
    [ -e "$out/$f" ] || { echo "boot-test: $out/$f missing: run image/build.sh" >&2; exit 1; }
done
[ -x "$probe" ] || { echo "boot-test: no pqgate binary for the probe (PROBE_BIN)" >&2; exit 1; }
command -v qemu-system-x86_64 >/dev/null || { echo "boot-test: qemu-system-x86_64 missing (image/install-tools.sh)" >&2; exit 1; }

work=$(mktemp -d /tmp/pqgate-boot.XXXXXX)
qemu_pid=
cleanup() {
    stop_qemu "$qemu_pid"
    cp "$work/serial.log" "$out/serial.log" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT INT TERM

# Four free host ports for the forwards (bound and released by the kernel's choice).
read -r p_tls p_admin p_ssh p_alt < <(python3 -c '
import socket
socks = [socket.socket() for _ in range(4)]
for s in socks: s.bind(("127.0.0.1", 0))
print(*[s.getsockname()[1] for s in socks])')

fails=0
check() { # NAME RESULT(0 ok) DETAIL
    if [ "$2" = 0 ]; then echo "PASS $1: $3"; else echo "FAIL $1: $3"; fails=$((fails + 1)); fi
}

# Whether anything answers on host port $1 within 3 s: connect, send an HTTP request, and
# wait for one byte back. (qemu's user networking accepts every forwarded connection on the
# host side before the guest has answered, so a successful connect alone proves nothing.)
answers() {
    timeout 3 bash -c "exec 3<>/dev/tcp/127.0.0.1/$1 && printf 'GET / HTTP/1.0\r\n\r\n' >&3 && head -c1 <&3" 2>/dev/null | grep -q .
}

qemu=(qemu-system-x86_64 -machine q35 -m 1024 -smp 2 -nodefaults -display none
    -accel "$accel" -cpu "$cpu"
    -kernel "$out/pqgate.vmlinuz" -initrd "$out/pqgate.initrd" -append "$(cat "$out/pqgate.cmdline") ${BOOT_APPEND:-}"
    -drive "file=$out/pqgate.raw,if=virtio,format=raw,snapshot=on"
    -netdev "user,id=n0,hostfwd=tcp:127.0.0.1:$p_tls-:8443,hostfwd=tcp:127.0.0.1:$p_admin-:9851,hostfwd=tcp:127.0.0.1:$p_ssh-:22,hostfwd=tcp:127.0.0.1:$p_alt-:8080"
    -device virtio-net-pci,netdev=n0 -device virtio-rng-pci
    -serial "file:$work/serial.log")
echo "boot-test: ${qemu[*]}"
start=$(date +%s.%N)
"${qemu[@]}" &
qemu_pid=$!

ready=
while :; do
    now=$(date +%s.%N)
    elapsed=$(python3 -c "print(f'{$now - $start:.1f}')")
    if ! kill -0 "$qemu_pid" 2>/dev/null; then
        echo "boot-test: qemu exited during boot" >&2
        break
    fi
    # -f: the forward accepts before the guest listens, so only an HTTP status counts.
    if curl -sf --max-time 2 -o /dev/null "http://127.0.0.1:$p_admin/healthz"; then
        ready=$elapsed
        break
    fi
    if python3 -c "import sys; sys.exit(0 if $elapsed > $timeout_s else 1)"; then
        echo "boot-test: no /healthz 200 after ${timeout_s}s" >&2
        break
    fi
    sleep 0.5
done

if [ -z "$ready" ]; then
    echo "---- serial console (last 60 lines) ----" >&2
    tail -n 60 "$work/serial.log" >&2 || true
    exit 1
fi
check healthz 0 "GET /healthz 200 after ${ready}s (qemu start -> ready, accel $accel)"

probe_json=$("$probe" probe "127.0.0.1:$p_tls" --insecure --json --require-pq --timeout-secs 30) && rc=0 || rc=$?
group=$(printf '%s' "$probe_json" | python3 -c 'import json,sys; print(json.load(sys.stdin)["group"])' 2>/dev/null || echo none)
[ "$rc" = 0 ] && [ "$group" = X25519MLKEM768 ] && r=0 || r=1
check pq-tls "$r" "pqgate probe: ${probe_json:-rc=$rc}"

# OpenSSL 3.0 offers only classical groups: hybrid-required must refuse it.
curl -sk --max-time 20 -o /dev/null "https://127.0.0.1:$p_tls/" && rc=0 || rc=$?
[ "$rc" = 35 ] && r=0 || r=1
check classical-refused "$r" "curl (OpenSSL 3.0, classical groups only) exit $rc (35 = TLS handshake failed)"

# pqgate's own nftables table ([firewall] in the image config) was applied and read back.
fw=$(curl -sf --max-time 5 "http://127.0.0.1:$p_admin/metrics" | grep -E '^pqgate_firewall_applied ' || true)
[ "${fw##* }" = 1 ] && r=0 || r=1
check firewall "$r" "metrics: ${fw:-no pqgate_firewall_applied}"

# The answer check itself must see an answer where there is one.
answers "$p_admin" && r=0 || r=1
check answer-control "$r" "admin port 9851 answers a raw HTTP request"
for pair in "22:$p_ssh" "8080:$p_alt"; do
    answers "${pair#*:}" && r=1 || r=0
    check "closed-${pair%%:*}" "$r" "guest port ${pair%%:*} does not answer"
done

sizes=$out/sizes.txt
[ -e "$sizes" ] && sed 's/^/size /' "$sizes"
printf 'boot_to_ready_seconds %s\naccel %s\n' "$ready" "$accel" > "$out/boot-result.txt"
if [ "$fails" -gt 0 ]; then
    echo "---- serial console (last 40 lines) ----" >&2
    tail -n 40 "$work/serial.log" >&2 || true
    echo "boot-test: $fails check(s) failed" >&2
    exit 1
fi
echo "boot-test: all checks passed; ready in ${ready}s"
