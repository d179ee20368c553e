#!/usr/bin/env bash
# The GPU check of issue 9, in one go (fits in 10 minutes on a 16-core machine with one GPU):
#   1. builds onnxforge with the cudnn backend (ONNXFORGE_WITH_CUDA=ON) into build-cuda/;
#   2. runs the CUDA tests: the op harness and the whole-model checks on cudnn, the backend
#      behaviour tests, the host-side plan tests and the oneDNN-vs-cuDNN parity test;
#   3. times `onnxforge bench` on onednn (the CPU) and cudnn beside PyTorch with CUDA on the same
#      GPU (bench/anchors/torch_cuda.py): baseline training step, VGG16 features inference and
#      VGG16 head training, batch 32 and 256; prints one table (and writes it to
#      build-cuda/gpu-check/table.md).
#
#   scripts/gpu-check.sh [--build-dir DIR] [--no-build] [--seconds S] [--skip-tests]
#                        [--skip-bench]
# Environment: TORCH_PYTHON=/path/to/python (a Python whose torch has CUDA; otherwise the script
# tries python3, /usr/bin/python3, /opt/conda/bin/python and says when none has CUDA).
set -uo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build_dir="$here/build-cuda"
build=1
tests=1
bench=1
seconds=3
while [[ $# -gt 0 ]]; do
  case "$1" in
    --build-dir) build_dir="$2"; shift 2 ;;
    --no-build) build=0; shift ;;
    --seconds) seconds="$2"; shift 2 ;;
    --skip-tests) tests=0; shift ;;
    --skip-bench) bench=0; shift ;;
    *) echo "gpu-check.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
out="$build_dir/gpu-check"
# cuDNN's libcudnn.so.9 loads its sub-libraries, and the backend cuBLAS, by name.
for dir in /usr/local/cuda/lib64 /usr/local/cuda/lib; do
  [[ -d "$dir" ]] && export LD_LIBRARY_PATH="$dir${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
done
start=$(date +%s)
step() { echo "== [$(($(date +%s) - start)) s] $*"; }
status=0

step "machine: $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
if command -v nvidia-smi >/dev/null; then
  nvidia-smi --query-gpu=name,memory.total,driver_version,compute_cap --format=csv,noheader ||
    true
  cap="$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2>/dev/null | head -1 | tr -d ' .')"
else
  echo "gpu-check.sh: nvidia-smi not found: is there an NVIDIA GPU and driver here?"
  cap=""
fi
arch="${cap:-80;90}"

# ---- 1. build ---------------------------------------------------------------------------------
if ((build)); then
  step "configure $build_dir (CUDA architectures $arch)"
  launcher=()
  if command -v ccache >/dev/null; then
    launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache -DCMAKE_C_COMPILER_LAUNCHER=ccache)
  fi
  generator=(-G Ninja)
  command -v ninja >/dev/null || generator=(-G "Unix Makefiles")
  cmake -S "$here" -B "$build_dir" "${generator[@]}" -DCMAKE_BUILD_TYPE=Release -DONNXFORGE_WITH_CUDA=ON \
    "-DCMAKE_CUDA_ARCHITECTURES=$arch" -DONNXFORGE_BUILD_BENCH=OFF "${launcher[@]}" \
    > "$build_dir.configure.log" 2>&1 || {
    tail -30 "$build_dir.configure.log"
    echo "gpu-check.sh: configure failed (log: $build_dir.configure.log)"
    exit 1
  }
  step "build onnxforge and the CUDA tests ($(nproc) jobs)"
  cmake --build "$build_dir" -j "$(nproc)" --target onnxforge backend_ops_test backend_models_test \
    cudnn_plan_test cudnn_parity_test > "$build_dir.build.log" 2>&1 || {
    grep -E "error|Error" "$build_dir.build.log" | head -30
    echo "gpu-check.sh: build failed (log: $build_dir.build.log)"
    exit 1
  }
fi
onnxforge="$build_dir/bin/onnxforge"
[[ -x "$onnxforge" ]] || { echo "gpu-check.sh: $onnxforge not built"; exit 1; }
# Binaries built elsewhere (--no-build) need this machine to have their shared libraries.
missing="$(ldd "$onnxforge" "$build_dir"/bin/*_test 2>/dev/null | grep "not found" | sort -u)"
if [[ -n "$missing" ]]; then
  echo "gpu-check.sh: shared libraries missing on this machine:"
  echo "$missing"
  exit 1
fi
mkdir -p "$out"

# ---- 2. tests ---------------------------------------------------------------------------------
if ((tests)); then
  step "CUDA tests (op harness, model checks, behaviour, plan, parity)"
  for t in cudnn_plan_test cudnn_parity_test; do
    timeout 120 "$build_dir/bin/$t" > "$out/$t.log" 2>&1 || status=1
    tail -3 "$out/$t.log"
  done
  timeout 180 "$build_dir/bin/backend_ops_test" --gtest_filter='*cudnn*' \
    > "$out/backend_ops_test.log" 2>&1 ||
    status=1
  grep -E "^\[  (PASSED|FAILED|SKIPPED) |FAILED  \]" "$out/backend_ops_test.log" | head -40
  timeout 180 "$build_dir/bin/backend_models_test" --gtest_filter='*cudnn*' \
    > "$out/backend_models_test.log" 2>&1 || status=1
  grep -E "max rel err|^\[  (PASSED|FAILED|SKIPPED) |FAILED  \]" "$out/backend_models_test.log" |
    tail -12
  grep -h "relative L2" "$out/cudnn_parity_test.log" || true
  ((status == 0)) && step "tests passed" || step "TESTS FAILED (logs in $out)"
