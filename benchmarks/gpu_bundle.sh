#!/usr/bin/env bash
# Companion of benchmarks/gpu_check.sh: builds kiln here for the GPU machine
# (sm_90 by default: H100 and H200) and packs into gpu-bundle/ what that
# machine lacks, so the check runs there with no network and no -dev
# packages:
#
#   gpu-bundle/kiln-gpu.tar.xz   bin/kiln, bin/score_parts, tests/ (unit test binaries),
#                                lib/ (the shared libraries ldd lists that
#                                are not libc, libm, libgomp's system peers
#                                or CUDA's: HDF5, libyaml, jansson, SQLite,
#                                libarchive, libmicrohttpd, OpenBLAS, ...),
#                                sysroot/ (headers and .so links of those
#                                libraries, so gpu_check.sh can also build
#                                kiln natively for the GPU it finds)
#
#   benchmarks/gpu_bundle.sh [ARCH]      # ARCH default 90; writes gpu-bundle/
#
# The bundle is xz-compressed and must stay under 64 MiB (what a GPU session
# can carry). libcuda, libcudart and libcublas are not bundled: the GPU
# machine's CUDA provides them (the prebuilt binaries need a driver for CUDA
# 13, and CUDA 13's libcublas.so.13, which kiln opens with dlopen when a
# CUDA backend starts; otherwise gpu_check.sh's native build is the path).
set -euo pipefail
cd "$(dirname "$0")/.."
arch=${1:-90}
build=${KILN_BUNDLE_BUILD:-build-gpu-bundle}
out=gpu-bundle
jobs=${KILN_BUILD_JOBS:-2}
cmake -S . -B "$build" -DKILN_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES="$arch" \
  -DCMAKE_BUILD_TYPE=Release > "${TMPDIR:-/tmp}/kiln-gpu-bundle.cmake.log" 2>&1 || { cat "${TMPDIR:-/tmp}/kiln-gpu-bundle.cmake.log"; exit 1; }
cmake --build "$build" -j"$jobs" > "${TMPDIR:-/tmp}/kiln-gpu-bundle.build.log" 2>&1 || { tail -40 "${TMPDIR:-/tmp}/kiln-gpu-bundle.build.log"; exit 1; }
# score_parts (not built by default) for gpu_check.sh's scoring benchmark
cmake --build "$build" --target score_parts -j"$jobs" >> "${TMPDIR:-/tmp}/kiln-gpu-bundle.build.log" 2>&1 || { tail -40 "${TMPDIR:-/tmp}/kiln-gpu-bundle.build.log"; exit 1; }

stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
mkdir -p "$stage/bin" "$stage/tests" "$stage/lib" "$stage/sysroot/include" "$stage/sysroot/lib"
cp "$build/kiln" "$build/benchmarks/score_parts" "$stage/bin/"
for t in "$build"/tests/test_*; do
  [[ -x $t && -f $t ]] && cp "$t" "$stage/tests/"
done

# Libraries the GPU machine has by itself (C runtime, CUDA) stay out.
is_system() {
  case $(basename "$1") in
    linux-vdso*|ld-linux*|libc.so*|libm.so*|libdl.so*|libpthread.so*|librt.so*|libresolv.so*) return 0 ;;
    libgcc_s.so*|libstdc++.so*) return 0 ;;
    libcuda.so*|libcudart.so*|libcublas.so*|libcublasLt.so*|libnvidia*) return 0 ;;
  esac
  return 1
}
# cuBLAS must stay out of every binary's link (~210 MB resident at every
# start otherwise; kernels/cuda/gemm-cublas.cu loads it on first use).
for bin in "$stage"/bin/* "$stage"/tests/*; do
  if ldd "$bin" | grep -q 'libcublas'; then
    echo "gpu_bundle: $bin links libcublas (it must be loaded with dlopen)" >&2
    exit 1
  fi
done
for bin in "$stage"/bin/* "$stage"/tests/*; do
  ldd "$bin" | awk '/=> \// {print $3}'
done | sort -u | while read -r lib; do
  is_system "$lib" && continue
  real=$(readlink -f "$lib")
  cp "$real" "$stage/lib/$(basename "$lib")"
done

# A sysroot for a native build there: the headers and link names of the
# libraries kiln builds against (Debian paths), the libraries themselves
# from lib/ above.
inc=/usr/include
cp -r $inc/hdf5/serial "$stage/sysroot/include/hdf5" 2>/dev/null || true
for h in yaml.h jansson.h jansson_config.h archive.h archive_entry.h microhttpd.h sqlite3.h \
         sqlite3ext.h zlib.h zconf.h; do
  [[ -f $inc/$h ]] && cp "$inc/$h" "$stage/sysroot/include/"
done
[[ -d $inc/openssl ]] && cp -r "$inc/openssl" "$stage/sysroot/include/"
ossl_conf=$(ls -d /usr/include/*-linux-gnu/openssl 2>/dev/null | head -1 || true)
[[ -n $ossl_conf ]] && cp -r "$ossl_conf"/. "$stage/sysroot/include/openssl/"
blas_inc=$(ls -d /usr/include/*-linux-gnu/openblas-openmp 2>/dev/null | head -1 || true)
[[ -n $blas_inc ]] && cp -r "$blas_inc" "$stage/sysroot/include/openblas"
( cd "$stage/lib" && for f in *.so.*; do
    base=${f%%.so.*}.so
    ln -sf "../../lib/$f" "../sysroot/lib/$base"
  done )
# OpenBLAS's soname is libopenblas.so.0: its link name is libopenblas.so.
git rev-parse HEAD > "$stage/COMMIT" 2>/dev/null || true
# A stamp of the sources built (gpu_check.sh compares it with its own tree,
# so that stale binaries are never taken for the code under test).
find CMakeLists.txt engine kernels cli tests -type f \( -name '*.c' -o -name '*.h' -o -name '*.cu' \
  -o -name CMakeLists.txt \) | LC_ALL=C sort | xargs sha256sum | sha256sum | cut -c1-16 > "$stage/SOURCE"
echo "$arch" > "$stage/ARCH"

mkdir -p "$out"
tar -C "$stage" -cJf "$out/kiln-gpu.tar.xz" .
# The training benchmark's data, as the IDX files (already gzip'd).
fm=/usr/share/datasets/fashion-mnist
if [[ -f $fm/train-images-idx3-ubyte.gz ]]; then
  mkdir -p "$out/fashion-mnist"
  cp "$fm"/*-ubyte.gz "$out/fashion-mnist/"
fi
size=$(du -sb "$out" | cut -f1)
echo "gpu-bundle/: $((size / 1048576)) MiB (kiln-gpu.tar.xz for sm_$arch with $(ls "$stage/lib" | wc -l) libraries, Fashion-MNIST)"
if ((size >= 64 * 1048576)); then
  echo "gpu_bundle: gpu-bundle/ is over 64 MiB" >&2
  exit 1
fi
