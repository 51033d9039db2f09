#!/usr/bin/env bash
# Fashion-MNIST on CUDA: 3 epochs of the example MLP reach the CPU run's
# test accuracy within 0.5 points; two CUDA runs of the same config give the
# same evaluation to the last digit; --gemm kiln trains too. Skipped (77)
# without a CUDA device or without the dataset.
source "$(dirname "$0")/lib.sh"
"$KILN" version | grep -q 'cuda' || { echo "SKIP: this build has no CUDA backend"; exit 77; }
"$KILN" bench --device cuda --quick > /dev/null 2>&1 || { echo "SKIP: no CUDA device answered"; exit 77; }
fm=${KILN_FASHION_MNIST:-/usr/share/datasets/fashion-mnist}
[[ -f $fm/train-images-idx3-ubyte.gz ]] || { echo "SKIP: no Fashion-MNIST IDX files in $fm"; exit 77; }

expect_ok "import Fashion-MNIST" "$KILN" data import fashion-mnist \
  --idx "$fm/train-images-idx3-ubyte.gz" "$fm/train-labels-idx1-ubyte.gz" \
  --test-idx "$fm/t10k-images-idx3-ubyte.gz" "$fm/t10k-labels-idx1-ubyte.gz" -o fm.h5
acc() { sed -n 's/.*"accuracy": *\([0-9.]*\).*/\1/p' "$1" | head -1; }
for run in cpu cuda cuda2 kiln; do
  dev=cuda extra=()
  [[ $run == cpu ]] && dev=cpu
  [[ $run == kiln ]] && extra=(--gemm kiln)
  expect_ok "train 3 epochs on $run" "$KILN" train "$KILN_SRC/examples/fashion-mnist-mlp.yaml" \
    --data fm.h5 --out "m-$run" --device "$dev" "${extra[@]}" --set train.epochs=3 --set train.checkpoint_every=0
  cat out.txt err.txt | grep -q "device $dev" || fail "the $run run did not say it ran on $dev"
  expect_ok "eval the $run model" "$KILN" eval "m-$run/model.h5" --data fm.h5 --json
  cp out.txt "eval-$run.json"
done
a_cpu=$(acc eval-cpu.json) a_cuda=$(acc eval-cuda.json) a_kiln=$(acc eval-kiln.json)
echo "test accuracy: cpu $a_cpu, cuda $a_cuda, cuda (kiln SGEMM) $a_kiln"
awk -v c="$a_cpu" -v g="$a_cuda" 'BEGIN { exit !(g >= c - 0.005) }' ||
  fail "CUDA accuracy $a_cuda is more than 0.5 points below the CPU's $a_cpu"
awk -v c="$a_cpu" -v g="$a_kiln" 'BEGIN { exit !(g >= c - 0.005) }' ||
  fail "CUDA (kiln SGEMM) accuracy $a_kiln is more than 0.5 points below the CPU's $a_cpu"
pass "CUDA reaches the CPU's accuracy within 0.5 points"
cmp -s eval-cuda.json eval-cuda2.json || fail "two CUDA runs of the same config evaluate differently"
pass "two CUDA runs evaluate identically"
finish
