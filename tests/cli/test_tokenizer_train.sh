#!/usr/bin/env bash
# End-to-end test of `kdnas tokenizer-train` on the committed multilingual sample
# (lang<TAB>sentence, tests/data/corpus/README.md): the model loads with the XLM-R id convention
# (what `kdnas encode --text` feeds the encoder equals sentencepiece's own ids shifted as XLM-R
# shifts them), two trainings give identical files, and bad input is one error line.
# Usage: tests/cli/test_tokenizer_train.sh KDNAS_BINARY TINY_CONFIG.json SAMPLE.txt
set -euo pipefail
. "$(dirname "$0")/lib.sh"
kdnas=$1 config=$2 sample=$3
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
vocab=2000  # the sample's Chinese needs ~1 500 single-character pieces

# 1. Train (the text is column 1 of lang<TAB>sentence) and read the sizes it reports.
"$kdnas" tokenizer-train --input "$sample" --input-column 1 --vocab $vocab --seed 3 \
  --out "$work/a.model" | tee "$work/a.txt"
grep -q "$vocab pieces, vocab size $((vocab + 2)) (XLM-R ids, <mask> = $((vocab + 1)))" "$work/a.txt" \
  || fail "unexpected sizes in: $(cat "$work/a.txt")"

# 2. Deterministic: the same input, vocab, type and seed give the same bytes.
"$kdnas" tokenizer-train --input "$sample" --input-column 1 --vocab $vocab --seed 3 \
  --out "$work/b.model" >/dev/null
cmp -s "$work/a.model" "$work/b.model" || fail "two trainings gave different models"
# A plain-text input (the column cut by hand) gives the same model as --input-column.
cut -f2 "$sample" > "$work/text.txt"
"$kdnas" tokenizer-train --input "$work/text.txt" --vocab $vocab --seed 3 --out "$work/c.model" >/dev/null
cmp -s "$work/a.model" "$work/c.model" || fail "--input-column 1 differs from the cut text"
"$kdnas" tokenizer-train --input "$sample" --input-column 1 --vocab $vocab --model-type bpe \
  --out "$work/bpe.model" | grep -q "bpe, $vocab pieces" || fail "bpe training"

# 3. The XLM-R ids: a model whose vocabulary matches, encoded by text and by the ids that
#    sentencepiece gives (piece i >= 3 -> i + 1, unk 0 -> 3, then <s> ... </s>): same output.
sed "s/\"vocab_size\": *[0-9]*/\"vocab_size\": $((vocab + 2))/" "$config" > "$work/config.json"
"$kdnas" init --config "$work/config.json" --tokenizer "$work/a.model" --out "$work/model" --seed 1 >/dev/null
text="Das ist ein Test. Это тест. 这是一个测试。"
"$kdnas" encode --model "$work/model" --text "$text" --out "$work/by_text.safetensors" | tee "$work/enc.txt"
if command -v spm_encode >/dev/null; then
  sp_ids=$(printf '%s\n' "$text" | spm_encode --model="$work/a.model" --output_format=id)
  ids="0 $(echo "$sp_ids" | tr ' ' '\n' | awk '{ print ($1 == 0 ? 3 : $1 + 1) }' | tr '\n' ' ')2"
  echo "sentencepiece ids: $sp_ids -> XLM-R ids: $ids"
  case " $ids " in *" 1 "*|*" $((vocab + 1)) "*) fail "a text piece mapped to <pad> or <mask>: $ids" ;; esac
  "$kdnas" encode --model "$work/model" --ids "$ids" --out "$work/by_ids.safetensors" >/dev/null
  cmp -s "$work/by_text.safetensors" "$work/by_ids.safetensors" \
    || fail "encode --text did not use the XLM-R ids $ids"
else
  echo "note: spm_encode (Debian sentencepiece) not installed; XLM-R id comparison skipped"
fi

# 4. Bad input: one line on stderr, non-zero exit.
: > "$work/empty.txt"
printf '\n\n' > "$work/blank.txt"
t=(tokenizer-train --out "$work/bad.model")
expect_error 1 "not a readable file" -- "$kdnas" "${t[@]}" --input "$work/missing.txt" --vocab 100
expect_error 1 "has no text" -- "$kdnas" "${t[@]}" --input "$work/empty.txt" --vocab 100
expect_error 1 "has no text" -- "$kdnas" "${t[@]}" --input "$work/blank.txt" --vocab 100
expect_error 1 "too small" -- "$kdnas" "${t[@]}" --input "$sample" --vocab 3
expect_error 1 "column" -- "$kdnas" "${t[@]}" --input "$sample" --input-column 4 --vocab 100
expect_error 1 "tokenizer" -- "$kdnas" "${t[@]}" --input "$work/text.txt" --vocab 100000
expect_error 2 "model-type" -- "$kdnas" "${t[@]}" --input "$sample" --vocab 100 --model-type word2
expect_error 2 "vocab" -- "$kdnas" tokenizer-train --input "$sample" --out "$work/bad.model"
[ ! -e "$work/bad.model" ] || fail "a failed training left $work/bad.model"
echo "PASS"
