#!/usr/bin/env bash
# Registry races: 8 processes each register the same model file 5 times as
# versions of one model, all at once. The versions must be exactly 1..40
# (none lost, none given twice, no gap), the audit log must verify and
# `kiln fsck` must be clean.
source "$(dirname "$0")/lib.sh"
PY=$(find_python) || { echo "SKIP: no python with h5py and numpy"; exit 77; }

make_blobs blobs.csv 90
cat > mlp.yaml <<'YAML'
model:
  input: [4]
  layers:
    - {type: dense, units: 4}
    - {type: relu}
    - {type: dense, units: 3}
  loss: softmax_cross_entropy
train:
  epochs: 1
  batch_size: 32
  seed: 1
YAML
expect_ok "import (outside a workspace)" "$KILN" data import blobs --csv blobs.csv --label species -o blobs.h5
expect_ok "train (outside a workspace)" "$KILN" train mlp.yaml --data blobs.h5 --out run --threads 1
mkdir ws
expect_ok "init" "$KILN" init ws

PROCS=8 EACH=5
pids=()
for p in $(seq 1 $PROCS); do
  (
    for i in $(seq 1 $EACH); do
      "$KILN" model register run/model.h5 --name racer --tag "proc=$p" --tag "i=$i" \
        --workspace ws > "reg-$p-$i.out" 2> "reg-$p-$i.err" || { echo "exit $?" >> "reg-$p-$i.err"; exit 1; }
    done
  ) &
  pids+=($!)
done
bad=0
for pid in "${pids[@]}"; do wait "$pid" || bad=1; done
if [[ $bad -ne 0 ]]; then cat reg-*.err >&2; fail "a concurrent registration failed"; fi
if grep -qE 'AddressSanitizer|runtime error' reg-*.err; then cat reg-*.err >&2; fail "a registration crashed"; fi
pass "$((PROCS * EACH)) registrations from $PROCS processes at once all succeeded"

expect_ok "list racer --json" "$KILN" model list racer --json --workspace ws
N=$((PROCS * EACH)) "$PY" - <<'PYEOF' || fail "versions are not exactly 1..N"
import json, os
n = int(os.environ["N"])
v = json.load(open("out.txt"))["versions"]
nums = sorted(x["version"] for x in v)
assert nums == list(range(1, n + 1)), nums
pairs = {(x["tags"]["proc"], x["tags"]["i"]) for x in v}
assert len(pairs) == n, "some registration's tags were lost or duplicated"
assert len({x["sha256"] for x in v}) == 1
PYEOF
pass "versions are exactly 1..$((PROCS * EACH)), each registration's tags on its own version"
# What each process printed matches what was stored.
printed=$(cat reg-*.out | sed -n 's/^registered racer@\([0-9]*\) .*/\1/p' | sort -n | tr '\n' ' ')
[[ $printed == "$(seq -s ' ' 1 $((PROCS * EACH))) " ]] || fail "printed versions: $printed"
pass "each process was told a distinct number"
expect_ok "audit verify" "$KILN" audit verify --workspace ws
grep -q "$((PROCS * EACH + 1)) entries" out.txt || fail "expected init + $((PROCS * EACH)) audit entries: $(cat out.txt)"
expect_ok "fsck is clean" "$KILN" fsck --workspace ws
finish
