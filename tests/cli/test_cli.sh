#!/usr/bin/env bash
# End-to-end test of the kdnas command line: init -> info -> encode -> bench on a random model
# of the given config, and the one-line errors for bad input.
# Usage: tests/cli/test_cli.sh KDNAS_BINARY CONFIG.json EXPECTED_PARAMETER_COUNT
set -euo pipefail
. "$(dirname "$0")/lib.sh"
kdnas=$1 config=$2 expect_params=$3
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

"$kdnas" init --config "$config" --out "$work/model" --seed 3
"$kdnas" info "$work/model" | tee "$work/info.txt"
grep -q "^parameters   $expect_params " "$work/info.txt" || fail "info: expected $expect_params parameters"
grep -q "^dtype        F32" "$work/info.txt" || fail "info: dtype"

"$kdnas" encode --model "$work/model" --ids "0 581 2;0 5 6 7 2" --out "$work/enc.safetensors" | tee "$work/enc.txt"
layers=$(sed -n 's/.*"num_hidden_layers": *\([0-9]*\).*/\1/p' "$config")
hidden=$(sed -n 's/.*"hidden_size": *\([0-9]*\).*/\1/p' "$config")
grep -q "hidden_states \[$((layers + 1)), 2, 5, $hidden\], attention_mask \[2, 5\]" "$work/enc.txt" \
  || fail "encode: unexpected output shapes"
[ -s "$work/enc.safetensors" ] || fail "encode wrote nothing"
# bf16 gives the same shapes
"$kdnas" encode --model "$work/model" --ids "0 581 2" --dtype bf16 --out "$work/enc16.safetensors" >/dev/null

"$kdnas" bench --model "$work/model" --batch 2 --seq 16 --threads 1 --dtype f32 --runs 2 --json | tee "$work/bench.json"
grep -q '"median_ms": [0-9]' "$work/bench.json" || fail "bench: no median"
"$kdnas" bench --config "$config" --batch 1 --seq 8 --dtype bf16 --runs 1 --warmup 0 >/dev/null

# Bad input: one line on stderr, non-zero exit, never a crash.
expect_error 2 "error" -- "$kdnas" bench --config "$config" --batch 0
expect_error 2 "error" -- "$kdnas" encode --model "$work/model" --frobnicate
expect_error 1 "not a directory" -- "$kdnas" info "$work/missing"
expect_error 1 "outside the vocabulary" -- "$kdnas" encode --model "$work/model" --ids "0 99999999 2" --out "$work/x"
expect_error 1 "not an integer" -- "$kdnas" encode --model "$work/model" --ids "0 x 2" --out "$work/x"
expect_error 1 "no tokenizer" -- "$kdnas" encode --model "$work/model" --text "hello" --out "$work/x"
echo '{"hidden_size": 65, "num_attention_heads": 4}' >"$work/bad.json"
expect_error 1 "divisible" -- "$kdnas" init --config "$work/bad.json" --out "$work/bad"
# A truncated weights file is an error naming the file, not a crash.
cp -r "$work/model" "$work/trunc"
truncate -s 1000 "$work/trunc/model.safetensors"
expect_error 1 "model.safetensors" -- "$kdnas" info "$work/trunc"
echo "cli test passed"
