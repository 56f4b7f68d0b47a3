#!/usr/bin/env bash
# Fuzzes the parsers of untrusted files (the safetensors header, config.json) with libFuzzer.
# Configures a clang build with AddressSanitizer + UBSan in build-fuzz/, builds the fuzz
# targets, writes a small seed corpus there (generated here, never committed) and runs each
# fuzzer for SECONDS seconds. Exits non-zero on any crash, leak, sanitizer report or failed
# invariant; the input that caused it is saved in build-fuzz/artifacts/.
# Usage: scripts/fuzz.sh [SECONDS (default 60)]
set -euo pipefail
secs=${1:-60}
root=$(cd "$(dirname "$0")/.." && pwd)
dir="$root/build-fuzz"
cxx=${KDNAS_FUZZ_CXX:-$(command -v clang++-14 || command -v clang++ || true)}
[ -n "$cxx" ] || { echo "fuzz.sh: clang++ not found (apt-get install clang libclang-rt-14-dev)" >&2; exit 1; }

# The parsers need none of the heavy backends: leave them out of the instrumented build.
cmake -S "$root" -B "$dir" -DCMAKE_CXX_COMPILER="$cxx" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DKDNAS_FUZZ=ON -DKDNAS_SANITIZE=address,undefined -DKDNAS_WITH_ONEDNN=OFF \
  -DKDNAS_WITH_OPENMP=OFF -DKDNAS_WITH_CUDA=OFF -DKDNAS_BUILD_TESTS=OFF -DKDNAS_BUILD_BENCH=OFF
cmake --build "$dir" --target fuzz_safetensors fuzz_config -j "$(nproc)"

# ---- seed corpus ---------------------------------------------------------------------------
seeds="$dir/seeds"
rm -rf "$seeds"
mkdir -p "$seeds/safetensors" "$seeds/config" "$dir/corpus/safetensors" "$dir/corpus/config" \
  "$dir/artifacts"

# st FILE JSON NBYTES: a safetensors file with JSON as header and NBYTES zero data bytes.
st() {
  local n=${#2} i len=""
  for i in 0 1 2 3 4 5 6 7; do len+=$(printf '\\x%02x' $(((n >> (8 * i)) & 255))); done
  { printf "$len"; printf '%s' "$2"; head -c "$3" /dev/zero; } > "$seeds/safetensors/$1"
}
st golden '{"attn.0":{"dtype":"F32","shape":[1,2,3],"data_offsets":[0,24]}}' 24
st empty '{}      ' 0
st meta '{"__metadata__":{"format":"pt"},"b":{"dtype":"BF16","shape":[2],"data_offsets":[0,4]}}' 4
st mixed '{"w":{"dtype":"F64","shape":[1],"data_offsets":[0,8]},"i":{"dtype":"I64","shape":[],"data_offsets":[8,16]},"u":{"dtype":"U16","shape":[2,1],"data_offsets":[16,20]},"z":{"dtype":"U8","shape":[0,3],"data_offsets":[20,20]}}' 20
st gap '{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"I8","shape":[1],"data_offsets":[8,9]}}' 9

printf '%s\n' '{"architectures":["XLMRobertaForMaskedLM"],"attention_probs_dropout_prob":0.1,"bos_token_id":0,"eos_token_id":2,"hidden_act":"gelu","hidden_dropout_prob":0.1,"hidden_size":768,"initializer_range":0.02,"intermediate_size":3072,"layer_norm_eps":1e-05,"max_position_embeddings":514,"model_type":"xlm-roberta","num_attention_heads":12,"num_hidden_layers":12,"output_past":true,"pad_token_id":1,"position_embedding_type":"absolute","transformers_version":"4.17.0.dev0","type_vocab_size":1,"use_cache":true,"vocab_size":250002}' > "$seeds/config/xlmr_base.json"
printf '%s\n' '{}' > "$seeds/config/empty.json"
printf '%s\n' '{"hidden_size":384,"num_attention_heads":6,"classifier_dropout":null,"torch_dtype":"bfloat16","id2label":{"0":"a","1":"b"}}' > "$seeds/config/small.json"

# Dictionaries: the format's keywords, so mutations produce plausible headers quickly.
printf '"%s"\n' dtype shape data_offsets __metadata__ BOOL U8 I8 F8_E5M2 F8_E4M3 I16 U16 F16 \
  BF16 I32 U32 F32 F64 I64 U64 '{' '}' '[' ']' ':' ',' > "$dir/safetensors.dict"
printf '"%s"\n' vocab_size hidden_size num_hidden_layers num_attention_heads intermediate_size \
  hidden_act max_position_embeddings type_vocab_size layer_norm_eps pad_token_id bos_token_id \
  eos_token_id hidden_dropout_prob attention_probs_dropout_prob initializer_range \
  classifier_dropout position_embedding_type use_cache model_type architectures torch_dtype \
  gelu null true false > "$dir/config.dict"

# ---- run -------------------------------------------------------------------------------------
for name in safetensors config; do
  echo "== fuzz_$name: ${secs} s =="
  "$dir/tests/fuzz/fuzz_$name" -max_total_time="$secs" -max_len=4096 -timeout=10 \
    -rss_limit_mb=2048 -print_final_stats=1 -dict="$dir/$name.dict" \
    -artifact_prefix="$dir/artifacts/$name-" "$dir/corpus/$name" "$seeds/$name"
done
echo "fuzz.sh: no crashes in ${secs} s per target"
