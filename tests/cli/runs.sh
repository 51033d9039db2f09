#!/usr/bin/env bash
# Tracked runs end to end: train inside a workspace (a run per training,
# dataset references), runs list with --where/--sort/--columns/--json, show,
# compare, eval and predict by run:N, a training killed with -9 shown as
# interrupted and resumed to the end as the same run, a grid sweep of 4 trials
# with --jobs 2 ranked by its metric, a sweep with a failing trial, and bad
# references with their exit codes. (MLflow read-back: runs_mlflow.sh.)
source "$(dirname "$0")/lib.sh"
PY=$(command -v python3 || true)
[[ -n $PY ]] || { echo "SKIP: no python3 to check JSON"; exit 77; }

make_blobs blobs.csv 300
cat > mlp.yaml <<'YAML'
model:
  input: [4]
  layers:
    - {type: dense, units: 16}
    - {type: relu}
    - {type: dense, units: 3}
  loss: softmax_cross_entropy
train:
  epochs: 3
  batch_size: 16
  seed: 5
  threads: 1
  optimizer: {type: adam, lr: 0.01}
  checkpoint_every: 1
YAML

mkdir outside
expect_fail "runs list outside a workspace" 11 "kiln init" "$KILN" runs list --workspace outside
expect_ok "init" "$KILN" init
expect_ok "import blobs" "$KILN" data import blobs --csv blobs.csv --label species \
  --test-fraction 0.2 --seed 1 -o blobs.h5
# data import registers a version when the workspace module has it; else
# the file stands in.
DATA=blobs
"$KILN" data show blobs > /dev/null 2>&1 || DATA=blobs.h5

run_id() { sed -n 's/^run:\([0-9][0-9]*\)$/\1/p' "$1" | head -1; }
ids=()
for lr in 0.003 0.01 0.03; do
  expect_ok "train lr=$lr records a run" "$KILN" train mlp.yaml --data "$DATA" --set train.optimizer.lr=$lr
  id=$(run_id out.txt)
  [[ -n $id ]] || fail "train printed no run:N first: $(head -3 out.txt)"
  grep -qE "^run:$id finished in [0-9.]+s: .*test_accuracy" out.txt || fail "no summary line: $(cat out.txt)"
  [[ -f .kiln/runs/$id/model.h5 ]] || fail "the run's out_dir defaults to .kiln/runs/$id"
  ids+=("$id")
done
[[ ${ids[*]} == "1 2 3" ]] || fail "run ids are ${ids[*]}, expected 1 2 3"

# --- list ---
expect_ok "runs list" "$KILN" runs list
[[ $(grep -c finished out.txt) -eq 3 ]] || fail "runs list lacks the 3 runs: $(cat out.txt)"
head -1 out.txt | grep -q 'test_accuracy' || fail "the default columns lack test_accuracy"
sed -n 2p out.txt | grep -qE '^ *3 ' || fail "runs list is not newest first"
expect_ok "runs list --where" "$KILN" runs list --where 'train.optimizer.lr > 0.005 and status = "finished"' \
  --columns id,train.optimizer.lr,lr
[[ $(tail -n +2 out.txt | wc -l) -eq 2 ]] || fail "--where lr > 0.005 should keep 2 runs: $(cat out.txt)"
grep -q '0.003' out.txt && fail "--where kept lr 0.003"
expect_ok "runs list --sort --desc --limit" "$KILN" runs list --sort train.optimizer.lr --desc --limit 1 \
  --columns id,train.optimizer.lr
[[ $(tail -n +2 out.txt | awk '{print $1, $2}') == "3 0.03" ]] || fail "--sort lr --desc --limit 1: $(cat out.txt)"
expect_ok "runs list --where on a metric" "$KILN" runs list --where 'test_accuracy >= 0' --columns id
[[ $(tail -n +2 out.txt | wc -l) -eq 3 ]] || fail "every run has test_accuracy"
expect_ok "runs list --json" "$KILN" runs list --json --columns id,status,dataset,val_accuracy,test_accuracy,train.optimizer.lr
"$PY" - <<'PY' || fail "runs list --json"
import json
rows = json.load(open("out.txt"))
assert [r["id"] for r in rows] == [3, 2, 1], rows
assert all(r["status"] == "finished" and 0 <= r["test_accuracy"] <= 1 for r in rows), rows
assert rows[0]["train.optimizer.lr"] == "0.03", rows[0]
assert rows[0]["dataset"].startswith("blobs"), rows[0]
PY
pass "runs list --json parses"

# --- show, compare ---
expect_ok "runs show" "$KILN" runs show run:2
for want in '^run:2  finished' '^dataset +blobs' 'train.optimizer.lr +0.01' '^epochs' '^checkpoints' \
            'test_accuracy' '^config' 'val_accuracy'; do
  grep -qE "$want" out.txt || fail "runs show lacks /$want/"
