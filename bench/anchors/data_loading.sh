#!/usr/bin/env bash
# Data loading, onnxforge vs OpenCV-Python, on the same files in the same run:
#   first epoch  decode + resize (180x180 JPEG -> 100x100 RGB) with 1 and 2 threads;
#   later epochs augment + normalise + batch (64) from the in-memory cache, 1 and 2 threads.
# Prints both rates side by side and their ratio (> 1: onnxforge is faster), and the CPU time per
# image of each process (all its threads) with its ratio, which a busy machine disturbs less.
#   bench/anchors/data_loading.sh [--build-dir DIR] [--count N] [--repeat R] [--epochs E]
set -euo pipefail
# shellcheck source=SCRIPTDIR/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
count=2000
repeat=3
epochs=3
parse_options "usage: $0 [--build-dir DIR] [--count N] [--repeat R] [--epochs E]" \
  --build-dir build_dir --count count --repeat repeat --epochs epochs -- "$@"
bench="$build_dir/bin/onnxforge-data-bench"
build_missing onnxforge-data-bench
if ! /usr/bin/python3 -c 'import cv2, numpy' 2>/dev/null; then
  echo "data_loading: installing python3-opencv for the anchor" >&2
  sudo_cmd=()
  [[ $(id -u) -eq 0 ]] || sudo_cmd=(sudo)
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq python3-opencv >/dev/null
fi

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
"$bench" --prepare "$work/faces180" --count "$count" --side 180 >/dev/null
cat "$work"/faces180/*/*.jpg >/dev/null  # both sides read from the page cache

echo "data loading: $count 180x180 JPEGs -> 100x100, $(nproc) cores, $(date -u +%FT%TZ)"
ours="$("$bench" "$work/faces180" --repeat "$repeat" --epochs "$epochs" --batch 64)"
theirs="$(/usr/bin/python3 "$here/data_loading.py" "$work/faces180" \
          --repeat "$repeat" --epochs "$epochs" --batch 64)"

# ours:   "first epoch (...), threads=T: R images/s" / "cached epochs (...), loader threads=T: R images/s"
# theirs: "RESULT decode threads=T R" / "RESULT cached threads=T R"
rate() {  # $1 = decode|cached, $2 = threads, from "$ours"
  local pattern="first epoch"
  [[ "$1" == cached ]] && pattern="cached epochs"
  grep "^$pattern" <<<"$ours" | grep "threads=$2:" | sed -E 's/.*: ([0-9]+) images\/s.*/\1/'
}
anchor() { grep "^RESULT $1 threads=$2 " <<<"$theirs" | awk '{print $4}'; }
# CPU microseconds per image (all threads of the process): less sensitive to a busy machine.
rate_cpu() {
  local pattern="first epoch"
  [[ "$1" == cached ]] && pattern="cached epochs"
  grep "^$pattern" <<<"$ours" | grep "threads=$2:" | sed -E 's/.*\(([0-9]+) us CPU per image.*/\1/'
}
anchor_cpu() { grep "^RESULT $1 threads=$2 " <<<"$theirs" | awk '{print $5}'; }

printf '%-44s %12s %14s %7s   %s\n' "images/s" "onnxforge" "OpenCV-Python" "ratio" \
  "CPU us/image: onnxforge, OpenCV-Python, ratio"
for kind in decode cached; do
  for threads in 1 2; do
    label="first epoch: decode+resize, $threads thread(s)"
    [[ $kind == cached ]] && label="cached epochs: augment+normalise+batch, $threads"
    a="$(rate "$kind" "$threads")"
    b="$(anchor "$kind" "$threads")"
    ca="$(rate_cpu "$kind" "$threads")"
    cb="$(anchor_cpu "$kind" "$threads")"
    printf '%-44s %12s %14s %7s   %s, %s, %s\n' "$label" "$a" "$b" \
      "$(awk -v a="$a" -v b="$b" 'BEGIN{printf "%.2fx", a/b}')" "$ca" "$cb" \
      "$(awk -v a="$ca" -v b="$cb" 'BEGIN{printf "%.2fx", b/a}')"
  done
done
echo "target: cached epochs >= 20000 images/s on 2 threads"
echo "load average while measuring: $(cut -d' ' -f1-3 /proc/loadavg) (a busy machine lowers both sides)"
echo "onnxforge-data-bench said:"
sed 's/^/  /' <<<"$ours"
