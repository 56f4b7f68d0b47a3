#!/usr/bin/env bash
# The README's test command: installs the dependencies, builds the default configuration and
# runs the whole test suite with CTest.
# Usage: scripts/test.sh [BUILD_DIR (default: build)] [extra cmake args...]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
dir=${1:-build}
[ $# -gt 0 ] && shift
"$root/scripts/install_deps.sh"
"$root/scripts/build.sh" "$dir" "$@"
cd "$root/$dir"
# OMP_WAIT_POLICY=PASSIVE: with 2 cores, spinning OpenMP threads of one test starve the other.
OMP_WAIT_POLICY=PASSIVE ctest --output-on-failure -j "$(nproc)" --timeout 900
