#!/usr/bin/env bash
# Batch scoring against its parts, on the same HDF5 file and in the same
# chunks: Fashion-MNIST's 70,000 images (train + test, uint8 [N, 28, 28] as
# kiln stores them, chunked by 1,337 rows like a kiln dataset) tiled to
# 1,000,000 rows, scored by the example MLP (784-256-128-10) trained for one
# epoch. Times, alternately, RUNS times each:
#   (a) kiln's reader alone (score_parts read: HDF5 read + uint8 -> float)
#   (b) h5py reading the same rows in the same chunks (uint8, no conversion)
#   (c) the model's compute alone over in-memory chunks (score_parts compute)
#   (d) kiln score end to end (read, compute and write overlapped, HDF5 out)
# and prints each median in rows/s and (d) / min(a, c), the goal being at
# least 0.8, on the CPU and on a GPU. With DEVICE (cuda, cuda:N) the model
# runs there in (c) and (d): (c) uploads and downloads each chunk as
# kiln predict does, (d) stages them through pinned buffers on a copy stream.
#
#   benchmarks/score_bench.sh [RUNS] [THREADS] [DEVICE]
#
# Environment: KILN_BUILD (default build; score_parts is built there),
# KILN / KILN_SCORE_PARTS (prebuilt kiln and score_parts binaries: then
# nothing is built), KILN_SCORE_DEVICE (DEVICE when not given; default cpu),
# KILN_SCORE_BENCH_ROWS (default 1000000), KILN_FASHION_MNIST (the IDX files;
# default /usr/share/datasets/fashion-mnist), KILN_SCORE_BENCH_DIR (default
# /tmp/kiln-score-bench: the input (784 MB at 1M rows), the dataset and the
# model are made once and kept), KILN_PYTHON (a python with h5py and numpy;
# default the test venv .venv-test, then python3; without h5py, (b) is not
# run). The input is made by `score_parts tile`.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-5}
threads=${2:-$(nproc)}
device=${3:-${KILN_SCORE_DEVICE:-cpu}}
build=${KILN_BUILD:-build}
work=${KILN_SCORE_BENCH_DIR:-/tmp/kiln-score-bench}
rows=${KILN_SCORE_BENCH_ROWS:-1000000}
batch=2674 # kiln score's default chunk for 784 features: 8 MiB of float32 rows
py=${KILN_PYTHON:-}
for p in "$py" .venv-test/bin/python python3; do
  [[ -n $p ]] && "$p" -c 'import h5py, numpy' 2> /dev/null && { py=$p; break; }
done
"$py" -c 'import h5py, numpy' 2> /dev/null || py=
if [[ -n ${KILN:-} && -n ${KILN_SCORE_PARTS:-} ]]; then
  kiln=$KILN parts=$KILN_SCORE_PARTS
else
  [[ -f $build/CMakeCache.txt ]] || cmake -S . -B "$build" > /dev/null
  cmake --build "$build" --target kiln_cli score_parts -j2 > /dev/null
  kiln=$build/kiln parts=$build/benchmarks/score_parts
fi
mkdir -p "$work"
fm=${KILN_FASHION_MNIST:-/usr/share/datasets/fashion-mnist}
if [[ ! -f $work/fm.h5 ]]; then
  $kiln data import fashion-mnist --idx $fm/train-images-idx3-ubyte.gz $fm/train-labels-idx1-ubyte.gz \
    --test-idx $fm/t10k-images-idx3-ubyte.gz $fm/t10k-labels-idx1-ubyte.gz -o "$work/fm.h5" > /dev/null
fi
if [[ ! -f $work/mlp/model.h5 ]]; then
  $kiln train examples/fashion-mnist-mlp.yaml --data "$work/fm.h5" --out "$work/mlp" \
    --set train.epochs=1 --threads "$threads" > /dev/null 2>&1
fi
model=$work/mlp/model.h5
input=$work/fm-1m.h5 array=X
((rows == 1000000)) || input=$work/fm-$rows.h5
if [[ ! -f $input ]]; then
  $parts tile "$work/fm.h5" "$input.tmp" "$rows"
  mv "$input.tmp" "$input"
fi

h5py_read() {
  "$py" - "$input" "$batch" <<'PYEOF'
import sys, time, h5py
path, batch = sys.argv[1], int(sys.argv[2])
with h5py.File(path, "r") as f:
    d = f["X"]
    n = d.shape[0]
    t0 = time.perf_counter()
    for a in range(0, n, batch):
        x = d[a:a + batch]
    s = time.perf_counter() - t0
print("rows=%d seconds=%.4f rows_per_s=%.0f" % (n, s, n / s))
PYEOF
}
rate() { sed -n 's/.*rows_per_s=\([0-9.]*\).*/\1/p'; }
median() { sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }

echo "input: $input ($rows rows, uint8 [28, 28], $(du -m "$input" | cut -f1) MB); model: $model"
echo "chunks of $batch rows, $threads threads, device $device; $(nproc) cores, load average $(cut -d' ' -f1 /proc/loadavg)"
# Warm the page cache so that every variant reads from memory alike.
cat "$input" > /dev/null
declare -A all
printf '%-4s %12s %12s %12s %12s   (rows/s)\n' run "a:kiln-read" "b:h5py-read" "c:compute" "d:score"
for ((i = 1; i <= runs; i++)); do
  a=$($parts read "$input" "$array" "$batch" | rate)
  b=0
  [[ -n $py ]] && b=$(h5py_read | rate)
  c=$($parts compute "$model" "$input" "$array" "$batch" "$rows" "$threads" "$device" | rate)
  d=$($kiln score "$model" --input "$input" --array "$array" --output "$work/pred.h5" \
        --batch "$batch" --threads "$threads" --device "$device" 2> /dev/null |
      sed -n 's/.* (\([0-9.]*\) rows\/s)$/\1/p')
  all[a]+="$a " all[b]+="$b " all[c]+="$c " all[d]+="$d "
  printf '%-4s %12.0f %12.0f %12.0f %12.0f\n' "$i" "$a" "$b" "$c" "$d"
done
declare -A med
for k in a b c d; do med[$k]=$(echo "${all[$k]}" | tr ' ' '\n' | grep . | median); done
printf '%-4s %12.0f %12.0f %12.0f %12.0f\n' median "${med[a]}" "${med[b]}" "${med[c]}" "${med[d]}"
awk -v a="${med[a]}" -v c="${med[c]}" -v d="${med[d]}" 'BEGIN {
  s = a < c ? a : c
  printf "score / min(kiln read, compute) = %.0f / %.0f = %.2f (goal >= 0.80): %s\n", d, s, d / s,
         (d / s >= 0.8) ? "met" : "NOT met" }'
rm -f "$work/pred.h5"
