#!/usr/bin/env bash
# Trains the Fashion-MNIST example MLP (784-256-128-10, ReLU, Adam 1e-3,
# batch 128) for one epoch with kiln and with PyTorch eager, alternately,
# several times, same thread count and batch size, and prints samples/s and
# the median ratio. Also reports kiln's peak RSS against the dataset's size.
#
#   benchmarks/train_vs_pytorch.sh [RUNS] [THREADS]
#
# Peers: Debian's python3-torch (/usr/bin/python3) and, when present, the
# current PyTorch from PyPI in $KILN_TORCH_VENV (default /opt/kiln-bench-venv;
# make it with: python3 -m venv /opt/kiln-bench-venv &&
# /opt/kiln-bench-venv/bin/pip install torch h5py numpy).
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-5}
threads=${2:-$(nproc)}
kiln=${KILN:-build/kiln}
venv=${KILN_TORCH_VENV:-/opt/kiln-bench-venv}
[[ -x $kiln ]] || scripts/build.sh build > /dev/null
work=${KILN_BENCH_DIR:-/tmp/kiln-bench}
mkdir -p "$work"
fm=/usr/share/datasets/fashion-mnist
if [[ ! -f $work/fm.h5 ]]; then
  $kiln data import fashion-mnist --idx $fm/train-images-idx3-ubyte.gz $fm/train-labels-idx1-ubyte.gz \
    --test-idx $fm/t10k-images-idx3-ubyte.gz $fm/t10k-labels-idx1-ubyte.gz -o "$work/fm.h5" > /dev/null
fi

peers=("debian:/usr/bin/python3")
[[ -x $venv/bin/python ]] && peers+=("pypi:$venv/bin/python")

median() { sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }

declare -A samples
echo "run  kiln  $(for p in "${peers[@]}"; do printf '%s ' "${p%%:*}"; done)(samples/s, $threads threads, batch 128)"
for ((i = 1; i <= runs; i++)); do
  line="$i"
  k=$($kiln train examples/fashion-mnist-mlp.yaml --data "$work/fm.h5" --out "$work/run" \
        --set train.epochs=1 --set train.checkpoint_every=0 --threads "$threads" 2>/dev/null |
      sed -n 's/.*: \([0-9.]*\) samples\/s$/\1/p')
  samples[kiln]+="$k "
  line+="  $k"
  for p in "${peers[@]}"; do
    name=${p%%:*} py=${p#*:}
    s=$("$py" benchmarks/torch_mlp_epoch.py "$work/fm.h5" --threads "$threads" --batch 128 |
        sed -n 's/.*samples_per_s=\([0-9.]*\).*/\1/p')
    samples[$name]+="$s "
    line+="  $s"
  done
  echo "$line"
done
km=$(echo "${samples[kiln]}" | tr ' ' '\n' | grep . | median)
echo "median kiln: $km samples/s"
for p in "${peers[@]}"; do
  name=${p%%:*}
  pm=$(echo "${samples[$name]}" | tr ' ' '\n' | grep . | median)
  ver=$("${p#*:}" -c 'import torch; print(torch.__version__)')
  awk -v n="$name" -v v="$ver" -v p="$pm" -v k="$km" \
    'BEGIN { printf "median torch %s (%s): %s samples/s   kiln/torch = %.2fx\n", n, v, p, k / p }' 
done

# Peak memory of a one-epoch training run against the dataset's in-memory size.
/usr/bin/time -v $kiln train examples/fashion-mnist-mlp.yaml --data "$work/fm.h5" --out "$work/run" \
  --set train.epochs=1 --threads "$threads" > /dev/null 2> "$work/time.txt"
rss_kb=$(sed -n 's/.*Maximum resident set size (kbytes): //p' "$work/time.txt")
data_bytes=$(( (60000 + 10000) * (784 + 4) ))
awk -v r="$rss_kb" -v d="$data_bytes" 'BEGIN {
  printf "peak RSS %.1f MiB; dataset in memory %.1f MiB (uint8 X + int32 y); ratio %.2f\n",
         r / 1024, d / 1048576, r * 1024 / d }' 
