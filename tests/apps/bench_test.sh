#!/usr/bin/env bash
# onnxforge bench on the CPU backends, briefly: the JSON has every field and its numbers are
# consistent (order of the percentiles, throughput = images / duration); no timing is asserted.
# Bad arguments and an unavailable backend fail with one clear line.
set -euo pipefail
onnxforge="$1"
# shellcheck source=SCRIPTDIR/../support/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/../support/common.sh" bench_test

check_json() {  # FILE BACKEND MODE BATCH
  /usr/bin/python3 - "$@" <<'PY'
import json, sys
path, backend, mode, batch = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
j = json.load(open(path))
for key in ["model", "backend", "device", "mode", "dtype", "batch", "compile_ms",
            "first_iteration_ms", "warmup_iterations", "iterations", "duration_s",
            "images_per_iteration", "throughput_images_per_s", "latency_ms", "load_average"]:
    assert key in j, f"{path}: no {key}"
assert j["backend"] == backend and j["mode"] == mode and j["batch"] == batch, j
assert j["iterations"] >= 3 and j["warmup_iterations"] >= 2, j
assert j["images_per_iteration"] == batch, j
lat = j["latency_ms"]
for key in ["median", "p50", "p90", "p99", "mean", "min", "max"]:
    assert lat[key] > 0, (key, lat)
assert lat["min"] <= lat["p50"] <= lat["p90"] <= lat["p99"] <= lat["max"], lat
assert lat["min"] <= lat["mean"] <= lat["max"], lat
expected = j["iterations"] * batch / j["duration_s"]
assert abs(j["throughput_images_per_s"] - expected) <= 1e-6 * expected, (expected, j)
# The iterations fill the duration: their latencies add up to at most the measured span.
assert lat["mean"] * j["iterations"] <= j["duration_s"] * 1e3 * 1.001 + 1e-3, j
print(f"bench_test: {path} ok ({j['iterations']} iterations, {j['throughput_images_per_s']:.1f} images/s)")
PY
}

backends="$("$onnxforge" bench --help >/dev/null && echo reference)"
if "$onnxforge" bench baseline --backend onednn --seconds 0.01 --warmup 0 --batch 1 \
     --input 3x12x12 >/dev/null 2>&1; then
  backends="$backends onednn"
fi
for backend in $backends; do
  "$onnxforge" bench baseline --backend "$backend" --mode train --batch 2 --input 3x16x16 \
    --seconds 0.2 --warmup 0.05 --json "$work/$backend-train.json" > "$backend-train.log" ||
    fail "$backend train: $(cat "$backend-train.log")"
  grep -q "Throughput:" "$backend-train.log" || fail "no throughput line"
  grep -q "binary cross-entropy" "$backend-train.log" || fail "baseline must train with BCE"
  check_json "$work/$backend-train.json" "$backend" train 2
  # VGG16 (13 convolutions) is too slow for the naive reference backend's loops.
  [[ "$backend" == reference ]] && continue
  "$onnxforge" bench vgg16 --backend "$backend" --mode infer --batch 3 --input 3x32x32 \
    --seconds 0.2 --warmup 0.05 --json "$work/$backend-infer.json" > "$backend-infer.log" ||
    fail "$backend infer: $(cat "$backend-infer.log")"
  check_json "$work/$backend-infer.json" "$backend" infer 3
  # A model without a sigmoid head trains through seeded outputs; --head adds one.
  "$onnxforge" bench vgg16 --backend "$backend" --mode train --batch 2 --input 3x32x32 \
    --head --seconds 0.1 --warmup 0.02 --json "$work/$backend-head.json" > "$backend-head.log" ||
    fail "$backend head: $(cat "$backend-head.log")"
  grep -q "backbone frozen" "$backend-head.log" || fail "--head not described"
  check_json "$work/$backend-head.json" "$backend" train 2
done

# An ONNX file: the batch goes on axis 0.
relu=/usr/share/libonnx-testdata/data/node/test_relu/model.onnx
if [[ -f "$relu" ]]; then
  "$onnxforge" bench "$relu" --backend reference --batch 2 --seconds 0.05 --warmup 0.01 \
    --json "$work/onnx.json" > onnx.log || fail "onnx: $(cat onnx.log)"
  check_json "$work/onnx.json" reference infer 2
  # Nothing to train: one clear line.
  if "$onnxforge" bench "$relu" --backend reference --mode train --seconds 0.05 2> err.log; then
    fail "training a model without parameters must fail"
  fi
  [[ $(wc -l < err.log) -eq 1 ]] && grep -q "no.*trainable\|none" err.log ||
    fail "unclear error: $(cat err.log)"
fi

# Bad input: one line naming the problem, exit status non-zero, no JSON written.
for bad in "--mode fly" "--batch 0" "--dtype fp8" "--backend nosuch"; do
  # shellcheck disable=SC2086
  if "$onnxforge" bench baseline $bad --seconds 0.01 --json "$work/bad.json" 2> err.log; then
    fail "'$bad' must fail"
  fi
  [[ $(wc -l < err.log) -eq 1 ]] || fail "'$bad': more than one line: $(cat err.log)"
  [[ ! -e "$work/bad.json" ]] || fail "'$bad' wrote a JSON file"
done
# run refuses a bad --dtype in one line before any work (train: 'train.dtype' in trainer_test).
if "$onnxforge" run --dtype fp8 --out "$work/run-bad" 2> err.log; then fail "run --dtype fp8 must fail"; fi
[[ $(wc -l < err.log) -eq 1 ]] && grep -q "'fp8' is not one of fp32, bf16, auto" err.log ||
  fail "run --dtype fp8: $(cat err.log)"
[[ ! -e "$work/run-bad" ]] || fail "run --dtype fp8 created its run folder"
# The cudnn backend, when this build has it, says why it cannot run here (or runs).
if "$onnxforge" bench baseline --backend cudnn --batch 1 --input 3x12x12 --seconds 0.01 \
     --warmup 0 2> err.log > out.log; then
  grep -q "Throughput:" out.log || fail "cudnn ran but printed no throughput"
else
  [[ $(wc -l < err.log) -eq 1 ]] || fail "cudnn: more than one line: $(cat err.log)"
  grep -q "unknown backend 'cudnn'\|not available here" err.log || fail "cudnn: $(cat err.log)"
fi
echo "bench_test: all checks passed"
