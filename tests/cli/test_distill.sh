#!/usr/bin/env bash
# End-to-end test of `kdnas distill` at tiny size: a random tiny teacher with a tokenizer trained
# on the test corpus; a few hundred steps must at least halve the loss; a run killed with
# SIGKILL and resumed from its checkpoint must log the same per-step losses as an uninterrupted
# run; bad input gives one error line and a non-zero exit.
# Usage: tests/cli/test_distill.sh KDNAS_BINARY TINY_CONFIG.json CORPUS.txt
# Needs spm_train (Debian's sentencepiece) for the tokenizer; exits 77 (skipped) without it.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
kdnas=$1 config=$2 corpus=$3
work=$(mktemp -d)
bg=
trap '[ -n "$bg" ] && kill -9 "$bg" 2>/dev/null; rm -rf "$work"' EXIT

if ! command -v spm_train >/dev/null; then
  echo "SKIP: spm_train (sentencepiece) is not installed"
  exit 77
fi
spm_train --input="$corpus" --model_prefix="$work/tok" --vocab_size=200 --model_type=unigram \
  --num_threads=1 --hard_vocab_limit=false --random_seed=7 >/dev/null 2>&1
"$kdnas" init --config "$config" --out "$work/teacher" --tokenizer "$work/tok.model" --seed 1

# The recipe every run below shares: a 2-layer, hidden-32 student, 16 sentences of <= 32 tokens.
common=(--teacher "$work/teacher" --arch 2,32,2,64 --corpus "$corpus" --batch 16 --seq 32
        --lr 1e-3 --seed 5 --threads 1)

# 1. The loss at least halves in 300 steps.
start=$(date +%s.%N)
"$kdnas" distill "${common[@]}" --steps 300 --log-every 10 --out "$work/run" >"$work/run.txt"
end=$(date +%s.%N)
first=$(losses "$work/run/log.jsonl" | head -1 | cut -d' ' -f2)
last=$(losses "$work/run/log.jsonl" | tail -1 | cut -d' ' -f2)
echo "loss $first -> $last in 300 steps ($(echo "$end - $start" | bc) s)"
awk -v a="$first" -v b="$last" 'BEGIN { exit !(b <= a / 2) }' || fail "loss did not halve: $first -> $last"
grep -q '"eval_loss"' "$work/run/log.jsonl" || fail "no evaluation row in log.jsonl"
for f in config.json model.safetensors sentencepiece.bpe.model train_state.safetensors train_state.json; do
  [ -s "$work/run/$f" ] || fail "the output directory has no $f"
done
"$kdnas" info "$work/run" | grep -q "^parameters" || fail "the student directory does not load"

# 2. Kill -9 and resume: the same per-step losses as an uninterrupted run.
steps=600
"$kdnas" distill "${common[@]}" --steps $steps --log-every 1 --save-every 50 --out "$work/full" >/dev/null
"$kdnas" distill "${common[@]}" --steps $steps --log-every 1 --save-every 50 --out "$work/killed" >/dev/null &
bg=$!
for _ in $(seq 1 2000); do
  [ -f "$work/killed/train_state.safetensors" ] && break
  sleep 0.01
done
[ -f "$work/killed/train_state.safetensors" ] || fail "no checkpoint appeared"
# ... and let it run past the checkpoint, so that the resumed run repeats some steps.
for _ in $(seq 1 500); do
  [ "$(losses "$work/killed/log.jsonl" | wc -l)" -gt 70 ] && break
  sleep 0.005
done
kill -9 "$bg" 2>/dev/null || true
wait "$bg" 2>/dev/null || true
bg=
done_before=$(losses "$work/killed/log.jsonl" | wc -l)
echo "killed after $done_before logged steps"
[ "$done_before" -lt $steps ] || echo "note: the run finished before the kill landed"
"$kdnas" distill --out "$work/killed" --resume --threads 1 >"$work/resume.txt"
grep -q "step $steps of $steps\|wrote" "$work/resume.txt" || fail "resume did not finish"
losses "$work/full/log.jsonl" >"$work/full.txt"
losses "$work/killed/log.jsonl" >"$work/resumed.txt"
[ "$(wc -l <"$work/full.txt")" -eq $steps ] || fail "the uninterrupted run logged $(wc -l <"$work/full.txt") steps"
diff "$work/full.txt" "$work/resumed.txt" >/dev/null || {
  diff "$work/full.txt" "$work/resumed.txt" | head -5
  fail "the resumed run's per-step losses differ from the uninterrupted run's"
}
cmp -s "$work/full/model.safetensors" "$work/killed/model.safetensors" \
  || fail "the resumed run's student differs from the uninterrupted run's"

