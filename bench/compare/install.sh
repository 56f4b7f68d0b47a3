#!/usr/bin/env bash
# Installs the peers of bench/compare without touching any Python site-packages but Debian's:
#   PyTorch 1.13.1, numpy and onnx 1.12 from Debian (apt-get; root), OpenBLAS selected for
#   libblas.so.3 (Debian's torch calls whatever libblas.so.3 points to), and ONNX Runtime from npm
#   (onnxruntime-node in bench/compare/node_modules, CPU binaries only).
# Idempotent: a second run checks and returns in a second or two.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
py=/usr/bin/python3

pkgs=(python3-torch python3-numpy python3-onnx libopenblas0-pthread)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "install: apt-get install ${missing[*]}"
  sudo_=""; [ "$(id -u)" -eq 0 ] || sudo_=sudo
  export DEBIAN_FRONTEND=noninteractive
  $sudo_ apt-get install -y --no-install-recommends "${missing[@]}" >/dev/null 2>&1 || {
    $sudo_ apt-get update >/dev/null
    $sudo_ apt-get install -y --no-install-recommends "${missing[@]}"
  }
fi

# OpenBLAS for libblas.so.3 (the reference BLAS is ~30x slower and torch's f32 GEMMs would use it).
alt=libblas.so.3-x86_64-linux-gnu
openblas=/usr/lib/x86_64-linux-gnu/openblas-pthread/libblas.so.3
if [ "$(readlink -f /etc/alternatives/$alt)" != "$(readlink -f $openblas)" ]; then
  sudo_=""; [ "$(id -u)" -eq 0 ] || sudo_=sudo
  $sudo_ update-alternatives --set "$alt" "$openblas" >/dev/null
fi
echo "install: libblas.so.3 -> $(readlink -f /etc/alternatives/$alt)"

# ONNX Runtime for Node (CPU only: the GPU/CUDA binaries are not downloaded).
if [ ! -f "$here/node_modules/onnxruntime-node/package.json" ]; then
  echo "install: npm install onnxruntime-node (CPU only)"
  ( cd "$here" && ONNXRUNTIME_NODE_INSTALL=skip ONNXRUNTIME_NODE_INSTALL_CUDA=skip \
      npm install --no-audit --no-fund --no-save onnxruntime-node >/dev/null )
fi
echo "install: onnxruntime-node $(node -p "require('$here/node_modules/onnxruntime-node/package.json').version")"
$py -c 'import torch, numpy, onnx; print("install: torch", torch.__version__, "numpy", numpy.__version__, "onnx", onnx.__version__)'
