#!/usr/bin/env bash
# kiln score end to end: a package and a model reference scored over a
# 200k-row HDF5 file equal kiln predict row for row (HDF5 and CSV); the
# output records model name, version and package hash; inside a workspace
# each run is a recorded scoring job (model version, input dataset version,
# output hash, rows, timings, status) and the output registers as a dataset
# version (pseudo-labels) whose lineage names the model and the input;
# kill -9 at random points then --resume gives exactly the uninterrupted
# output, 20 times for HDF5 output, 10 times for CSV output, 5 times for a
# CSV input; peak RSS does not grow with the number of rows.
source "$(dirname "$0")/lib.sh"
PY=$(find_python) || { echo "SKIP: no python with h5py and numpy"; exit 77; }
json_get() { "$PY" -c "import json,sys; d=json.load(open(sys.argv[1])); print($2)" "$1"; }

setup_blobs_model
expect_ok "package" "$KILN" model package clf@1 -o clf.kiln
if command -v sqlite3 > /dev/null; then
  # A workspace of schema version 1 (before scoring jobs) is migrated forward.
  sqlite3 -cmd ".timeout 30000" .kiln/kiln.db \
    "DROP TABLE score_jobs; UPDATE meta SET value = '1' WHERE key = 'schema_version'"
  expect_ok "list jobs of a migrated workspace" "$KILN" score --list
  grep -q 'no scoring jobs yet' out.txt || { cat out.txt; fail "no empty listing"; }
  [[ $(sqlite3 -cmd ".timeout 30000" .kiln/kiln.db \
       "SELECT value FROM meta WHERE key = 'schema_version'") == 2 ]] || fail "schema not migrated to 2"
  pass "a schema 1 workspace is migrated to 2 (score_jobs)"
fi

# make_input FILE ROWS: ROWS x 4 float32 rows in /X, written in chunks.
make_input() {
  "$PY" - "$1" "$2" <<'PYEOF'
import sys, h5py, numpy as np
path, n = sys.argv[1], int(sys.argv[2])
rng = np.random.default_rng(3)
with h5py.File(path, "w") as f:
    d = f.create_dataset("X", (n, 4), dtype="float32", chunks=(8192, 4))
    for a in range(0, n, 1 << 18):
        b = min(n, a + (1 << 18))
        d[a:b] = (rng.random((b - a, 4)) * 8 - 2).astype("float32")
PYEOF
}
make_input big.h5 200000

expect_ok "predict (reference)" "$KILN" predict clf@1 --input big.h5 --output ref.h5
expect_ok "score the package" "$KILN" score clf.kiln --input big.h5 --output pkg.h5
grep -q 'wrote 200000 predictions' out.txt || fail "score did not report 200000 rows"
grep -qE '^recorded score:[0-9]+$' out.txt || fail "score in a workspace did not record a job"
expect_ok "score a model reference" "$KILN" score clf@1 --input big.h5 --output refscore.h5 --batch 1000
expect_ok "score to CSV" "$KILN" score clf.kiln --input big.h5 --output pkg.csv --batch 777
expect_ok "predict to CSV" "$KILN" predict clf@1 --input big.h5 --output ref.csv
cmp -s pkg.csv ref.csv || fail "score's CSV differs from predict's"
pass "CSV predictions equal kiln predict's byte for byte"
PKG_SHA=$(sha256sum clf.kiln | cut -d' ' -f1)
"$PY" - "$PKG_SHA" <<'PYEOF' || fail "score output differs from predict"
import sys, h5py, numpy as np
ref = h5py.File("ref.h5", "r")
for name in ("pkg.h5", "refscore.h5"):
    f = h5py.File(name, "r")
    for k in ("pred", "prob"):
        assert f[k].shape == ref[k].shape == ((200000,) if k == "pred" else (200000, 3)), (name, k)
        assert np.array_equal(f[k][...], ref[k][...]), (name, k)
    assert f.attrs["model_name"] in ("clf", b"clf"), f.attrs["model_name"]
    assert int(f.attrs["model_version"]) == 1
