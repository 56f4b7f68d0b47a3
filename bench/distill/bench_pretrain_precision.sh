#!/usr/bin/env bash
# MLM pretraining throughput and loss, f32 against --precision bf16 (bf16 training GEMMs with f32
# accumulation and f32 master weights; AMX where the CPU has it), at the shipped teacher's shape
# (models/teacher/config.json: 6 layers, hidden 256, 4 heads, FFN 1024, vocabulary 8002) and its
# tokenizer, batch 64 x 64 tokens. Every sequence is full: each corpus line is long enough to
# fill 64 tokens.
#
# The runs alternate (f32, bf16, f32, bf16, ...: ROUNDS of each, default 2) so that a machine
# shared with other work slows both alike. Each run: STEPS steps (default 30) from the same seed,
# --log-every 1; per run it prints the median step time and tokens/s over the steps after the
# first `warm` (oneDNN primitive creation, first touch of the optimizer state), the mean MLM
# loss of the last 5 steps and the held-out MLM loss at the end (evaluated in f32 for both);
# then the medians over the runs of each precision and the bf16 / f32 speed ratio.
#
# DISTILL=1 (the default; 0 skips it) adds the same comparison for one distillation recipe: the
# shipped teacher itself (models/teacher, its hidden states in bf16 on the inference path,
# --teacher-dtype bf16, in both runs) into the demo's first student shape 2,192,2,512 with loss
# hs, batch 64 x 64 tokens; --precision changes only the student's GEMMs.
# Usage: [ROUNDS=2] [DISTILL=1] [KEEP=1] bench/distill/bench_pretrain_precision.sh [KDNAS_BINARY
#        (build/apps/kdnas)] [THREADS (2)] [STEPS (30)]
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
kdnas=${1:-$root/build/apps/kdnas}
threads=${2:-2}
steps=${3:-30}
rounds=${ROUNDS:-2}
warm=3
[ -x "$kdnas" ] || { echo "bench_pretrain_precision: no kdnas binary at $kdnas (build first)" >&2; exit 1; }
work=$(mktemp -d)
trap '[ -n "${KEEP:-}" ] || rm -rf "$work"' EXIT

# Lines of 8 consecutive sentences of the multilingual sample (one line per starting sentence):
# longer than 64 tokens, so every batch is 64 x 64 real tokens.
corpus=$root/tests/data/corpus/multilingual_sample.txt
awk '{ s[NR] = $0 } END { for (i = 1; i <= NR; ++i) { line = s[i];
       for (j = 1; j < 8; ++j) line = line " " s[(i + j - 1) % NR + 1]; print line } }' \
  "$corpus" >"$work/long.txt"

# kdnas pretrain / distill at PRECISION into $work/KIND-PRECISION-N.
train() {  # train KIND PRECISION N
  local common=(--corpus "$work/long.txt" --batch 64 --seq 64 --steps "$steps" --log-every 1
                --threads "$threads" --seed 1 --precision "$2" --out "$work/$1-$2-$3")
  if [ "$1" = pretrain ]; then
    OMP_WAIT_POLICY=PASSIVE "$kdnas" pretrain --config "$root/models/teacher/config.json" \
      --tokenizer "$root/models/teacher/sentencepiece.bpe.model" "${common[@]}" >/dev/null
  else
    OMP_WAIT_POLICY=PASSIVE "$kdnas" distill --teacher "$root/models/teacher" --teacher-dtype bf16 \
      --arch 2,192,2,512 --loss hs "${common[@]}" >/dev/null
  fi
}

run() {  # run KIND PRECISION N: one training run and its line in $work/KIND.txt
  train "$1" "$2" "$3"
  local log=$work/$1-$2-$3/log.jsonl
  # Per-step wall seconds: with --log-every 1 a row's tokens_per_s is that step's tokens over
  # its wall time.
  sed -n 's/^{"step":\([0-9]*\),.*"tokens":\([0-9]*\),.*"tokens_per_s":\([0-9.e+]*\).*/\1 \2 \3/p' \
    "$log" | awk -v warm="$warm" '$1 > warm { print $2 / $3, $2 }' | sort -g >"$work/steps.txt"
  local loss eval
  loss=$(sed -n 's/^{"step":\([0-9]*\),"loss":\([^,]*\),.*/\2/p' "$log" | tail -5 |
         awk '{ s += $1 } END { printf "%.4f", s / NR }')
  eval=$(sed -n 's/.*"eval_loss":\([^,]*\),.*/\1/p' "$log" | tail -1)
  awk -v p="$2" -v n="$3" -v loss="$loss" -v ev="$eval" '{ s[NR] = $1; t += $1; tok += $2 }
       END { printf "%s run %d: median step %.0f ms (min %.0f, max %.0f), %.0f tokens/s; " \
                    "loss (last 5 steps) %s, held-out %.4f\n",
                    p, n, 1e3 * s[int((NR + 1) / 2)], 1e3 * s[1], 1e3 * s[NR], tok / t, loss, ev }' \
    "$work/steps.txt" | tee -a "$work/$1.txt"
}

# Medians over the runs of each precision in $work/KIND.txt, and the ratio.
summary() {
  awk '{ p = $1; ms[p, ++n[p]] = $6; tps[p, n[p]] = $12; loss[p, n[p]] = $18; ev[p, n[p]] = $20 }
       function med(a, p,   i, j, v, t, c) {
         c = n[p]; for (i = 1; i <= c; ++i) v[i] = a[p, i] + 0
         for (i = 1; i <= c; ++i) for (j = i + 1; j <= c; ++j) if (v[j] < v[i]) { t = v[i]; v[i] = v[j]; v[j] = t }
         return c % 2 ? v[(c + 1) / 2] : (v[c / 2] + v[c / 2 + 1]) / 2 }
       END {
         for (k = 0; k < 2; ++k) { p = k ? "bf16" : "f32"
           printf "%s median of %d runs: step %.0f ms, %.0f tokens/s, loss %.4f, held-out %.4f\n",
                  p, n[p], med(ms, p), med(tps, p), med(loss, p), med(ev, p) }
         printf "bf16 / f32 tokens/s: %.2fx\n", med(tps, "bf16") / med(tps, "f32") }' "$work/$1.txt"
}

echo "MLM pretraining, teacher shape 6L/256H/4 heads/FFN 1024, vocab 8002, batch 64 x 64 tokens,"
echo "$steps steps from seed 1 per run (first $warm untimed), $threads threads, $kdnas"
for n in $(seq 1 "$rounds"); do
  run pretrain f32 "$n"
  run pretrain bf16 "$n"
done
summary pretrain

if [ "${DISTILL:-1}" = 1 ]; then
  echo
  echo "distillation: models/teacher (hidden states in bf16 on the inference path) into 2,192,2,512,"
  echo "loss hs, batch 64 x 64 tokens, $steps steps from seed 1 per run, $threads threads"
  for n in $(seq 1 "$rounds"); do
    run distill f32 "$n"
    run distill bf16 "$n"
  done
  summary distill
fi
[ -n "${KEEP:-}" ] && echo "work directory kept: $work"
