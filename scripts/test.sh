#!/usr/bin/env bash
# The whole test suite: set up and build (scripts/setup.sh), run ctest, check clang-format.
#   scripts/test.sh             Release build in build/ (what CI runs: .ci/run): the oneDNN
#                               backend tests at each ISA level below this CPU's
#                               (scripts/test-isa-levels.sh), then the whole suite (ctest)
#   scripts/test.sh --sanitize  the whole suite under ASan + UBSan (GCC, build-asan/), then the
#                               data pipeline tests under TSan (build-tsan/, data_tests only);
#                               see docs/SECURITY.md for what it costs
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
if [[ "${1:-}" != "--sanitize" ]]; then
  "$here/scripts/setup.sh"
  "$here/scripts/check-format.sh"
  # The ISA levels first, so that ctest's summary is the last thing printed.
  "$here/scripts/test-isa-levels.sh" "$here/build"
  cd "$here/build"
  ctest --output-on-failure -j "$(nproc)" --timeout 900
  exit 0
fi

# ---- --sanitize ---------------------------------------------------------------------------------
sanitizers="$here/tests/sanitizers"
start=$SECONDS
# ASan + UBSan: every part, test and CLI; any report fails the test that triggered it.
"$here/scripts/setup.sh" --build-dir "$here/build-asan" -DONNXFORGE_SANITIZE=address \
  -DONNXFORGE_BUILD_BENCH=OFF -DONNXFORGE_WITH_CUDA=OFF
export ASAN_OPTIONS="detect_leaks=1:abort_on_error=1:strict_string_checks=1:detect_stack_use_after_return=1:check_initialization_order=1"
export LSAN_OPTIONS="suppressions=$sanitizers/lsan.supp:print_suppressions=0"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
built=$SECONDS
(cd "$here/build-asan" && ctest --output-on-failure -j "$(nproc)" --timeout 1800)
asan_done=$SECONDS
echo "test: ASan+UBSan suite passed (build $((built - start)) s, tests $((asan_done - built)) s)"

# TSan: the data pipeline (TBB loader, prefetching, synthetic generation). Debian's libtbb and
# OpenCV are not instrumented: data/parallel.hpp states TBB's hand-offs to TSan, and
# tests/sanitizers/tsan.supp says why each remaining suppression is there. tsan_canary then shows
# that a race planted inside a TBB task is still reported under those suppressions.
tsan="$here/build-tsan"
if [[ ! -f "$tsan/CMakeCache.txt" ]]; then
  cmake -S "$here" -B "$tsan" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DONNXFORGE_SANITIZE=thread -DONNXFORGE_WITH_ONEDNN=OFF -DONNXFORGE_WITH_CUDA=OFF \
    -DONNXFORGE_BUILD_BENCH=OFF > /dev/null
fi
# The build's own status decides (grep only trims the progress lines).
if ! cmake --build "$tsan" -j "$(nproc)" --target data_tests tsan_canary |
  { grep -vE '^\[[0-9]+/[0-9]+\] (Building|Linking)' || true; }; then
  echo "test: the TSan build failed (errors above)" >&2
  exit 1
fi
export TSAN_OPTIONS="suppressions=$sanitizers/tsan.supp:halt_on_error=1:second_deadlock_stack=1"
tsan_built=$SECONDS
"$tsan/bin/data_tests" --gtest_brief=1
"$tsan/bin/tsan_canary" clean
for race in loop task; do
  log="$tsan/tsan_canary_$race.log"
  if "$tsan/bin/tsan_canary" "$race" > "$log" 2>&1 ||
    ! grep -q 'WARNING: ThreadSanitizer: data race' "$log"; then
    echo "test: TSan did not report the race planted in 'tsan_canary $race' ($log)" >&2
    exit 1
  fi
done
echo "test: TSan data tests passed, and the races planted in TBB tasks were reported" \
  "(build $((tsan_built - asan_done)) s, tests $((SECONDS - tsan_built)) s)"
echo "test: --sanitize took $((SECONDS - start)) s"