pk = h5py.File("pkg.h5", "r").attrs["package_sha256"]
pk = pk.decode() if isinstance(pk, bytes) else pk
assert pk == sys.argv[1], pk
assert "package_sha256" not in h5py.File("refscore.h5", "r").attrs
PYEOF
pass "HDF5 predictions equal kiln predict row for row; model name, version, package hash recorded"
[[ ! -e pkg.h5.partial && ! -e pkg.h5.progress ]] || fail "a finished score left its temp files"

# --- the workspace records every job ---
expect_ok "list scoring jobs" "$KILN" score --list --json
cp out.txt jobs.json
"$PY" - "$PKG_SHA" "$(sha256sum pkg.h5 | cut -d' ' -f1)" "$PWD" <<'PYEOF' || fail "the job records are wrong"
import sys, json
jobs = json.load(open("jobs.json"))
assert [j["id"] for j in jobs] == [3, 2, 1], [j["id"] for j in jobs]
pkg = jobs[2]
assert pkg["status"] == "finished" and pkg["rows"] == 200000, pkg
assert pkg["model"] == "clf.kiln" and pkg["model_version"] == "clf@1", pkg
assert pkg["package_sha256"] == sys.argv[1] and pkg["output_sha256"] == sys.argv[2], pkg
assert pkg["output"] == sys.argv[3] + "/pkg.h5" and pkg["input"] == "big.h5", pkg
assert pkg["input_version"] is None and pkg["error"] is None and pkg["ended"], pkg
assert pkg["seconds"] > 0 and pkg["compute_seconds"] > 0 and pkg["device"] == "cpu", pkg
assert jobs[1]["model"] == "clf@1" and jobs[1]["model_version"] == "clf@1", jobs[1]
assert jobs[1]["package_sha256"] is None and jobs[1]["batch"] == 1000, jobs[1]
assert jobs[0]["output"].endswith("/pkg.csv") and jobs[0]["status"] == "finished", jobs[0]
keys = ("id status model model_version_id model_version model_sha256 package_sha256 input "
        "input_path input_array split input_version_id input_version output output_sha256 rows "
        "resumed_from device threads batch seconds read_seconds compute_seconds write_seconds "
        "registered_version_id registered host user pid started ended error").split()
assert all(list(j) == keys for j in jobs), list(pkg)
PYEOF
expect_ok "list as a table" "$KILN" score --list --limit 2
[[ $(grep -c '^score:' out.txt) -eq 2 ]] || { cat out.txt; fail "--limit 2 did not list 2 jobs"; }
grep -qE '^score:3 +finished +clf@1 ' out.txt || { cat out.txt; fail "the table lacks job 3"; }
pass "jobs record model version, package and output hashes, rows, timings, status"

# --- a dataset version as input, and its output registered as a version ---
expect_ok "predict the test split (reference)" "$KILN" predict clf@1 --input blobs.h5 --output dsref.h5
expect_ok "score a dataset reference" "$KILN" score clf@1 --input blobs --output ds.h5 --register pseudo
grep -qE '^registered pseudo@v1 \([0-9a-f]{12}\)$' out.txt || { cat out.txt; fail "no 'registered pseudo@v1' line"; }
expect_ok "score its train split" "$KILN" score clf.kiln --input "blobs@v1" --split train --output dstrain.h5
expect_ok "data list" "$KILN" data list
grep -qE '^pseudo +1 +v1 ' out.txt || { cat out.txt; fail "data list lacks pseudo"; }
expect_ok "show the registered version" "$KILN" data show pseudo --json
cp out.txt pseudo.json
expect_ok "list jobs" "$KILN" score --list --json
cp out.txt jobs.json
"$PY" <<'PYEOF' || fail "the registered version or its lineage is wrong"
import json, h5py, numpy as np
show, jobs = json.load(open("pseudo.json")), json.load(open("jobs.json"))
reg, train = jobs[1], jobs[0]
v = show["version"]
assert v["parent"]["name"] == "blobs" and v["parent"]["version"] == 1, v["parent"]
assert "clf@1" in v["source"] and "score:%d" % reg["id"] in v["source"], v["source"]
assert "blobs@v1" in v["source"] and "split test" in v["source"], v["source"]
assert reg["registered"].startswith("pseudo@v1 ") and reg["registered_version_id"] == v["id"], reg
assert reg["input"] == "blobs" and reg["split"] == "test", reg
assert reg["input_version"].startswith("blobs@v1 ") and reg["model_version"] == "clf@1", reg
assert train["split"] == "train" and train["rows"] == 240 and train["input_version_id"], train
# h5py reads the version: X = the scored rows as the input stores them, y = predict's classes.
src, ref = h5py.File("blobs.h5", "r"), h5py.File("dsref.h5", "r")
ds = h5py.File(show["path"], "r")
assert ds["train/X"].dtype == src["test/X"].dtype, ds["train/X"].dtype
assert np.array_equal(ds["train/X"][...], src["test/X"][...])
assert np.array_equal(ds["train/y"][...], ref["pred"][...])
assert np.array_equal(h5py.File("ds.h5", "r")["prob"][...], ref["prob"][...])
assert [c.decode() if isinstance(c, bytes) else c for c in ds.attrs["classes"]] == \
    ["setosa", "versicolor", "virginica"]
