#!/usr/bin/env bash
# The main job: set up and build (scripts/setup.sh), then `onnxforge run` — baseline, improved
# CNN and VGG16 transfer learning on the default synthetic data (or --data-root DIR), compared in
# one report — and say where the report is. Extra arguments go to `onnxforge run`.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$here/scripts/setup.sh"
cd "$here"
"$here/build/bin/onnxforge" run "$@"
