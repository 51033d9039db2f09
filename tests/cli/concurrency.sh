#!/usr/bin/env bash
# 8 processes at once, each importing new versions of its dataset, training
# tiny runs and registering them as versions of one shared model, 3 rounds:
# no lost, duplicated or torn records; versions unique and gapless; the
# audit log verifies; fsck is clean.
source "$(dirname "$0")/lib.sh"
command -v sqlite3 > /dev/null || { echo "SKIP: no sqlite3 command"; exit 77; }
db() { sqlite3 -cmd ".timeout 30000" .kiln/kiln.db "$1"; }

expect_ok "init" "$KILN" init
cat > cfg.yaml <<'YAML'
model:
  input: [4]
  layers:
    - {type: dense, units: 8}
    - {type: relu}
    - {type: dense, units: 3}
train:
  epochs: 2
  batch_size: 16
YAML
make_blobs base.csv 300
worker() {
  local k=$1 round
  for round in 1 2 3; do
    # each round changes one value, so each import is a new version
    sed "2s/^[0-9.]*/$k.$round/" base.csv > "w$k.csv"
    "$KILN" data import "ds$k" --csv "w$k.csv" --label species > /dev/null || return 1
    out=$("$KILN" train cfg.yaml --data "ds$k" --threads 1 2>&1) || { echo "$out"; return 2; }
    run=$(printf '%s\n' "$out" | sed -n 's/^run:\([0-9]*\) finished.*/\1/p')
    [[ -n $run ]] || { echo "no run id in: $out"; return 3; }
    "$KILN" model register "run:$run" --name shared > /dev/null || return 4
  done
}
pids=()
for k in 1 2 3 4 5 6 7 8; do worker "$k" > "worker$k.log" 2>&1 & pids+=($!); done
for k in "${!pids[@]}"; do
  wait "${pids[$k]}" || { cat "worker$((k + 1)).log" >&2; fail "worker $((k + 1)) failed"; }
done
pass "8 workers x 3 rounds of import, train, register"

[[ $(db "SELECT count(*) FROM runs WHERE status = 'finished'") == 24 ]] || fail "expected 24 finished runs: $(db 'SELECT status, count(*) FROM runs GROUP BY status')"
[[ $(db "SELECT count(*) FROM runs") == 24 ]] || fail "runs were duplicated"
versions=$(db "SELECT group_concat(version) FROM (SELECT v.version FROM model_versions v JOIN models m ON m.id = v.model_id WHERE m.name = 'shared' ORDER BY v.version)")
[[ $versions == "$(seq -s, 1 24)" ]] || fail "model versions not unique and gapless: $versions"
[[ $(db "SELECT count(DISTINCT run_id) FROM model_versions") == 24 ]] || fail "a run was registered twice"
pass "runs, model versions 1..24, one version per run"
for k in 1 2 3 4 5 6 7 8; do
  chain=$(db "SELECT group_concat(link) FROM (SELECT v.version || ':' || ifnull(p.version, '-') AS link FROM dataset_versions v JOIN datasets d ON d.id = v.dataset_id LEFT JOIN dataset_versions p ON p.id = v.parent_id WHERE d.name = 'ds$k' ORDER BY v.version)")
  [[ $chain == "1:-,2:1,3:2" ]] || fail "ds$k versions/parents wrong: $chain"
done
pass "each dataset has versions 1..3, each the parent of the next"
expect_ok "audit log verifies" "$KILN" audit verify
entries=$(sed -n 's/.*: \([0-9]*\) entries/\1/p' out.txt)
# init + per worker round: import, run start, run end, register
((entries == 1 + 8 * 3 * 4)) || fail "audit log has $entries entries, expected $((1 + 96))"
pass "audit log holds every action once"
expect_ok "fsck is clean" "$KILN" fsck
finish