assert "test" not in ds
PYEOF
pass "a registered output: listed, lineage names model and input, h5py reads X and pseudo-labels"
expect_ok "register the same output again" "$KILN" score clf@1 --input blobs --output ds2.h5 --register pseudo
grep -q 'unchanged' out.txt || { cat out.txt; fail "re-registering the same content is not 'unchanged'"; }
expect_ok "audit chain" "$KILN" audit verify
grep -c 'score\.' <("$KILN" audit log --limit 100) > /dev/null || fail "no score.* audit entries"
"$KILN" audit log --limit 100 > audit.txt
grep -q 'score.register' audit.txt && grep -q 'score.start' audit.txt && grep -q 'score.end' audit.txt ||
  { cat audit.txt; fail "score.start / score.end / score.register missing from the audit log"; }
pass "audit entries for scoring jobs and the registration"

# --- usage errors ---
expect_fail "score needs --output" 2 "required" "$KILN" score clf.kiln --input big.h5
expect_fail "--split and --array" 2 "not both" "$KILN" score clf.kiln --input blobs --split test \
  --array X --output x.h5
expect_fail "a bad split" 2 "train, val or test|split" "$KILN" score clf.kiln --input blobs --split dev --output x.h5
expect_fail "a split the version lacks" 2 "has no val split" "$KILN" score clf.kiln --input blobs \
  --split val --output x.h5
expect_fail "--register to CSV" 2 "HDF5" "$KILN" score clf.kiln --input blobs --output x.csv --register p
expect_fail "--register a bad name" 2 "registering the output: dataset name" \
  "$KILN" score clf.kiln --input blobs --output badname.h5 --register 'bad name'
expect_fail "an unknown dataset" 11 "nosuch" "$KILN" score clf.kiln --input nosuch --output x.h5
expect_fail "a bad output name" 2 "\.h5, \.hdf5 or \.csv" "$KILN" score clf.kiln --input big.h5 --output x.txt
# --device reaches the model: on CUDA where a GPU answers (outputs within
# float tolerance of the CPU's), otherwise refused clearly with no files.
rc=0; "$KILN" score clf.kiln --input big.h5 --output cuda.h5 --device cuda > out.txt 2> err.txt || rc=$?
if [[ $rc -eq 0 ]]; then
  "$PY" - <<'PYEOF' || fail "scores on CUDA differ from the CPU's"
import h5py, numpy as np
a, b = h5py.File("cuda.h5", "r"), h5py.File("pkg.h5", "r")
assert a["prob"].shape == b["prob"].shape
assert np.allclose(a["prob"][...], b["prob"][...], atol=1e-4)
assert np.mean(a["pred"][...] == b["pred"][...]) > 0.999
PYEOF
  pass "--device cuda scores on the GPU, within 1e-4 of the CPU"
