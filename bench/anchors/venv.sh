#!/usr/bin/env bash
# Makes (once) the Python venv for the ONNX Runtime and OpenVINO anchors and prints its python.
#
#   python="$(bench/anchors/venv.sh)"
#
# The venv lives in ${ONNXFORGE_ANCHORS_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/onnxforge-anchors/venv},
# never in the build or the source tree; the build and the tests never use it. It is made with
# Debian's /usr/bin/python3 (python3-venv) and gets `pip install onnxruntime openvino numpy`
# when one of them does not import. Progress goes to stderr; stdout is the python path only.
set -euo pipefail

venv="${ONNXFORGE_ANCHORS_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/onnxforge-anchors/venv}"
python="$venv/bin/python"
if [[ ! -x "$python" ]]; then
  echo "venv.sh: creating $venv" >&2
  mkdir -p "$(dirname "$venv")"
  if ! /usr/bin/python3 -m venv "$venv" >&2; then
    echo "venv.sh: /usr/bin/python3 -m venv failed (Debian: apt-get install python3-venv)" >&2
    exit 1
  fi
fi
if ! "$python" -c 'import onnxruntime, openvino, numpy' 2>/dev/null; then
  echo "venv.sh: pip install onnxruntime openvino numpy into $venv" >&2
  "$python" -m pip install --quiet --upgrade pip >&2 || true
  "$python" -m pip install --quiet onnxruntime openvino numpy >&2
fi
echo "$python"
