#!/usr/bin/env bash
# Installs the Debian packages kdnas builds with. Idempotent: does nothing when all are present.
# Usage: scripts/install_deps.sh   (as root, or with sudo available)
set -euo pipefail

packages=(
  build-essential cmake pkg-config git
  libdnnl-dev ocl-icd-opencl-dev   # oneDNN 2.6 (its CMake config wants the OpenCL ICD headers)
  doctest-dev libbenchmark-dev     # tests, benchmarks
  nlohmann-json3-dev libcli11-dev  # config/JSON files, the command line
  libsentencepiece-dev sentencepiece
  clang libclang-rt-14-dev         # the libFuzzer build (scripts/fuzz.sh)
  python3                          # scripts/build_corpus.sh (stdlib only; it also needs npm,
                                   # which ships with nodejs: not listed, Debian npm conflicts)
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "install_deps: all ${#packages[@]} packages present"
  exit 0
fi

echo "install_deps: installing ${missing[*]}"
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
$SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
