#!/usr/bin/env bash
# --device on every command that takes it (encode, bench, distill, pretrain, finetune, eval,
# search), on a machine without a usable GPU or in a build without the CUDA backend: --device cuda
# exits 1 with one error line naming it ("this build has no CUDA backend" or "no usable CUDA
# device (...)") and writes nothing (no output file, no run directory, no --profile trace);
# --device bogus is one clear error line too; --device cpu runs as before.
# Usage: tests/cli/test_device.sh KDNAS_BINARY TINY_CONFIG.json CORPUS.txt
# Exits 77 (skipped) where a usable GPU makes --device cuda succeed.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
kdnas=$1 config=$2 corpus=$3
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

"$kdnas" init --config "$config" --out "$work/model" --seed 1 >/dev/null
printf 'alpha\tthe red clock\nbeta\tthe river garden\n' >"$work/task.tsv"

# Where the GPU is there, the negative checks below do not apply.
if "$kdnas" encode --model "$work/model" --ids "0 5 2" --out "$work/gpu.safetensors" \
  --device cuda >/dev/null 2>&1; then
  echo "SKIP: a usable CUDA device exists (--device cuda succeeded)"
  exit 77
fi
[ ! -e "$work/gpu.safetensors" ] || fail "encode --device cuda failed but wrote its output"

no_gpu='--device cuda[:0-9]*: \(this build has no CUDA backend (docs/cuda.md)\|no usable CUDA device (.*)\)$'
# absent PATH...: each path must not exist.
absent() { for p in "$@"; do [ ! -e "$p" ] || fail "$p was written by a command that failed"; done; }

expect_error 1 "$no_gpu" -- "$kdnas" encode --model "$work/model" --ids "0 5 2" \
  --out "$work/enc.safetensors" --profile "$work/enc.json" --device cuda
absent "$work/enc.safetensors" "$work/enc.json"
expect_error 1 "$no_gpu" -- "$kdnas" bench --config "$config" --seq 8 --runs 1 --warmup 0 \
  --profile "$work/bench.json" --device cuda
absent "$work/bench.json"
expect_error 1 "$no_gpu" -- "$kdnas" distill --teacher "$work/model" --arch 1,32,2,64 \
  --corpus "$corpus" --steps 1 --out "$work/distill" --device cuda
absent "$work/distill"
expect_error 1 "$no_gpu" -- "$kdnas" pretrain --config "$config" --corpus "$corpus" \
  --tokenizer "$work/tok.model" --steps 1 --out "$work/pretrain" --device cuda:1
absent "$work/pretrain"
expect_error 1 "$no_gpu" -- "$kdnas" finetune --model "$work/model" --train "$work/task.tsv" \
  --dev "$work/task.tsv" --out "$work/finetune" --device cuda
absent "$work/finetune"
expect_error 1 "$no_gpu" -- "$kdnas" eval --model "$work/model" --data "$work/task.tsv" --device cuda
[ ! -s "$work/out.txt" ] || fail "eval --device cuda printed a result"
expect_error 1 "$no_gpu" -- "$kdnas" search --teacher "$work/model" --corpus "$corpus" \
  --episodes 1 --out "$work/search" --device cuda
absent "$work/search"

# A name that is no device.
bogus='--device \(bogus\|tpu\|cuda:x\): not a device (expected cpu, cuda or cuda:N)$'
expect_error 1 "$bogus" -- "$kdnas" encode --model "$work/model" --ids "0 5 2" \
  --out "$work/bogus.safetensors" --device bogus
absent "$work/bogus.safetensors"
expect_error 1 "$bogus" -- "$kdnas" distill --teacher "$work/model" --arch 1,32,2,64 \
  --corpus "$corpus" --steps 1 --out "$work/bogus" --device tpu
expect_error 1 "$bogus" -- "$kdnas" search --teacher "$work/model" --corpus "$corpus" \
  --out "$work/bogus" --device cuda:x
absent "$work/bogus"

# --device cpu is the default path.
"$kdnas" encode --model "$work/model" --ids "0 5 2" --out "$work/cpu.safetensors" \
  --device cpu >/dev/null
[ -s "$work/cpu.safetensors" ] || fail "encode --device cpu wrote nothing"
echo "device: all checks passed"
