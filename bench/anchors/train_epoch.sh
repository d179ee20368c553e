#!/usr/bin/env bash
# Issue 5 item 8: one full training epoch of the baseline, data loading included, onnxforge vs
# PyTorch (bench/anchors/train_epoch.py: ImageFolder + DataLoader) on the same files, same run.
#
#   bench/anchors/train_epoch.sh [--data DIR] [--build-dir build] [--policies "passive active"]
#                                [--variants V1,V2,...] [--threads N]
#
# --data DIR: a folder written by `onnxforge synth --out DIR` (default: a fresh one in a temp dir,
# the default synthetic data: 2,000 train / 400 val 100x100 JPEGs). Both sides train one epoch on
# DIR/gender/train (batch 32, last partial batch dropped: 1,984 images), then score
# DIR/gender/test (400 images) once; onnxforge's test split is switched off (data.test="") since
# the anchor has none. Every side runs as its own process, timed from exec to exit:
#   epoch only     images / the training loop's seconds (onnxforge: history.csv
#                  images_per_second, from its uint8 cache decoded once before the epoch;
#                  PyTorch: DataLoader decoding every JPEG in the epoch);
#   whole process  images / wall seconds of the whole process, subtracting nothing (onnxforge:
#                  start-up, decoding train+val, compile, the epoch, validation, checkpoints,
#                  metrics/plots/report, ONNX export; PyTorch: interpreter + imports, the epoch,
#                  validation, saving the state_dict);
#   CPU time       images / (user + sys) seconds of the whole process: what a loaded machine
#                  (load average above the core count) distorts least.
# Each side is run under each OpenMP wait policy in --policies (libgomp: both sides use it), and
# PyTorch in each DataLoader/memory-format variant; each side keeps its best per row.
set -euo pipefail

# shellcheck source=SCRIPTDIR/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
data=""
policies="passive active"
variants="workers0-channels_last,workers2-channels_last,workers2-contiguous"
threads="$(nproc)"
usage="usage: $0 [--data DIR] [--build-dir DIR] [--policies \"passive active\"]"
parse_options "$usage [--variants V1,V2] [--threads N]" --data data --build-dir build_dir \
  --policies policies --variants variants --threads threads -- "$@"

onnxforge="$build_dir/bin/onnxforge"
build_missing onnxforge
if ! /usr/bin/python3 -c 'import torch, torchvision' 2>/dev/null; then
  if [[ $(id -u) -eq 0 ]]; then
    echo "train_epoch: installing python3-torch python3-torchvision libopenblas0-pthread" >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-torch python3-torchvision \
      libopenblas0-pthread >/dev/null
  else
    echo "train_epoch: install python3-torch python3-torchvision libopenblas0-pthread" >&2
    exit 1
  fi
fi
# OpenBLAS 0.3.21 misdetects AVX-512 Xeons (Prescott kernels): give it its best kernel there.
if grep -q avx512f /proc/cpuinfo; then export OPENBLAS_CORETYPE=SKYLAKEX; fi

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
if [[ -z "$data" ]]; then
  data="$work/synthetic"
  "$onnxforge" synth --out "$data" >/dev/null
fi
train="$data/gender/train"
val="$data/gender/test"
for d in "$train" "$val"; do
  [[ -d "$d" ]] || { echo "train_epoch: $d is missing (write it with onnxforge synth)" >&2; exit 1; }
done
cat "$train"/*/* "$val"/*/* >/dev/null  # both sides read from the page cache

loadavg() { cut -d' ' -f1-3 /proc/loadavg; }
# timed OUT_PREFIX CMD...: runs CMD, stdout+stderr to OUT_PREFIX.log, "wall user sys" to .time
timed() {
  local prefix="$1"; shift
  local TIMEFORMAT='%R %U %S'
  { time "$@" >"$prefix.log" 2>&1; } 2>"$prefix.time"
}

echo "train epoch: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)," \
     "$(date -u +%FT%TZ), load $(loadavg)"
results="$work/results.tsv"  # side setting images epoch_ips wall user sys
for policy in $policies; do
  export OMP_WAIT_POLICY="$policy"
  run="$work/onnxforge-$policy"
  echo "  onnxforge train (OMP_WAIT_POLICY=$policy), load $(loadavg)" >&2
  timed "$run" "$onnxforge" train "$root/configs/baseline.toml" --threads "$threads" \
    --set train.epochs=1 --set "data.train=\"$train\"" --set "data.val=\"$val\"" \
    --set 'data.test=""' --out "$run"
  # history.csv: epoch,train_loss,train_accuracy,val_loss,val_accuracy,lr,seconds,images_per_second
  ips="$(tail -n1 "$run/history.csv" | cut -d, -f8)"
  secs="$(tail -n1 "$run/history.csv" | cut -d, -f7)"
  # images trained = 32 x full batches
  images="$(grep -o '[0-9]* train /' "$run.log" | head -n1 | awk '{print int($1 / 32) * 32}')"
  read -r wall user sys <"$run.time"
  printf 'onnxforge\t%s\t%s\t%s\t%s\t%s\t%s\n' "$policy" "$images" "$ips" "$wall" "$user" "$sys" \
    >>"$results"
  for v in ${variants//,/ }; do
    out="$work/torch-$v-$policy"
    echo "  PyTorch $v (OMP_WAIT_POLICY=$policy), load $(loadavg)" >&2
    timed "$out" /usr/bin/python3 "$here/train_epoch.py" "$train" --val "$val" --variants "$v" \
      --threads "$threads" --save "$out.model"
    line="$(grep '^RESULT ' "$out.log")" || { cat "$out.log" >&2; exit 1; }
    images="$(sed -E 's/.* images=([0-9]+).*/\1/' <<<"$line")"
    ips="$(sed -E 's/.* images_per_second=([0-9.]+).*/\1/' <<<"$line")"
    read -r wall user sys <"$out.time"
    printf 'PyTorch\t%s, %s\t%s\t%s\t%s\t%s\t%s\n' "$v" "$policy" "$images" "$ips" "$wall" "$user" \
      "$sys" >>"$results"
  done
done
echo "done $(date -u +%FT%TZ), load $(loadavg)"
echo
echo "every process (images trained, epoch-only images/s, wall / user / sys seconds):"
awk -F'\t' '{printf "  %-9s %-36s %5d  %8.2f img/s  wall %7.2f  user %7.2f  sys %6.2f\n",
             $1, $2, $3, $4, $5, $6, $7}' "$results"
echo
awk -F'\t' '
  function keep(view, value, setting) {
    if (!(($1, view) in best) || value > best[$1, view]) { best[$1, view] = value; how[$1, view] = setting }
  }
  { keep("epoch", $4, $2); keep("wall", $3 / $5, $2); keep("cpu", $3 / ($6 + $7), $2) }
  END {
    split("epoch wall cpu", views, " ")
    label["epoch"] = "epoch only (training loop)"
    label["wall"] = "whole process, wall time"
    label["cpu"] = "whole process, CPU time (user+sys)"
    printf "| images/s | onnxforge | PyTorch best | ratio |\n| --- | ---: | ---: | ---: |\n"
    for (i = 1; i <= 3; i++) {
      v = views[i]
      printf "| %s | %.1f (%s) | %.1f (%s) | **%.2fx** |\n", label[v], best["onnxforge", v],
             how["onnxforge", v], best["PyTorch", v], how["PyTorch", v],
             best["onnxforge", v] / best["PyTorch", v]
    }
    print "target: epoch >= 2x PyTorch"
  }' "$results"
