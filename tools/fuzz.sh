#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
# libFuzzer runs of the targets in tests/fuzz (issue 6): the option/branch
# parser, the whiteout name codec, the directory merge and the dirren
# record codec.
#   tools/fuzz.sh            short run: FUZZ_SECONDS (default 30) per target
#   tools/fuzz.sh --long     10^7 executions per target (FUZZ_RUNS overrides)
#   tools/fuzz.sh TARGET...  only these (options, whiteout, vdir, dirren)
# Builds with clang into build-fuzz (meson -Dfuzz=true; only the fuzz
# targets are compiled). The working corpus starts from tests/fuzz/corpus/.
# A crash stops the run: the input is saved in build-fuzz/fuzz-artifacts/
# and the script exits 1. Add the (minimized) input to
# tests/fuzz/corpus/<target>/ so the replay tests (meson test --suite
# reliability: fuzz-replay-*) keep it fixed.
set -euo pipefail
cd "$(dirname "$0")/.."
mode=short
targets=()
for a in "$@"; do
  case "$a" in
    --long) mode=long ;;
    --short) mode=short ;;
    options|whiteout|vdir|dirren) targets+=("$a") ;;
    *) echo "usage: $0 [--long] [options|whiteout|vdir|dirren]..." >&2; exit 2 ;;
  esac
done
((${#targets[@]})) || targets=(options whiteout vdir dirren)
command -v clang++ >/dev/null || { echo "fuzz: clang++ not installed (tools/install-deps.sh)" >&2; exit 2; }

if [ ! -f build-fuzz/build.ninja ]; then
  CC=clang CXX=clang++ meson setup build-fuzz -Dfuzz=true -Dbuildtype=debugoptimized >/dev/null
fi
ninja -C build-fuzz $(printf 'tests/fuzz/fuzz_%s ' "${targets[@]}")

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}
rc=0
for t in "${targets[@]}"; do
  work=build-fuzz/fuzz-corpus/$t
  art=build-fuzz/fuzz-artifacts/$t/
  mkdir -p "$work" "$art"
  cp -n tests/fuzz/corpus/$t/* "$work"/ 2>/dev/null || true
  if [ "$mode" = long ]; then
    limit=(-runs="${FUZZ_RUNS:-10000000}")
  else
    limit=(-max_total_time="${FUZZ_SECONDS:-30}")
  fi
  log=build-fuzz/fuzz-$t.log
  start=$(date +%s)
  set +e
  build-fuzz/tests/fuzz/fuzz_$t "${limit[@]}" -print_final_stats=1 -max_len=4096 \
    -artifact_prefix="$art" "$work" >"$log" 2>&1
  r=$?
  set -e
  secs=$(( $(date +%s) - start ))
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  cov=$(grep -Eo 'cov: [0-9]+' "$log" | tail -1)
  echo "fuzz $t: ${execs:-?} executions in ${secs} s (${cov:-cov: ?}), exit $r"
  if [ $r -ne 0 ]; then
    rc=1
    grep -E 'ERROR|invariant|SUMMARY|Test unit written|^#0|^    #[0-9]' "$log" | head -40
    echo "fuzz $t: crash input in $art (full log: $log)"
  fi
done
exit $rc