done
expect_ok "runs show --json" "$KILN" runs show run:2 --json
"$PY" -c '
import json; d = json.load(open("out.txt"))
assert d["id"] == 2 and d["status"] == "finished" and d["params"]["train.optimizer.lr"] == "0.01"
assert len(d["epochs"]) == 3 and [c["final"] for c in d["checkpoints"]].count(True) == 1
assert "test_accuracy" in d["metrics"] and "units: 16" in d["config"]' || fail "runs show --json"
pass "runs show --json parses"
expect_ok "runs compare" "$KILN" runs compare run:1 run:3
grep -qE '^train.optimizer.lr +0.003 +0.03' out.txt || fail "compare lacks the lr difference: $(cat out.txt)"
grep -q 'train.epochs' out.txt && fail "compare shows a param that does not differ"
grep -qE '^val_loss .*\([+-]' out.txt || fail "compare lacks metric deltas"
expect_ok "runs compare --json" "$KILN" runs compare run:1 run:2 run:3 --json --all
"$PY" -c '
import json; d = json.load(open("out.txt"))
assert d["runs"] == [1, 2, 3] and d["params"]["train.epochs"] == ["3", "3", "3"]
m = d["metrics"]["test_accuracy"]; assert m["deltas"][0] is None
assert abs(m["values"][2] - m["values"][0] - m["deltas"][2]) < 1e-9' || fail "runs compare --json"
pass "runs compare --json parses"

# --- references to runs elsewhere ---
expect_ok "eval run:2" "$KILN" eval run:2 --data "$DATA" --threads 1
grep -q accuracy out.txt || fail "eval run:2 printed no accuracy"
expect_ok "predict run:2" "$KILN" predict run:2 --input blobs.csv --drop-column species --output pred.csv --threads 1
[[ $(wc -l < pred.csv) -eq 301 ]] || fail "predict run:2 wrote $(wc -l < pred.csv) lines"

# --- bad references and arguments ---
expect_fail "show an unknown run" 11 "run:999: no such run" "$KILN" runs show run:999
expect_fail "show a malformed run" 2 "run:N" "$KILN" runs show run:abc
expect_fail "resume an unknown run" 11 "run:999" "$KILN" train mlp.yaml --resume run:999
expect_fail "resume a malformed run" 2 "run:N" "$KILN" train mlp.yaml --data "$DATA" --resume run:abc
expect_fail "eval an unknown run" 11 "run:999" "$KILN" eval run:999 --data "$DATA"
expect_fail "compare one run" 2 "two runs" "$KILN" runs compare run:1
expect_fail "a --where without a value" 2 "expected a number" "$KILN" runs list --where 'val_accuracy >'
expect_fail "a --where injection" 2 "expected 'and'" "$KILN" runs list --where "status = 'x' OR 1=1"
expect_fail "a --where injection after a value" 2 "--where" "$KILN" runs list --where "id = 1; DROP TABLE runs"
expect_fail "a bad column" 2 "--columns" "$KILN" runs list --columns 'id,status;drop'
expect_fail "an unknown dataset" 11 "nosuch" "$KILN" train mlp.yaml --data nosuch
expect_fail "no --data" 2 "--data" "$KILN" train mlp.yaml
expect_ok "the runs table survived" "$KILN" runs list --columns id
[[ $(tail -n +2 out.txt | wc -l) -eq 3 ]] || fail "runs are missing after the bad inputs"

# --- kill -9, interrupted, resume ---
make_blobs big.csv 20000
expect_ok "import big" "$KILN" data import big --csv big.csv --label species --test-fraction 0.1 --seed 1 -o big.h5
BIG=big
"$KILN" data show big > /dev/null 2>&1 || BIG=big.h5
"$KILN" train mlp.yaml --data "$BIG" --set train.epochs=30 --set train.batch_size=4 > bg.txt 2>&1 &
pid=$!
killed=
for _ in $(seq 600); do
  id=$(run_id bg.txt)
  if [[ -n $id ]] && "$KILN" runs list --where "id = $id" --columns epoch 2> /dev/null | tail -1 | grep -qE '^ *[0-9]+$'; then
    kill -9 "$pid"; killed=1; break
  fi
  kill -0 "$pid" 2> /dev/null || break
  sleep 0.05
done
wait "$pid" 2> /dev/null || true
[[ -n $killed ]] || fail "the background training ended before its first checkpoint: $(cat bg.txt)"
expect_ok "runs list after kill -9" "$KILN" runs list --columns id,status,error --where "id = $id"
grep -qE "^ *$id +interrupted +the training process died" out.txt || fail "run:$id is not interrupted: $(cat out.txt)"
expect_ok "eval an interrupted run (its last checkpoint)" "$KILN" eval run:$id --data "$BIG" --threads 1
expect_ok "resume run:$id" "$KILN" train mlp.yaml --data "$BIG" --resume run:$id \
  --set train.epochs=30 --set train.batch_size=4
