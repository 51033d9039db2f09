#!/usr/bin/env bash
# Configures and builds kiln into a build folder.
#   scripts/build.sh [BUILD_DIR] [extra cmake args...]
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${1:-build}
shift || true
# nvcc lives outside PATH in the CUDA toolkit's default install.
[[ -x /usr/local/cuda/bin/nvcc ]] && export PATH="/usr/local/cuda/bin:$PATH"
cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=Release "$@" > "$dir.cmake.log" 2>&1 || {
  cat "$dir.cmake.log"; exit 1; }
grep -E '^-- kiln|^CMake Warning' "$dir.cmake.log" || true
cmake --build "$dir" -j"$(nproc)"