fi

# ---- 3. benchmarks ----------------------------------------------------------------------------
if ((bench)); then
  step "onnxforge bench: onednn (CPU) and cudnn, ${seconds} s each"
  run_bench() {  # BACKEND WORKLOAD BATCH
    local backend="$1" name="$2" batch="$3" args=()
    case "$name" in
      baseline_train) args=(baseline --mode train) ;;
      vgg16_infer) args=(vgg16 --mode infer) ;;
      vgg16_head) args=(vgg16 --head --mode train) ;;
    esac
    timeout 90 "$onnxforge" bench "${args[@]}" --backend "$backend" --batch "$batch" --seconds "$seconds" \
      --warmup 1 --json "$out/$backend-$name-$batch.json" > "$out/$backend-$name-$batch.log" 2>&1 ||
      echo "   $backend $name batch $batch failed: $(tail -1 "$out/$backend-$name-$batch.log")"
    grep -h "Throughput" "$out/$backend-$name-$batch.log" | sed "s/^/   $backend $name $batch: /"
  }
  for name in baseline_train vgg16_infer vgg16_head; do
    for batch in 32 256; do
      run_bench cudnn "$name" "$batch"
      run_bench onednn "$name" "$batch"
    done
  done

  step "PyTorch with CUDA (bench/anchors/torch_cuda.py)"
  torch_python=""
  for py in ${TORCH_PYTHON:-} python3 /usr/bin/python3 /opt/conda/bin/python /usr/local/bin/python3; do
    if command -v "$py" >/dev/null &&
       "$py" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" 2>/dev/null; then
      torch_python="$py"
      break
    fi
  done
  rm -f "$out/torch.jsonl"
  if [[ -n "$torch_python" ]]; then
    echo "   using $torch_python ($("$torch_python" -c 'import torch; print("torch", torch.__version__, "CUDA", torch.version.cuda)'))"
    timeout 240 "$torch_python" "$here/bench/anchors/torch_cuda.py" --seconds "$seconds" \
      > "$out/torch.jsonl" 2> "$out/torch.log" || { tail -5 "$out/torch.log"; status=1; }
  else
    echo "   no PyTorch with CUDA on this machine (tried TORCH_PYTHON, python3, /usr/bin/python3," \
      "/opt/conda/bin/python): the anchor columns stay empty"
  fi

  step "table"
  python3 - "$out" "$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -1)" \
    "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs) ($(nproc) cores)" \
    "$(cut -d' ' -f1-3 /proc/loadavg)" <<'EOF' | tee "$out/table.md"
import json, os, sys
out, gpu, cpu, load = sys.argv[1:5]
def ours(backend, name, batch):
    try:
        return json.load(open(f"{out}/{backend}-{name}-{batch}.json"))["throughput_images_per_s"]
    except (OSError, ValueError, KeyError):
        return None
anchors = {}
if os.path.exists(f"{out}/torch.jsonl"):
    for line in open(f"{out}/torch.jsonl"):
        a = json.loads(line)
        anchors[(a["name"], a["batch"])] = a
target = {"baseline_train": 1.0, "vgg16_infer": 0.8, "vgg16_head": None}
f = lambda v: "n/a" if v is None else f"{v:,.1f}"
r = lambda a, b: "n/a" if a is None or not b else f"{a / b:.2f}x"
print(f"GPU: {gpu or 'unknown'}; CPU: {cpu}; load {load}; images/s, higher is better\n")
print("| workload | batch | onednn (CPU) | cudnn | PyTorch fp32 | PyTorch tf32 | cudnn / PyTorch fp32 | cudnn / PyTorch tf32 | target |")
print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
for name in ["baseline_train", "vgg16_infer", "vgg16_head"]:
    for batch in [32, 256]:
        a = anchors.get((name, batch), {})
        g = ours("cudnn", name, batch)
        t = target[name]
        print(f"| {name} | {batch} | {f(ours('onednn', name, batch))} | {f(g)} | "
              f"{f(a.get('best_fp32'))} | {f(a.get('best_tf32'))} | {r(g, a.get('best_fp32'))} | "
              f"{r(g, a.get('best_tf32'))} | {'>= %.1fx' % t if t else '-'} |")
print("\nPyTorch settings (best of contiguous / channels_last, cudnn.benchmark on): " +
      "; ".join(f"{k[0]} {k[1]}: {v.get('setting_fp32')} / {v.get('setting_tf32')}"
                for k, v in sorted(anchors.items())))
EOF
fi
step "done (status $status)"
exit $status
