#!/usr/bin/env bash
# End-to-end test of `kdnas pretrain` at tiny size: a tokenizer trained on the test corpus, a
# fresh tiny model; a few hundred steps must clearly lower the MLM loss and leave a model
# directory with its MLM head; a run killed with SIGKILL and resumed from its checkpoint must log
# the same per-step losses as an uninterrupted run; --precision bf16 trains and resumes in bf16;
# bad input gives one error line and a non-zero exit.
# Usage: tests/cli/test_pretrain.sh KDNAS_BINARY TINY_CONFIG.json CORPUS.txt
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

# The recipe every run below shares: the tiny config, 16 sentences of <= 32 tokens.
common=(--config "$config" --tokenizer "$work/tok.model" --corpus "$corpus" --batch 16 --seq 32
        --lr 2e-3 --seed 5 --threads 1)

evals() { sed -n 's/^{"step":\([0-9]*\),"eval_loss":\([^,]*\),"eval_accuracy":\([^,]*\),.*/\1 \2 \3/p' "$1"; }

# 1. The MLM loss falls clearly in 200 steps; held-out accuracy rises.
start=$(date +%s.%N)
"$kdnas" pretrain "${common[@]}" --steps 200 --log-every 10 --eval-every 100 --out "$work/run" >"$work/run.txt"
end=$(date +%s.%N)
first=$(losses "$work/run/log.jsonl" | head -1 | cut -d' ' -f2)
last=$(losses "$work/run/log.jsonl" | tail -1 | cut -d' ' -f2)
acc1=$(evals "$work/run/log.jsonl" | head -1 | cut -d' ' -f3)
acc2=$(evals "$work/run/log.jsonl" | tail -1 | cut -d' ' -f3)
echo "MLM loss $first -> $last in 200 steps ($(echo "$end - $start" | bc) s); held-out accuracy $acc1 (step 100) -> $acc2"
awk -v a="$first" -v b="$last" 'BEGIN { exit !(b <= 0.7 * a) }' || fail "MLM loss did not fall clearly: $first -> $last"
awk -v a="$acc1" -v b="$acc2" 'BEGIN { exit !(b >= a && b > 0 && b <= 1) }' || fail "held-out accuracy $acc1 -> $acc2"
grep -q "eval at step 200: MLM loss" "$work/run.txt" || fail "no final evaluation line"
for f in config.json model.safetensors sentencepiece.bpe.model train_state.safetensors train_state.json log.jsonl; do
  [ -s "$work/run/$f" ] || fail "the output directory has no $f"
done
"$kdnas" info "$work/run" >"$work/info.txt" || fail "the model directory does not load"
grep -q "XLMRobertaForMaskedLM" "$work/info.txt" || fail "kdnas info does not show XLMRobertaForMaskedLM"
grep -q "^heads *mlm" "$work/info.txt" || fail "kdnas info does not show the MLM head"

# 2. Kill -9 and resume: the same per-step losses as an uninterrupted run.
steps=250
"$kdnas" pretrain "${common[@]}" --steps $steps --log-every 1 --save-every 50 --out "$work/full" >/dev/null
"$kdnas" pretrain "${common[@]}" --steps $steps --log-every 1 --save-every 50 --out "$work/killed" >/dev/null &
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
"$kdnas" pretrain --out "$work/killed" --resume --threads 1 >"$work/resume.txt"
grep -q "wrote" "$work/resume.txt" || fail "resume did not finish"
losses "$work/full/log.jsonl" >"$work/full.txt"
losses "$work/killed/log.jsonl" >"$work/resumed.txt"
[ "$(wc -l <"$work/full.txt")" -eq $steps ] || fail "the uninterrupted run logged $(wc -l <"$work/full.txt") steps"
diff "$work/full.txt" "$work/resumed.txt" >/dev/null || {
  diff "$work/full.txt" "$work/resumed.txt" | head -5
  fail "the resumed run's per-step losses differ from the uninterrupted run's"
}
cmp -s "$work/full/model.safetensors" "$work/killed/model.safetensors" \
  || fail "the resumed run's model differs from the uninterrupted run's"

# 3. --precision bf16 (bf16 GEMMs, f32 master weights): a few toy steps lower the loss, the
# checkpoint keeps the precision, and --resume continues in it.
"$kdnas" pretrain "${common[@]}" --steps 30 --log-every 1 --precision bf16 --out "$work/bf16" >/dev/null
first=$(losses "$work/bf16/log.jsonl" | head -1 | cut -d' ' -f2)
last=$(losses "$work/bf16/log.jsonl" | tail -1 | cut -d' ' -f2)
echo "bf16: MLM loss $first -> $last in 30 steps"
awk -v a="$first" -v b="$last" 'BEGIN { exit !(b < a) }' || fail "bf16: the MLM loss did not fall: $first -> $last"
grep -q '"precision": "bf16"' "$work/bf16/train_state.json" || fail "the checkpoint does not say bf16"
grep -q '"precision": "f32"' "$work/run/train_state.json" || fail "the default is not f32"
"$kdnas" pretrain --out "$work/bf16" --resume --steps 32 --threads 1 >"$work/bf16.txt"
grep -q "wrote" "$work/bf16.txt" || fail "the bf16 resume did not finish"
grep -q '"precision": "bf16"' "$work/bf16/train_state.json" || fail "the resumed run lost bf16"

# 4. Bad input: one line on stderr, non-zero exit.
: >"$work/empty.txt"
sed 's/"vocab_size": [0-9]*/"vocab_size": 100/' "$config" >"$work/small.json"
tok=(--tokenizer "$work/tok.model")
expect_error 1 "none.json" -- "$kdnas" pretrain --config "$work/none.json" "${tok[@]}" --corpus "$corpus" --steps 5 --out "$work/e1"
expect_error 1 "none.model" -- "$kdnas" pretrain --config "$config" --tokenizer "$work/none.model" --corpus "$corpus" --steps 5 --out "$work/e2"
expect_error 1 "cannot open" -- "$kdnas" pretrain --config "$config" "${tok[@]}" --corpus "$work/none.txt" --steps 5 --out "$work/e3"
expect_error 1 "is empty" -- "$kdnas" pretrain --config "$config" "${tok[@]}" --corpus "$work/empty.txt" --steps 5 --out "$work/e4"
expect_error 1 "vocab_size is only 100" -- "$kdnas" pretrain --config "$work/small.json" "${tok[@]}" --corpus "$corpus" --steps 5 --out "$work/e5"
expect_error 1 "--steps" -- "$kdnas" pretrain --config "$config" "${tok[@]}" --corpus "$corpus" --out "$work/e6"
expect_error 1 "--config" -- "$kdnas" pretrain "${tok[@]}" --corpus "$corpus" --steps 5 --out "$work/e7"
c=(--config "$config" "${tok[@]}" --corpus "$corpus" --steps 5)
expect_error 1 "already holds" -- "$kdnas" pretrain "${c[@]}" --out "$work/run"
expect_error 1 "no " -- "$kdnas" pretrain --out "$work/e8" --resume
expect_error 2 "error" -- "$kdnas" pretrain "${c[@]}" --batch 0 --out "$work/e9"
expect_error 2 "error" -- "$kdnas" pretrain "${c[@]}" --frobnicate --out "$work/e10"
expect_error 1 "--precision 'fp8'" -- "$kdnas" pretrain "${c[@]}" --precision fp8 --out "$work/e11"
[ ! -e "$work/e11" ] || fail "a bad --precision left an output directory"
echo "pretrain cli test passed"
