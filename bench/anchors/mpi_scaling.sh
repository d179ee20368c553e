#!/usr/bin/env bash
# Issue 10: data parallelism over MPI on this machine, and the numbers of docs/DISTRIBUTED.md.
#
#   bench/anchors/mpi_scaling.sh [--build-dir build] [--train 640] [--epochs 2] [--rounds 2]
#                                [--config configs/baseline.toml] [--only ranks|model]
#
# ranks  Item 5: a config (default the baseline, configs/baseline.toml, batch 32) trained on the
#        same generated data by 1 rank x 2 threads (`onnxforge train`) and by 2 ranks x 1 thread
#        (`mpirun -np 2 --bind-to core onnxforge train`), each --rounds times in ABAB order;
#        images/s of the last epoch (history.csv, training loop only), the best of each side, and
#        their ratio.
# model  Item 4: compute per training step at batch 32 on this machine (2 threads, one "node"),
#        the gradient allreduce of each model with 2 ranks over shared memory and over TCP
#        loopback, and the scaling model: per-step efficiency at 2..64 nodes of 32 images each
#        over 10, 25 and 100 Gbit/s with a ring allreduce, 2 (N-1)/N * bytes / bandwidth plus
#        2 (N-1) message latencies (alpha, default 25 us: TCP over Ethernet), no overlap (the
#        allreduce follows the backward pass).
# The load average is printed beside the numbers: compare ratios from one run.
set -euo pipefail

# shellcheck source=SCRIPTDIR/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
train=640
epochs=2
only=""
alpha_us=25
rounds=2
config="$root/configs/baseline.toml"
parse_options "usage: $0 [--build-dir DIR] [--train N] [--epochs N] [--only ranks|model]" \
  --build-dir build_dir --train train --epochs epochs --only only --rounds rounds \
  --config config --alpha-us alpha_us -- "$@"
config="$(realpath "$config")"  # a relative --config: from the folder it was given in
onnxforge="$build_dir/bin/onnxforge"
bench="$build_dir/bin/onnxforge-mpi-bench"
build_missing onnxforge onnxforge-mpi-bench
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMPI_MCA_pml=ob1 OMPI_MCA_btl_vader_single_copy_mechanism=none
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
echo "machine: $(nproc) cores; $(uptime)"

last_epoch_ips() { tail -n 1 "$1/history.csv" | awk -F, '{print $NF}'; }

if [[ -z "$only" || "$only" == ranks ]]; then
  "$onnxforge" synth --out "$work/data" --train "$train" --val 64 --test 8 --seed 1 > /dev/null
  common=(--set "train.epochs=$epochs" "data.train=\"$work/data/gender/train\""
          "data.val=\"$work/data/gender/test\"" 'data.test=""' early_stopping.patience=0)
  best1=0
  best2=0
  for round in $(seq "$rounds"); do
    "$onnxforge" train "$config" "${common[@]}" train.threads=2 \
      --out "$work/one_$round" > "$work/one_$round.log" 2>&1
    a=$(last_epoch_ips "$work/one_$round")
    mpirun -np 2 --bind-to core "$onnxforge" train "$config" "${common[@]}" \
      train.threads=1 --out "$work/two_$round" > "$work/two_$round.log" 2>&1
    b=$(last_epoch_ips "$work/two_$round")
    printf "round %d: 1 rank x 2 threads %.1f images/s, 2 ranks x 1 thread %.1f images/s (%s)\n" \
      "$round" "$a" "$b" "$(grep -o 'waited [0-9.]*s for the gradient allreduce' \
      "$work/two_$round.log" | tail -n 1), epoch $(awk -F, 'END{print $(NF-1)}' \
      "$work/two_$round/history.csv")s"
    best1=$(awk -v x="$best1" -v y="$a" 'BEGIN{print (y > x) ? y : x}')
    best2=$(awk -v x="$best2" -v y="$b" 'BEGIN{print (y > x) ? y : x}')
  done
  echo "$(basename "$config" .toml) training, $train images, epoch $epochs (best of $rounds):"
  awk -v a="$best1" -v b="$best2" 'BEGIN{
    printf "  1 rank x 2 threads   %8.1f images/s\n  2 ranks x 1 thread   %8.1f images/s\n", a, b
    printf "  ratio (2 ranks / 1 rank)  %.3f\n", b / a }'
  echo "load: $(uptime)"
fi

if [[ -z "$only" || "$only" == model ]]; then
  "$bench" compute --threads 2 --batch 32 | tee "$work/compute.txt"
  mpirun -np 2 --bind-to core --mca btl self,vader "$bench" allreduce | sed 's/$/ transport shm/' |
    tee "$work/allreduce.txt"
  mpirun -np 2 --bind-to core --mca btl self,tcp --mca btl_tcp_if_include lo "$bench" allreduce |
    sed 's/$/ transport tcp-loopback/' | tee -a "$work/allreduce.txt"
  echo "load: $(uptime)"
  /usr/bin/python3 "$here/mpi_scaling_model.py" "$work/compute.txt" "$work/allreduce.txt" "$alpha_us"
fi
