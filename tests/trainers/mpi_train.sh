#!/usr/bin/env bash
# onnxforge train under mpirun with 2 ranks (docs/DISTRIBUTED.md), on a tiny generated dataset:
#  1. equivalence: 2 ranks with global batch 9 (shards of 5 and 4 rows, class weights, gradient
#     clipping, SGD with momentum) reach one process's weights after 3 epochs within 1e-5
#     relative, with the same validation predictions in the same order; only rank 0 prints;
#     early stopping restores the best weights on every rank;
#  2. the same for transfer learning on cached features (extraction sharded, then exchanged);
#  3. resume with another number of ranks: 1 process -> 2 ranks;
#  4. faults: a rank killed (SIGKILL), aborting, or failing with an error ends the job non-zero
#     within the timeout, never a hang; the last checkpoint stays loadable and `--resume` with
#     1 process ends at the weights of the uninterrupted run;
#     errors before training (a missing config) end every rank with rank 0's line; `run`
#     under mpirun and srun without an MPI plugin are refused;
#  5. a model with batch norm trains (running statistics averaged over the ranks).
set -euo pipefail
onnxforge="$1"
mpirun="$2"
compare="$3"
# shellcheck source=SCRIPTDIR/../support/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/../support/common.sh" mpi_train
# On a failure, the end of every log too.
fail_details() { for f in *.log; do echo "== $f"; tail -n 30 "$f"; done; }

# CI runs as root on 2 cores: allow both (../shared/DEPENDENCIES.md).
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMPI_MCA_rmaps_base_oversubscribe=1
# Loopback only and quiet: the ob1 messaging layer over shared memory (single-copy off: containers
# forbid the ptrace it needs) and TCP, no InfiniBand/UCX probing.
export OMPI_MCA_pml=ob1 OMPI_MCA_btl=self,vader,tcp OMPI_MCA_btl_vader_single_copy_mechanism=none
mpi2=("$mpirun" -np 2 --oversubscribe --bind-to none)

tiny_run 40 21 12 "3, 24, 24" <<'TOML'
test = "data/faces"
label_map = "man=Male,woman=Female"
[train]
epochs = 3
batch_size = 9
seed = 7
threads = 1
# One process and 2 ranks must reach the same weights: exact f32 (auto may measure another
# per-layer mix in each run).
dtype = "fp32"
clip_norm = 0.5
class_weights = [1.0, 1.7]
[optimizer]
name = "sgd"
lr = 0.01
momentum = 0.9
TOML

# 1. one process against 2 ranks.
"$onnxforge" train tiny.toml --out single > single.log 2>&1 || fail "one process failed"
timeout 300 "${mpi2[@]}" "$onnxforge" train tiny.toml --out dist > dist.log 2>&1 ||
  fail "2 ranks failed"
"$compare" single/checkpoints/last.ckpt dist/checkpoints/last.ckpt 1e-5 >> compare.log ||
  fail "2 ranks did not reach one process's weights"
[[ $(grep -c "^Training tiny" dist.log) -eq 1 ]] || fail "more than one rank printed progress"
grep -q "Data parallel over 2 MPI ranks: 5 rows per rank" dist.log || fail "no data-parallel line"
cut -d, -f1,2 single/val/predictions.csv > single_labels.csv
cut -d, -f1,2 dist/val/predictions.csv > dist_labels.csv
cmp -s single_labels.csv dist_labels.csv || fail "validation predictions differ in order or labels"
[[ $(wc -l < dist/val/predictions.csv) -eq 22 ]] || fail "the gathered validation has not 21 rows"
[[ $(wc -l < dist/history.csv) -eq 4 ]] || fail "history is not 3 epochs"
# dtype auto: rank 0 measures each layer, every rank computes with its choices (layers.json).
timeout 300 "${mpi2[@]}" "$onnxforge" train tiny.toml --set 'train.dtype="auto"' \
  --set train.epochs=1 --out adist > adist.log 2>&1 || fail "2 ranks with dtype auto failed"
grep -q '"program": "training"' adist/layers.json || fail "no layers.json with dtype auto"
[[ -s dist/model.onnx && -s dist/test/metrics.json ]] || fail "rank 0 wrote no model or metrics"

# Early stopping restores the best weights on every rank (rank 0 reads best.ckpt, broadcasts it):
# the final validation scores, half of them computed by rank 1, match one process's.
stop=(--set early_stopping.patience=1 optimizer.lr=0.05 train.epochs=8)
"$onnxforge" train tiny.toml "${stop[@]}" --out ssingle > ssingle.log 2>&1 || fail "stop, 1 process"
timeout 300 "${mpi2[@]}" "$onnxforge" train tiny.toml "${stop[@]}" --out sdist > sdist.log 2>&1 ||
  fail "stop, 2 ranks"
# Both stop early at the same epoch and restore the same best epoch (which one depends on the
# synthetic data).
best=$(grep -o "Restored the best weights (epoch [0-9]*" ssingle.log) || fail "one process restored no weights"
grep -q "^Early stopping at epoch [1-7]:" ssingle.log || fail "one process did not stop early"
grep -q "$(grep -o "^Early stopping at epoch [0-9]*" ssingle.log)" sdist.log ||
  fail "2 ranks did not stop early at one process's epoch"
grep -qF "$best" sdist.log || fail "2 ranks did not restore one process's best epoch"
paste -d, ssingle/val/predictions.csv sdist/val/predictions.csv | tail -n +2 |
  awk -F, '{d = $3 - $6; if (d < 0) d = -d; if (d > 1e-4) bad = 1} END {exit bad}' ||
  fail "restored weights: validation scores differ between 1 process and 2 ranks"

