#!/usr/bin/env bash
# End-to-end test of `kdnas search` at tiny size: a random tiny teacher with a tokenizer trained
# on the test corpus, a 8-architecture space, 2 episodes x 3 candidates with a few proxy steps.
# Checks every file of the run directory is there and well formed; that a search killed with
# SIGKILL once it has recorded a candidate and resumed with --resume ends with the same
# candidates and Pareto front as an uninterrupted run; that --compare writes both searches and
# the comparison; and that bad input gives one error line and a non-zero exit.
# Runs use the hidden --fake-latency flag (a deterministic latency formula) so that two runs
# can be compared exactly; one run times for real.
# Usage: tests/cli/test_search.sh KDNAS_BINARY TINY_CONFIG.json CORPUS.txt
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
if ! command -v python3 >/dev/null; then
  echo "SKIP: python3 is needed to check the JSON files"
  exit 77
fi
spm_train --input="$corpus" --model_prefix="$work/tok" --vocab_size=200 --model_type=unigram \
  --num_threads=1 --hard_vocab_limit=false --random_seed=7 >/dev/null 2>&1
"$kdnas" init --config "$config" --out "$work/teacher" --tokenizer "$work/tok.model" --seed 1 >/dev/null

cat >"$work/space.json" <<'EOF'
{"layers": [1, 2], "hidden": [16, 32], "heads": [2], "ffn": [32, 64]}
EOF
common=(--teacher "$work/teacher" --corpus "$corpus" --space "$work/space.json" --episodes 2
        --candidates 3 --pool 8 --top 2 --budget-ms 0.5,2 --proxy-sentences 32 --proxy-epochs 1
        --proxy-batch 16 --proxy-seq 32 --proxy-lr 1e-3 --threads 1 --seed 3 --latency-runs 3)

# The checks every finished run directory must pass.
check_run() {
  local d=$1 n=$2
  for f in command.json proxy.txt state.json controller.safetensors candidates.jsonl latency.json \
           pareto.csv pareto.json pareto.svg report.md; do
    [ -s "$d/$f" ] || [ -s "$(dirname "$d")/$f" ] || fail "$d has no $f"
  done
  python3 - "$d" "$n" <<'EOF' || fail "$1 is not well formed"
import json, sys, xml.dom.minidom, csv
d, n = sys.argv[1], int(sys.argv[2])
rows = [json.loads(l) for l in open(f"{d}/candidates.jsonl")]
assert len(rows) == n, (len(rows), n)
for r in rows:
    for k in ("episode", "architecture", "parameters", "non_embedding_parameters", "latency_ms",
              "predicted_latency_ms", "kd_loss", "reward", "wall_seconds"):
        assert k in r, k
    assert r["status"] == "ok" and r["kd_loss"] > 0 and isinstance(r["reward"], float), r
state = json.load(open(f"{d}/state.json"))
assert state["finished"] and state["candidates_done"] == n, state
front = json.load(open(f"{d}/pareto.json"))["front"]
assert front, "empty front"
lines = list(csv.reader(open(f"{d}/pareto.csv")))
assert lines[0][0] == "architecture" and len(lines) == len(front) + 1, lines
svg = xml.dom.minidom.parse(f"{d}/pareto.svg")
points = {r["architecture"] for r in rows}
assert len(svg.getElementsByTagName("circle")) == len(points) + len(front)
report = open(f"{d}/report.md").read()
for s in ("## Best architecture per budget", "## Latency model", "kdnas distill --teacher"):
    assert s in report, s
EOF
}
# Architectures, losses and rewards of every candidate, and the front.
summary() {
  python3 - "$1" <<'EOF'
import json, sys
d = sys.argv[1]
for l in open(f"{d}/candidates.jsonl"):
    r = json.loads(l)
    print(r["episode"], r["index"], r["architecture"], r["kd_loss"], r["reward"], r["cached"])
print(json.dumps(json.load(open(f"{d}/pareto.json"))))
EOF
}

