#!/usr/bin/env bash
# Side by side, in one run (issues 3 and 16): onnxforge (oneDNN backend) against PyTorch, ONNX
# Runtime, OpenVINO and OpenCV DNN on the same networks, batch 32; prints one markdown table.
#
#   bench/anchors/compare.sh [--build-dir build] [--min-time 3] [--min-iterations 3]
#                            [--threads N] [--policies "active passive"] [--no-rss] [--out DIR]
#
# Workloads (3x100x100 images, batch 32, --threads threads on every side):
#   baseline CNN inference, VGG16 features inference: onnxforge runs torch's ONNX export of the
#     network (`onnxforge bench FILE.onnx`, fp32 / bf16 / auto), the very files that ONNX Runtime,
#     OpenVINO and OpenCV DNN run; PyTorch runs the module it exported. If onnxforge's importer
#     refuses a file, the table says so with its error line and uses the built-in model.
#   baseline CNN, improved CNN, VGG16 features (+ average pool + Dense 1) training steps:
#     forward + backward + Adam on binary cross-entropy; onnxforge-bench against PyTorch
#     (torch_models.py, the same layers).
#   peak RSS of the VGG16 training step: each side as its own process (peak_rss.py, ru_maxrss).
# Columns: onnxforge images/s in fp32, bf16, auto ("n/a" where no such variant exists), the best
# anchor setting, onnxforge's best over its dtypes / that anchor, the issue's target, onnxforge's
# GFLOP/s (2 x multiply-adds of every convolution and dense layer, forward; training counts 3x
# forward) and its fraction of the same-dtype BM_MatmulPeak rate of the same run. Every anchor
# setting's number, the importer's verdicts, the CPU and its ISA, dates and load follow the table.
#
# Needs Debian's python3-torch, libopenblas0-pthread and python3-opencv (/usr/bin/python3;
# installed with apt when missing and running as root), and the venv of bench/anchors/venv.sh
# (made on first use: pip installs onnxruntime, openvino and numpy). OpenBLAS is given its best
# kernel (OPENBLAS_CORETYPE=SKYLAKEX on AVX-512 CPUs, which 0.3.21 misdetects; auto elsewhere).
# onnxforge and PyTorch run under each OpenMP wait policy of --policies and keep their best;
# ONNX Runtime (its own thread pool: spinning on and off) and OpenVINO (TBB) run once.
set -euo pipefail

# shellcheck source=SCRIPTDIR/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
min_time=3
min_iterations=3
threads="$(nproc)"
policies="active passive"
rss=1
keep=""
parse_options "compare.sh: unknown argument %s" --build-dir build_dir --min-time min_time \
  --min-iterations min_iterations --threads threads --policies policies --no-rss rss=0 \
  --out keep -- "$@"

bench="$build_dir/bin/onnxforge-bench"
cli="$build_dir/bin/onnxforge"
for exe in "$bench" "$cli"; do
  if [[ ! -x "$exe" ]]; then
    echo "compare.sh: $exe not found; build it: cmake --build $build_dir --target onnxforge-bench onnxforge" >&2
    exit 1
  fi
done
if ! /usr/bin/python3 -c "import torch, cv2" 2>/dev/null; then
  if [[ $(id -u) -eq 0 ]]; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-torch libopenblas0-pthread \
      python3-opencv >&2
  else
    echo "compare.sh: install python3-torch libopenblas0-pthread python3-opencv" >&2
    exit 1
  fi
fi
if grep -q avx512f /proc/cpuinfo; then export OPENBLAS_CORETYPE=SKYLAKEX; fi

if [[ -n "$keep" ]]; then
  out="$keep"
  mkdir -p "$out"
else
  out="$(mktemp -d)"
  trap 'rm -rf "$out"' EXIT
fi
date -u +%FT%TZ > "$out/start-date"
cut -d' ' -f1-3 /proc/loadavg > "$out/start-load"
echo "== $(cat "$out/start-date"), $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), load $(cat "$out/start-load")" >&2

# The venv for ONNX Runtime and OpenVINO; without it those anchors are reported as failed.
venv_python=""
if venv_python="$(bash "$here/venv.sh")"; then :; else
  venv_python=""
  echo "venv.sh failed: ONNX Runtime and OpenVINO anchors skipped" > "$out/venv-error"
fi

