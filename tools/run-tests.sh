#!/usr/bin/env bash
# One command: install dependencies, build, install (mount(8) helpers), and
# run every test suite (unit, core, mount). Mount tests need root or a
# usable /dev/fuse; they skip with a reason otherwise.
set -euo pipefail
cd "$(dirname "$0")/.."
tools/install-deps.sh
tools/build.sh
if [ "$(id -u)" -eq 0 ]; then
  # mount -t aufs and fstab tests use the installed helper and daemon.
  meson install -C build --quiet >/dev/null
fi
rc=0
meson test -C build --print-errorlogs --num-processes 2 "$@" || rc=$?
python3 tools/test-summary.py build/meson-logs/testlog.junit.xml
exit $rc
