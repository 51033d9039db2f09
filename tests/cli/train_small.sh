#!/usr/bin/env bash
# The whole path on a small CSV: import, show, train, eval, predict (CSV and
# HDF5 in and out), resume bitwise, determinism, and h5py reading every file.
source "$(dirname "$0")/lib.sh"
PY=$(find_python) || { echo "SKIP: no python with h5py and numpy"; exit 77; }

make_blobs blobs.csv 600
expect_ok "import CSV with text labels" "$KILN" data import blobs --csv blobs.csv --label species \
  --test-fraction 0.25 --seed 1 -o blobs.h5
grep -q 'test  150 rows' out.txt || { cat out.txt; fail "stratified 25% of 600 should be 150 test rows"; }
expect_ok "data show" "$KILN" data show blobs.h5
grep -q 'versicolor' out.txt || fail "data show lacks the class names"
grep -q "$("$PY" "$KILN_SRC/tests/data/recompute_hash.py" blobs.h5)" out.txt ||
  fail "the hash recomputed with h5py differs from kiln's"
pass "h5py recomputes the dataset hash"

cat > mlp.yaml <<'YAML'
model:
  input: [4]
  layers:
    - {type: dense, units: 16}
    - {type: relu}
    - {type: dropout, rate: 0.1}
    - {type: dense, units: 3}
  loss: softmax_cross_entropy
train:
  epochs: 2
  batch_size: 32
  seed: 5
  optimizer: {type: adam, lr: 0.01}
  checkpoint_every: 1
YAML
expect_ok "train 2 epochs" "$KILN" train mlp.yaml --data blobs.h5 --out run2 --threads 2
[[ -f run2/model.h5 && -f run2/checkpoint.h5 && -f run2/metrics.csv ]] || fail "train outputs missing"
[[ $(wc -l < run2/metrics.csv) -eq 3 ]] || fail "metrics.csv should have a header and 2 rows"
no_partial_files run2

expect_ok "train 1 epoch" "$KILN" train mlp.yaml --data blobs.h5 --out run1 --threads 2 --set train.epochs=1
expect_ok "resume 1 more epoch" "$KILN" train mlp.yaml --data blobs.h5 --out run1 --threads 2 \
  --resume run1/checkpoint.h5
expect_ok "train 2 epochs again" "$KILN" train mlp.yaml --data blobs.h5 --out run2b --threads 2
cat > same.py <<'PY'
import sys, h5py, numpy as np
a, b = h5py.File(sys.argv[1], "r"), h5py.File(sys.argv[2], "r")
names = sorted(a["params"].keys())
assert names == sorted(b["params"].keys()), (names, sorted(b["params"].keys()))
for group in ("params", "optimizer/exp_avg", "optimizer/exp_avg_sq"):
    for n in names:
        x, y = np.asarray(a[group][n]), np.asarray(b[group][n])
        if x.shape != y.shape or x.tobytes() != y.tobytes():
            sys.exit(f"{group}/{n} differs")
for k in ("epoch", "step"):
    assert a["state"].attrs[k] == b["state"].attrs[k], k
PY
expect_ok "resume is bitwise equal to a straight run" "$PY" same.py run1/model.h5 run2/model.h5
expect_ok "same seed and threads give bitwise equal weights" "$PY" same.py run2/model.h5 run2b/model.h5
[[ $(wc -l < run1/metrics.csv) -eq 3 ]] || fail "resumed metrics.csv should hold both epochs"

cat > layout.py <<'PY'
import sys, h5py, numpy as np
f = h5py.File(sys.argv[1], "r")
assert f.attrs["kiln_format"] == "model", f.attrs["kiln_format"]
assert f["params/0.weight"].shape == (16, 4) and f["params/3.weight"].shape == (3, 16)
assert f["params/0.bias"].shape == (16,) and f["params/3.bias"].shape == (3,)
cfg = f["model/config"][()]
assert b"dense" in (cfg if isinstance(cfg, bytes) else cfg.encode())
assert list(f.attrs["classes"]) in (["setosa", "versicolor", "virginica"],
                                    [b"setosa", b"versicolor", b"virginica"])
# The model file is enough to run the model without kiln: a numpy forward
# pass equals kiln predict's probabilities.
d = h5py.File(sys.argv[2], "r")
x = np.asarray(d["test/X"], dtype=np.float64)
h = np.maximum(x @ np.asarray(f["params/0.weight"]).T + f["params/0.bias"], 0)
z = h @ np.asarray(f["params/3.weight"]).T + f["params/3.bias"]
p = np.exp(z - z.max(1, keepdims=True)); p /= p.sum(1, keepdims=True)
out = h5py.File(sys.argv[3], "r")
assert out.attrs["kiln_format"] == "predictions"
got = np.asarray(out["prob"])
assert got.shape == p.shape, (got.shape, p.shape)
assert np.abs(got - p).max() < 1e-5, np.abs(got - p).max()
assert (np.asarray(out["pred"]) == p.argmax(1)).all()
PY
expect_ok "train 15 epochs" "$KILN" train mlp.yaml --data blobs.h5 --out run15 --set train.epochs=15
expect_ok "eval" "$KILN" eval run15/model.h5 --data blobs.h5
grep -q 'confusion matrix' out.txt || fail "eval prints no confusion matrix"
expect_ok "eval --json" "$KILN" eval run15/model.h5 --data blobs.h5 --json
"$PY" -c 'import json,sys; d=json.load(open("out.txt")); assert d["accuracy"] > 0.95, d["accuracy"]; assert len(d["confusion_matrix"]) == 3' ||
  fail "eval --json is not JSON with accuracy > 0.95"
pass "eval --json parses, accuracy > 0.95 on separable blobs"
expect_ok "predict HDF5 -> HDF5" "$KILN" predict run2/model.h5 --input blobs.h5 --output pred.h5 --batch 7
expect_ok "h5py reads the model; numpy forward pass equals kiln predict" "$PY" layout.py run2/model.h5 blobs.h5 pred.h5
expect_ok "predict CSV -> CSV" "$KILN" predict run2/model.h5 --input blobs.csv --drop-column species --output pred.csv
[[ $(wc -l < pred.csv) -eq 601 ]] || fail "pred.csv should have a header and 600 rows"
head -1 pred.csv | grep -q 'prob_versicolor' || fail "pred.csv header lacks class names"
no_partial_files .
finish
