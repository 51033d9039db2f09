# tests/cli/lib.sh: helpers for the end-to-end CLI tests (sourced).
# Each script runs in its own temp folder, prints what it checks, and exits
# non-zero at the first failure (77 = skipped).
set -euo pipefail
: "${KILN:?KILN must name the kiln binary}"
: "${KILN_SRC:?KILN_SRC must name the source tree}"
WORK=$(mktemp -d "${TMPDIR:-/tmp}/kiln-cli.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
cd "$WORK"
checks=0

fail() { echo "FAIL: $*" >&2; exit 1; }
pass() { checks=$((checks + 1)); echo "ok: $*"; }

# expect_ok DESCRIPTION CMD...: CMD must exit 0.
expect_ok() {
  local what=$1; shift
  if ! "$@" > out.txt 2> err.txt; then
    cat out.txt err.txt >&2
    fail "$what: '$*' exited $?"
  fi
  pass "$what"
}

# expect_fail DESCRIPTION CODE NEEDLE CMD...: CMD must exit CODE and print
# NEEDLE (a grep -E pattern) on stderr, in a 'kiln: error:' line, and must
# not crash (no sanitizer report, no signal).
expect_fail() {
  local what=$1 code=$2 needle=$3; shift 3
  local rc=0
  "$@" > out.txt 2> err.txt || rc=$?
  if [[ $rc -ne $code ]]; then
    cat out.txt err.txt >&2
    fail "$what: expected exit $code, got $rc from '$*'"
  fi
  grep -q '^kiln: error: ' err.txt || { cat err.txt >&2; fail "$what: no 'kiln: error:' line"; }
  grep -qE -- "$needle" err.txt || { cat err.txt >&2; fail "$what: stderr lacks /$needle/"; }
  if grep -qE 'AddressSanitizer|runtime error|Segmentation|core dumped' err.txt; then
    cat err.txt >&2; fail "$what: crashed"
  fi
  pass "$what (exit $code)"
}

# no_partial_files DIR: no temp files left behind by atomic writes.
no_partial_files() {
  local left
  left=$(find "$1" -name '.*.tmp.*' 2>/dev/null | head -5)
  [[ -z $left ]] || fail "temp files left behind: $left"
}

# A python with h5py and numpy for interop checks, or skip.
find_python() {
  for p in "${KILN_PYTHON:-}" "$KILN_SRC/.venv-test/bin/python" /usr/bin/python3 python3; do
    [[ -n $p ]] && command -v "$p" >/dev/null 2>&1 && "$p" -c 'import h5py, numpy' 2>/dev/null &&
      { echo "$p"; return 0; }
  done
  return 1
}

# make_blobs FILE ROWS: a CSV with 4 features and 3 well separated text classes.
make_blobs() {
  awk -v n="$2" 'BEGIN {
    srand(7); print "f1,f2,f3,f4,species";
    split("setosa versicolor virginica", name, " ");
    for (i = 0; i < n; i++) {
      c = i % 3; cx = c * 4.0;
      printf "%.4f,%.4f,%.4f,%.4f,%s\n", cx + rand(), -cx + rand(), rand(), cx / 2 + rand(), name[c + 1];
    }
  }' > "$1"
}

# Tests read the workspace database with the sqlite3 shell as `sqlite3 -cmd
# ".timeout 30000" ...`: the shell waits for no lock by default, and after a
# kill -9 another process may hold one while it recovers the WAL.

# write_blobs_mlp FILE: the small classifier of make_blobs data the workspace
# tests train (append to FILE for more train: keys or a card: section).
write_blobs_mlp() {
  cat > "$1" <<'YAML'
model:
  input: [4]
  layers:
    - {type: dense, units: 16}
    - {type: relu}
    - {type: dense, units: 3}
  loss: softmax_cross_entropy
train:
  epochs: 3
  batch_size: 32
  seed: 5
  optimizer: {type: adam, lr: 0.01}
YAML
}

# setup_blobs_model: a workspace here with make_blobs data imported as
# "blobs" (blobs.h5), the write_blobs_mlp model trained (run:1) and
# registered as clf (version 1): what the package, score and serve tests
# start from.
setup_blobs_model() {
  make_blobs blobs.csv 300
  write_blobs_mlp mlp.yaml
  expect_ok "init" "$KILN" init
  expect_ok "import" "$KILN" data import blobs --csv blobs.csv --label species --test-fraction 0.2 \
    --seed 1 -o blobs.h5
  expect_ok "train" "$KILN" train mlp.yaml --data blobs.h5 --out run1 --threads 1
  expect_ok "register" "$KILN" model register run:1 --name clf
}

finish() { echo "$checks checks passed"; }
