#!/usr/bin/env bash
# kiln monitor drift on Fashion-MNIST: the held-out test split against the
# train split is not flagged (exit 0); a copy brightened by +40 is (exit 1),
# and --json lists the drifted features first. Also a dataset version's
# stored statistics as the baseline, a CSV of rows as current data, a signed
# model package as the baseline, prediction logs (held out: not flagged;
# brightened: flagged; redacted: classes only; malformed: refused), and
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

# --- a package as the baseline: its stats.json, its signature checked -------------------------
cat > tiny.yaml <<'YAML'
model:
  input: [28, 28]
  layers:
    - {type: flatten}
    - {type: dense, units: 8}
    - {type: relu}
    - {type: dense, units: 10}
  loss: softmax_cross_entropy
train:
  epochs: 1
  batch_size: 256
  seed: 3
  optimizer: {type: adam, lr: 0.001}
YAML
expect_ok "train a tiny model" "$KILN" train tiny.yaml --data fashion-mnist --threads 2
expect_ok "register it" "$KILN" model register run:1 --name clf
expect_ok "keygen" "$KILN" keygen -o release
expect_ok "package signed" "$KILN" model package clf@1 -o clf.kiln --sign release.key
expect_ok "package unsigned" "$KILN" model package clf@1 -o clf-unsigned.kiln
expect_ok "a signed package as the baseline" "$KILN" monitor drift --baseline clf.kiln \
  --key release.pub --require-signature --current fm.h5 --top 3
grep -qE '^0 of 784 features drifted' out.txt || { cat out.txt; fail "package baseline: held-out split flagged"; }
rc=0
"$KILN" monitor drift --baseline clf.kiln --current shifted.h5 > out.txt 2> err.txt || rc=$?
[[ $rc -eq 1 ]] || { cat out.txt err.txt; fail "package baseline, shifted copy: expected exit 1, got $rc"; }
grep -qE '^[1-9][0-9]* of 784 features drifted' out.txt || { cat out.txt; fail "no drifted features"; }
pass "a package baseline flags the shifted copy (exit 1)"
expect_fail "unsigned package under --require-signature" 12 "not signed" \
  "$KILN" monitor drift --baseline clf-unsigned.kiln --key release.pub --require-signature --current fm.h5
expect_fail "--key without a package" 2 "package baseline" \
  "$KILN" monitor drift --baseline fm.h5 --key release.pub --current fm.h5

# --- prediction logs -------------------------------------------------------------------------
# gen.py DATA.h5 OUT.jsonl SHIFT [redact] [skew]: 3000 test rows as a prediction log in the
# documented line format (docs/FORMATS.md), 100 rows a line; classes are the labels (skew: 80%
# of them class 0).
cat > gen.py <<'PY'
import sys, h5py, numpy as np
src, out, shift = sys.argv[1], sys.argv[2], int(sys.argv[3])
redact, skew = "redact" in sys.argv[4:], "skew" in sys.argv[4:]
f = h5py.File(src, "r")
n = 3000
X = np.clip(f["test/X"][:n].reshape(n, -1).astype(np.int16) + shift, 0, 255).astype(np.uint8)
y = f["test/y"][:n]
if skew:
    y = np.where(np.arange(n) % 10 < 8, 0, y)
# Each uint8 value as the model sees it (v * float32(1/255)), printed with 9 digits.
v = ["%.9g" % x for x in np.arange(256, dtype=np.float32) * np.float32(1 / 255)]
with open(out, "w") as o:
    for i in range(0, n, 100):
        r = range(i, i + 100)
        line = ('{"time":"2026-11-27T01:02:03.123Z","request_id":"gen-%d","model":"clf",'
                '"model_version":1,"rows":100' % i)
        if not redact:
            line += ',"inputs":[' + ",".join("[" + ",".join(v[p] for p in X[j]) + "]" for j in r) + "]"
        line += ',"outputs":[' + ",".join("[" + ",".join("1" if c == y[j] else "0" for c in range(10)) + "]"
                                         for j in r) + "]"
        line += ',"classes":[' + ",".join(str(int(y[j])) for j in r) + "]}\n"
        o.write(line)
