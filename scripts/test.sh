#!/usr/bin/env bash
# The whole test suite: set up and build (scripts/setup.sh), run ctest, check clang-format.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$here/scripts/setup.sh"
"$here/scripts/check-format.sh"
cd "$here/build"
ctest --output-on-failure -j "$(nproc)" --timeout 900
