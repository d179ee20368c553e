#!/usr/bin/env bash
# The CLI on a damaged run folder: `onnxforge train --resume RUN` with a corrupted, then a
# truncated checkpoints/last.ckpt prints one error line naming the file and exits non-zero, and
# leaves the run folder exactly as it was (nothing overwritten).
set -euo pipefail
onnxforge="$1"
# shellcheck source=SCRIPTDIR/../support/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/../support/common.sh" cli_resume_corrupted
tiny_run 16 8 8 "3, 20, 20" << 'TOML'
[train]
epochs = 1
batch_size = 8
backend = "reference"
TOML
"$onnxforge" train tiny.toml --out run > train.log 2>&1 || { cat train.log; fail "training failed"; }
[[ -s run/checkpoints/last.ckpt ]] || fail "no run/checkpoints/last.ckpt"

check_refused() {  # $1: what was done to the checkpoint; $2: expected words in the message
  cp -a run before
  if "$onnxforge" train --resume run > out.log 2> err.log; then fail "$1 checkpoint accepted"; fi
  [[ $(wc -l < err.log) -eq 1 ]] || { cat err.log; fail "$1: not one error line"; }
  grep -q "run/checkpoints/last.ckpt" err.log || { cat err.log; fail "$1: file not named"; }
  grep -q "$2" err.log || { cat err.log; fail "$1: message lacks '$2'"; }
  diff -r before run > /dev/null || fail "$1: the run folder changed"
  rm -rf before
}
# One byte flipped in the middle of the tensor data.
size=$(stat -c %s run/checkpoints/last.ckpt)
byte=$(od -An -tu1 -j $((size / 2)) -N1 run/checkpoints/last.ckpt | tr -d ' ')
printf "\\x$(printf %02x $((byte ^ 255)))" |
  dd of=run/checkpoints/last.ckpt bs=1 seek=$((size / 2)) conv=notrunc status=none
check_refused corrupted "corrupted"
# Cut short (a copy from a full disk, say).
truncate -s $((size / 3)) run/checkpoints/last.ckpt
check_refused truncated "corrupted or truncated"
# Not a checkpoint at all.
echo "hello" > run/checkpoints/last.ckpt
check_refused foreign "not an onnxforge checkpoint"
echo "cli_resume_corrupted: 3 passed, 0 failed"
