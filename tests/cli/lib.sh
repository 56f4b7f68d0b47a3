# Helpers the end-to-end CLI tests share; each test sources it right after `set -euo pipefail`:
#   . "$(dirname "$0")/lib.sh"
# The tests set $work (their temporary directory) before calling expect_error.

fail() { echo "FAIL: $*"; exit 1; }

# expect_error EXIT_CODE PATTERN -- command...: the command must exit with EXIT_CODE and print
# exactly one line on stderr, containing PATTERN (a grep pattern).
expect_error() {
  local want=$1 pattern=$2
  shift 3
  set +e
  "$@" >"$work/out.txt" 2>"$work/err.txt"
  local rc=$?
  set -e
  [ "$rc" -eq "$want" ] || { cat "$work/err.txt"; fail "'$*' exited $rc, expected $want"; }
  [ "$(wc -l <"$work/err.txt")" -eq 1 ] || { cat "$work/err.txt"; fail "'$*': expected one error line"; }
  grep -q -e "$pattern" "$work/err.txt" || { cat "$work/err.txt"; fail "'$*': no '$pattern' in the error"; }
}

# losses LOG.jsonl: "step loss" for every logged training step (evaluation rows have no "loss").
losses() { sed -n 's/^{"step":\([0-9]*\),"loss":\([^,]*\),.*/\1 \2/p' "$1"; }
