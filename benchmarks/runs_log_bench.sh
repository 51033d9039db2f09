#!/usr/bin/env bash
# The cost of recording a run (issue goal: under 50 us a step on average,
# batched writes): trains the same tiny MLP with many small steps, so that the
# per-step overhead shows, inside a workspace (recorded: per-step loss
# buffered and written one transaction per 1000 steps, epoch metrics and a
# checkpoint object per epoch) and outside one (not recorded), 5 times
# alternately. Prints the recorder's own measure of the time spent in its
# per-step hook (KILN_DEBUG line) and the wall-clock difference per step.
#
#   benchmarks/runs_log_bench.sh [KILN] [ROWS] [EPOCHS]
set -euo pipefail
KILN=$(realpath "${1:-build/kiln}")
ROWS=${2:-20000}
EPOCHS=${3:-10}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/kiln-log-bench.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
cd "$WORK"
awk -v n="$ROWS" 'BEGIN { srand(7); print "f1,f2,f3,f4,label";
  for (i = 0; i < n; i++) { c = i % 3; printf "%.4f,%.4f,%.4f,%.4f,c%d\n", c + rand() * 3, -c + rand() * 3, rand(), c / 2 + rand() * 3, c } }' > data.csv
cat > mlp.yaml <<YAML
model:
  input: [4]
  layers:
    - {type: dense, units: 16}
    - {type: relu}
    - {type: dense, units: 3}
train:
  epochs: $EPOCHS
  batch_size: 4
  threads: 1
  optimizer: {type: adam, lr: 0.01}
  checkpoint_every: 1
YAML
"$KILN" data import data --csv data.csv --label label --test-fraction 0.1 -o data.h5 > /dev/null
mkdir ws && "$KILN" init ws > /dev/null   # the plain runs stay outside it
ms() { local a b; a=$(date +%s%N); "$@" > /dev/null 2> err.txt; b=$(date +%s%N); echo $(( (b - a) / 1000000 )); }
echo "run  plain_ms  recorded_ms  steps  hook_us_per_step  wall_us_per_step"
for i in 1 2 3 4 5; do
  plain=$(ms "$KILN" train mlp.yaml --data data.h5 --out plain)
  rec=$(KILN_DEBUG=1 ms "$KILN" train mlp.yaml --data data.h5 --workspace ws)
  line=$(grep 'us per step' err.txt) || { cat err.txt >&2; exit 1; }
  steps=$(sed -E 's/.*logged ([0-9]+) step losses.*/\1/' <<< "$line")
  hook=$(sed -E 's/.*, ([0-9.]+) us per step/\1/' <<< "$line")
  printf '%-4s %-9s %-12s %-6s %-17s %s\n' "$i" "$plain" "$rec" "$steps" "$hook" \
    "$(echo "scale=2; ($rec - $plain) * 1000 / $steps" | bc)"
done
