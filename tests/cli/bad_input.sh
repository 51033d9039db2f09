#!/usr/bin/env bash
# Bad input: every case gets a clear error and its exit code, no crash, no
# partial file.
source "$(dirname "$0")/lib.sh"

# --- IDX ---
printf '\x00\x00\x08\x03\x00\x00\x00\x02\x00\x00\x00\x02\x00\x00\x00\x02\x01\x02\x03\x04\x05\x06\x07\x08' > img.idx
printf '\x00\x00\x08\x01\x00\x00\x00\x02\x00\x01' > lab.idx
expect_ok "tiny raw IDX imports" "$KILN" data import tiny --idx img.idx lab.idx -o tiny.h5
head -c 20 img.idx > trunc.idx
expect_fail "truncated IDX images" 4 "trunc.idx" "$KILN" data import t --idx trunc.idx lab.idx -o t.h5
[[ ! -e t.h5 ]] || fail "a failed import left t.h5"
printf 'garbage-not-idx-at-all' > junk.idx
expect_fail "IDX with a bad magic" 4 "junk.idx" "$KILN" data import t --idx junk.idx lab.idx -o t.h5
gzip -c img.idx | head -c 15 > cut.idx.gz
expect_fail "truncated gzip IDX" 4 "cut.idx.gz" "$KILN" data import t --idx cut.idx.gz lab.idx -o t.h5
printf '\x00\x00\x08\x01\x00\x00\x00\x03\x00\x01\x01' > lab3.idx
expect_fail "images and labels disagree on the count" 4 "2|3" "$KILN" data import t --idx img.idx lab3.idx -o t.h5
expect_fail "missing IDX file" 3 "nope.idx" "$KILN" data import t --idx nope.idx lab.idx -o t.h5

# --- CSV ---
printf 'a,b,label\n1,2,x\n3,4\n' > ragged.csv
expect_fail "ragged CSV row" 4 "ragged.csv:3" "$KILN" data import r --csv ragged.csv --label label -o r.h5
printf 'a,b,label\n1,2,x\n3,,y\n' > missing.csv
expect_fail "missing CSV value names row and column" 4 "missing.csv:3.*b" \
  "$KILN" data import r --csv missing.csv --label label -o r.h5
expect_ok "missing CSV value with --fill mean" "$KILN" data import r --csv missing.csv --label label --fill mean -o r.h5
printf 'a,b,label\n1,abc,x\n' > nonnum.csv
expect_fail "non-numeric CSV value" 4 "nonnum.csv:2.*b" "$KILN" data import r --csv nonnum.csv --label label -o r2.h5
expect_fail "label column missing (a usage error)" 2 "klass" "$KILN" data import r --csv nonnum.csv --label klass -o r2.h5
: > empty.csv
expect_fail "empty CSV" 4 "empty.csv" "$KILN" data import r --csv empty.csv --label label -o r2.h5
[[ ! -e r2.h5 ]] || fail "a failed import left r2.h5"

# --- HDF5 ---
make_blobs blobs.csv 90
"$KILN" data import blobs --csv blobs.csv --label species -o blobs.h5 > /dev/null
head -c 3000 blobs.h5 > trunc.h5
expect_fail "truncated dataset file" 4 "trunc.h5" "$KILN" data show trunc.h5
printf 'not hdf5' > fake.h5
expect_fail "not an HDF5 file" 4 "fake.h5" "$KILN" data show fake.h5
expect_fail "missing dataset file" 3 "absent.h5" "$KILN" data show absent.h5

# --- training ---
cat > good.yaml <<'YAML'
model:
  input: [4]
  layers:
    - {type: dense, units: 8}
    - {type: relu}
    - {type: dense, units: 3}
train:
  epochs: 1
  batch_size: 16
YAML
sed 's/input: \[4\]/input: [5]/' good.yaml > wrong_input.yaml
expect_fail "model input does not match the data" 6 "\[5\].*\[4\]" \
  "$KILN" train wrong_input.yaml --data blobs.h5 --out wi
[[ ! -e wi/model.h5 ]] || fail "a failed run wrote a model"
sed 's/units: 3/units: 4/' good.yaml > wrong_out.yaml
expect_fail "model outputs do not match the classes" 6 "4 values.*3 classes" \
  "$KILN" train wrong_out.yaml --data blobs.h5 --out wo
expect_fail "NaN stops training with the step named" 7 "epoch 1, step [0-9]+" \
  "$KILN" train good.yaml --data blobs.h5 --out nan --set train.optimizer.type=sgd --set train.optimizer.lr=1e30
[[ ! -e nan/model.h5 && ! -e nan/checkpoint.h5 ]] || fail "a NaN run wrote a model"
no_partial_files nan
printf 'model:\n  input: [4]\n  layers:\n    - &d {type: dense, units: 3}\n    - *d\n' > alias.yaml
expect_fail "YAML alias refused" 5 "alias.yaml:[0-9]+:[0-9]+" "$KILN" train alias.yaml --data blobs.h5 --out a
expect_fail "resume from a missing checkpoint" 3 "nope.h5" \
  "$KILN" train good.yaml --data blobs.h5 --out r --resume nope.h5
expect_fail "resume from a non-model file" 4 "kiln_format" \
  "$KILN" train good.yaml --data blobs.h5 --out r --resume blobs.h5
expect_fail "eval of a truncated model" 4 "trunc-model.h5" \
  bash -c "'$KILN' train good.yaml --data blobs.h5 --out ok >/dev/null 2>&1 &&
           head -c 2000 ok/model.h5 > trunc-model.h5 && '$KILN' eval trunc-model.h5 --data blobs.h5 --split train"
expect_fail "predict with the wrong width" 6 "features" \
  "$KILN" predict ok/model.h5 --input missing.csv --output p.csv
[[ ! -e p.csv ]] || fail "a failed predict left p.csv"
expect_fail "unknown split" 2 "split" "$KILN" eval ok/model.h5 --data blobs.h5 --split nope

# A full disk (a file-size limit stands in for it): a clear error, no partial file.
full() { ( trap '' XFSZ; ulimit -f "$1"; shift; "$@" ); }
mkdir full
expect_fail "full disk while saving a dataset" 3 "full.h5" \
  full 4 "$KILN" data import x --csv blobs.csv --label species -o full/full.h5
expect_fail "full disk while writing a checkpoint" 3 "checkpoint.h5|model.h5" \
  full 2 "$KILN" train good.yaml --data blobs.h5 --out full/run
expect_fail "full disk while writing predictions" 3 "pred.h5" \
  full 4 "$KILN" predict ok/model.h5 --input blobs.h5 --array train/X --output full/pred.h5 --batch 8
[[ ! -e full/full.h5 && ! -e full/run/model.h5 && ! -e full/pred.h5 ]] || fail "a full disk left a file"
no_partial_files full

# A read-only output folder (root ignores permissions, so drop to nobody).
mkdir ro && chmod 555 ro
if [[ $(id -u) -eq 0 ]]; then
  chmod 755 "$WORK"; chmod 644 blobs.h5 good.yaml
  as_user=(setpriv --reuid=65534 --regid=65534 --clear-groups)
else
  as_user=()
fi
expect_fail "read-only output folder" 3 "ro" "${as_user[@]}" "$KILN" train good.yaml --data blobs.h5 --out ro/run
expect_fail "read-only dataset destination" 3 "ro" "${as_user[@]}" "$KILN" data import x --csv blobs.csv --label species -o ro/x.h5
[[ -z $(ls -A ro) ]] || fail "the read-only folder got files: $(ls -A ro)"
no_partial_files .
finish
