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
db() { sqlite3 -cmd ".timeout 30000" .kiln/kiln.db "$1"; }
for ((i = 1; i <= 20; i++)); do
  before=$(db "SELECT ifnull(max(id), 0) FROM runs")
  "$KILN" train cfg.yaml --data blobs --threads 1 > "train$i.log" 2>&1 &
  pid=$!
  # The kill lands at a random point after the run is recorded (0 to 1 s in:
  # mid-epoch, mid-checkpoint or after the end), however slow the machine is.
  for ((t = 0; t < 300; t++)); do
    (($(db "SELECT ifnull(max(id), 0) FROM runs") > before)) && break
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  sleep "0.$((RANDOM % 10))$((RANDOM % 10))"
  kill -9 "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  run=$(db "SELECT max(id) FROM runs")
  [[ -n $run ]] || continue # killed before the run was recorded
  # Any command notices the dead process: the run must not stay 'running'.
  "$KILN" runs list > /dev/null 2>&1 || fail "runs list failed after kill $i"
  status=$(db "SELECT status FROM runs WHERE id = $run")
  [[ $status == interrupted || $status == finished ]] ||
    { cat "train$i.log" >&2; fail "run:$run is '$status' after kill -9 number $i"; }
  if [[ $status == interrupted ]]; then
    interrupted=$((interrupted + 1))
    "$KILN" train cfg.yaml --data blobs --threads 1 --resume "run:$run" > "resume$i.log" 2>&1 ||
      { cat "resume$i.log" >&2; fail "resume of run:$run after kill $i failed"; }
    status=$(db "SELECT status FROM runs WHERE id = $run")
    [[ $status == finished ]] || fail "run:$run is '$status' after its resume"
  fi
done
pass "20 kills, $interrupted interrupted runs, every resume finished"
((interrupted >= 5)) || fail "only $interrupted of 20 kills landed mid-run: the test is not testing"

# Every checkpoint object loads as a model and every object matches its hash.
n=0
for sha in $(db "SELECT object_sha256 FROM checkpoints"); do
  path=.kiln/objects/${sha:0:2}/${sha:2}
  "$KILN" eval "$PWD/$path" --data blobs --split test > /dev/null 2>&1 || fail "checkpoint $sha does not load"
  n=$((n + 1))
done
pass "$n checkpoints load"
expect_ok "fsck is clean" "$KILN" fsck
expect_ok "audit log verifies" "$KILN" audit verify
no_partial_files .kiln/objects
finish
