#!/usr/bin/env bash
# The workspace commands: init, finding the workspace, audit log/verify,
# gc, fsck, a newer schema, a tampered audit log.
source "$(dirname "$0")/lib.sh"
command -v sqlite3 > /dev/null || { echo "SKIP: no sqlite3 command"; exit 77; }

mkdir outside && cd outside
expect_fail "gc outside a workspace suggests kiln init" 11 "kiln init" "$KILN" gc
cd ..
expect_ok "kiln init" "$KILN" init
grep -q "initialised" out.txt || fail "init says nothing"
expect_fail "a second init is refused" 2 "already" "$KILN" init
mkdir -p deep/er && cd deep/er
expect_ok "commands find the workspace from a subfolder" "$KILN" audit log
grep -q ' init ' out.txt || fail "the audit log lacks the init entry"
cd "$WORK"
expect_ok "--workspace names it from elsewhere" "$KILN" audit verify --workspace "$WORK"
expect_ok "fsck of an empty workspace" "$KILN" fsck
grep -q '0 problems' out.txt || fail "fsck reports problems in an empty workspace"
expect_ok "gc" "$KILN" gc
expect_ok "audit log --json" "$KILN" audit log --json
PY=$(find_python) && {
  "$PY" -c 'import json,sys; rows=[json.loads(l) for l in open("out.txt")]; assert rows[-1]["action"] == "gc", rows' ||
    fail "audit log --json is not JSON lines ending with gc"
  pass "audit log --json parses"
}
expect_ok "audit verify" "$KILN" audit verify
sqlite3 -cmd ".timeout 30000" .kiln/kiln.db "UPDATE audit SET user = 'mallory' WHERE id = 1"
expect_fail "an edited audit entry is detected" 12 "entry 1" "$KILN" audit verify
expect_fail "fsck reports the broken chain" 12 "problem" "$KILN" fsck
sqlite3 -cmd ".timeout 30000" .kiln/kiln.db "UPDATE meta SET value = '99' WHERE key = 'schema_version'"
expect_fail "a workspace from a newer kiln is refused" 9 "newer kiln.*upgrade" "$KILN" audit log
finish
