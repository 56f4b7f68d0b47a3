#!/usr/bin/env bash
# The per-op profiler from the command line (docs/profiling.md): --profile and KDNAS_PROFILE write
# a Chrome trace with the GEMMs in it and print the per-op summary; a bad path is one error line.
# Usage: tests/cli/test_profile.sh KDNAS_BINARY CONFIG.json
set -euo pipefail
. "$(dirname "$0")/lib.sh"
kdnas=$1 config=$2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# A valid trace: JSON with traceEvents, complete events with the fields chrome://tracing needs.
check_trace() {  # check_trace FILE
  python3 - "$1" <<'PY' || fail "$1 is not a valid trace with matmul events"
import json, sys
t = json.load(open(sys.argv[1]))
xs = [e for e in t["traceEvents"] if e["ph"] == "X"]
assert xs, "no complete events"
for e in xs:
    assert {"name", "cat", "ts", "dur", "pid", "tid", "args"} <= e.keys(), e
    assert e["dur"] >= 0, e
names = {e["name"] for e in xs}
assert "matmul" in names and "linear" in names and "layer_norm" in names, names
lin = [e for e in xs if e["name"] == "linear"]
assert all(e["args"]["flops"] > 0 and e["args"]["bytes"] > 0 for e in lin)
PY
}

"$kdnas" bench --config "$config" --batch 1 --seq 16 --threads 1 --runs 2 --warmup 1 \
  --profile "$work/p.json" >"$work/out.txt" 2>"$work/err.txt"
cat "$work/err.txt"
check_trace "$work/p.json"
grep -q "^kdnas profile: " "$work/err.txt" || fail "bench --profile: no summary on stderr"
grep -qE "^  linear +[0-9]+ " "$work/err.txt" || fail "bench --profile: no linear row"
grep -q "^latency  median" "$work/out.txt" || fail "bench --profile: the bench table is gone"
# Only the timed runs are profiled: 2 runs x (the layers' 4 linears).
layers=$(sed -n 's/.*"num_hidden_layers": *\([0-9]*\).*/\1/p' "$config")
grep -qE "^  linear +$((2 * 4 * layers)) " "$work/err.txt" || fail "bench --profile: linear calls"

# KDNAS_PROFILE does the same for any command, written when the process exits.
KDNAS_PROFILE="$work/env.json" "$kdnas" bench --config "$config" --batch 1 --seq 8 --threads 1 \
  --runs 1 --warmup 0 >/dev/null 2>"$work/env_err.txt"
check_trace "$work/env.json"
grep -q "^kdnas profile: " "$work/env_err.txt" || fail "KDNAS_PROFILE: no summary"

"$kdnas" init --config "$config" --out "$work/model" --seed 1 >/dev/null
"$kdnas" encode --model "$work/model" --ids "0 581 2" --out "$work/enc.safetensors" \
  --profile "$work/enc.json" >/dev/null 2>&1
check_trace "$work/enc.json"

# A path that cannot be written: one error line, exit 1, before any work.
set +e
"$kdnas" bench --config "$config" --runs 1 --profile "$work/missing/p.json" >/dev/null 2>"$work/bad.txt"
rc=$?
KDNAS_PROFILE="$work/missing/p.json" "$kdnas" bench --config "$config" --runs 1 >/dev/null 2>"$work/bad_env.txt"
rc_env=$?
set -e
[ "$rc" -eq 1 ] || fail "bad --profile path exited $rc"
[ "$(wc -l <"$work/bad.txt")" -eq 1 ] || { cat "$work/bad.txt"; fail "bad --profile: expected one line"; }
grep -q "cannot write the trace" "$work/bad.txt" || fail "bad --profile: message"
[ "$rc_env" -eq 1 ] || fail "bad KDNAS_PROFILE path exited $rc_env"
grep -q "KDNAS_PROFILE: profile: cannot write the trace" "$work/bad_env.txt" || { cat "$work/bad_env.txt"; fail "bad KDNAS_PROFILE: message"; }
echo "profile cli test passed"
