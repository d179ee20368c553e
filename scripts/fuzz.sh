#!/usr/bin/env bash
# Runs one libFuzzer target of tests/fuzz for SECONDS (docs/SECURITY.md):
#   scripts/fuzz.sh TARGET SECONDS [extra libFuzzer flags...]
#   TARGET: onnx | npy | tensor_pb | config | image | checkpoint;  scripts/fuzz.sh --list prints them.
# Builds the fuzz build first when needed: clang, ASan + UBSan + libFuzzer, in build-fuzz/ (its own
# CMake configure; the normal GCC build in build/ is not touched). The working corpus grows in
# build-fuzz/corpus/TARGET (seeded once from libonnx-testdata, configs/ and tests/fuzz/make_seeds);
# crashers, hangs and leaks land in build-fuzz/crashers/TARGET/ (FUZZ_CRASHERS overrides). A
# crasher, once fixed, is kept under tests/fuzz/regressions/TARGET/ (replayed by ctest).
# Environment: FUZZ_BUILD (build folder), FUZZ_JOBS (build jobs, default 2).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
targets=(onnx npy tensor_pb config image checkpoint)
if [[ "${1:-}" == "--list" ]]; then printf '%s\n' "${targets[@]}"; exit 0; fi
if (($# < 2)); then
  echo "usage: scripts/fuzz.sh TARGET SECONDS [libFuzzer flags...]  (targets: ${targets[*]})" >&2
  exit 2
fi
target="$1"
seconds="$2"
shift 2
[[ " ${targets[*]} " == *" $target "* ]] || { echo "fuzz: unknown target '$target' (${targets[*]})" >&2; exit 2; }
[[ "$seconds" =~ ^[0-9]+$ ]] || { echo "fuzz: SECONDS must be a whole number, got '$seconds'" >&2; exit 2; }

build="${FUZZ_BUILD:-$here/build-fuzz}"
export CCACHE_BASEDIR="${CCACHE_BASEDIR:-$(dirname "$here")}"
if [[ ! -f "$build/CMakeCache.txt" ]]; then
  command -v clang++ > /dev/null || { echo "fuzz: clang++ is needed (apt-get install clang libclang-rt-dev)" >&2; exit 1; }
  launcher=()
  command -v ccache > /dev/null && launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
  cmake -S "$here" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DCMAKE_CXX_COMPILER=clang++ "${launcher[@]}" -DONNXFORGE_FUZZ=ON \
    -DONNXFORGE_WITH_ONEDNN=OFF -DONNXFORGE_WITH_CUDA=OFF -DONNXFORGE_BUILD_BENCH=OFF \
    -DONNXFORGE_WERROR=OFF > /dev/null
fi
# One build at a time: several fuzz.sh started together must not run ninja in parallel.
# The build's own status decides (grep only trims the progress lines).
if ! flock "$build/.build.lock" cmake --build "$build" -j "${FUZZ_JOBS:-2}" --target "fuzz_$target" make_seeds |
  { grep -vE '^\[[0-9]+/[0-9]+\] (Building|Linking)' || true; }; then
  echo "fuzz: the build failed (errors above)" >&2
  exit 1
fi

# Seeds, once per build folder.
seeds="$build/seeds"
exec 9> "$build/.seeds.lock"
flock 9
if [[ ! -f "$seeds/.done" ]]; then
  rm -rf "$seeds"
  "$build/bin/make_seeds" "$seeds" > /dev/null
  testdata=/usr/share/libonnx-testdata/data
  mkdir -p "$seeds/onnx" "$seeds/config"
  if [[ -d "$testdata" ]]; then
    # Small models only (every op of the node tests); and small .pb tensors.
    find "$testdata" -name model.onnx -size -64k | sort | while read -r f; do
      rel="${f#"$testdata"/}"; cp "$f" "$seeds/onnx/${rel//\//_}"
    done
    find "$testdata" -name '*.pb' -size -16k | sort | awk 'NR % 4 == 1' | while read -r f; do
      rel="${f#"$testdata"/}"; cp "$f" "$seeds/tensor_pb/${rel//\//_}"
    done
  else
    echo "fuzz: $testdata not found (apt-get install libonnx-testdata): ONNX seeds are few" >&2
  fi
  cp "$here"/configs/*.toml "$here"/tests/apps/configs/*.toml "$seeds/config/" 2> /dev/null || true
  printf '[data]\ntrain = "t"\nval = "v"\n#--set\ntrain.epochs=3\noptimizer.name=sgd\nname=x\n' \
    > "$seeds/config/overrides.toml"
  touch "$seeds/.done"
fi
flock -u 9

corpus="$build/corpus/$target"
crashers="${FUZZ_CRASHERS:-$build/crashers/$target}"
mkdir -p "$corpus" "$crashers"
case "$target" in
  onnx) max_len=65536 ;;
  image) max_len=262144 ;;
  tensor_pb) max_len=16384 ;;
  *) max_len=8192 ;;
esac
regressions="$here/tests/fuzz/regressions/$target"
echo "fuzz: $target for ${seconds}s; corpus $corpus; crashers $crashers/"
exec "$build/bin/fuzz_$target" -max_total_time="$seconds" -timeout=10 \
  -rss_limit_mb=2048 -malloc_limit_mb=1024 -max_len="$max_len" -print_final_stats=1 \
  -artifact_prefix="$crashers/" "$@" "$corpus" "$seeds/$target" "$regressions"
