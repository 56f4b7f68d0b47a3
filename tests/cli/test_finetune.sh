#!/usr/bin/env bash
# End-to-end test of `kdnas finetune` and `kdnas eval` at tiny size: a random tiny model with a
# tokenizer trained on the test corpus learns a synthetic task (the label says which of two word
# sets a sentence is drawn from) well above chance, for single sentences and for pairs; eval on
# the saved model prints one JSON object that agrees; bad input gives one error line and a
# non-zero exit.
# Usage: tests/cli/test_finetune.sh KDNAS_BINARY TINY_CONFIG.json CORPUS.txt
# Needs spm_train (Debian's sentencepiece) for the tokenizer; exits 77 (skipped) without it.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
kdnas=$1 config=$2 corpus=$3
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

if ! command -v spm_train >/dev/null; then
  echo "SKIP: spm_train (sentencepiece) is not installed"
  exit 77
fi
spm_train --input="$corpus" --model_prefix="$work/tok" --vocab_size=200 --model_type=unigram \
  --num_threads=1 --hard_vocab_limit=false --random_seed=7 >/dev/null 2>&1
"$kdnas" init --config "$config" --out "$work/model" --tokenizer "$work/tok.model" --seed 1 >/dev/null

# task N SEED [pair]: N lines of label<TAB>sentence (<TAB>filler sentence with "pair"), the
# label naming the word set of the sentence; deterministic (a fixed LCG, not awk's rand()).
task() {
  awk -v n="$1" -v seed="$2" -v pair="${3:-}" 'BEGIN {
    split("brother student clock bicycle market", a, " ");
    split("river garden kitchen window school", b, " ");
    split("the a red young near on", f, " ");
    x = seed;
    for (i = 0; i < n; i++) {
      x = (x * 1103515245 + 12345) % 2147483648; cls = int(x / 65536) % 2;
      s = "";
      for (w = 0; w < 6; w++) {
        x = (x * 1103515245 + 12345) % 2147483648; r = int(x / 65536);
        s = s (w ? " " : "") (w % 2 ? (cls ? b[r % 5 + 1] : a[r % 5 + 1]) : f[r % 6 + 1]);
      }
      line = (cls ? "beta" : "alpha") "\t" s;
      if (pair != "") {
        t = "";
        for (w = 0; w < 4; w++) {
          x = (x * 1103515245 + 12345) % 2147483648; t = t (w ? " " : "") f[int(x / 65536) % 6 + 1];
        }
        line = line "\t" t;
      }
      print line;
    }
  }'
}
task 192 1 >"$work/train.tsv"
task 48 2 >"$work/dev.tsv"
task 48 3 >"$work/test.tsv"
task 192 4 pair >"$work/ptrain.tsv"
task 32 5 pair >"$work/pdev.tsv"
common=(--batch 16 --seq 16 --lr 2e-3 --seed 3 --threads 1)

# accuracy_of FILE KEY: the number after "KEY":{"accuracy": in a one-line JSON object (or the
# top-level "accuracy" with KEY = "").
accuracy_of() {
  if [ -z "$2" ]; then sed -n 's/.*"accuracy":\([0-9.e+-]*\).*/\1/p' "$1" | head -1
  else sed -n "s/.*\"$2\":{\"accuracy\":\([0-9.e+-]*\).*/\1/p" "$1" | head -1; fi
}

# 1. Single sentences: well above chance on dev and test; the saved model evaluates the same.
start=$(date +%s.%N)
"$kdnas" finetune --model "$work/model" --train "$work/train.tsv" --dev "$work/dev.tsv" \
  --test "$work/test.tsv" --epochs 4 "${common[@]}" --out "$work/ft" >"$work/ft.txt"
end=$(date +%s.%N)
cat "$work/ft.txt"
[ "$(grep -c '^epoch ' "$work/ft.txt")" -ge 1 ] || fail "no per-epoch lines"
tail -1 "$work/ft.txt" | grep -q '^{"dev":{"accuracy":' || fail "the last line is not the JSON result"
tail -1 "$work/ft.txt" >"$work/ft.json"
dev=$(accuracy_of "$work/ft.json" dev) test=$(accuracy_of "$work/ft.json" test)
echo "single: dev accuracy $dev, test accuracy $test ($(echo "$end - $start" | bc) s)"
awk -v d="$dev" -v t="$test" 'BEGIN { exit !(d >= 0.8 && t >= 0.8) }' || fail "accuracy near chance: dev $dev test $test"
[ -s "$work/ft/results.json" ] || fail "no results.json"
grep -q '"macro_f1"' "$work/ft/results.json" || fail "results.json has no macro_f1"
for f in config.json model.safetensors sentencepiece.bpe.model log.jsonl; do
  [ -s "$work/ft/$f" ] || fail "the output directory has no $f"
