#!/usr/bin/env bash
# The real data: import Fashion-MNIST from Debian's dataset-fashion-mnist,
# train the example MLP for one epoch, evaluate, and read the files with h5py.
source "$(dirname "$0")/lib.sh"
fm=/usr/share/datasets/fashion-mnist
[[ -f $fm/train-images-idx3-ubyte.gz ]] || { echo "SKIP: dataset-fashion-mnist is not installed"; exit 77; }
PY=$(find_python) || { echo "SKIP: no python with h5py and numpy"; exit 77; }

expect_ok "import Fashion-MNIST" "$KILN" data import fashion-mnist \
  --idx $fm/train-images-idx3-ubyte.gz $fm/train-labels-idx1-ubyte.gz \
  --test-idx $fm/t10k-images-idx3-ubyte.gz $fm/t10k-labels-idx1-ubyte.gz -o fm.h5
grep -q 'train 60000 rows' out.txt && grep -q 'test  10000 rows' out.txt || fail "wrong row counts"
"$PY" - fm.h5 <<'PY' || fail "h5py cannot read the dataset as documented"
import sys, h5py
f = h5py.File(sys.argv[1], "r")
assert f.attrs["kiln_format"] == "dataset"
assert f["train/X"].shape == (60000, 28, 28) and f["train/X"].dtype == "uint8"
assert f["test/y"].shape == (10000,) and f["test/y"].dtype == "int32"
assert len(f.attrs["sha256"]) == 64
PY
pass "h5py reads the dataset"
expect_ok "train the example MLP for one epoch" "$KILN" train "$KILN_SRC/examples/fashion-mnist-mlp.yaml" \
  --data fm.h5 --out mlp --set train.epochs=1
expect_ok "eval on the test split" "$KILN" eval mlp/model.h5 --data fm.h5 --json
"$PY" -c 'import json; d=json.load(open("out.txt")); assert d["rows"] == 10000; assert d["accuracy"] > 0.80, d["accuracy"]' ||
  fail "one epoch should pass 0.80 test accuracy"
pass "one epoch reaches > 0.80 test accuracy"
finish
