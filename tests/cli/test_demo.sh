#!/usr/bin/env bash
# End-to-end test of `kdnas demo` at toy size: a tokenizer trained on the committed multilingual
# sample's text column, a tiny teacher pretrained by `kdnas pretrain` for 50 steps, then the demo
# on the same sample and the committed task samples (tests/data/tasks) with a 8-architecture
# space, 1 episode x 3 candidates, 2 students, a few steps everywhere, 1 thread.
# Checks the printed table, demo.md and demo.json (rows and fields); that a demo killed with
# SIGKILL once a student is distilled continues with --resume, skipping the finished stages,
# and that a finished demo rerun with --resume skips every stage; and that bad input gives one
# error line and a non-zero exit.
# Usage: tests/cli/test_demo.sh KDNAS_BINARY TINY_CONFIG.json SAMPLE.txt TASKS_DIR
# Needs spm_train (Debian's sentencepiece) and python3; exits 77 (skipped) without them.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
kdnas=$1 config=$2 sample=$3 tasks=$4
work=$(mktemp -d)
bg=
trap '[ -n "$bg" ] && kill -9 "$bg" 2>/dev/null; rm -rf "$work"' EXIT

if ! command -v spm_train >/dev/null; then
  echo "SKIP: spm_train (sentencepiece) is not installed"
  exit 77
fi
if ! command -v python3 >/dev/null; then
  echo "SKIP: python3 is needed to check the JSON files"
  exit 77
fi
start=$(date +%s.%N)

# 1. The toy teacher: tokenizer on the sample's text column, 50 MLM steps of the tiny config.
"$kdnas" tokenizer-train --input "$sample" --input-column 1 --vocab 2000 --seed 3 \
  --out "$work/tok.model" >/dev/null
sed 's/"vocab_size": *[0-9]*/"vocab_size": 2002/' "$config" >"$work/teacher.json"
"$kdnas" pretrain --config "$work/teacher.json" --tokenizer "$work/tok.model" --corpus "$sample" \
  --text-column 1 --steps 50 --batch 16 --seq 32 --lr 2e-3 --threads 1 --log-every 50 \
  --out "$work/teacher" >/dev/null
teacher_done=$(date +%s.%N)

# The teacher carries its students' space (as models/teacher/space.json does): no --space.
cat >"$work/space.json" <<'EOF'
{"layers": [1, 2], "hidden": [16, 32], "heads": [2], "ffn": [32, 64]}
EOF
cp "$work/space.json" "$work/teacher/space.json"
common=(--teacher "$work/teacher" --corpus "$sample" --text-column 1 --langid "$tasks/langid"
        --pairs "$tasks/pairs" --train-max 100 --min-speedup 1.5 --episodes 1 --candidates 3 --pool 8
        --students 2 --proxy-sentences 32 --proxy-epochs 1 --batch 16 --seq 32 --proxy-lr 1e-3
        --distill-steps 20 --distill-lr 1e-3 --finetune-epochs 1 --finetune-lr 1e-3 --pairs-lr 2e-3
        --latency-runs 3 --threads 1 --seed 3)

# 2. A demo killed once a student is distilled, then continued with --resume.
run=$work/run
"$kdnas" demo "${common[@]}" --out "$run" >"$work/first.txt" 2>"$work/first.err" &
bg=$!
for _ in $(seq 1 3000); do
  compgen -G "$run/students/*/distill.json" >/dev/null && break
  kill -0 "$bg" 2>/dev/null || break
  sleep 0.01
done
kill -9 "$bg" 2>/dev/null || true
wait "$bg" 2>/dev/null || true
bg=
[ -s "$run/command.json" ] || { cat "$work/first.err"; fail "the first run wrote no command.json"; }
"$kdnas" demo --out "$run" --resume >"$work/resume.txt" 2>"$work/resume.err" \
  || { cat "$work/resume.err"; fail "demo --resume failed"; }
grep -q "^\[1/5\] search: done before" "$work/resume.txt" \
  || { cat "$work/resume.txt"; fail "the resumed demo did not skip the finished search"; }
grep -q "^\[2/5\] distill .*: done before" "$work/resume.txt" \
  || { cat "$work/resume.txt"; fail "the resumed demo did not skip the distilled student"; }
