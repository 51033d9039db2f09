#!/usr/bin/env bash
# Dataset versions in a workspace: import (same content = one version,
# changed content = a child), references, list/show/log/diff/stats/export,
# transforms carried by a model to predict time, privacy (dropped and hashed
# columns), and a corrupted object refused.
source "$(dirname "$0")/lib.sh"
PY=$(find_python) || { echo "SKIP: no python with h5py and numpy"; exit 77; }
# A folder outside the workspace, for imports without one.
OUTSIDE=$(mktemp -d "${TMPDIR:-/tmp}/kiln-cli-outside.XXXXXX")
trap 'rm -rf "$WORK" "$OUTSIDE"' EXIT

# json_get FILE EXPR: evaluates EXPR on the JSON document d in FILE.
json_get() { "$PY" -c "import json,sys; d=json.load(open(sys.argv[1])); print($2)" "$1"; }

expect_ok "kiln init" "$KILN" init
for sub in import list show log diff stats export transform; do
  "$KILN" data "$sub" --help > out.txt || fail "data $sub --help exited $?"
  grep -q "usage: kiln data $sub" out.txt || fail "data $sub --help prints no usage"
done
pass "every data subcommand has --help"
expect_ok "data list of an empty workspace" "$KILN" data list
expect_fail "log of an unknown dataset" 11 "nosuch" "$KILN" data log nosuch

# --- versions: same content once, changed content a child ---------------------------
make_blobs blobs.csv 300
expect_ok "import registers v1" "$KILN" data import blobs --csv blobs.csv --label species
grep -qE '^blobs v1 \([0-9a-f]{12}\) registered$' out.txt || { cat out.txt; fail "no 'blobs v1 (...) registered' line"; }
[[ ! -e blobs.h5 ]] || fail "inside a workspace, import writes no file unless -o is given"
v1=$(awk '/sha256/ {print $2}' out.txt)
expect_ok "the same content again" "$KILN" data import blobs --csv blobs.csv --label species
grep -q "^unchanged: same content as blobs@v1" out.txt || { cat out.txt; fail "a re-import is not 'unchanged'"; }
objects=$(find .kiln/objects -type f | wc -l)
[[ $objects -eq 1 ]] || fail "the same content is stored once ($objects objects)"
awk -F, 'NR == 3 { $1 = "999.5" } 1' OFS=, blobs.csv > blobs2.csv
expect_ok "changed content is v2" "$KILN" data import blobs --csv blobs2.csv --label species -o blobs2.h5
grep -qE '^blobs v2 \([0-9a-f]{12}\) registered, parent v1$' out.txt || { cat out.txt; fail "no 'v2 ... parent v1' line"; }
[[ -f blobs2.h5 ]] || fail "-o also writes the file inside a workspace"
v2=$(awk '/sha256/ {print $2}' out.txt)

# --- references ----------------------------------------------------------------------
expect_ok "show NAME" "$KILN" data show blobs --json
[[ $(json_get out.txt 'd["version"]["version"]') == 2 ]] || fail "NAME is not the latest version"
expect_ok "show NAME@v1" "$KILN" data show blobs@v1 --json
[[ $(json_get out.txt 'd["sha256"]') == "$v1" ]] || fail "NAME@v1 is not v1"
expect_ok "show NAME@prefix" "$KILN" data show "blobs@${v2:0:8}" --json
[[ $(json_get out.txt 'd["version"]["parent"]["version"]') == 1 ]] || fail "v2's parent is not v1"
expect_ok "show a plain file" "$KILN" data show blobs2.h5
grep -q "$v2" out.txt || fail "show FILE lacks the hash"
unknown=0000000000000000
[[ $v1 != $unknown* && $v2 != $unknown* ]] || unknown=ffffffffffffffff
expect_fail "an unknown prefix" 11 "no such dataset version" "$KILN" data show "blobs@$unknown"
expect_fail "an unknown name" 11 "nosuch" "$KILN" data show nosuch
expect_fail "a bad selector" 2 "hash prefix" "$KILN" data show blobs@XYZ

# An ambiguous prefix: find two one-value edits whose content hashes share
# their first 4 hex digits (the hash as docs/FORMATS.md defines it), import
# both, and ask for that prefix.
"$PY" - blobs.csv <<'PY' || fail "no colliding edits found"
import csv, hashlib, struct, sys
rows = list(csv.reader(open(sys.argv[1])))
head, body = rows[0], rows[1:]
classes = sorted({r[-1] for r in body})
def content_hash(body):
    h = hashlib.sha256(b"train\0")
    h.update(b"float32\0" + struct.pack("<3q", 2, len(body), 4))
    h.update(b"".join(struct.pack("<4f", *map(float, r[:4])) for r in body))
    h.update(b"int32\0" + struct.pack("<2q", 1, len(body)))
    h.update(struct.pack("<%di" % len(body), *(classes.index(r[-1]) for r in body)))
    return h.hexdigest()
