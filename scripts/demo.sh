#!/usr/bin/env bash
# The README's main command. Until `kdnas demo` exists, the main job is the kernel benchmark
# suite: install, build, validate every kernel against its reference and time it.
# Usage: scripts/demo.sh [extra Google Benchmark flags, e.g. --benchmark_filter=matmul]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
"$root/scripts/install_deps.sh"
"$root/scripts/build.sh" build
echo
echo "== kdnas kernel benchmarks (2 threads; KDNAS_BENCH_THREADS to change) =="
OMP_WAIT_POLICY=PASSIVE "$root/build/bench/kdnas_bench" --benchmark_min_time=0.2 "$@"
