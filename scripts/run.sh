#!/usr/bin/env bash
# The main job: set up and build (scripts/setup.sh), then run it and say where the outputs are.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$here/scripts/setup.sh"
out="$here/runs/summary"
mkdir -p "$out"
"$here/build/bin/onnxforge" summary baseline | tee "$out/baseline.txt"
"$here/build/bin/onnxforge" summary vgg16 --input 3x100x100 > "$out/vgg16.txt"
echo
echo "run: model summaries written to $out (baseline.txt, vgg16.txt)"
