#!/usr/bin/env bash
# kiln score --device cuda (pinned ring, uploads on a copy stream overlapped
# with the model): on a GPU, the same input scored on CUDA and on the CPU
# gives the same classes and probabilities within 1e-4, in chunks whose count
# is odd with a short last one, with and without a model that carries
# transforms; a NaN row fails cleanly on CUDA with the CPU's message.
# Skipped (77) without a CUDA device.
source "$(dirname "$0")/lib.sh"
"$KILN" version | grep -q 'cuda' || { echo "SKIP: this build has no CUDA backend"; exit 77; }
"$KILN" bench --device cuda --quick > /dev/null 2>&1 || { echo "SKIP: no CUDA device answered"; exit 77; }

make_blobs blobs.csv 300
write_blobs_mlp mlp.yaml
expect_ok "init" "$KILN" init
expect_ok "import" "$KILN" data import blobs --csv blobs.csv --label species --test-fraction 0.2 \
  --seed 1
expect_ok "standardize" "$KILN" data transform blobs --standardize --as blobs-std
expect_ok "train" "$KILN" train mlp.yaml --data blobs --out plain --threads 1 --device cpu
expect_ok "train on standardized data" "$KILN" train mlp.yaml --data blobs-std --out std \
  --threads 1 --device cpu

# 10,007 rows of 4 features (no label column): 11 chunks of 960, the last 407.
awk 'BEGIN { srand(11); print "f1,f2,f3,f4";
  for (i = 0; i < 10007; i++) printf "%.4f,%.4f,%.4f,%.4f\n", rand() * 10 - 1, rand() * 10 - 9, rand(), rand() * 5 }' > big.csv

# same_scores A B: same header and classes, every probability within 1e-4.
same_scores() {
  awk -F, 'NR == FNR { a[FNR] = $0; n = FNR; next }
    { if (FNR > n) { print "more rows in " FILENAME; exit 1 }
      split(a[FNR], x, ",")
      if (FNR == 1 || x[1] != $1) { if (a[FNR] != $0) { print "line " FNR ": " a[FNR] " vs " $0; exit 1 } }
      for (i = 2; i <= NF; i++) {
        d = x[i] - $i; if (d < 0) d = -d
        if (d > 1e-4) { print "line " FNR ", column " i ": " x[i] " vs " $i; exit 1 } } }
    END { if (FNR != n) { print "row counts differ"; exit 1 } }' "$1" "$2"
}

printf 'pred,p0\nred,0.5\n' > t1.csv; printf 'pred,p0\nred,0.50005\n' > t2.csv
printf 'pred,p0\nred,0.5002\n' > t3.csv; printf 'pred,p0\nblue,0.5\n' > t4.csv
same_scores t1.csv t2.csv > /dev/null || fail "same_scores refused a difference of 5e-5"
! same_scores t1.csv t3.csv > /dev/null || fail "same_scores missed a difference of 2e-4"
! same_scores t1.csv t4.csv > /dev/null || fail "same_scores missed another class"

for m in plain std; do
  expect_ok "score $m on the CPU" "$KILN" score "$m/model.h5" --input big.csv --output "$m-cpu.csv" \
    --batch 960 --device cpu --threads 1
  expect_ok "score $m on CUDA" "$KILN" score "$m/model.h5" --input big.csv --output "$m-cuda.csv" \
    --batch 960 --device cuda
  grep -q 'wrote 10007 predictions' out.txt || { cat out.txt; fail "CUDA did not report 10007 rows"; }
  same_scores "$m-cpu.csv" "$m-cuda.csv" || fail "$m: CUDA's scores differ from the CPU's"
  pass "$m: CUDA scores equal the CPU's (classes, probabilities within 1e-4)"
  expect_ok "score $m on CUDA to HDF5" "$KILN" score "$m/model.h5" --input big.csv --output "$m-cuda.h5" \
    --batch 960 --device cuda
done

awk 'NR == 5001 { $0 = "1.0,nan,0.5,0.5" } { print }' big.csv > nan.csv
expect_fail "a NaN row on the CPU" 4 "nan.csv:5001:f2: 'nan' is not a finite number" \
  "$KILN" score plain/model.h5 --input nan.csv --output nan-cpu.csv --batch 960 --device cpu
cpu_err=$(grep '^kiln: error:' err.txt)
expect_fail "a NaN row on CUDA" 4 "nan.csv:5001:f2: 'nan' is not a finite number" \
  "$KILN" score plain/model.h5 --input nan.csv --output nan-cuda.csv --batch 960 --device cuda
[[ $(grep '^kiln: error:' err.txt) == "$cpu_err" ]] || fail "CUDA's NaN message differs: $(cat err.txt)"
[[ ! -e nan-cuda.csv ]] || fail "a failed CUDA run left its output"
pass "a NaN row fails on CUDA with the CPU's message, no output"
finish