seen = {}
for k in range(20000):
    edit = [list(r) for r in body]
    edit[4][1] = "%d.25" % k
    p = content_hash(edit)[:4]
    if p in seen:
        for name, rows_ in (("amb1.csv", seen[p]), ("amb2.csv", edit)):
            with open(name, "w", newline="") as f:
                csv.writer(f, lineterminator="\n").writerows([head] + rows_)
        open("amb.prefix", "w").write(p)
        break
    seen[p] = edit
else:
    sys.exit("no collision in 20000 edits")
PY
expect_ok "import the first colliding edit" "$KILN" data import blobs --csv amb1.csv --label species
expect_ok "import the second colliding edit" "$KILN" data import blobs --csv amb2.csv --label species
expect_fail "an ambiguous prefix lists the candidates" 2 "ambiguous.*v3.*v4" \
  "$KILN" data show "blobs@$(cat amb.prefix)"

# --- list, log, diff, stats, export (text and JSON) -----------------------------------
expect_ok "data list" "$KILN" data list
grep -qE '^blobs +4 +v4' out.txt || { cat out.txt; fail "list lacks 'blobs 4 v4'"; }
expect_ok "data list --json" "$KILN" data list --json
[[ $(json_get out.txt '[x["versions"] for x in d if x["name"] == "blobs"][0]') == 4 ]] || fail "list --json"
expect_ok "data log" "$KILN" data log blobs
[[ $(grep -c '^blobs@v' out.txt) -eq 4 ]] || fail "log lists 4 versions"
head -1 out.txt | grep -q '^blobs@v4' || fail "log is not newest first"
expect_ok "data log --json" "$KILN" data log blobs --json
[[ $(json_get out.txt '[x["version"] for x in d]') == "[4, 3, 2, 1]" ]] || fail "log --json order"
[[ $(json_get out.txt 'd[2]["parent"]["version"]') == 1 ]] || fail "log --json: v2's parent"
expect_ok "data diff" "$KILN" data diff blobs@v1 blobs@v2
grep -qE '^\* f1 ' <(sed 's/^ *//' out.txt) || { cat out.txt; fail "diff does not flag f1, which moved"; }
expect_ok "data diff --json" "$KILN" data diff blobs@v1 blobs@v2 --json
[[ $(json_get out.txt 'd["flagged"]') == "['f1']" ]] || fail "diff --json flags f1 only"
[[ $(json_get out.txt '[f["name"] for f in d["features"] if f["changed"]]') == "['f1']" ]] || fail "diff --json: f1 changed"
expect_ok "data stats" "$KILN" data stats blobs@v1 --split train
grep -q 'f4' out.txt || fail "stats lacks feature f4"
expect_ok "data stats --json" "$KILN" data stats blobs@v1 --json
[[ $(json_get out.txt 'd["splits"][0]["rows"]') == 300 ]] || fail "stats --json rows"
[[ $(json_get out.txt 'sum(d["splits"][0]["class_counts"])') == 300 ]] || fail "stats --json class counts"
expect_ok "data show --json" "$KILN" data show blobs --json
json_get out.txt 'd["version"]["source"]' | grep -q amb2.csv || fail "show --json source"
expect_ok "export CSV" "$KILN" data export blobs@v2 -o v2.csv
no_partial_files .
expect_ok "re-import the exported CSV" "$KILN" data import roundtrip --csv v2.csv --label label
grep -q "sha256 $v2" out.txt || { cat out.txt; fail "the CSV round trip changed the content hash"; }
expect_ok "export HDF5" "$KILN" data export blobs@v2 -o v2copy.h5
cmp -s v2copy.h5 "$("$KILN" data show blobs@v2 --json | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["path"])')" ||
  fail "an HDF5 export is not a copy of the object"
pass "an HDF5 export is a byte copy of the object"
expect_fail "export needs -o" 2 "needs -o" "$KILN" data export blobs

# --- transforms travel with the model --------------------------------------------------
# Two classes a unit apart around 1000: trivially separable, but a model fed
# the raw scale without standardizing would not learn it in a few epochs.
awk 'BEGIN { srand(11); print "a,b,label";
  for (i = 0; i < 400; i++) { c = i % 2;
    printf "%.4f,%.4f,%s\n", 1000 + (c ? 0.5 : -0.5) + (rand() - 0.5) * 0.6, 1000 + rand() - 0.5, c ? "yes" : "no" } }' > raw.csv