[[ $(run_id out.txt) == "$id" ]] || fail "the resume did not continue run:$id: $(head -2 out.txt)"
grep -q "^run:$id finished" out.txt || fail "the resumed run did not finish: $(cat out.txt)"
expect_ok "runs show the resumed run" "$KILN" runs show run:$id --json
"$PY" - "$id" <<'PY' || fail "the resumed run's record"
import json, sys
d = json.load(open("out.txt"))
assert d["status"] == "finished" and d["error"] is None, d["status"]
epochs = [e["epoch"] for e in d["epochs"]]
assert epochs == list(range(1, 31)), epochs        # each epoch once
steps = [e["step"] for e in d["epochs"]]
assert steps == sorted(set(steps)), steps
assert sum(c["final"] for c in d["checkpoints"]) == 1
PY
pass "the resumed run holds each epoch once and one final model"
expect_ok "runs show lists every step loss once" "$KILN" runs show run:$id
last=$(grep '^step losses' out.txt | sed -E 's/step losses +([0-9]+) logged, steps 1 to ([0-9]+)/\1 \2/')
read -r n top <<< "$last"
[[ -n $n && $n == "$top" ]] || fail "step losses are not one per step: $last"
pass "step losses: $n, one per step"
expect_ok "audit verify" "$KILN" audit verify
expect_ok "audit log" "$KILN" audit log
grep -q "run.interrupted *run:$id" out.txt || fail "the audit log lacks run.interrupted"
expect_ok "fsck" "$KILN" fsck

# --- sweeps ---
cat > sweep.yaml <<YAML
base: mlp.yaml
data: $DATA
method: grid
metric: val_accuracy
mode: max
parameters:
  train.optimizer.lr: [0.001, 0.05]
  train.batch_size: [8, 32]
YAML
expect_ok "sweep: 4 grid trials, 2 at a time" "$KILN" sweep sweep.yaml --jobs 2 --threads 1
[[ $(grep -c '^trial [1-4]/4  run:[0-9]*  .* finished' out.txt) -eq 4 ]] || fail "4 finished trials: $(cat out.txt)"
sweep=$(sed -n 's/^sweep \([0-9]*\): grid search.*/\1/p' out.txt)
[[ -n $sweep ]] || fail "no sweep id: $(head -2 out.txt)"
# The ranked table: 4 rows, the metric never increasing down the table.
awk '/ranked by val_accuracy \(max\)/ {t = 1; next} t && /^[0-9]+ / {print $NF}' out.txt > ranked.txt
[[ $(wc -l < ranked.txt) -eq 4 ]] || fail "the ranking has $(wc -l < ranked.txt) rows: $(cat out.txt)"
sort -rn ranked.txt | cmp -s - ranked.txt || fail "the ranking is not by val_accuracy, best first: $(cat ranked.txt)"
pass "ranked by val_accuracy, best first"
best=$(awk '/ranked by/ {t = 1; next} t && /^1 / {print $2}' out.txt)
expect_ok "the sweep's runs" "$KILN" runs list --where "sweep = $sweep" --sort val_accuracy --desc \
  --columns id,sweep,train.optimizer.lr,train.batch_size,val_accuracy
[[ $(tail -n +2 out.txt | wc -l) -eq 4 ]] || fail "the sweep's 4 runs are not linked to it: $(cat out.txt)"
[[ "run:$(sed -n 2p out.txt | awk '{print $1}')" == "$best" ]] || fail "the sweep's best ($best) is not the list's best"
pass "the sweep's runs link to it and agree with its ranking"

cat > failing.yaml <<YAML
base: mlp.yaml
data: $DATA
metric: val_loss
parameters:
  train.optimizer.type: [sgd]
  train.optimizer.lr: [0.01, 1e30]
YAML
expect_ok "a sweep with a failing trial goes on" "$KILN" sweep failing.yaml --threads 1
grep -qE '^trial 2/2  run:[0-9]+  .*failed \(exit 7\): .*epoch 1, step' out.txt || fail "trial 2 should fail with exit 7: $(cat out.txt)"
grep -qE '^trial 1/2  run:[0-9]+  .*finished' out.txt || fail "trial 1 should finish: $(cat out.txt)"
fid=$(sed -n 's/^trial 2\/2  run:\([0-9]*\) .*/\1/p' out.txt)
expect_ok "the failed trial's run" "$KILN" runs show run:$fid
grep -qE '^run:[0-9]+  failed' out.txt || fail "the failing trial is not recorded as failed"
grep -qE '^error +.*NaN|^error +.*epoch 1' out.txt || fail "the failed run lacks its error: $(head -3 out.txt)"
printf 'base: mlp.yaml\ndata: %s\nmetric: val_loss\nparameters:\n  train.epochs: {min: 1, max: 2}\n' "$DATA" > bad.yaml
expect_fail "a grid with a range" 5 "bad.yaml:5:17: train.epochs: grid search needs a list" "$KILN" sweep bad.yaml
printf 'base: mlp.yaml\ndata: %s\nmetric: val_loss\nparameters:\n  train.epohcs: [1, 2]\n' "$DATA" > typo.yaml
expect_fail "a sweep over an unknown key starts no trial" 5 "train.epohcs" "$KILN" sweep typo.yaml
printf 'base: mlp.yaml\ndata: nosuch\nmetric: val_loss\nparameters:\n  train.epochs: [1]\n' > nodata.yaml
expect_fail "a sweep over an unknown dataset" 11 "nosuch" "$KILN" sweep nodata.yaml
no_partial_files .kiln
finish
