#!/usr/bin/env bash
# kiln runs list over a workspace of 10,000 runs with 100 metrics each
# (issue goal: under 200 ms). Fills the workspace with direct SQL in one
# transaction (the schema as kiln writes it: runs, ~35 params a run, 100
# metric values a run in run_metrics and their latest values in
# run_summary), then times the listing commands, median of 7.
#
#   benchmarks/runs_list_bench.sh [KILN] [RUNS] [METRICS]
set -euo pipefail
KILN=${1:-build/kiln}
RUNS=${2:-10000}
METRICS=${3:-100}
KILN=$(realpath "$KILN")
WORK=$(mktemp -d "${TMPDIR:-/tmp}/kiln-runs-bench.XXXXXX")
[[ -n ${KEEP:-} ]] || trap 'rm -rf "$WORK"' EXIT; echo "workspace: $WORK"
cd "$WORK"
"$KILN" init > /dev/null

t0=$(date +%s.%N)
python3 - "$RUNS" "$METRICS" <<'PY'
import sqlite3, sys
runs, metrics = int(sys.argv[1]), int(sys.argv[2])
db = sqlite3.connect(".kiln/kiln.db")
config = (
    "model:\n  input: [784]\n  layers:\n    - {type: dense, units: 256}\n    - {type: relu}\n"
    "    - {type: dense, units: 10}\n  loss: softmax_cross_entropy\ntrain:\n  epochs: 10\n"
    "  batch_size: 128\n  optimizer: {type: adam, lr: 0.001}\n")
params = ["model.input", "model.loss", "model.label_smoothing"] + \
    [f"model.layers[{i}].{k}" for i in range(3) for k in ("type", "units", "bias", "init")] + \
    ["train." + k for k in ("epochs", "batch_size", "seed", "optimizer.type", "optimizer.lr",
     "optimizer.beta1", "optimizer.beta2", "optimizer.eps", "optimizer.weight_decay",
     "schedule.type", "schedule.warmup_steps", "val_fraction", "early_stopping.metric",
     "early_stopping.patience", "early_stopping.mode", "checkpoint_every", "clip_norm",
     "device", "threads")] + ["data", "data.name", "data.sha256"]
named = ["epoch", "lr", "train_loss", "val_loss", "val_accuracy", "val_macro_f1", "seconds",
         "samples_per_s", "step_loss", "test_loss", "test_accuracy", "test_macro_f1"]
keys = (named + [f"metric_{i:03d}" for i in range(metrics)])[:metrics]
statuses = ["finished"] * 8 + ["failed", "interrupted"]
with db:
    for r in range(1, runs + 1):
        db.execute("INSERT INTO runs(id, status, config, engine_version, git_commit, host, user, pid,"
                   " device, threads, started, ended, out_dir) VALUES(?, ?, ?, '0.1.0', 'abc', 'host',"
                   " 'user', 1, 'cpu', 2, ?, ?, '/tmp/x')",
                   (r, statuses[r % 10], config, "2026-01-%02dT10:%02d:%02d.000Z" % (1 + r % 28, r % 60, r % 60),
                    "2026-01-%02dT11:%02d:%02d.000Z" % (1 + r % 28, r % 60, r % 60)))
        db.executemany("INSERT INTO run_params VALUES(?, ?, ?)",
                       [(r, k, str((r * 7 + i) % 97 / 1000)) for i, k in enumerate(params)])
        vals = [(r, k, ((r * 31 + i * 17) % 1000) / 1000.0) for i, k in enumerate(keys)]
        db.executemany("INSERT INTO run_summary VALUES(?, ?, ?)", vals)
        db.executemany("INSERT INTO run_metrics VALUES(?, ?, 100, 10, ?, 1.7e9)", vals)
PY
t1=$(date +%s.%N)
printf 'filled %d runs x %d metrics in %.1f s (%s)\n' "$RUNS" "$METRICS" "$(echo "$t1 - $t0" | bc)" \
  "$(du -h .kiln/kiln.db | cut -f1)"

# median of 7 wall-clock timings (ms) of a command, output discarded
time_ms() {
  local ts=()
  "$@" > /dev/null # warm the page cache
  for _ in 1 2 3 4 5 6 7; do
    local a b
    a=$(date +%s%N); "$@" > /dev/null; b=$(date +%s%N)
    ts+=($(( (b - a) / 1000000 )))
  done
  printf '%s\n' "${ts[@]}" | sort -n | sed -n 4p
}
printf '%-70s %s\n' "command" "median ms"
for args in "runs list --limit 20" "runs list" "runs list --json" \
            "runs list --where test_accuracy>0.88 --sort val_accuracy --desc --limit 20" \
            "runs list --columns id,status,train.optimizer.lr,val_accuracy,test_accuracy,lr --sort train.optimizer.lr"; do
  # shellcheck disable=SC2086
  printf '%-70s %s\n' "kiln $args" "$(time_ms "$KILN" $args)"
done
echo "rows listed by the full default listing: $("$KILN" runs list | tail -n +2 | wc -l)"
