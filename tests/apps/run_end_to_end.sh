#!/usr/bin/env bash
# onnxforge run on a tiny synthetic dataset (64 train / 32 val / 32 test images) with one-epoch
# configs: checks every run folder, figure, metric file, exported model and the report.
set -euo pipefail
onnxforge="$1"
configs="$2"
# shellcheck source=SCRIPTDIR/../support/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/../support/common.sh" run_end_to_end
"$onnxforge" synth --out data --train 64 --val 32 --test 32 --seed 3 > synth.log
# The default backbone, pretrained small (the default is 8,000 faces for 4 epochs).
small_backbone=(--backbone-width 0.125 --backbone-images 200 --backbone-epochs 1)
"$onnxforge" run --data-root data --configs "$configs" --out out "${small_backbone[@]}" \
  > run.log 2>&1 || {
  cat run.log
  exit 1
}
fail_details() { cat run.log; }
grep -q "^Report: .*out/report.html" run.log || fail "no report path printed"
grep -q "pretrains on a synthetic source task" run.log || fail "backbone not pretrained"
grep -q "Held-out accuracy per attribute" out/transfer/summary.txt ||
  fail "the summary does not say what the backbone learnt"
grep -q "computed once" run.log || fail "feature cache not used"
for run in baseline improved transfer; do
  for f in config.toml summary.txt history.csv model.onnx report.html checkpoints/best.ckpt \
           val/metrics.json val/predictions.csv test/metrics.json test/predictions.csv; do
    [[ -s "out/$run/$f" ]] || fail "missing out/$run/$f"
  done
  for key in accuracy sensitivity specificity precision f1 balanced_accuracy mcc auc \
             confusion_matrix threshold positive_class; do
    grep -q "\"$key\"" "out/$run/test/metrics.json" || fail "$run test metrics lack $key"
  done
  [[ $(wc -l < "out/$run/history.csv") -eq 2 ]] || fail "$run history is not one epoch"
  [[ $(wc -l < "out/$run/test/predictions.csv") -eq 33 ]] || fail "$run test predictions"
done
grep -q "NOT ImageNet" out/transfer/summary.txt || fail "report does not say which backbone"
"$onnxforge" summary out/transfer/model.onnx | grep -q "Non-trainable params" ||
  fail "exported transfer model does not import"
[[ -s out/report.html && -s out/report.md ]] || fail "no comparison report"
# eval on the exported model reproduces the run's test metrics; predict scores loose images.
"$onnxforge" eval out/baseline/model.onnx --data data/faces --label-map man=Male,woman=Female \
  --out eval > eval.log || fail "eval failed: $(cat eval.log)"
[[ "$(grep -o '"accuracy":[^,]*' eval/metrics.json | head -1)" == \
   "$(grep -o '"accuracy":[^,]*' out/baseline/test/metrics.json | head -1)" ]] ||
  fail "eval of model.onnx differs from the run's test accuracy"
mkdir loose && cp data/faces/man/*.jpg loose/
"$onnxforge" predict out/improved/model.onnx loose --out loose.csv > predict.log ||
  fail "predict failed: $(cat predict.log)"
[[ $(wc -l < loose.csv) -eq $(($(ls loose | wc -l) + 1)) ]] || fail "predict row count"
head -1 loose.csv | grep -q '^path,score,class$' || fail "predict header"
if command -v gnuplot > /dev/null; then
  pngs=$(find out -name '*.png' | wc -l)
  ((pngs >= 12)) || fail "only $pngs figures"
  grep -q "data:image/png;base64" out/report.html || fail "figures not inlined in the report"
fi
# Pre-flight: a wrong cut node or backbone file fails before anything trains, naming the
# closest nodes.
preflight() {
  if "$onnxforge" run --data-root data --configs "${pre_configs:-$configs}" --out out2 "$@" \
    > pre.log 2>&1; then
    fail "run $* succeeded"
  fi
  ! grep -q "\[2/5\]" pre.log || fail "run $* trained before failing: $(cat pre.log)"
}
preflight --backbone out/transfer/model.onnx --cut-at block5_pol
grep -q "no node named 'block5_pol'; did you mean .*block5_pool" pre.log ||
  fail "no 'did you mean': $(cat pre.log)"
"$onnxforge" convert vgg16 bare.onnx > /dev/null
# The shipped transfer config: preprocess "auto", cut at last-pool.
pre_configs="$(dirname "$configs")/../../configs" preflight --backbone bare.onnx
grep -q "bare.onnx: the file does not say how its input is preprocessed" pre.log ||
  fail "a backbone without preprocessing was not refused: $(cat pre.log)"
grep -q "onnxforge.preprocess" <(strings out/baseline/model.onnx) ||
  fail "model.onnx does not record its preprocessing"
preflight --backbone missing.onnx
grep -q "missing.onnx" pre.log || fail "missing backbone not named: $(cat pre.log)"
# A groups file for the subgroup metrics is read before anything trains.
printf 'path,skin_tone\n"unterminated,light\n' > bad_groups.csv
preflight --groups bad_groups.csv
grep -q "bad_groups.csv" pre.log || fail "a bad groups file was not named: $(cat pre.log)"
grep -q "Subgroups from data/groups.csv: skin_tone, age, glasses" run.log ||
  fail "the synthetic data's groups.csv was not used"
grep -q "Subgroups" out/report.md || fail "no subgroup section in the report"
echo "run_end_to_end: 1 passed, 0 failed"
