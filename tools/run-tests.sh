#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
# One command: install dependencies, build, and run every test suite (unit,
# core, mount, containers, reliability, package). Nothing is installed into
# the system: the mount suite sees a staged install (tests/mount/
# staged-helper.sh), and the package suite installs the .deb built here
# (tools/build-deb.sh, as root) and purges it again. Mount tests need root
# or a usable /dev/fuse; they skip with a reason otherwise.
#   --sanitize  also run tools/sanitize.sh (ASan+UBSan build: unit, core and
#               mount suites; TSan build: concurrency tests)
#   --fuzz      also run tools/fuzz.sh (short libFuzzer run of each target)
#   --no-faults skip the fault-injection build (build-faults, -Dfault_injection=true:
#               every branch system call of each tested operation fails in turn)
#   --no-libfuse318  skip the second build against libfuse 3.18 (build-fuse318,
#               tools/build-libfuse.sh: Debian's source package, private prefix),
#               whose unit and mount suites run after the main ones, and the
#               mount suite once more through io_uring where the kernel has it
# Other arguments go to `meson test`.
set -euo pipefail
cd "$(dirname "$0")/.."
sanitize=0
fuzz=0
faults=1
fuse318=1
args=()
for a in "$@"; do
  case "$a" in
    --sanitize) sanitize=1 ;;
    --fuzz) fuzz=1 ;;
    --no-faults) faults=0 ;;
    --no-libfuse318) fuse318=0 ;;
    *) args+=("$a") ;;
  esac
done
# Each step's start, with the time since the run began, for the CI log.
step() { echo "run-tests: [$(date -u +%T), ${SECONDS} s] $*" >&2; }
step "dependencies"
tools/install-deps.sh
step "main build"
tools/build.sh
rc=0
if [ "$(id -u)" -eq 0 ]; then
  # For the package suite (it skips, with the reason, without a .deb).
  step "package build"
  tools/build-deb.sh build/deb || { echo "run-tests: the .deb did not build" >&2; rc=1; }
fi
step "main suites"
meson test -C build --print-errorlogs --num-processes 2 ${args[@]+"${args[@]}"} || rc=$?
python3 tools/test-summary.py build/meson-logs/testlog.junit.xml
if [ $faults -eq 1 ]; then
  step "fault-injection build and suite"
  # Only the core and the fault test (tests/core/fault_injection_test.cpp).
  [ -f build-faults/build.ninja ] || meson setup build-faults -Dfault_injection=true >/dev/null
  ninja -C build-faults tests/aufs_fuse_fault_tests
  meson test -C build-faults --no-rebuild --suite faults --print-errorlogs || rc=1
fi
if [ $fuse318 -eq 1 ]; then
  step "libfuse 3.18 build and suites"
  # The same tree on libfuse 3.18: passthrough, KILLPRIV_V2 and io_uring
  # tests run there instead of skipping.
  if prefix=$(NINJA_JOBS=2 tools/build-libfuse.sh --version 3.18 | tail -n1); then
    [ -f build-fuse318/build.ninja ] || meson setup build-fuse318 -Dlibfuse_prefix="$prefix" >/dev/null
    mapfile -t targets < <(tools/suite-targets.sh build-fuse318)
    ninja -C build-fuse318 "${targets[@]}"
    meson test -C build-fuse318 --no-rebuild --suite unit --suite mount --print-errorlogs \
      --num-processes 2 ${args[@]+"${args[@]}"} || rc=1
    python3 tools/test-summary.py build-fuse318/meson-logs/testlog.junit.xml
    # The mount suite once more with every mount served through io_uring
    # rings, where the kernel has them (root switches them on for the run).
    uring=/sys/module/fuse/parameters/enable_uring
    if [ -w "$uring" ] && [ ${#args[@]} -eq 0 ]; then
      step "mount suite through io_uring"
      was=$(cat "$uring")
      echo Y > "$uring"
      AUFS_TEST_MOUNT_OPTIONS=io_uring meson test -C build-fuse318 --no-rebuild --suite mount \
        --print-errorlogs --num-processes 2 || rc=1
      echo "$was" > "$uring"
      python3 tools/test-summary.py build-fuse318/meson-logs/testlog.junit.xml
    fi
  else
    echo "run-tests: libfuse 3.18 did not build (tools/build-libfuse.sh)" >&2
    rc=1
  fi
fi
if [ $sanitize -eq 1 ]; then
  step "sanitizer builds and suites"
  tools/sanitize.sh all || rc=1
fi
if [ $fuzz -eq 1 ]; then
  step "fuzzing"
  tools/fuzz.sh || rc=1
fi
step "done, exit status $rc"
exit $rc
