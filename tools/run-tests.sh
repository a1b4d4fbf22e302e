#!/usr/bin/env bash
# One command: install dependencies, build, run every test suite
# (unit, core, mount). Mount tests need root or a usable /dev/fuse.
set -euo pipefail
cd "$(dirname "$0")/.."
tools/install-deps.sh
tools/build.sh
meson test -C build --print-errorlogs --num-processes 2 "$@"
