#!/usr/bin/env bash
# Configures and builds one kdnas configuration.
# Usage: scripts/build.sh BUILD_DIR [extra cmake args...]
#   scripts/build.sh build                                    # default: oneDNN + OpenMP (+ CUDA if found)
#   scripts/build.sh build-embedded -DKDNAS_WITH_ONEDNN=OFF -DKDNAS_WITH_CUDA=OFF
#   scripts/build.sh build-asan -DKDNAS_SANITIZE=address,undefined
set -euo pipefail
dir=${1:?usage: scripts/build.sh BUILD_DIR [cmake args...]}
shift
root=$(cd "$(dirname "$0")/.." && pwd)
cmake -S "$root" -B "$root/$dir" "$@"
cmake --build "$root/$dir" -j "$(nproc)"
