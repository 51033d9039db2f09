#!/usr/bin/env bash
# kiln monitor drift on Fashion-MNIST: the held-out test split against the
# train split is not flagged (exit 0); a copy brightened by +40 is (exit 1),
# and --json lists the drifted features first. Also a dataset version's
# stored statistics as the baseline, a CSV of rows as current data, and
# usage errors (exit 2).
source "$(dirname "$0")/lib.sh"
fm=/usr/share/datasets/fashion-mnist
[[ -f $fm/train-images-idx3-ubyte.gz ]] || { echo "SKIP: dataset-fashion-mnist is not installed"; exit 77; }
PY=$(find_python) || { echo "SKIP: no python with h5py and numpy"; exit 77; }

expect_ok "import Fashion-MNIST to a file" "$KILN" data import fashion-mnist \
  --idx $fm/train-images-idx3-ubyte.gz $fm/train-labels-idx1-ubyte.gz \
  --test-idx $fm/t10k-images-idx3-ubyte.gz $fm/t10k-labels-idx1-ubyte.gz -o fm.h5

"$KILN" monitor --help > out.txt || fail "monitor --help exited $?"
grep -q "usage: kiln monitor drift" out.txt || fail "monitor --help prints no usage"
pass "monitor --help"

# --- the held-out split: no drift -------------------------------------------------------
expect_ok "test split against train: exit 0" "$KILN" monitor drift --baseline fm.h5 --current fm.h5
grep -qE '^0 of 784 features drifted' out.txt || { cat out.txt; fail "no '0 of 784 features drifted' line"; }
grep -q '^class distribution: PSI' out.txt || { cat out.txt; fail "no class distribution line"; }
head -1 out.txt | grep -q 'feature.*PSI.*KS.*baseline_mean.*current_mean.*flag' || fail "no table header"
pass "the held-out split is not flagged"

# --- a brightened copy: drift -----------------------------------------------------------
"$PY" - fm.h5 shifted-src.h5 <<'PY' || fail "could not write the shifted copy"
import sys, h5py, numpy as np
src = h5py.File(sys.argv[1], "r")
with h5py.File(sys.argv[2], "w") as dst:
    for split in ("train", "test"):
        X = src[split + "/X"][...].astype(np.int16) + 40
        dst[split + "/X"] = np.clip(X, 0, 255).astype(np.uint8)
        dst[split + "/y"] = src[split + "/y"][...]
PY
expect_ok "import the shifted copy" "$KILN" data import shifted --h5 shifted-src.h5 -o shifted.h5
rc=0
"$KILN" monitor drift --baseline fm.h5 --current shifted.h5 > out.txt 2> err.txt || rc=$?
[[ $rc -eq 1 ]] || { cat out.txt err.txt; fail "a shifted copy should exit 1 (drift), got $rc"; }
grep -qE '^[1-9][0-9]* of 784 features drifted' out.txt || { cat out.txt; fail "no drifted features reported"; }
grep -q 'DRIFT' out.txt || fail "no DRIFT flag in the table"
[[ ! -s err.txt ]] || { cat err.txt; fail "drift found is not an error: nothing on stderr"; }
pass "the shifted copy is flagged (exit 1)"

rc=0
"$KILN" monitor drift --baseline fm.h5 --current shifted.h5 --json --top 0 > out.json 2> err.txt || rc=$?
[[ $rc -eq 1 ]] || { cat err.txt; fail "--json: expected exit 1, got $rc"; }
"$PY" - out.json <<'PY' || fail "--json does not parse or is not sorted"
import json, sys
d = json.load(open(sys.argv[1]))
f = d["features"]
assert d["features_total"] == 784 and len(f) == 784, len(f)
assert d["drifted"] > 700, d["drifted"]
flags = [x["drifted"] for x in f]
assert flags == sorted(flags, reverse=True), "drifted features are not first"
psi = [x["psi"] for x in f]
assert psi == sorted(psi, reverse=True), "not sorted by PSI"
assert all(x["current_mean"] >= x["baseline_mean"] for x in f[:d["drifted"]])
assert d["psi_threshold"] == 0.2 and d["ks_threshold"] == 0.1
assert d["classes"]["drifted"] is False
PY
pass "--json parses and lists drifted features first"

expect_ok "raised thresholds: exit 0" "$KILN" monitor drift --baseline fm.h5 --current shifted.h5 \
  --psi-threshold 1000 --ks-threshold 1
grep -qE '^0 of 784 features drifted' out.txt || { cat out.txt; fail "thresholds are not applied"; }

# --- a dataset version's stored statistics; CSV rows -------------------------------------
expect_ok "kiln init" "$KILN" init
expect_ok "register the dataset" "$KILN" data import fashion-mnist --h5 fm.h5
expect_ok "a version as the baseline" "$KILN" monitor drift --baseline fashion-mnist --current fm.h5 --top 3
grep -qE '^0 of 784 features drifted' out.txt || { cat out.txt; fail "a version's stored stats differ from the file's"; }
"$PY" - shifted.h5 rows.csv <<'PY' || fail "could not write rows.csv"
import sys, h5py, numpy as np
X = h5py.File(sys.argv[1], "r")["test/X"][:500].reshape(500, -1) / np.float32(255)
np.savetxt(sys.argv[2], X, delimiter=",", fmt="%.6f",
           header=",".join("p%d" % i for i in range(X.shape[1])), comments="")
PY
rc=0
"$KILN" monitor drift --baseline fashion-mnist --current rows.csv --json > out.json 2> err.txt || rc=$?
[[ $rc -eq 1 ]] || { cat err.txt; fail "CSV rows of the shifted copy: expected exit 1, got $rc"; }
"$PY" -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d["current_rows"] == 500 and d["drifted"] > 0 and "classes" not in d' out.json ||
  fail "CSV rows report"
pass "CSV rows against a version's stored statistics (exit 1)"

# --- errors are >= 2 ----------------------------------------------------------------------
expect_fail "no --current" 2 "needs --baseline and --current" "$KILN" monitor drift --baseline fm.h5
expect_fail "bad threshold" 2 "psi-threshold" "$KILN" monitor drift --baseline fm.h5 --current fm.h5 --psi-threshold x
expect_fail "missing split" 2 "no val split" "$KILN" monitor drift --baseline fm.h5 --current fm.h5 --split val
expect_fail "unknown dataset" 11 "nosuch" "$KILN" monitor drift --baseline nosuch --current fm.h5
finish
