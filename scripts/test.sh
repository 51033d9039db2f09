#!/usr/bin/env bash
# Every test, from nothing: install what is missing, make the interop venv,
# build (Release, and again with AddressSanitizer + UBSan), run the suite in
# both builds. Exits non-zero when anything fails.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup-deps.sh --test

# Interop checks read kiln's files with the real tools, pinned.
venv=.venv-test
if [[ ! -x $venv/bin/python ]] || ! $venv/bin/python -c 'import h5py, numpy, mlflow, tritonclient.http, prometheus_client' 2>/dev/null; then
  python3 -m venv "$venv" 2>/dev/null || /usr/bin/python3 -m venv "$venv"
  $venv/bin/pip install -q -r tests/requirements.txt
fi
export KILN_PYTHON=$PWD/$venv/bin/python

jobs=$(nproc)
echo "== Release build (CUDA compiled when nvcc is present)"
scripts/build.sh build
(cd build && ctest --output-on-failure -j"$jobs")

echo "== AddressSanitizer + UBSan build"
scripts/build.sh build-asan -DKILN_SANITIZE=ON -DKILN_CUDA=OFF -DCMAKE_BUILD_TYPE=RelWithDebInfo
# LeakSanitizer needs ptrace, which some sandboxes refuse: keep leaks on
# where it works.
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
(cd build-asan && ctest --output-on-failure -j"$jobs")