else
  [[ $rc -eq 9 ]] && grep -q "^kiln: error: device 'cuda'" err.txt ||
    { cat err.txt; fail "--device cuda without a usable GPU: expected exit 9 and a clear message, got $rc"; }
  grep -qE 'AddressSanitizer|runtime error|Segmentation' err.txt && fail "--device cuda crashed"
  [[ ! -e cuda.h5 && ! -e cuda.h5.partial ]] || fail "a refused device left files"
  pass "--device cuda without a usable GPU is refused (exit 9), no files left"
fi
expect_fail "an unknown device" 2 "unknown device" "$KILN" score clf.kiln --input big.h5 --output x.h5 --device tpu
echo 'not a package' > bad.kiln
rc=0; "$KILN" score bad.kiln --input big.h5 --output bad.h5 > out.txt 2> err.txt || rc=$?
[[ $rc -ne 0 && ! -e bad.h5 ]] || fail "a bad package was scored"
pass "a package that does not verify is refused"
expect_ok "list after failures" "$KILN" score --list --json
json_get out.txt "sum(j['status'] == 'failed' for j in d)" > failed.txt
[[ $(cat failed.txt) -ge 3 ]] || fail "failed jobs are not recorded as failed"
pass "failed jobs are recorded with their error"
rm -f cuda.h5.progress cuda.h5

# kill_rounds N OUT BATCH ARGS...: runs `kiln score ARGS --batch BATCH --output OUT`, the first
# time fresh, then with --resume, killing each with -9 once it has written
# a random 1 to 40 chunks of its own (polled every 10 ms, so the kill lands
# at a random point of the read/compute/write cycle, not just after a
# record); N kills, then a final --resume. Counting rows rather than time
# keeps the rounds within the input on a fast machine too.
kill_rounds() {
  local n=$1 out=$2 batch=$3; shift 3
  local kills=0 marks="" i pid last now target
  rm -f "$out" "$out.partial" "$out.progress"
  for ((i = 1; i <= n; i++)); do
    local extra=(); [[ $i -gt 1 ]] && extra=(--resume)
    "$KILN" "$@" --batch "$batch" --output "$out" "${extra[@]}" > run.txt 2>&1 & pid=$!
    last=$(awk '$1 == "rows" {print $2}' "$out.progress" 2>/dev/null || echo 0)
    target=$(( ${last:-0} + batch * (1 + RANDOM % 40) ))
    for _ in $(seq 1000); do
      now=$(awk '$1 == "rows" {print $2}' "$out.progress" 2>/dev/null || echo 0)
      [[ ${now:-0} -ge $target ]] && break
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.01
    done
    if kill -9 "$pid" 2>/dev/null; then
      kills=$((kills + 1))
      wait "$pid" 2>/dev/null || true
    else
      wait "$pid" 2>/dev/null && rc=0 || rc=$?
      [[ -e $out ]] || { cat run.txt >&2; fail "round $i exited (status $rc) before it was killed"; }
    fi
    [[ -e $out ]] && fail "a run finished before it was killed $n times (the input is too small)"
    marks+=" $(awk '$1 == "rows" {print $2}' "$out.progress" 2>/dev/null || echo -)"
  done
  echo "$out: killed $kills times; rows recorded after each kill:$marks"
  (( kills == n )) || fail "killed only $kills times"
  expect_ok "final resume of $out" "$KILN" "$@" --batch "$batch" --output "$out" --resume
  grep -q 'resumed after row' out.txt || fail "the final run did not continue a partial output"
  [[ ! -e $out.partial && ! -e $out.progress ]] || fail "resume left temp files"
}

# --- kill -9 and resume: 20 times to HDF5, 10 to CSV, 5 from a CSV input ---
make_input huge.h5 2000000
expect_ok "score 2M rows uninterrupted" "$KILN" score clf.kiln --input huge.h5 --output full.h5 \
  --batch 20000 --threads 1
kill_rounds 20 res.h5 500 score clf.kiln --input huge.h5 --threads 1
"$PY" - <<'PYEOF' || fail "resumed output differs from the uninterrupted one"
import h5py, numpy as np
a, b = h5py.File("res.h5", "r"), h5py.File("full.h5", "r")
for k in ("pred", "prob"):
    assert a[k].shape == b[k].shape, (k, a[k].shape, b[k].shape)
    assert np.array_equal(a[k][...], b[k][...]), k
