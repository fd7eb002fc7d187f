#!/usr/bin/env bash
# CI entry for the appliance: build the direct-boot image (tools, release binary, mkosi) and
# boot-test it, then build versions 1-3 of the A/B image and run the update and rollback test.
# Prints the wall time of each part. Needs root (apt, mkosi) and the Debian mirror.
# Usage: image/ci.sh [--no-ab]
set -euo pipefail
cd "$(dirname "$0")/.."
t0=$SECONDS
bash image/build.sh
t1=$SECONDS
bash image/boot-test.sh
t2=$SECONDS
echo "image ci: build $((t1 - t0)) s, boot test $((t2 - t1)) s"
[ "${1:-}" = --no-ab ] && exit 0
bash image/ab/build.sh 1
bash image/ab/build.sh 2
bash image/ab/build.sh 3 --bad
t3=$SECONDS
bash image/ab/ab-test.sh
t4=$SECONDS
echo "image ci: A/B builds $((t3 - t2)) s, A/B test $((t4 - t3)) s, total $((t4 - t0)) s"
