#!/usr/bin/env bash
# CI entry for the appliance: build the image (tools, release binary, mkosi) and boot-test it
# under qemu. Prints the wall time of each half. Needs root (apt, mkosi) and network access to
# the Debian mirror for the first build. Usage: image/ci.sh
set -euo pipefail
cd "$(dirname "$0")/.."
t0=$SECONDS
bash image/build.sh
t1=$SECONDS
bash image/boot-test.sh
t2=$SECONDS
echo "image ci: build $((t1 - t0)) s, boot test $((t2 - t1)) s, total $((t2 - t0)) s"
