#!/usr/bin/env bash
# kiln runs export --mlflow read back by the real MLflow client: the
# experiment "kiln", each run's status, params (every one, brackets turned
# into dots), metric histories (every value at its step) and tags, for a
# finished, a failed and an interrupted run. Skips (77) without a python
# that imports mlflow (tests/requirements.txt pins mlflow-skinny).
source "$(dirname "$0")/lib.sh"
MLPY=
for p in "${KILN_MLFLOW_PYTHON:-}" "${KILN_PYTHON:-}" "$KILN_SRC/.venv-test/bin/python" python3; do
  [[ -n $p ]] && command -v "$p" > /dev/null 2>&1 && "$p" -c 'import mlflow' 2> /dev/null && { MLPY=$p; break; }
done
[[ -n $MLPY ]] || { echo "SKIP: no python with mlflow (pip install -r tests/requirements.txt)"; exit 77; }

make_blobs blobs.csv 300
cat > mlp.yaml <<'YAML'
model:
  input: [4]
  layers:
    - {type: dense, units: 8}
    - {type: relu}
    - {type: dense, units: 3}
train:
  epochs: 3
  batch_size: 16
  threads: 1
  optimizer: {type: adam, lr: 0.01}
YAML
expect_ok "init" "$KILN" init
expect_ok "import" "$KILN" data import blobs --csv blobs.csv --label species --test-fraction 0.2 -o blobs.h5
expect_ok "a finished run" "$KILN" train mlp.yaml --data blobs.h5 --set train.optimizer.lr=0.02
expect_fail "a failed run" 7 "epoch 1" "$KILN" train mlp.yaml --data blobs.h5 \
  --set train.optimizer.type=sgd --set train.optimizer.lr=1e30
# An interrupted run: a process that died holding no lock.
expect_ok "a third run" "$KILN" train mlp.yaml --data blobs.h5
"$MLPY" -c 'import sqlite3; c = sqlite3.connect(".kiln/kiln.db"); c.execute("UPDATE runs SET status = '"'running'"', ended = NULL WHERE id = 3"); c.commit()'
expect_ok "export" "$KILN" runs export --mlflow mlruns
grep -q 'exported 3 runs' out.txt || fail "export: $(cat out.txt)"
expect_ok "export again rewrites the same runs" "$KILN" runs export --mlflow mlruns run:1 run:2 run:3
[[ $(ls -d mlruns/1/*/ | wc -l) -eq 3 ]] || fail "a second export made new run folders"

cat > readback.py <<'PY'
import os, sqlite3, sys
os.environ["MLFLOW_ALLOW_FILE_STORE"] = "true"  # MLflow 3 keeps the file store behind this
from mlflow.tracking import MlflowClient
client = MlflowClient(tracking_uri="file:" + os.path.abspath("mlruns"))
exp = client.get_experiment_by_name("kiln")
assert exp is not None, "no experiment named kiln"
runs = client.search_runs([exp.experiment_id], order_by=["attributes.start_time ASC"])
db = sqlite3.connect(".kiln/kiln.db")
assert len(runs) == 3, len(runs)
want_status = {"finished": "FINISHED", "failed": "FAILED", "interrupted": "KILLED"}
for r in runs:
    rid = int(r.data.tags["kiln.run_id"])
    status, = db.execute("SELECT status FROM runs WHERE id = ?", (rid,)).fetchone()
    assert r.info.status == want_status[status], (rid, status, r.info.status)
    assert r.info.run_name == f"run:{rid}" and r.data.tags["mlflow.runName"] == f"run:{rid}"
    assert r.info.start_time > 0 and r.info.end_time >= r.info.start_time
    params = {k.replace("[", ".").replace("]", ""): v
              for k, v in db.execute("SELECT key, value FROM run_params WHERE run_id = ?", (rid,))}
    assert r.data.params == params, set(r.data.params.items()) ^ set(params.items())
    keys = [k for k, in db.execute("SELECT DISTINCT key FROM run_metrics WHERE run_id = ?", (rid,))]
    assert "step_loss" in keys and (status == "failed" or "val_loss" in keys), keys
    for key in keys:
        hist = client.get_metric_history(r.info.run_id, key)
        rows = db.execute("SELECT step, value FROM run_metrics WHERE run_id = ? AND key = ? ORDER BY step",
                          (rid, key)).fetchall()
        assert [(m.step, m.value) for m in hist] == rows, key
    if status == "failed":
        assert "epoch 1" in r.data.tags["kiln.error"]
    else:
        assert r.data.metrics["test_accuracy"] >= 0 and "test_accuracy" in keys
    print(f"run:{rid} {r.info.status}: {len(r.data.params)} params, {len(keys)} metric histories")
print("mlflow", __import__("mlflow").__version__)
PY
expect_ok "MlflowClient reads every run, param and metric history back" "$MLPY" readback.py
cat out.txt
finish