done
grep -q '"XLMRobertaForSequenceClassification"' "$work/ft/config.json" || fail "not a classification model"
grep -q '"alpha"' "$work/ft/config.json" || fail "config.json has no label names"
"$kdnas" eval --model "$work/ft" --data "$work/test.tsv" --seq 16 --threads 1 >"$work/eval.json"
cat "$work/eval.json"
[ "$(wc -l <"$work/eval.json")" -eq 1 ] || fail "eval printed more than one line"
grep -q '"macro_f1":' "$work/eval.json" || fail "eval has no macro_f1"
grep -q '"examples":48' "$work/eval.json" || fail "eval did not count 48 examples"
ev=$(accuracy_of "$work/eval.json" "")
awk -v a="$ev" -v b="$test" 'BEGIN { d = a - b; exit !(d < 1e-9 && d > -1e-9) }' \
  || fail "eval accuracy $ev differs from finetune's test accuracy $test"

# --precision bf16 (bf16 training GEMMs, f32 master weights): the same recipe still learns, and
# the result says which precision trained it.
"$kdnas" finetune --model "$work/model" --train "$work/train.tsv" --dev "$work/dev.tsv" \
  --epochs 4 "${common[@]}" --precision bf16 --out "$work/ft16" >"$work/ft16.txt"
tail -1 "$work/ft16.txt" | grep -q '"precision":"bf16"' || fail "the bf16 result does not say bf16"
grep -q '"precision":"f32"' "$work/ft.json" || fail "the default result does not say f32"
dev16=$(tail -1 "$work/ft16.txt" >"$work/ft16.json"; accuracy_of "$work/ft16.json" dev)
echo "single, bf16: dev accuracy $dev16"
awk -v d="$dev16" 'BEGIN { exit !(d >= 0.8) }' || fail "bf16: dev accuracy near chance: $dev16"

# 2. Sentence pairs.
"$kdnas" finetune --model "$work/model" --train "$work/ptrain.tsv" --dev "$work/pdev.tsv" \
  --epochs 6 "${common[@]}" --out "$work/pft" >"$work/pft.txt"
pdev=$(tail -1 "$work/pft.txt" >"$work/pft.json"; accuracy_of "$work/pft.json" dev)
echo "pairs: dev accuracy $pdev"
awk -v d="$pdev" 'BEGIN { exit !(d >= 0.75) }' || fail "pair accuracy near chance: $pdev"
"$kdnas" eval --model "$work/pft" --data "$work/pdev.tsv" --seq 16 | grep -q '"examples":32' \
  || fail "eval on pairs"

# 3. Bad input: one line on stderr, non-zero exit.
printf 'alpha\tthe clock\nbeta\tthe river\textra\n' >"$work/bad.tsv"
printf 'alpha\tthe clock\ngamma\tthe river\n' >"$work/unseen.tsv"
: >"$work/empty.tsv"
ft=("$kdnas" finetune --model "$work/model" --epochs 1 "${common[@]}" --out "$work/e")
expect_error 1 "cannot open" -- "${ft[@]}" --train "$work/none.tsv" --dev "$work/dev.tsv"
expect_error 1 "bad.tsv line 2" -- "${ft[@]}" --train "$work/bad.tsv" --dev "$work/dev.tsv"
expect_error 1 "is empty" -- "${ft[@]}" --train "$work/empty.tsv" --dev "$work/dev.tsv"
expect_error 1 "'gamma' was not seen" -- "${ft[@]}" --train "$work/train.tsv" --dev "$work/unseen.tsv"
expect_error 1 "single sentences" -- "${ft[@]}" --train "$work/train.tsv" --dev "$work/pdev.tsv"
expect_error 1 "not a directory\|cannot\|no " -- "$kdnas" finetune --model "$work/none" --train "$work/train.tsv" --dev "$work/dev.tsv" --out "$work/e2"
expect_error 2 "error" -- "${ft[@]}" --train "$work/train.tsv"
expect_error 2 "error" -- "${ft[@]}" --train "$work/train.tsv" --dev "$work/dev.tsv" --batch 0
expect_error 1 "--precision 'fp8'" -- "${ft[@]}" --train "$work/train.tsv" --dev "$work/dev.tsv" --precision fp8
expect_error 1 "no classification head" -- "$kdnas" eval --model "$work/model" --data "$work/dev.tsv"
expect_error 1 "'gamma' was not seen" -- "$kdnas" eval --model "$work/ft" --data "$work/unseen.tsv"
expect_error 1 "cannot open" -- "$kdnas" eval --model "$work/ft" --data "$work/none.tsv"
expect_error 1 "bad.tsv line 2" -- "$kdnas" eval --model "$work/ft" --data "$work/bad.tsv"
expect_error 2 "error" -- "$kdnas" eval --model "$work/ft"
echo "finetune cli test passed"