PY
"$PY" gen.py fm.h5 plain.jsonl 0 && "$PY" gen.py fm.h5 bright.jsonl 40 &&
  "$PY" gen.py fm.h5 redacted.jsonl 0 redact && "$PY" gen.py fm.h5 skewed.jsonl 0 redact skew ||
  fail "could not write the prediction logs"

expect_ok "a log of held-out rows: exit 0" "$KILN" monitor drift --baseline clf.kiln --current plain.jsonl
grep -qE '^0 of 784 features drifted .*current 3000 rows' out.txt || { cat out.txt; fail "held-out log flagged"; }
grep -qE '^class distribution: PSI 0\.0[0-9]*$' out.txt || { cat out.txt; fail "no class line for the log"; }
pass "a log of held-out rows is not flagged"

# A folder of them, rotated file first: the same rows, in two files.
mkdir logs
head -n 20 plain.jsonl > logs/predictions-20261127T000000Z-000001.jsonl
tail -n +21 plain.jsonl > logs/predictions.jsonl
expect_ok "a folder of log files" "$KILN" monitor drift --baseline clf.kiln --current logs --json
"$PY" -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d["current_rows"] == 3000 and d["drifted"] == 0 and d["features_checked"] and d["classes"]["drifted"] is False, d' out.txt ||
  fail "folder of logs: report"

rc=0
"$KILN" monitor drift --baseline clf.kiln --current bright.jsonl --json --top 0 > out.json 2> err.txt || rc=$?
[[ $rc -eq 1 ]] || { cat err.txt; fail "a brightened log should exit 1, got $rc"; }
"$PY" -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d["drifted"] > 700 and d["current_rows"] == 3000, d["drifted"]' out.json ||
  fail "brightened log: report"
pass "a brightened log is flagged (exit 1)"

expect_ok "a redacted log: classes only" "$KILN" monitor drift --baseline clf.kiln --current redacted.jsonl
grep -q 'feature drift not checked' out.txt || { cat out.txt; fail "a redacted log does not say features were not checked"; }
grep -q '^class distribution: PSI' out.txt || { cat out.txt; fail "a redacted log has no class line"; }
rc=0
"$KILN" monitor drift --baseline clf.kiln --current skewed.jsonl --json > out.json 2> err.txt || rc=$?
[[ $rc -eq 1 ]] || { cat err.txt; fail "a redacted log with skewed classes should exit 1, got $rc"; }
"$PY" -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d["features_checked"] is False and d["features"] == [] and d["classes"]["drifted"] and d["current_labels"] == 3000, d' out.json ||
  fail "skewed redacted log: report"
pass "a redacted log with skewed predicted classes is flagged on classes alone (exit 1)"

head -n 3 plain.jsonl > bad.jsonl
sed -n 4p plain.jsonl | cut -c 1-5000 >> bad.jsonl # cut short, as by a crash mid-write
expect_fail "a truncated log line" 4 "bad.jsonl:4: not JSON" \
  "$KILN" monitor drift --baseline clf.kiln --current bad.jsonl
echo '{"rows":1,"inputs":[[0.5,0.5,0.5]],"outputs":[[1]],"classes":[0]}' > narrow.jsonl
expect_fail "a log of the wrong width" 6 "narrow.jsonl:1: .*3 features" \
  "$KILN" monitor drift --baseline clf.kiln --current narrow.jsonl
echo '{"rows":1,"outputs":[[1]]}' > bare.jsonl
expect_fail "a log with neither inputs nor classes" 2 "no inputs" \
  "$KILN" monitor drift --baseline clf.kiln --current bare.jsonl
expect_fail "a missing log" 3 "nosuch.jsonl" "$KILN" monitor drift --baseline clf.kiln --current nosuch.jsonl

# --- errors are >= 2 ----------------------------------------------------------------------
expect_fail "no --current" 2 "needs --baseline and --current" "$KILN" monitor drift --baseline fm.h5
expect_fail "bad threshold" 2 "psi-threshold" "$KILN" monitor drift --baseline fm.h5 --current fm.h5 --psi-threshold x
expect_fail "missing split" 2 "no val split" "$KILN" monitor drift --baseline fm.h5 --current fm.h5 --split val
expect_fail "unknown dataset" 11 "nosuch" "$KILN" monitor drift --baseline nosuch --current fm.h5
finish
