#!/usr/bin/env bash
# kiln score end to end: a package and a model reference scored over a
# 200k-row HDF5 file equal kiln predict row for row (HDF5 and CSV); the
# output records model name, version and package hash; kill -9 at random
# points then --resume gives exactly the uninterrupted output; peak RSS does
# not grow with the number of rows.
source "$(dirname "$0")/lib.sh"
PY=$(find_python) || { echo "SKIP: no python with h5py and numpy"; exit 77; }

make_blobs blobs.csv 300
write_blobs_mlp mlp.yaml
expect_ok "init" "$KILN" init
expect_ok "import" "$KILN" data import blobs --csv blobs.csv --label species --test-fraction 0.2 \
  --seed 1 -o blobs.h5
expect_ok "train" "$KILN" train mlp.yaml --data blobs.h5 --out run1 --threads 1
expect_ok "register" "$KILN" model register run:1 --name clf
expect_ok "package" "$KILN" model package clf@1 -o clf.kiln

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

# --- usage errors ---
expect_fail "resume refuses CSV" 2 "CSV is not resumable" \
  "$KILN" score clf.kiln --input big.h5 --output x.csv --resume
expect_fail "score needs --output" 2 "required" "$KILN" score clf.kiln --input big.h5
echo 'not a package' > bad.kiln
rc=0; "$KILN" score bad.kiln --input big.h5 --output bad.h5 > out.txt 2> err.txt || rc=$?
[[ $rc -ne 0 && ! -e bad.h5 ]] || fail "a bad package was scored"
pass "a package that does not verify is refused"

# --- kill -9 and resume, 5 times, over 2M rows (about 100 chunks) ---
make_input huge.h5 2000000
expect_ok "score 2M rows uninterrupted" "$KILN" score clf.kiln --input huge.h5 --output full.h5 \
  --batch 20000 --threads 1
kills=0 marks=""
rm -f res.h5 res.h5.partial res.h5.progress
args=(score clf.kiln --input huge.h5 --output res.h5 --batch 500 --threads 1)
for i in 1 2 3 4 5; do
  if [[ $i -eq 1 ]]; then "$KILN" "${args[@]}" > run.txt 2>&1 & else
    "$KILN" "${args[@]}" --resume > run.txt 2>&1 & fi
  pid=$!
  # Kill at a random point once this run has written a chunk of its own.
  last=$(awk '$1 == "rows" {print $2}' res.h5.progress 2>/dev/null || echo 0)
  for _ in $(seq 500); do
    now=$(awk '$1 == "rows" {print $2}' res.h5.progress 2>/dev/null || echo 0)
    [[ ${now:-0} -gt ${last:-0} ]] && break
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.02
  done
  sleep "0.0$(( RANDOM % 10 ))"
  kill -9 "$pid" 2>/dev/null && kills=$((kills + 1))
  wait "$pid" 2>/dev/null || true
  [[ -e res.h5 ]] && break
  marks+=" $(awk '$1 == "rows" {print $2}' res.h5.progress 2>/dev/null || echo -)"
done
echo "killed $kills times; rows recorded after each kill:$marks"
[[ -e res.h5 ]] && fail "a run finished before it was killed 5 times (the input is too small)"
(( kills == 5 )) || fail "killed only $kills times"
expect_ok "final resume" "$KILN" "${args[@]}" --resume
grep -q 'resumed after row' out.txt || fail "the final run did not continue a partial output"
"$PY" - <<'PYEOF' || fail "resumed output differs from the uninterrupted one"
import h5py, numpy as np
a, b = h5py.File("res.h5", "r"), h5py.File("full.h5", "r")
for k in ("pred", "prob"):
    assert a[k].shape == b[k].shape, (k, a[k].shape, b[k].shape)
    assert np.array_equal(a[k][...], b[k][...]), k
PYEOF
[[ ! -e res.h5.partial && ! -e res.h5.progress ]] || fail "resume left temp files"
pass "kill -9 ($kills times) + --resume equals the uninterrupted output, every row once"

# a record for another input is refused
"$KILN" "${args[@]}" > /dev/null 2>&1 & pid=$!; sleep 0.6; kill -9 "$pid" 2>/dev/null || true
wait "$pid" 2>/dev/null || true
if [[ -e res.h5.progress ]]; then
  touch -d '2001-01-01' huge.h5
  expect_fail "resume after the input changed" 2 "not this input" "$KILN" "${args[@]}" --resume
  expect_ok "without --resume it starts over" "$KILN" "${args[@]}"
fi

# --- bounded memory: peak RSS for 200k and 2M rows ---
if [[ -x /usr/bin/time ]]; then
  /usr/bin/time -f %M -o rss1.txt "$KILN" score clf.kiln --input big.h5 --output m1.h5 > /dev/null 2>&1 ||
    fail "score of 200k rows"
  /usr/bin/time -f %M -o rss2.txt "$KILN" score clf.kiln --input huge.h5 --output m2.h5 > out.txt 2>&1 ||
    fail "score of 2M rows"
  r1=$(tail -1 rss1.txt); r2=$(tail -1 rss2.txt)
  echo "peak RSS: 200k rows ${r1} KiB, 2M rows ${r2} KiB; $(tail -1 out.txt)"
  (( r2 * 100 < r1 * 120 )) || fail "peak RSS grew with rows: ${r1} -> ${r2} KiB"
  pass "peak RSS within 20% from 200k to 2M rows"
else
  echo "skip: no /usr/bin/time for the RSS check"
fi
finish
