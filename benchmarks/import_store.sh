#!/usr/bin/env bash
# Importing Fashion-MNIST into a workspace (a registered dataset version:
# the file written as a content-addressed object, its statistics computed
# and stored, the version and an audit entry recorded) against the plain
# import to a file, alternately, RUNS times each; prints every run, the
# medians and their ratio (goal: within 1.2x).
#
#   benchmarks/import_store.sh [RUNS] [KILN]     (defaults: 5, build/kiln)
#
# Needs Debian's dataset-fashion-mnist (/usr/share/datasets/fashion-mnist).
set -euo pipefail
runs=${1:-5}
kiln=$(realpath "${2:-build/kiln}")
fm=${FASHION_MNIST:-/usr/share/datasets/fashion-mnist}
[[ -f $fm/train-images-idx3-ubyte.gz ]] || { echo "no Fashion-MNIST in $fm" >&2; exit 77; }
args=(--idx "$fm/train-images-idx3-ubyte.gz" "$fm/train-labels-idx1-ubyte.gz"
      --test-idx "$fm/t10k-images-idx3-ubyte.gz" "$fm/t10k-labels-idx1-ubyte.gz")
work=$(mktemp -d "${TMPDIR:-/tmp}/kiln-bench-import.XXXXXX")
trap 'rm -rf "$work"' EXIT
mkdir "$work/plain" "$work/ws"

# seconds CMD...: wall time of CMD (output discarded).
seconds() {
  local t0=$EPOCHREALTIME
  "$@" > /dev/null
  echo "$EPOCHREALTIME - $t0" | bc -l
}

median() { sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

# A warm-up of each, so that both read the inputs from the page cache.
(cd "$work/plain" && "$kiln" data import fm "${args[@]}" -o fm.h5 > /dev/null)
(cd "$work/ws" && "$kiln" init > /dev/null && "$kiln" data import fm "${args[@]}" > /dev/null)

plain=() store=()
printf '%4s %10s %10s\n' run plain_s store_s
for ((i = 1; i <= runs; i++)); do
  # A fresh workspace each time: a first registration, never "unchanged".
  rm -rf "$work/ws/.kiln" && (cd "$work/ws" && "$kiln" init > /dev/null)
  p=$(cd "$work/plain" && seconds "$kiln" data import fm "${args[@]}" -o fm.h5)
  s=$(cd "$work/ws" && seconds "$kiln" data import fm "${args[@]}")
  plain+=("$p") store+=("$s")
  printf '%4d %10.3f %10.3f\n' "$i" "$p" "$s"
done
mp=$(printf '%s\n' "${plain[@]}" | median)
ms=$(printf '%s\n' "${store[@]}" | median)
printf 'median %8.3f %10.3f\n' "$mp" "$ms"
printf 'store / plain: %.2fx (goal: within 1.2x)\n' "$(echo "$ms / $mp" | bc -l)"
