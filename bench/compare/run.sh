#!/usr/bin/env bash
# kdnas vs PyTorch vs ONNX Runtime: same random-weight XLM-R encoders, same ids, hidden states
# checked against each other, then timed round-robin (docs/perf.md).
#
#   bench/compare/run.sh --quick                 # smoke check: 4L/256H, batch 1, 1 thread
#   bench/compare/run.sh --out perf.json --md perf.md    # everything (~10-15 min on 2 cores)
#   bench/compare/run.sh --help                  # all options (--shapes --batches --threads ...)
#
# Installs its peers first (install.sh: Debian's python3-torch / numpy / onnx and OpenBLAS via
# apt-get, onnxruntime-node via npm into bench/compare/node_modules); quick when already done.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
case " $* " in *" -h "*|*" --help "*) ;; *) "$here/install.sh" ;; esac
# OpenMP wait policies are set per runtime by compare.py (--kdnas-wait-policy,
# --torch-wait-policy; docs/perf.md "Threads"), whatever OMP_WAIT_POLICY says here.
# Debian's interpreter: the packages above live in its dist-packages, not in a pyenv/venv python.
exec /usr/bin/python3 "$here/compare.py" "$@"
