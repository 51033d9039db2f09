#!/usr/bin/env bash
# kill -9 at random points of a training run with checkpoints, 20 times:
# the run shows as interrupted, every resume succeeds, every checkpoint
# loads, and no object fails its hash.
source "$(dirname "$0")/lib.sh"
command -v sqlite3 > /dev/null || { echo "SKIP: no sqlite3 command"; exit 77; }

expect_ok "init" "$KILN" init
make_blobs blobs.csv 3000
expect_ok "import into the workspace" "$KILN" data import blobs --csv blobs.csv --label species --test-fraction 0.2
cat > cfg.yaml <<'YAML'
model:
  input: [4]
  layers:
    - {type: dense, units: 32}
    - {type: relu}
    - {type: dense, units: 3}
train:
  epochs: 30
  batch_size: 8
  optimizer: {type: adam, lr: 0.001}
  checkpoint_every: 1
YAML
RANDOM=42
interrupted=0
for ((i = 1; i <= 20; i++)); do
  "$KILN" train cfg.yaml --data blobs --threads 1 > "train$i.log" 2>&1 &
  pid=$!
  # between 0 and ~1.2 s: before the run starts, mid-epoch, mid-checkpoint, after the end
  sleep "0.$((RANDOM % 10))$((RANDOM % 10))"; sleep "$((RANDOM % 2)).$((RANDOM % 3))"
  kill -9 "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  run=$(sqlite3 .kiln/kiln.db "SELECT max(id) FROM runs")
  [[ -n $run ]] || continue # killed before the run was recorded
  status=$(sqlite3 .kiln/kiln.db "SELECT status FROM runs WHERE id = $run")
  # Any command notices the dead process: the run must not stay 'running'.
  "$KILN" runs list > /dev/null 2>&1 || fail "runs list failed after kill $i"
  status=$(sqlite3 .kiln/kiln.db "SELECT status FROM runs WHERE id = $run")
  [[ $status == interrupted || $status == finished ]] || fail "run:$run is '$status' after kill -9"
  if [[ $status == interrupted ]]; then
    interrupted=$((interrupted + 1))
    "$KILN" train cfg.yaml --data blobs --threads 1 --resume "run:$run" > "resume$i.log" 2>&1 ||
      { cat "resume$i.log" >&2; fail "resume of run:$run after kill $i failed"; }
    status=$(sqlite3 .kiln/kiln.db "SELECT status FROM runs WHERE id = $run")
    [[ $status == finished ]] || fail "run:$run is '$status' after its resume"
  fi
done
pass "20 kills, $interrupted interrupted runs, every resume finished"
((interrupted >= 5)) || fail "only $interrupted of 20 kills landed mid-run: the test is not testing"

# Every checkpoint object loads as a model and every object matches its hash.
n=0
for sha in $(sqlite3 .kiln/kiln.db "SELECT object_sha256 FROM checkpoints"); do
  path=.kiln/objects/${sha:0:2}/${sha:2}
  "$KILN" eval "$PWD/$path" --data blobs --split test > /dev/null 2>&1 || fail "checkpoint $sha does not load"
  n=$((n + 1))
done
pass "$n checkpoints load"
expect_ok "fsck is clean" "$KILN" fsck
expect_ok "audit log verifies" "$KILN" audit verify
no_partial_files .kiln/objects
finish