# --precision bf16 (the student's GEMMs in bf16, f32 master weights): a few toy steps lower the
# loss and the checkpoint keeps the precision.
"$kdnas" distill "${common[@]}" --steps 30 --log-every 1 --precision bf16 --out "$work/bf16" >/dev/null
first=$(losses "$work/bf16/log.jsonl" | head -1 | cut -d' ' -f2)
last=$(losses "$work/bf16/log.jsonl" | tail -1 | cut -d' ' -f2)
echo "bf16: loss $first -> $last in 30 steps"
awk -v a="$first" -v b="$last" 'BEGIN { exit !(b < a) }' || fail "bf16: the loss did not fall: $first -> $last"
grep -q '"precision": "bf16"' "$work/bf16/train_state.json" || fail "the checkpoint does not say bf16"

# 3. Bad input: one line on stderr, non-zero exit.
: >"$work/empty.txt"
printf '\n  \n\n' >"$work/blank.txt"
t=(--teacher "$work/teacher" --steps 5)
expect_error 1 "cannot open" -- "$kdnas" distill "${t[@]}" --arch 2,32,2,64 --corpus "$work/none.txt" --out "$work/e1"
expect_error 1 "is empty" -- "$kdnas" distill "${t[@]}" --arch 2,32,2,64 --corpus "$work/empty.txt" --out "$work/e2"
expect_error 1 "is empty" -- "$kdnas" distill "${t[@]}" --arch 2,32,2,64 --corpus "$work/blank.txt" --out "$work/e3"
expect_error 1 "L,H,A,F" -- "$kdnas" distill "${t[@]}" --arch 2,32 --corpus "$corpus" --out "$work/e4"
expect_error 1 "L,H,A,F" -- "$kdnas" distill "${t[@]}" --arch 2,x,2,64 --corpus "$corpus" --out "$work/e5"
expect_error 1 "divisible" -- "$kdnas" distill "${t[@]}" --arch 2,30,4,64 --corpus "$corpus" --out "$work/e6"
expect_error 1 "exactly one of" -- "$kdnas" distill "${t[@]}" --corpus "$corpus" --out "$work/e7"
expect_error 1 "not a directory" -- "$kdnas" distill --teacher "$work/none" --arch 2,32,2,64 --corpus "$corpus" --out "$work/e8"
expect_error 1 "MLM head" -- "$kdnas" distill "${t[@]}" --arch 2,32,2,64 --corpus "$corpus" --loss logits --out "$work/e9"
expect_error 1 "already holds" -- "$kdnas" distill "${t[@]}" --arch 2,32,2,64 --corpus "$corpus" --out "$work/run"
expect_error 1 "no " -- "$kdnas" distill --out "$work/e10" --resume
expect_error 2 "error" -- "$kdnas" distill "${t[@]}" --arch 2,32,2,64 --corpus "$corpus" --batch 0 --out "$work/e11"
expect_error 2 "error" -- "$kdnas" distill "${t[@]}" --arch 2,32,2,64 --corpus "$corpus" --frobnicate --out "$work/e12"
expect_error 1 "--precision 'fp8'" -- "$kdnas" distill "${t[@]}" --arch 2,32,2,64 --corpus "$corpus" --precision fp8 --out "$work/e13"
# A diverging run stops with one line, non-zero, and keeps its last good checkpoint.
expect_error 1 "not finite" -- "$kdnas" distill --teacher "$work/teacher" --arch 2,32,2,64 --corpus "$corpus" --steps 50 \
  --lr 1e20 --warmup 0 --save-every 1 --out "$work/nan"
echo "distill cli test passed"
