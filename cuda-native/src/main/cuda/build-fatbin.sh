#!/usr/bin/env bash
# Compiles src/main/cuda/vlmflux.cu into ONE fatbin: SASS for sm_90 (Hopper), sm_87 (Orin), sm_110 (Thor, when this
# nvcc knows it) and compute_87 PTX for anything newer. Called by Maven (process-resources); a machine without nvcc
# skips with a note and the runtime compiles the packaged sources with NVRTC instead.
# Usage: build-fatbin.sh SRC_DIR OUT_FILE
set -euo pipefail
src_dir=$1
out=$2
nvcc=${NVCC:-}
if [[ -z "$nvcc" ]]; then
  nvcc=$(command -v nvcc || true)
  [[ -z "$nvcc" && -x /usr/local/cuda/bin/nvcc ]] && nvcc=/usr/local/cuda/bin/nvcc
fi
if [[ -z "$nvcc" ]]; then
  echo "[vlmflux] nvcc not found: no kernel fatbin built; kernels will be compiled by NVRTC at run time" >&2
  rm -f "$out" "$out.archs"
  exit 0
fi
if [[ -f "$out" ]]; then
  newer=$(find "$src_dir" -newer "$out" \( -name '*.cu' -o -name '*.cuh' -o -name '*.sh' \) | head -1)
  if [[ -z "$newer" ]]; then echo "[vlmflux] kernel fatbin up to date: $out" >&2; exit 0; fi
fi
archs=(-gencode arch=compute_90,code=sm_90 -gencode arch=compute_87,code=sm_87)
list="sm_90 sm_87"
if "$nvcc" --list-gpu-arch 2>/dev/null | grep -qx compute_110; then
  archs+=(-gencode arch=compute_110,code=sm_110); list="$list sm_110"
fi
archs+=(-gencode arch=compute_87,code=compute_87); list="$list compute_87"
mkdir -p "$(dirname "$out")"
echo "[vlmflux] $("$nvcc" --version | tail -1): building $out for $list" >&2
"$nvcc" -O3 -std=c++17 -fatbin --threads 0 "${archs[@]}" -o "$out.tmp" "$src_dir/vlmflux.cu"
mv "$out.tmp" "$out"
echo "$list" > "$out.archs"