demo_done=$(date +%s.%N)

# 3. The table: printed, demo.md, demo.json.
out=$work/resume.txt
grep -q "^\[5/5\] KD-NAS demo" "$out" || fail "no final table"
grep -q "^| model | architecture (L,H,A,F) | parameters | without embeddings | latency ms | speedup | langid accuracy (test) | % of teacher | pairs accuracy (test) | % of teacher |$" "$out" \
  || { cat "$out"; fail "unexpected table header"; }
grep -q "^| teacher | 2,64,4,128 | " "$out" || { cat "$out"; fail "no teacher row"; }
[ "$(grep -c '^| student [0-9] | ' "$out")" -eq 2 ] || { cat "$out"; fail "expected 2 student rows"; }
grep -q "XLM-R Base's shape (12,768,12,3072, .*RANDOM WEIGHTS, LATENCY ONLY" "$out" \
  || { cat "$out"; fail "no XLM-R Base line"; }
grep -q "^| teacher | " "$run/demo.md" || fail "demo.md has no table"
grep -q "RANDOM WEIGHTS, LATENCY ONLY" "$run/demo.md" || fail "demo.md has no XLM-R Base line"
python3 - "$run" <<'EOF' || fail "demo.json is not as expected"
import json, sys, os
d = sys.argv[1]
j = json.load(open(f"{d}/demo.json"))
rows = j["rows"]
assert [r["model"] for r in rows] == ["teacher", "student 1", "student 2"], rows
for r in rows:
    for k in ("architecture", "parameters", "non_embedding_parameters", "latency_ms", "speedup",
              "langid_accuracy", "langid_pct_of_teacher", "pairs_accuracy", "pairs_pct_of_teacher",
              "speedup_vs_xlmr_base_shape"):
        assert k in r, k
    assert r["latency_ms"] > 0 and 0 <= r["langid_accuracy"] <= 1 and 0 <= r["pairs_accuracy"] <= 1, r
    assert r["parameters"] > r["non_embedding_parameters"] > 0, r
    assert os.path.exists(f"{d}/finetune/{'teacher' if r['model'] == 'teacher' else r['architecture'].replace(',', '_')}/langid/results.json")
t = rows[0]
assert t["speedup"] == 1.0 and t["speedup_vs_xlmr_base_shape"] is None, t
assert t["langid_accuracy"] == 0 or abs(t["langid_pct_of_teacher"] - 100.0) < 1e-9, t
for r in rows[1:]:
    assert abs(r["speedup"] - t["latency_ms"] / r["latency_ms"]) < 1e-9, r
    assert r["speedup_vs_xlmr_base_shape"] > 1, r
    assert os.path.exists(f"{d}/students/{r['architecture'].replace(',', '_')}/distill.json"), r
x = j["xlmr_base"]
assert x["architecture"] == "12,768,12,3072" and x["latency_ms"] > t["latency_ms"], x
assert j["latency"]["seq"] == 32 and j["latency"]["threads"] == 1, j["latency"]
EOF
# The choice and the table read the same interleaved timings (latency.json): every row's latency
# is its entry there, and when a scored candidate timed under teacher / 1.5 exists, student 1 (the
# best reward under that budget) shows at least 1.5x in the table.
grep -q "timing the teacher and [0-9]* architectures again, interleaved" "$work/first.txt" \
  || fail "the demo did not time the teacher and the candidates again, together"
python3 - "$run" <<'EOF' || fail "the table's latencies are not the interleaved timings the choice used"
import json, sys
d = sys.argv[1]
j = json.load(open(f"{d}/demo.json"))
table = json.load(open(f"{d}/latency.json"))[j["latency"]["key"]]
rows = j["rows"]
for r in rows:
    assert abs(table[r["architecture"]]["median_ms"] - r["latency_ms"]) < 1e-9, (r, table)
ok = {json.loads(l)["architecture"] for l in open(f"{d}/search/candidates.jsonl")
      if json.loads(l)["status"] == "ok"}
budget = rows[0]["latency_ms"] / 1.5
if any(a in table and table[a]["median_ms"] <= budget for a in ok):
    assert rows[1]["speedup"] >= 1.5, (rows[1], budget)
