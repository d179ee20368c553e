#!/usr/bin/env bash
# Installs what onnxforge needs (Debian packages only), then configures and builds Release into
# build/. Idempotent and quiet when everything is already there.
#   scripts/setup.sh [--build-dir DIR] [extra cmake -D options...]
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build_dir="$here/build"
if [[ "${1:-}" == "--build-dir" ]]; then build_dir="$2"; shift 2; fi

packages=(
  build-essential cmake ninja-build pkg-config clang-format
  libdnnl-dev ocl-icd-opencl-dev opencl-c-headers
  libonnx-dev libonnx-testdata python3-onnx libprotobuf-dev protobuf-compiler
  libopencv-dev libtbb-dev libfmt-dev libgtest-dev libgmock-dev libbenchmark-dev
  libtomlplusplus-dev libcli11-dev nlohmann-json3-dev libopenmpi-dev openmpi-bin gnuplot-nox
  chromium zlib1g-dev libjpeg-dev
)
missing=()
for p in "${packages[@]}"; do
  status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
  [[ "$status" == "install ok installed" ]] || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup: installing ${#missing[@]} missing Debian packages: ${missing[*]}"
  sudo_cmd=()
  [[ $(id -u) -eq 0 ]] || sudo_cmd=(sudo)
  export DEBIAN_FRONTEND=noninteractive
  "${sudo_cmd[@]}" apt-get update -qq
  "${sudo_cmd[@]}" apt-get install -y -qq --no-install-suggests "${missing[@]}" >/dev/null
fi

jobs=$(nproc)
if [[ ! -f "$build_dir/CMakeCache.txt" ]]; then
  cmake -S "$here" -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE=Release "$@" >/dev/null
elif (($#)); then
  cmake "$build_dir" "$@" >/dev/null
fi
echo "setup: building onnxforge ($jobs jobs) in $build_dir"
# The build's own status decides (grep only trims the progress lines).
if ! cmake --build "$build_dir" -j "$jobs" |
  { grep -vE '^\[[0-9]+/[0-9]+\] (Building|Linking|Automatic)' || true; }; then
  echo "setup: the build failed (errors above)" >&2
  exit 1
fi