PYEOF
pass "kill -9 (20 times) + --resume equals the uninterrupted HDF5 output, every row once"

make_input mid.h5 600000
expect_ok "score 600k rows to CSV uninterrupted" "$KILN" score clf.kiln --input mid.h5 --output full.csv \
  --batch 20000 --threads 1
kill_rounds 10 res.csv 1000 score clf.kiln --input mid.h5 --threads 1
cmp res.csv full.csv || fail "resumed CSV differs from the uninterrupted one"
pass "kill -9 (10 times) + --resume equals the uninterrupted CSV output byte for byte"

"$PY" - <<'PYEOF'
import h5py, numpy as np
X = h5py.File("huge.h5", "r")["X"][:400000]
np.savetxt("in.csv", X, delimiter=",", fmt="%.9g", header="a,b,c,d", comments="")
PYEOF
expect_ok "score a CSV input uninterrupted" "$KILN" score clf.kiln --input in.csv --output fullcsv.h5
kill_rounds 5 rescsv.h5 500 score clf.kiln --input in.csv --threads 1
"$PY" - <<'PYEOF' || fail "resumed output of a CSV input differs from the uninterrupted one"
import h5py, numpy as np
a, b = h5py.File("rescsv.h5", "r"), h5py.File("fullcsv.h5", "r")
for k in ("pred", "prob"):
    assert a[k].shape == b[k].shape == ((400000,) if k == "pred" else (400000, 3)), k
    assert np.array_equal(a[k][...], b[k][...]), k
PYEOF
pass "kill -9 (5 times) + --resume over a CSV input equals the uninterrupted output"

expect_ok "list after the kills" "$KILN" score --list --json
json_get out.txt "sum(j['status'] == 'interrupted' for j in d)" > interrupted.txt
[[ $(cat interrupted.txt) -ge 35 ]] || fail "killed jobs are not all recorded as interrupted ($(cat interrupted.txt))"
json_get out.txt "d[0]['resumed_from'] > 0 and d[0]['status'] == 'finished'" | grep -q True ||
  fail "the final resume is not recorded as a resumed, finished job"
pass "killed jobs are recorded as interrupted, the resumes with the rows they continued after"

# a record for another input is refused
args=(score clf.kiln --input mid.h5 --output res.h5 --batch 500 --threads 1)
"$KILN" "${args[@]}" > /dev/null 2>&1 & pid=$!; sleep 0.6; kill -9 "$pid" 2>/dev/null || true
wait "$pid" 2>/dev/null || true
if [[ -e res.h5.progress ]]; then
  touch -d '2001-01-01' mid.h5
  expect_fail "resume after the input changed" 2 "not this input" "$KILN" "${args[@]}" --resume
  expect_ok "without --resume it starts over" "$KILN" "${args[@]}"
fi

# --- bounded memory: peak RSS for 200k and 2M rows ---
# (AddressSanitizer's quarantine of freed blocks would read as growth: a
# small one; the option is ignored by a build without ASan.)
export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}quarantine_size_mb=16"
if [[ -x /usr/bin/time ]]; then
  /usr/bin/time -f %M -o rss1.txt "$KILN" score clf.kiln --input big.h5 --output m1.h5 > /dev/null 2>&1 ||
    fail "score of 200k rows"
  /usr/bin/time -f %M -o rss2.txt "$KILN" score clf.kiln --input huge.h5 --output m2.h5 > out.txt 2>&1 ||
    fail "score of 2M rows"
  r1=$(tail -1 rss1.txt); r2=$(tail -1 rss2.txt)
  echo "peak RSS: 200k rows ${r1} KiB, 2M rows ${r2} KiB; $(grep wrote out.txt)"
  (( r2 * 100 < r1 * 120 )) || fail "peak RSS grew with rows: ${r1} -> ${r2} KiB"
  pass "peak RSS within 20% from 200k to 2M rows"
else
  echo "skip: no /usr/bin/time for the RSS check"
fi
finish
