#!/usr/bin/env bash
# kiln score over a 20-million-row HDF5 file in bounded memory: every row
# scored once (row count, and sampled slices equal kiln predict on the same
# rows), and peak RSS under a fixed bound and no larger than for 1M rows.
# The files (about 660 MB) live in the test's temp folder, removed on exit.
source "$(dirname "$0")/lib.sh"
PY=$(find_python) || { echo "SKIP: no python with h5py and numpy"; exit 77; }
[[ -x /usr/bin/time ]] || { echo "SKIP: no /usr/bin/time for peak RSS"; exit 77; }
ROWS=${KILN_SCORE_LARGE_ROWS:-20000000}
# Three ring chunks of at most 65536 rows, the model, HDF5's caches and the
# libraries: about 50 MiB measured; a reader or writer that held the rows
# would need 320 MB for the input alone.
RSS_BOUND_KIB=131072
# Under AddressSanitizer freed blocks wait in a quarantine of up to 256 MB
# before reuse, which would read as growth; a small one keeps the check
# meaningful there (the option is ignored by a build without ASan).
export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}quarantine_size_mb=16"

make_blobs blobs.csv 300
write_blobs_mlp mlp.yaml
expect_ok "import" "$KILN" data import blobs --csv blobs.csv --label species -o blobs.h5
expect_ok "train" "$KILN" train mlp.yaml --data blobs.h5 --out run --threads 1

# make_input FILE ROWS: ROWS x 4 float32 rows in /X, written 1M rows at a time.
make_input() {
  "$PY" - "$1" "$2" <<'PYEOF'
import sys, h5py, numpy as np
path, n = sys.argv[1], int(sys.argv[2])
rng = np.random.default_rng(11)
with h5py.File(path, "w") as f:
    d = f.create_dataset("X", (n, 4), dtype="float32", chunks=(65536, 4))
    for a in range(0, n, 1 << 20):
        b = min(n, a + (1 << 20))
        d[a:b] = rng.standard_normal((b - a, 4), dtype=np.float32) * 3 + 2
PYEOF
}
t0=$SECONDS
make_input large.h5 "$ROWS"
make_input small.h5 1000000
echo "made the inputs in $((SECONDS - t0)) s ($(du -m large.h5 | cut -f1) MB)"

score_rss() { # score_rss INPUT OUTPUT: prints peak RSS in KiB
  /usr/bin/time -f %M -o rss.txt "$KILN" score run/model.h5 --input "$1" --output "$2" \
    > out.txt 2> err.txt || { cat out.txt err.txt >&2; fail "score $1 exited non-zero"; }
  tail -1 rss.txt
}
r1=$(score_rss small.h5 small-pred.h5)
t0=$SECONDS
r20=$(score_rss large.h5 large-pred.h5)
echo "$(cat out.txt) [$((SECONDS - t0)) s wall]"
echo "peak RSS: 1M rows ${r1} KiB, ${ROWS} rows ${r20} KiB (bound ${RSS_BOUND_KIB} KiB)"
grep -q "wrote ${ROWS} predictions" out.txt || fail "score did not report ${ROWS} rows"
(( r20 < RSS_BOUND_KIB )) || fail "peak RSS ${r20} KiB over the ${RSS_BOUND_KIB} KiB bound"
(( r20 * 100 < r1 * 115 )) || fail "peak RSS grew with rows: ${r1} KiB (1M) -> ${r20} KiB"
pass "peak RSS ${r20} KiB for ${ROWS} rows: under the bound, within 15% of 1M rows'"
rm -f large.h5.partial large.h5.progress

# Slices at the start, the middle, a chunk boundary and the end, scored by
# kiln predict on their own, equal the same rows of the big output.
"$PY" - "$ROWS" <<'PYEOF' || fail "could not cut the sample slices"
import sys, h5py
n = int(sys.argv[1])
starts = [0, n // 2 + 12345, 65536 * 7 - 500, n - 1000]
with h5py.File("large.h5", "r") as f, h5py.File("sample.h5", "w") as g:
    X = f["X"]
    g.create_dataset("X", data=__import__("numpy").concatenate([X[s:s + 1000] for s in starts]))
open("starts.txt", "w").write(" ".join(map(str, starts)))
PYEOF
expect_ok "predict the sample" "$KILN" predict run/model.h5 --input sample.h5 --output sample-pred.h5
"$PY" - "$ROWS" <<'PYEOF' || fail "the large output differs from kiln predict on the sampled rows"
import sys, h5py, numpy as np
n = int(sys.argv[1])
starts = list(map(int, open("starts.txt").read().split()))
big, ref = h5py.File("large-pred.h5", "r"), h5py.File("sample-pred.h5", "r")
assert big["pred"].shape == (n,) and big["prob"].shape == (n, 3), (big["pred"].shape, big["prob"].shape)
for i, s in enumerate(starts):
    for k in ("pred", "prob"):
        assert np.array_equal(big[k][s:s + 1000], ref[k][i * 1000:(i + 1) * 1000]), (k, s)
# every row scored: probabilities of each row sum to 1, checked 1M rows at a time
for a in range(0, n, 1 << 20):
    p = big["prob"][a:a + (1 << 20)]
    assert np.all(np.abs(p.sum(axis=1) - 1) < 1e-4), a
PYEOF
pass "${ROWS} rows in the output; sampled slices equal kiln predict row for row"
rm -f large.h5 large-pred.h5 small.h5 small-pred.h5
finish