# torch's export of the inference networks (batch 32, opset 13) and the FLOPs of each workload.
/usr/bin/python3 "$here/torch_models.py" --threads "$threads" --export "$out/onnx" >&2
/usr/bin/python3 "$here/torch_models.py" --threads "$threads" --flops > "$out/flops.jsonl"
git -C "$root" rev-parse --short HEAD > "$out/commit" 2>/dev/null || echo unknown > "$out/commit"

warmup="$(/usr/bin/python3 -c "print(min(1.0, $min_time))")"
for policy in $policies; do
  echo "== onnxforge-bench (threads $threads, OMP_WAIT_POLICY=$policy)" >&2
  OMP_WAIT_POLICY="$policy" ONNXFORGE_THREADS="$threads" "$bench" \
    --benchmark_min_time="$min_time" --benchmark_out="$out/bench-$policy.json" \
    --benchmark_out_format=json >&2 || echo "onnxforge-bench exited with $?" >&2
  for model in baseline vgg16_features; do
    for dtype in fp32 bf16 auto; do
      echo "== onnxforge bench $model.onnx --dtype $dtype (OMP_WAIT_POLICY=$policy)" >&2
      OMP_WAIT_POLICY="$policy" "$cli" bench "$out/onnx/$model.onnx" --backend onednn \
        --batch 32 --mode infer --dtype "$dtype" --seconds "$min_time" --warmup "$warmup" \
        --threads "$threads" --json "$out/cli-$policy-$model-$dtype.json" \
        > "$out/cli-$policy-$model-$dtype.log" 2>&1 || true
      tail -n 2 "$out/cli-$policy-$model-$dtype.log" >&2
    done
  done
  echo "== PyTorch / OpenCV anchors (threads $threads, OMP_WAIT_POLICY=$policy)" >&2
  OMP_WAIT_POLICY="$policy" OMP_NUM_THREADS="$threads" /usr/bin/python3 "$here/torch_models.py" \
    --threads "$threads" --min-time "$min_time" --min-iterations "$min_iterations" \
    --onnx-dir "$out/onnx" > "$out/torch-$policy.jsonl" || echo "torch_models.py exited with $?" >&2
done
if [[ -n "$venv_python" ]]; then
  echo "== ONNX Runtime / OpenVINO anchors (threads $threads)" >&2
  "$venv_python" "$here/onnx_runtimes.py" --onnx-dir "$out/onnx" --threads "$threads" \
    --min-time "$min_time" --min-iterations "$min_iterations" > "$out/runtimes.jsonl" ||
    echo "onnx_runtimes.py exited with $?" >&2
fi

# Peak RSS of the VGG16 training step at batch 32, each setting as its own process.
: > "$out/rss.jsonl"
if ((rss)); then
  echo "== peak RSS, VGG16 training step, batch 32" >&2
  # One warm-up step and one timed step, as the PyTorch side runs two steps.
  for name in $("$bench" --benchmark_list_tests --benchmark_min_time=0.01 \
    --benchmark_filter='^BM_Vgg16TrainStep/' | sed 's#/real_time$##'); do
    OMP_WAIT_POLICY=passive ONNXFORGE_THREADS="$threads" /usr/bin/python3 "$here/peak_rss.py" \
      --side onnxforge --setting "${name##*/}" -- "$bench" --benchmark_filter="^$name/" \
      --benchmark_min_time=0.01 >> "$out/rss.jsonl"
  done
  for setting in "contiguous, fp32" "channels_last, fp32" "contiguous, bf16 autocast" \
    "channels_last, bf16 autocast"; do
    OMP_WAIT_POLICY=passive OMP_NUM_THREADS="$threads" /usr/bin/python3 "$here/peak_rss.py" \
      --side PyTorch --setting "$setting" -- /usr/bin/python3 "$here/torch_models.py" \
      --threads "$threads" --rss-step vgg16_train --setting "$setting" >> "$out/rss.jsonl"
  done
fi
date -u +%FT%TZ > "$out/end-date"
cut -d' ' -f1-3 /proc/loadavg > "$out/end-load"
echo "== done $(cat "$out/end-date"), load $(cat "$out/end-load")" >&2

/usr/bin/python3 "$here/compare_report.py" --out "$out" --policies "$policies" \
  --min-time "$min_time" --threads "$threads"