expect_ok "import raw" "$KILN" data import raw --csv raw.csv --label label
expect_ok "transform --standardize --as std" "$KILN" data transform raw --standardize --as std
grep -qE '^std v1 \([0-9a-f]{12}\) registered, parent raw@v1$' out.txt || { cat out.txt; fail "transform output"; }
expect_ok "show std" "$KILN" data show std --json
[[ $(json_get out.txt 'd["version"]["transforms"]["transforms"][0]["kind"]') == standardize ]] || fail "std's record lacks the transform"
[[ $(json_get out.txt 'abs(d["version"]["transforms"]["transforms"][0]["mean"][0] - 1000) < 0.1') == True ]] ||
  fail "the fitted mean is not recorded"
expect_fail "transform of an unknown source" 11 "nosuch" "$KILN" data transform nosuch --standardize --as x
expect_fail "transform without --as" 2 "--as" "$KILN" data transform raw --standardize
cat > tiny.yaml <<'YAML'
model:
  input: [2]
  layers:
    - {type: dense, units: 8}
    - {type: relu}
    - {type: dense, units: 2}
  loss: softmax_cross_entropy
train:
  epochs: 15
  batch_size: 32
  seed: 3
  optimizer: {type: adam, lr: 0.05}
YAML
expect_ok "train on the transformed version by name" "$KILN" train tiny.yaml --data std --out run --threads 1
"$PY" - run/model.h5 <<'PY' || fail "the model lacks /preprocess/transforms"
import json, sys, h5py
t = h5py.File(sys.argv[1], "r")["preprocess"].attrs["transforms"]
t = json.loads(t if isinstance(t, str) else t.decode())
assert t["transforms"][0]["kind"] == "standardize", t
PY
pass "the model carries the transforms"
expect_ok "predict raw rows" "$KILN" predict run/model.h5 --input raw.csv --drop-column label --output p.csv
"$PY" - raw.csv p.csv <<'PY' || fail "predictions on raw rows are not those of standardized inputs"
import csv, sys
truth = [r["label"] for r in csv.DictReader(open(sys.argv[1]))]
pred = [r["pred"] for r in csv.DictReader(open(sys.argv[2]))]
acc = sum(t == p for t, p in zip(truth, pred)) / len(truth)
assert len(pred) == 400 and acc > 0.9, acc
PY
pass "raw rows are standardized at predict time (accuracy > 0.9)"
# A transformed version's rows are what the model's own transforms make:
# predict and score feed them in as they are, not transformed a second time.
expect_ok "show std" "$KILN" data show std --json
std_obj=$(json_get out.txt 'd["path"]')
expect_ok "show raw" "$KILN" data show raw --json
raw_obj=$(json_get out.txt 'd["path"]')
expect_ok "predict std's rows" "$KILN" predict run/model.h5 --input "$std_obj" --array train/X --output pstd.h5
expect_ok "predict raw's rows" "$KILN" predict run/model.h5 --input "$raw_obj" --array train/X --output praw.h5
expect_ok "score std by name" "$KILN" score run/model.h5 --input std --split train --output sstd.h5
"$PY" - pstd.h5 praw.h5 sstd.h5 <<'PY' || fail "a transformed version's rows are not scored as its raw rows"
import sys, h5py, numpy as np
std, raw, score = (h5py.File(p, "r") for p in sys.argv[1:4])
assert len(raw["pred"]) > 50, len(raw["pred"])
for f in (std, score):
    assert (f["pred"][()] == raw["pred"][()]).all()
    assert np.abs(f["prob"][()] - raw["prob"][()]).max() < 1e-5, np.abs(f["prob"][()] - raw["prob"][()]).max()
PY
pass "the transformed version's rows score as the raw version's (not standardized twice)"
expect_ok "transform --minmax --as mm" "$KILN" data transform raw --minmax --as mm
expect_fail "rows made by other transforms" 2 "other transforms than the ones" \
  "$KILN" score run/model.h5 --input mm --split train --output mm.h5
[[ ! -e mm.h5 ]] || fail "a refused score left an output"
expect_ok "train on the raw version" "$KILN" train tiny.yaml --data raw --out run_raw --threads 1
expect_fail "transformed rows to a model of raw rows" 2 "trained on untransformed rows" \
  "$KILN" predict run_raw/model.h5 --input "$std_obj" --array train/X --output x.h5

# --- privacy -------------------------------------------------------------------------------
awk 'BEGIN { srand(5); print "email,user_id,x1,x2,label";
  for (i = 0; i < 60; i++) { c = i % 2;
    printf "person%d@example.org,u%05d,%.3f,%.3f,%s\n", i, i, c + rand(), rand(), c ? "b" : "a" } }' > people.csv
