#!/usr/bin/env bash
# The README's main command: installs the dependencies, builds, builds the corpus if it is
# missing (scripts/build_corpus.sh, docs/data.md), then runs `kdnas demo` (docs/demo.md) with the
# shipped teacher models/teacher/ on the real data: a KD-NAS search, the best architectures
# distilled, teacher and students fine-tuned on both tasks, one table of latency and accuracy.
# Until a teacher ships, it says so in one line (with the recipe to train one) and runs the kernel
# benchmark suite instead, as before.
# Usage: scripts/demo.sh [kdnas demo flags, e.g. --quick]      (with models/teacher/)
#        scripts/demo.sh [Google Benchmark flags]               (without: the fallback)
# Environment: KDNAS_TEACHER (default models/teacher), KDNAS_DEMO_OUT (default out/demo; a run
# there is continued with --resume).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
"$root/scripts/install_deps.sh"
"$root/scripts/build.sh" build
teacher=${KDNAS_TEACHER:-$root/models/teacher}
data=$root/data
if [ ! -s "$data/corpus/train.text.txt" ] || [ ! -s "$data/tasks/langid/train.tsv" ] ||
   [ ! -s "$data/tasks/pairs/train.tsv" ]; then
  echo
  echo "== building the corpus and the tasks (scripts/build_corpus.sh, docs/data.md) =="
  if ! "$root/scripts/build_corpus.sh"; then
    [ -d "$teacher" ] && { echo "demo: error: the corpus could not be built" >&2; exit 1; }
    echo "demo: the corpus could not be built (it needs apt-get and npm with network access)"
  fi
fi

if [ -d "$teacher" ]; then
  run=${KDNAS_DEMO_OUT:-$root/out/demo}
  resume=()
  [ -f "$run/command.json" ] && resume=(--resume)
  echo
  echo "== kdnas demo: teacher $teacher, run directory $run =="
  exec "$root/build/apps/kdnas" demo --teacher "$teacher" --corpus "$data/corpus/train.text.txt" \
    --langid "$data/tasks/langid" --pairs "$data/tasks/pairs" --out "$run" "${resume[@]}" "$@"
fi

echo
echo "demo: no shipped teacher yet ($teacher is missing), so kdnas demo cannot run; train one with" \
  "'kdnas tokenizer-train --input data/corpus/train.txt --input-column 1 --vocab 8000 --out" \
  "data/tokenizer/kdnas-8k.model' then 'kdnas pretrain --config CONFIG.json --tokenizer" \
  "data/tokenizer/kdnas-8k.model --corpus data/corpus/train.text.txt --steps N --out" \
  "models/teacher' (docs/demo.md) and rerun; running the kernel benchmarks instead."
echo
echo "== kdnas kernel benchmarks (2 threads; KDNAS_BENCH_THREADS to change) =="
OMP_WAIT_POLICY=PASSIVE "$root/build/bench/kdnas_bench" --benchmark_min_time=0.2 "$@"