# 2. transfer learning on cached features: a frozen VGG16 (built in, width 1) cut at block5_pool
#    (1x1x512 features at 32x32).
"$onnxforge" train tiny.toml --set transfer.backbone=vgg16 transfer.cut_at=block5_pool \
  'transfer.head_units=[8]' transfer.head_dropout=0.0 train.epochs=2 'model.input=[3,32,32]' \
  --out tsingle \
  > tsingle.log 2>&1 || fail "transfer, one process"
timeout 300 "${mpi2[@]}" "$onnxforge" train tiny.toml --set transfer.backbone=vgg16 \
  transfer.cut_at=block5_pool 'transfer.head_units=[8]' transfer.head_dropout=0.0 \
  train.epochs=2 'model.input=[3,32,32]' --out tdist > tdist.log 2>&1 || fail "transfer, 2 ranks"
grep -q "computed once" tdist.log || fail "the feature cache was not used"
"$compare" tsingle/checkpoints/last.ckpt tdist/checkpoints/last.ckpt 1e-5 >> compare.log ||
  fail "transfer: 2 ranks did not reach one process's weights"
# With dtype auto the backbone's feature Program is measured by rank 0 and compiled with its
# choices on the other ranks (trainers/distributed.hpp: compile_alike).
timeout 300 "${mpi2[@]}" "$onnxforge" train tiny.toml --set transfer.backbone=vgg16 \
  transfer.cut_at=block5_pool 'transfer.head_units=[8]' transfer.head_dropout=0.0 \
  train.epochs=1 'model.input=[3,32,32]' 'train.dtype="auto"' --out tauto > tauto.log 2>&1 ||
  fail "transfer with dtype auto, 2 ranks"
grep -q '"program": "features"' tauto/layers.json || fail "no feature layers in layers.json"

# 3. one epoch in one process, the rest with 2 ranks.
"$onnxforge" train tiny.toml --set train.epochs=1 --out switch > switch1.log 2>&1 ||
  fail "one epoch failed"
timeout 300 "${mpi2[@]}" "$onnxforge" train --resume switch --set train.epochs=3 \
  > switch2.log 2>&1 || fail "resume with 2 ranks failed"
"$compare" single/checkpoints/last.ckpt switch/checkpoints/last.ckpt 1e-5 >> compare.log ||
  fail "1 -> 2 ranks resume did not reach the uninterrupted weights"

# 4. faults. 4 steps per epoch: step 6 is in epoch 2, after the checkpoint of epoch 1.
for how in kill abort throw; do
  rc=0
  ONNXFORGE_TEST_FAIL="1:6:$how" timeout 120 "${mpi2[@]}" "$onnxforge" train tiny.toml \
    --out "crash_$how" > "crash_$how.log" 2>&1 || rc=$?
  ((rc != 0)) || fail "$how: the job succeeded although rank 1 died"
  ((rc != 124)) || fail "$how: the job hung (killed by timeout)"
  grep -q "dying ($how) at step 6" "crash_$how.log" || fail "$how: the failure was not injected"
  "$compare" "crash_$how/checkpoints/last.ckpt" "crash_$how/checkpoints/last.ckpt" 0 \
    >> compare.log || fail "$how: the last checkpoint does not load"
done
grep -q "onnxforge: error: rank 1 of 2: rank 1: ONNXFORGE_TEST_FAIL" crash_throw.log ||
  fail "an error on rank 1 was not reported with its rank"
for how in kill abort; do
  grep -q "exited on signal" "crash_$how.log" || fail "$how: mpirun did not name the dead rank"
  grep -q "rank 0 of 2 stopped by a signal in epoch 2 step 2 .*--resume crash_$how" \
    "crash_$how.log" || fail "$how: the surviving rank did not say where it stopped"
done
"$onnxforge" train --resume crash_kill > resume.log 2>&1 || fail "resume after the crash failed"
"$compare" dist/checkpoints/last.ckpt crash_kill/checkpoints/last.ckpt 1e-5 >> compare.log ||
  fail "2 -> 1 ranks resume after a crash did not reach the uninterrupted weights"

# Errors before training: rank 0's one line, a non-zero exit, no hang; srun without MPI refused.
rc=0
timeout 120 "${mpi2[@]}" "$onnxforge" train missing.toml > missing.log 2>&1 || rc=$?
((rc != 0 && rc != 124)) || fail "a missing config under mpirun: exit $rc"
grep -q "onnxforge: error: rank 0 of 2: missing.toml: config file not found" missing.log ||
  fail "a missing config under mpirun was not reported by rank 0"
rc=0
timeout 120 "${mpi2[@]}" "$onnxforge" run --out runall > runall.log 2>&1 || rc=$?
((rc != 0 && rc != 124)) && grep -q "onnxforge run is one process" runall.log ||
  fail "onnxforge run under mpirun was not refused (exit $rc)"
rc=0
SLURM_STEP_NUM_TASKS=2 "$onnxforge" train tiny.toml --out srun > srun.log 2>&1 || rc=$?
((rc != 0)) && grep -q "without MPI: use \`srun --mpi=pmix\`" srun.log ||
  fail "srun without an MPI plugin was not refused"

# 5. batch norm (the improved CNN): per-rank statistics in training, averaged running statistics.
timeout 300 "${mpi2[@]}" "$onnxforge" train tiny.toml --set model.name=improved train.epochs=1 \
  --out bn > bn.log 2>&1 || fail "the improved CNN with 2 ranks failed"
[[ -s bn/val/metrics.json ]] || fail "batch norm run wrote no metrics"

cat compare.log
echo "mpi_train: 5 passed, 0 failed"