# 1. A search timed for real finishes and writes every file.
start=$(date +%s.%N)
"$kdnas" search "${common[@]}" --out "$work/real" >"$work/real.txt" 2>"$work/real.err"
end=$(date +%s.%N)
echo "real-latency search, 2 x 3 candidates: $(echo "$end - $start" | bc) s"
check_run "$work/real" 6
grep -q "teacher 2,64,4,128" "$work/real.err" || fail "no teacher line in the progress"
[ "$(grep -c '^  \[' "$work/real.err")" -eq 6 ] || fail "expected a progress line per candidate"

# 2. Kill -9 once a candidate is recorded, resume: the same result as an uninterrupted run.
"$kdnas" search "${common[@]}" --fake-latency --out "$work/full" >/dev/null 2>&1
check_run "$work/full" 6
"$kdnas" search "${common[@]}" --fake-latency --out "$work/killed" >/dev/null 2>&1 &
bg=$!
for _ in $(seq 1 3000); do
  [ -s "$work/killed/candidates.jsonl" ] && break
  sleep 0.005
done
kill -9 "$bg" 2>/dev/null || true
wait "$bg" 2>/dev/null || true
bg=
done_before=$(cat "$work/killed/candidates.jsonl" 2>/dev/null | wc -l)
echo "killed after $done_before recorded candidates"
[ "$done_before" -ge 1 ] || fail "no candidate was recorded before the kill"
[ "$done_before" -lt 6 ] || echo "note: the run finished before the kill landed"
"$kdnas" search --out "$work/killed" --resume >"$work/resume.txt" 2>&1
check_run "$work/killed" 6
diff <(summary "$work/full") <(summary "$work/killed") || fail "the resumed run differs from the uninterrupted run"

# 3. --compare: both controllers, the same budget, one comparison.
"$kdnas" search "${common[@]}" --fake-latency --compare --out "$work/cmp" >/dev/null 2>&1
check_run "$work/cmp/lstm" 6
check_run "$work/cmp/random" 6
grep -q "lstm vs random" "$work/cmp/report.md" || fail "no comparison report"

# 4. Bad input: one line on stderr, non-zero exit.
: >"$work/empty.txt"
echo '{"layers": [1], "hidden": [16], "heads": [2], "ffn": [32], "widht": [3]}' >"$work/typo.json"
t=(--teacher "$work/teacher" --episodes 1 --candidates 1 --proxy-sentences 8 --proxy-epochs 1)
expect_error 1 "already holds" -- "$kdnas" search "${t[@]}" --corpus "$corpus" --out "$work/full"
expect_error 1 "holds no search" -- "$kdnas" search --out "$work/nothing" --resume
expect_error 1 "teacher is required" -- "$kdnas" search --corpus "$corpus" --out "$work/e1"
expect_error 1 "not a directory" -- "$kdnas" search --teacher "$work/none" --corpus "$corpus" --out "$work/e2"
expect_error 1 "cannot open" -- "$kdnas" search "${t[@]}" --corpus "$work/none.txt" --out "$work/e3"
expect_error 1 "is empty" -- "$kdnas" search "${t[@]}" --corpus "$work/empty.txt" --out "$work/e4"
expect_error 1 "budget-ms" -- "$kdnas" search "${t[@]}" --corpus "$corpus" --budget-ms 5,x --out "$work/e5"
expect_error 1 "widht" -- "$kdnas" search "${t[@]}" --corpus "$corpus" --space "$work/typo.json" --out "$work/e6"
expect_error 2 "error" -- "$kdnas" search "${t[@]}" --corpus "$corpus" --controller greedy --out "$work/e7"
expect_error 2 "error" -- "$kdnas" search "${t[@]}" --corpus "$corpus" --episodes 0 --out "$work/e8"
expect_error 2 "error" -- "$kdnas" search "${t[@]}" --corpus "$corpus" --frobnicate --out "$work/e9"
expect_error 2 "error" -- "$kdnas" search "${t[@]}" --corpus "$corpus" --compare --controller lstm --out "$work/e10"
for e in e1 e2 e3 e4 e5 e6; do
  [ ! -e "$work/$e" ] || fail "a failed search left $work/$e behind"
done
echo "search cli test passed"