expect_ok "import with --drop-columns and --hash-columns" "$KILN" data import people --csv people.csv \
  --label label --drop-columns email --hash-columns user_id --test-fraction 0.2 --seed 1
expect_ok "show people" "$KILN" data show people --json
obj=$(json_get out.txt 'd["path"]')
[[ $(json_get out.txt 'd["version"]["privacy"]["dropped"]') == "['email']" ]] || fail "privacy record: dropped"
[[ $(json_get out.txt 'd["version"]["privacy"]["hashed"]') == "['user_id']" ]] || fail "privacy record: hashed"
[[ $(json_get out.txt 'd["feature_names"]') == "['x1', 'x2']" ]] || fail "dropped or hashed columns became features"
[[ $(json_get out.txt '[s["hashed_columns"] for s in d["splits"]]') == "[['user_id'], ['user_id']]" ]] ||
  fail "show --json lacks the hashed columns"
[[ $(grep -c 'example.org' "$obj") -eq 0 ]] || fail "a dropped email is in the object"
[[ $(grep -c 'u00007' "$obj") -eq 0 ]] || fail "a raw identifier is in the object"
pass "no dropped or raw identifier value reaches the store"
[[ $(stat -c %a .kiln/salts/people) == 600 ]] || fail "the salt file is not mode 0600"
salt=$(cat .kiln/salts/people)
grep -rq --exclude-dir=salts "$salt" .kiln && fail "the salt leaked into the store"
awk -F, 'NR == 2 { $3 = "7.5" } 1' OFS=, people.csv > people2.csv
expect_ok "a changed value is v2" "$KILN" data import people --csv people2.csv --label label \
  --drop-columns email --hash-columns user_id --test-fraction 0.2 --seed 1
expect_ok "show people v2" "$KILN" data show people --json
obj2=$(json_get out.txt 'd["path"]')
"$PY" - "$obj" "$obj2" "$salt" <<'PY' || fail "hashed identifiers are not stable salted hex"
import hashlib, re, sys, h5py
a, b = (h5py.File(p, "r") for p in sys.argv[1:3])
salt = sys.argv[3]
for split in ("train", "test"):
    x, y = a[split]["hashed"]["user_id"][()], b[split]["hashed"]["user_id"][()]
    assert list(x) == list(y), split
    assert all(re.fullmatch(rb"[0-9a-f]{64}", v) for v in x), split
# the salted hash of u00000 is among them
want = hashlib.sha256((salt + "u00000").encode()).hexdigest().encode()
assert want in set(a["train"]["hashed"]["user_id"][()]) | set(a["test"]["hashed"]["user_id"][()])
PY
pass "hashed identifiers are salted SHA-256 hex, stable across versions"
cd "$OUTSIDE"
expect_fail "--hash-columns outside a workspace needs a salt file" 2 "salt-file" \
  "$KILN" data import p --csv "$WORK/people.csv" --label label --hash-columns user_id
printf 'pepper\n' > salt.txt
expect_ok "--salt-file outside a workspace" "$KILN" data import p --csv "$WORK/people.csv" --label label \
  --hash-columns user_id --drop-columns email --salt-file salt.txt
[[ -f p.h5 ]] || fail "outside a workspace, import writes NAME.h5"
[[ $(grep -c 'example.org' p.h5) -eq 0 ]] || fail "a dropped email is in the file"
expect_fail "list outside a workspace suggests kiln init" 11 "kiln init" "$KILN" data list
expect_fail "--workspace naming a folder without one" 11 "kiln init" \
  "$KILN" data import q --csv "$WORK/people.csv" --label label --workspace "$OUTSIDE"
cd "$WORK"
expect_fail "--drop-columns of an unknown column" 2 "no column 'nope'" \
  "$KILN" data import people --csv people.csv --label label --drop-columns nope

# --- a corrupted object --------------------------------------------------------------------
chmod u+w "$obj2"
"$PY" -c 'import sys; p=sys.argv[1]; b=bytearray(open(p,"rb").read()); b[len(b)//2] ^= 1; open(p,"wb").write(b)' "$obj2"
expect_fail "a flipped byte is refused" 12 "corrupt.*hash" "$KILN" data show people
expect_ok "other versions still read" "$KILN" data show people@v1
expect_fail "fsck names the corrupt object" 12 "problem" "$KILN" fsck
grep -q "${obj2##*/}" out.txt || fail "fsck output does not name the corrupt object"
rm -f "$obj2"
expect_fail "a deleted object is a clear error" 11 "missing" "$KILN" data show people
expect_fail "fsck reports the deleted object" 12 "problem" "$KILN" fsck
expect_ok "audit verify" "$KILN" audit verify
no_partial_files .
finish
