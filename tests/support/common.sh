# shellcheck shell=bash disable=SC2154  # $onnxforge is the sourcing script's
# What the test scripts share (tests/*/*.sh, run by ctest as `bash SCRIPT ARGS...`), sourced
# after `set -euo pipefail`, once the script has read its arguments:
#
#   source "$(dirname "${BASH_SOURCE[0]}")/../support/common.sh" NAME
#
# gives a scratch folder $work, removed on exit and the current directory from here on, and
# `fail MESSAGE...`: prints "NAME: MESSAGE", then runs fail_details when the script defines it
# (to show its logs), and ends the test.

test_name="$1"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cd "$work" || exit 1

fail() {
  echo "$test_name: $*"
  if declare -F fail_details > /dev/null; then fail_details; fi
  exit 1
}

# tiny_run TRAIN VAL TEST INPUT: a synthetic dataset in data/ (`$onnxforge synth`, seed 5, its
# output in synth.log) and tiny.toml, training the baseline CNN at INPUT ("3, 20, 20") on its
# gender split, followed by the lines read from stdin: more [data] keys, then the script's tables.
tiny_run() {
  "$onnxforge" synth --out data --train "$1" --val "$2" --test "$3" --seed 5 > synth.log
  {
    cat << TOML
name = "tiny"
[model]
name = "baseline"
input = [$4]
[data]
train = "data/gender/train"
val = "data/gender/test"
TOML
    cat
  } > tiny.toml
}