EOF
# The teacher's space.json was the space; the training splits (163 and 116 lines) were cut to
# --train-max 100 examples, the dev and test splits kept whole.
python3 - "$run" "$work/teacher/space.json" <<'EOF' || fail "command.json: space or train_max not as given"
import json, sys
j = json.load(open(f"{sys.argv[1]}/command.json"))
assert j["space"] == sys.argv[2] and j["train_max"] == 100 and j["min_speedup"] == "1.5", j
assert j["finetune_lr"] == 1e-3 and j["pairs_lr"] == 2e-3, j
EOF
for task in langid pairs; do
  [ "$(wc -l <"$run/tasks/$task/train.tsv")" -eq 100 ] || fail "tasks/$task/train.tsv is not 100 lines"
done
cat "$work/first.txt" "$work/resume.txt" | grep -q "; budgets [0-9.]* ms; chosen:" \
  || fail "the search stage did not print the --min-speedup budget"
for f in command.json search/report.md search/candidates.jsonl latency.json; do
  [ -s "$run/$f" ] || fail "the run directory has no $f"
done

# 4. A finished demo rerun with --resume skips every stage and gives the same table.
"$kdnas" demo --out "$run" --resume >"$work/again.txt" 2>/dev/null
[ "$(grep -c 'done before' "$work/again.txt")" -eq 9 ] \
  || { cat "$work/again.txt"; fail "the rerun did not skip every stage (1 search, 2 distill, 6 finetune)"; }
diff <(grep '^| ' "$work/resume.txt") <(grep '^| ' "$work/again.txt") >/dev/null \
  || fail "the rerun's table differs"

# 5. Bad input: one line on stderr, non-zero exit.
mkdir -p "$work/notask"
t=(--corpus "$sample" --text-column 1 --space "$work/space.json" --episodes 1 --candidates 1)
expect_error 1 "not a directory" -- "$kdnas" demo "${t[@]}" --teacher "$work/none" \
  --langid "$tasks/langid" --pairs "$tasks/pairs" --out "$work/e1"
expect_error 1 "langid .* is not a directory" -- "$kdnas" demo "${t[@]}" --teacher "$work/teacher" \
  --langid "$work/none" --pairs "$tasks/pairs" --out "$work/e2"
expect_error 1 "has no train.tsv" -- "$kdnas" demo "${t[@]}" --teacher "$work/teacher" \
  --langid "$tasks/langid" --pairs "$work/notask" --out "$work/e3"
expect_error 1 "must hold" -- "$kdnas" demo "${t[@]}" --teacher "$work/teacher" \
  --langid "$tasks/pairs" --pairs "$tasks/pairs" --out "$work/e4"
expect_error 1 "already holds a demo" -- "$kdnas" demo "${t[@]}" --teacher "$work/teacher" \
  --langid "$tasks/langid" --pairs "$tasks/pairs" --out "$run"
expect_error 1 "holds no demo" -- "$kdnas" demo --out "$work/e5" --resume
expect_error 2 "error" -- "$kdnas" demo "${t[@]}" --teacher "$work/teacher" --students 0 --out "$work/e6"
expect_error 1 "min-speedup: 0.5 is not a speedup" -- "$kdnas" demo "${t[@]}" \
  --teacher "$work/teacher" --langid "$tasks/langid" --pairs "$tasks/pairs" --min-speedup 0.5 \
  --out "$work/e7"
expect_error 1 "min-speedup: 'x' is not" -- "$kdnas" demo "${t[@]}" --teacher "$work/teacher" \
  --langid "$tasks/langid" --pairs "$tasks/pairs" --min-speedup 5,x --out "$work/e8"
for e in e1 e2 e3 e4 e5 e6 e7 e8; do
  [ ! -e "$work/$e" ] || fail "a failed demo left $work/$e behind"
done
end=$(date +%s.%N)
echo "toy teacher $(echo "$teacher_done - $start" | bc) s; demo (killed + resumed) $(echo "$demo_done - $teacher_done" | bc) s; total $(echo "$end - $start" | bc) s"
echo "demo cli test passed"
