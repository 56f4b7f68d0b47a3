#!/usr/bin/env bash
# Training throughput of one distillation step (issue: "Benchmark" of the distillation issue):
# a 6-layer / 384 hidden / 12 heads / FFN 1536 student learning from an XLM-R-Base-shaped teacher
# (random weights, vocabulary 250 002), batch 8 x 128 tokens, loss "hs" (uniform+last map).
# Every sequence is full: each corpus line is long enough to fill 128 tokens.
#
# Reports the median wall time of a step and tokens/s over the timed steps (the first
# `warm` steps are left out: first-touch of the optimizer state, oneDNN primitive creation).
# Usage: [TEACHER_DTYPE=f32|bf16] [KEEP=1] bench/distill/bench_distill_step.sh [KDNAS_BINARY
#        (build/apps/kdnas)] [THREADS (2)] [STEPS (12)]
# TEACHER_DTYPE picks the teacher's inference path (kdnas distill --teacher-dtype); KEEP=1 keeps
# the work directory (teacher, run, log.jsonl) and prints where it is.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
kdnas=${1:-$root/build/apps/kdnas}
threads=${2:-2}
steps=${3:-12}
warm=2
[ -x "$kdnas" ] || { echo "bench_distill_step: no kdnas binary at $kdnas (build first)" >&2; exit 1; }
command -v spm_train >/dev/null || { echo "bench_distill_step: needs spm_train (sentencepiece)" >&2; exit 1; }
work=$(mktemp -d)
trap '[ -n "${KEEP:-}" ] || rm -rf "$work"' EXIT

# A small tokenizer (the teacher's vocabulary size is what costs, not the tokenizer's) and lines
# of 20 consecutive sentences each (one line per starting sentence), so that every sequence is
# truncated at 128 tokens and every batch is full.
spm_train --input="$root/tests/data/corpus/tiny.txt" --model_prefix="$work/tok" --vocab_size=200 \
  --model_type=unigram --num_threads=1 --hard_vocab_limit=false --random_seed=7 >/dev/null 2>&1
awk '{ s[NR] = $0 } END { for (i = 1; i <= NR; ++i) { line = s[i];
       for (j = 1; j < 20; ++j) line = line " " s[(i + j - 1) % NR + 1]; print line } }' \
  "$root/tests/data/corpus/tiny.txt" >"$work/long.txt"
"$kdnas" init --config "$root/tests/data/configs/xlmr-base.json" --out "$work/teacher" \
  --tokenizer "$work/tok.model" --seed 1 >/dev/null

OMP_WAIT_POLICY=PASSIVE "$kdnas" distill --teacher "$work/teacher" --arch 6,384,12,1536 \
  --corpus "$work/long.txt" --teacher-dtype "${TEACHER_DTYPE:-f32}" --batch 8 --seq 128 \
  --steps "$steps" --log-every 1 --threads "$threads" \
  --seed 1 --out "$work/run" >/dev/null

# Per-step wall seconds from log.jsonl, the warm-up steps left out: with --log-every 1 a row's
# tokens_per_s is that step's real tokens over its wall time.
sed -n 's/^{"step":\([0-9]*\),.*"tokens":\([0-9]*\),"tokens_per_s":\([0-9.e+]*\).*/\1 \2 \3/p' \
  "$work/run/log.jsonl" | awk -v warm="$warm" '$1 > warm { print $2 / $3, $2 }' | sort -g >"$work/steps.txt"
[ -s "$work/steps.txt" ] || { echo "bench_distill_step: no timed steps in log.jsonl" >&2; exit 1; }
echo "distillation step: student 6L/384H/12 heads/FFN 1536, teacher XLM-R Base shape (random),"
echo "batch 8 x 128 tokens, loss hs (uniform+last), teacher ${TEACHER_DTYPE:-f32}, $threads threads"
[ -n "${KEEP:-}" ] && echo "work directory kept: $work"
awk '{ s[NR] = $1; t += $1; tok += $2 }
     END { printf "%d timed steps: median %.0f ms, min %.0f ms, max %.0f ms; %.0f tokens/s\n",
                  NR, 1e3 * s[int((NR + 1) / 2)], 1e3 * s[1], 1e3 * s[NR], tok / t }' "$work/steps.txt"
