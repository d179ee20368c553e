# shellcheck shell=bash
# What the anchor scripts share (bench/anchors/*.sh), sourced after `set -euo pipefail`:
#
#   source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
#
# sets here (bench/anchors), root (the source tree) and build_dir (root/build, the default of
# --build-dir), and defines parse_options and build_missing.
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
build_dir="$root/build"

# parse_options UNKNOWN [OPTION VARIABLE | OPTION VARIABLE=VALUE]... -- ARGUMENT...: the command
# line. An OPTION among the ARGUMENTs sets its VARIABLE to the argument after it, or to VALUE
# where one is given (a flag); any other argument is printed through the printf format UNKNOWN
# (a usage line, or a message with a %s for the argument) to stderr, and the script exits 2.
parse_options() {
  local unknown="$1" i target
  local -a options=()
  shift
  while [[ "$1" != -- ]]; do
    options+=("$1" "$2")
    shift 2
  done
  shift
  while (($#)); do
    for ((i = 0; i < ${#options[@]}; i += 2)); do
      [[ "$1" == "${options[i]}" ]] && break
    done
    if ((i == ${#options[@]})); then
      # shellcheck disable=SC2059
      printf "$unknown\n" "$1" >&2
      exit 2
    fi
    target="${options[i + 1]}"
    if [[ "$target" == *=* ]]; then
      printf -v "${target%%=*}" '%s' "${target#*=}"
      shift
    else
      printf -v "$target" '%s' "$2"
      shift 2
    fi
  done
}

# build_missing TARGET...: builds each build_dir/bin/TARGET that is not there yet.
build_missing() {
  local target
  for target; do
    [[ -x "$build_dir/bin/$target" ]] || cmake --build "$build_dir" -j2 --target "$target" > /dev/null
  done
}
