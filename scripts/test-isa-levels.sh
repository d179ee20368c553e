#!/usr/bin/env bash
# The oneDNN backend's tests again at every ISA level below this CPU's, so that one machine checks
# the CPUs under it: oneDNN picks other kernels and layouts at each level (blocked 8 channels on
# AVX2, 16 on AVX-512, channels-last brgconv; bf16 only from AVX512_CORE) and ONEDNN_MAX_CPU_ISA
# caps it below the machine (never above). The level of the machine itself is the plain ctest run.
#   scripts/test-isa-levels.sh [BUILD_DIR]
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="${1:-$here/build}"
bin="$build/bin"

if [[ ! -x "$bin/onednn_loops_test" ]]; then
  echo "test: no oneDNN backend in this build; no ISA levels to rerun"
  exit 0
fi

# Level name (ONEDNN_MAX_CPU_ISA) and the /proc/cpuinfo flags it needs besides the lower levels'.
levels=(AVX2 AVX512_CORE AVX512_CORE_BF16 AVX512_CORE_AMX)
declare -A needs=(
  [AVX2]="avx2 fma"
  [AVX512_CORE]="avx512f avx512bw avx512vl avx512dq"
  [AVX512_CORE_BF16]="avx512_bf16"
  [AVX512_CORE_AMX]="amx_tile amx_bf16 amx_int8"
)
flags=" $(grep -m1 '^flags' /proc/cpuinfo | cut -d: -f2) "
machine=""
for level in "${levels[@]}"; do
  for flag in ${needs[$level]}; do
    [[ "$flags" == *" $flag "* ]] || break 2
  done
  machine="$level"
done
model="$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
below=()
for level in "${levels[@]}"; do
  [[ "$level" == "$machine" ]] && break
  below+=("$level")
done
if ((${#below[@]} == 0)); then
  echo "test: this CPU ($model) is at ${machine:-below AVX2}; no lower ISA level to rerun"
  exit 0
fi

tests=(backend_ops_test backend_models_test mixed_precision_test onednn_loops_test onednn_memory_test)
for level in "${below[@]}"; do
  start=$SECONDS
  echo "test: oneDNN backend tests at ONEDNN_MAX_CPU_ISA=$level (this CPU: $model, $machine)"
  for t in "${tests[@]}"; do
    if ! ONEDNN_MAX_CPU_ISA="$level" "$bin/$t" --gtest_filter='*onednn*:Onednn*' --gtest_brief=1 \
      > "$build/isa-$level-$t.log" 2>&1; then
      cat "$build/isa-$level-$t.log"
      echo "test: $t failed at ONEDNN_MAX_CPU_ISA=$level (log: $build/isa-$level-$t.log)" >&2
      exit 1
    fi
    { grep -E '^\[  (PASSED|SKIPPED|FAILED) +\]' "$build/isa-$level-$t.log" || true; } | sed "s/^/  $t: /"
  done
  echo "test: ONEDNN_MAX_CPU_ISA=$level passed ($((SECONDS - start)) s)"
done
