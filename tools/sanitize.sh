#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
# Sanitizer runs (issue 6).
#   asan: build-asan with AddressSanitizer+UndefinedBehaviorSanitizer; runs the
#         unit, core and mount suites with the instrumented daemon (the mount
#         tests scan the daemon logs for sanitizer reports).
#   tsan: build-tsan with ThreadSanitizer; runs the concurrency tests of the
#         reliability suite (several threads through one instrumented daemon).
# Usage: tools/sanitize.sh [asan|tsan|all] [extra meson test arguments]
# Built at -O1, which the ASan and TSan documentation suggest: it halves the
# instrumented build's compile time against -O2.
# Zero reports expected: any report fails a test (sanitizer output in a
# daemon log, or a non-zero daemon exit status).
set -euo pipefail
cd "$(dirname "$0")/.."
what=${1:-all}
[ $# -gt 0 ] && shift
jobs=$(nproc)

# halt/abort on the first report; leaks are reports too.
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:detect_stack_use_after_return=1:check_initialization_order=1:strict_init_order=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}
# TSan: report every race (the tests fail on any report in a log), exit 66.
export TSAN_OPTIONS=${TSAN_OPTIONS:-halt_on_error=0:second_deadlock_stack=1:exitcode=66}

run_asan() {
  if [ ! -f build-asan/build.ninja ]; then
    meson setup build-asan -Db_sanitize=address,undefined -Db_lundef=false \
      -Ddebug=true -Doptimization=1
  fi
  # Only what the unit, core and mount suites run (the container and
  # reliability tests would add a third to the build time).
  local targets
  mapfile -t targets < <(tools/suite-targets.sh build-asan)
  ninja -C build-asan -j "$jobs" "${targets[@]}"
  local rc=0
  meson test -C build-asan --no-rebuild --suite unit --suite core --suite mount \
    --print-errorlogs --num-processes 2 --timeout-multiplier 4 "$@" || rc=$?
  python3 tools/test-summary.py build-asan/meson-logs/testlog.junit.xml || true
  return $rc
}

run_tsan() {
  if [ ! -f build-tsan/build.ninja ]; then
    meson setup build-tsan -Db_sanitize=thread -Db_lundef=false -Ddebug=true -Doptimization=1
  fi
  # Only what the concurrency tests run: the daemon, the checker and the
  # reliability test binary (the whole tree would double the build time).
  ninja -C build-tsan -j "$jobs" src/aufs-fuse tools/aufs-fuse-check \
    tests/reliability/aufs_fuse_reliability_tests
  local rc=0
  meson test -C build-tsan --no-rebuild reliability-concurrency \
    --print-errorlogs --timeout-multiplier 6 "$@" || rc=$?
  python3 tools/test-summary.py build-tsan/meson-logs/testlog.junit.xml || true
  return $rc
}

rc=0
case "$what" in
  asan) run_asan "$@" || rc=$? ;;
  tsan) run_tsan "$@" || rc=$? ;;
  all) run_asan "$@" || rc=$?; run_tsan "$@" || rc=$? ;;
  *) echo "usage: $0 [asan|tsan|all] [meson test args]" >&2; exit 2 ;;
esac
exit $rc
