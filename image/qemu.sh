# Shared by image/boot-test.sh and image/ab/ab-test.sh (sourced, not run): stopping the guest.

# Stops qemu process $1 if it runs: SIGTERM, up to 5 s for it to go, then SIGKILL.
stop_qemu() {
    local pid=$1
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
        kill "$pid" 2>/dev/null || true
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$pid" 2>/dev/null || true
    fi
}
