#!/usr/bin/env bash
# Trains the default teacher that ships in models/teacher/ (models/teacher/README.md): an
# 8000-piece sentencepiece tokenizer on the corpus, then masked-language-model pretraining of a
# 6-layer, hidden-256 XLM-R-style encoder (models/teacher/config.json) on the corpus, with the
# corpus's dev split held out for the MLM accuracy. Needs the corpus (scripts/build_corpus.sh)
# and a build (scripts/build.sh build).
#
# Usage: scripts/train_teacher.sh [--steps N (4000)] [--threads N (2)] [--out DIR (out/teacher-run)]
#        [--install DIR]   copy the trained model (config, weights, tokenizer) to DIR, e.g.
#                          models/teacher, once training has finished
# A killed run continues where its last checkpoint (every 250 steps) left it: run it again.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
steps=4000 threads=2 out=$root/out/teacher-run install=""
while [ $# -gt 0 ]; do
  case $1 in
    --steps) steps=${2:?--steps needs a value}; shift ;;
    --threads) threads=${2:?--threads needs a value}; shift ;;
    --out) out=${2:?--out needs a value}; shift ;;
    --install) install=${2:?--install needs a value}; shift ;;
    -h|--help) sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "train_teacher: error: unknown option '$1' (see --help)" >&2; exit 2 ;;
  esac
  shift
done
kdnas=$root/build/apps/kdnas
data=$root/data
[ -x "$kdnas" ] || { echo "train_teacher: error: no $kdnas (run scripts/build.sh build)" >&2; exit 1; }
for f in "$data/corpus/train.txt" "$data/corpus/dev.txt"; do
  [ -s "$f" ] || { echo "train_teacher: error: no $f (run scripts/build_corpus.sh)" >&2; exit 1; }
done

tok=$data/tokenizer/kdnas-8k.model
if [ ! -s "$tok" ]; then
  mkdir -p "$(dirname "$tok")"
  "$kdnas" tokenizer-train --input "$data/corpus/train.txt" --input-column 1 --vocab 8000 \
    --out "$tok"
fi

# The dev split first, held out with --eval-first: the MLM accuracy is measured on it.
corpus=$data/corpus/pretrain.tsv
ndev=$(wc -l <"$data/corpus/dev.txt")
if [ ! -s "$corpus" ] || [ "$corpus" -ot "$data/corpus/train.txt" ]; then
  cat "$data/corpus/dev.txt" "$data/corpus/train.txt" >"$corpus.tmp"
  mv "$corpus.tmp" "$corpus"
fi

resume=()
[ -f "$out/train_state.json" ] && resume=(--resume)
OMP_WAIT_POLICY=PASSIVE "$kdnas" pretrain --config "$root/models/teacher/config.json" \
  --tokenizer "$tok" --corpus "$corpus" --text-column 1 --eval-first "$ndev" \
  --steps "$steps" --batch 64 --seq 64 --lr 7e-4 --no-dropout --log-every 50 --eval-every 1000 \
  --save-every 250 --threads "$threads" --seed 0 --out "$out" "${resume[@]}"

if [ -n "$install" ]; then
  mkdir -p "$install"
  cp "$out/config.json" "$out/model.safetensors" "$out/sentencepiece.bpe.model" "$install/"
  echo "train_teacher: installed the model in $install"
fi
