#!/usr/bin/env bash
# Side by side, in one run: onnxforge-bench (oneDNN backend) and the PyTorch / OpenCV-DNN anchors
# (bench/anchors/torch_models.py) on the same networks, with ratios and fraction of peak.
#
#   bench/anchors/compare.sh [--build-dir build] [--min-time 3] [--threads N]
#
# Needs Debian's python3-torch, libopenblas0-pthread and python3-opencv (/usr/bin/python3);
# installs them with apt when missing and running as root. OpenBLAS is given its best kernel
# (OPENBLAS_CORETYPE=SKYLAKEX on AVX-512 CPUs, which 0.3.21 misdetects; auto elsewhere).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
build_dir="$root/build"
min_time=3
threads="$(nproc)"
while [[ $# -gt 0 ]]; do
  case "$1" in
    --build-dir) build_dir="$2"; shift 2 ;;
    --min-time) min_time="$2"; shift 2 ;;
    --threads) threads="$2"; shift 2 ;;
    *) echo "compare.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done

bench="$build_dir/bin/onnxforge-bench"
if [[ ! -x "$bench" ]]; then
  echo "compare.sh: $bench not found; build it: cmake --build $build_dir --target onnxforge-bench" >&2
  exit 1
fi
if ! /usr/bin/python3 -c "import torch, cv2" 2>/dev/null; then
  if [[ $(id -u) -eq 0 ]]; then
    apt-get install -y python3-torch libopenblas0-pthread python3-opencv >&2
  else
    echo "compare.sh: install python3-torch libopenblas0-pthread python3-opencv" >&2
    exit 1
  fi
fi
if grep -q avx512f /proc/cpuinfo; then export OPENBLAS_CORETYPE=SKYLAKEX; fi

out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT
echo "== $(date -u +%FT%TZ), $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), load $(cut -d' ' -f1-3 /proc/loadavg)" >&2
# Both sides run under both OpenMP wait policies (libgomp reads it at start-up; on a busy machine
# spinning threads lose their time slices, passive ones do not); each keeps its best.
for policy in active passive; do
  echo "== onnxforge-bench (threads $threads, OMP_WAIT_POLICY=$policy)" >&2
  OMP_WAIT_POLICY="$policy" ONNXFORGE_THREADS="$threads" "$bench" \
    --benchmark_min_time="$min_time" --benchmark_format=json \
    --benchmark_out="$out/onnxforge-$policy.json" --benchmark_out_format=json >&2
  echo "== PyTorch / OpenCV anchors (threads $threads, OMP_WAIT_POLICY=$policy)" >&2
  OMP_WAIT_POLICY="$policy" OMP_NUM_THREADS="$threads" /usr/bin/python3 "$here/torch_models.py" \
    --threads "$threads" --min-time "$min_time" > "$out/anchors-$policy.jsonl"
done
echo "== done $(date -u +%FT%TZ), load $(cut -d' ' -f1-3 /proc/loadavg)" >&2

/usr/bin/python3 - "$out" <<'EOF'
import json, sys
out = sys.argv[1]
ours, our_setting, anchors = {}, {}, {}
for policy in ["active", "passive"]:
    for b in json.load(open(f"{out}/onnxforge-{policy}.json"))["benchmarks"]:
        # "BM_X/fp32/min_time:5.000/real_time" -> "BM_X/fp32"
        name = "/".join(p for p in b["name"].split("/")
                        if not p.startswith("min_time") and p != "real_time")
        rate = None if b.get("error_occurred") else b.get("items_per_second")
        if rate and (ours.get(name) is None or rate > ours[name]):
            ours[name], our_setting[name] = rate, f"OMP_WAIT_POLICY={policy}"
        ours.setdefault(name, None)
    for line in open(f"{out}/anchors-{policy}.jsonl"):
        a = json.loads(line)
        a["setting"] = f"{a['setting']}, OMP_WAIT_POLICY={policy}"
        key = "images_per_second" if "images_per_second" in a else "flops_per_second"
        if a["name"] not in anchors or a[key] > anchors[a["name"]][key]:
            anchors[a["name"]] = a

# VGG16 features at 3x100x100: 2 * sum(Cin * Cout * 9 * H * W) over the 13 convolutions.
def vgg16_flops():
    total, c, h = 0, 3, 100
    for filters, convs in [(64, 2), (128, 2), (256, 3), (512, 3), (512, 3)]:
        for _ in range(convs):
            total += 2 * c * filters * 9 * h * h
            c = filters
        h //= 2
    return total
flops = vgg16_flops()
peak = ours.get("BM_MatmulPeak/fp32")

def fmt(v, unit=""):
    return "n/a" if v is None else f"{v:,.1f}{unit}"

rows = [
    ("baseline train step, batch 32 (images/s)", "BM_BaselineTrainStep", "BM_BaselineTrainStep", ">= 2x"),
    ("baseline inference (images/s)", "BM_BaselineInfer", "BM_BaselineInfer", ">= 1.5x"),
    ("VGG16 features fp32, batch 32 (images/s)", "BM_Vgg16Features/fp32", "BM_Vgg16Features/fp32", ">= 1x"),
    ("VGG16 features bf16, batch 32 (images/s)", "BM_Vgg16Features/bf16", "BM_Vgg16Features/fp32", "only if faster"),
    ("VGG16 features vs OpenCV DNN (images/s)", "BM_Vgg16Features/fp32", "OpenCV_Vgg16Features", ">= 3x"),
]
print(f"| workload | onnxforge | anchor (best setting) | ratio | target |")
print(f"| --- | ---: | ---: | ---: | --- |")
for label, mine, theirs, target in rows:
    a = anchors.get(theirs)
    av = a and a.get("images_per_second")
    ratio = f"{ours[mine] / av:.2f}x" if ours.get(mine) and av else "n/a"
    setting = f" ({a['setting']})" if a else ""
    print(f"| {label} | {fmt(ours.get(mine))} ({our_setting.get(mine, 'skipped')}) | "
          f"{fmt(av)}{setting} | {ratio} | {target} |")
for name in ["BM_MatmulPeak/fp32", "BM_MatmulPeak/bf16"]:
    a = anchors.get(name)
    av = a and a.get("flops_per_second")
    mv = ours.get(name)
    ratio = f"{mv / av:.2f}x" if mv and av else "n/a"
    print(f"| matmul 2048^3 {name[-4:]} (GFLOP/s) | {fmt(mv and mv / 1e9)} | "
          f"{fmt(av and av / 1e9)} ({a['setting'] if a else ''}) | {ratio} | - |")
if peak:
    for name in ["BM_Vgg16Features/fp32", "BM_Vgg16Features/bf16"]:
        if ours.get(name):
            print(f"\n{name}: {ours[name] * flops / 1e9:.1f} GFLOP/s "
                  f"({flops / 1e9:.2f} GFLOP per image) = {ours[name] * flops / peak:.0%} of the "
                  f"oneDNN fp32 matmul ({peak / 1e9:.1f} GFLOP/s)")
    a = anchors.get("BM_Vgg16Features/fp32")
    if a:
        print(f"PyTorch VGG16: {a['images_per_second'] * flops / 1e9:.1f} GFLOP/s = "
              f"{a['images_per_second'] * flops / peak:.0%} of that matmul")
for name, a in anchors.items():
    if "all" in a:
        print(f"anchor {name}: " + ", ".join(f"{k} {v:,.1f}" for k, v in a["all"].items()))
EOF
