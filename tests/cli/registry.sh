#!/usr/bin/env bash
# The model registry end to end: import and train inside a workspace,
# register run:1, aliases and their history, tags, list/show, lineage --json
# checked by python, model cards (Markdown and HTML), archive rules, bad
# references and their exit codes, and model references in eval and predict.
source "$(dirname "$0")/lib.sh"
PY=$(find_python) || { echo "SKIP: no python with h5py and numpy"; exit 77; }

make_blobs blobs.csv 300
write_blobs_mlp mlp.yaml
cat >> mlp.yaml <<'YAML'
  checkpoint_every: 1
card:
  intended_use: Sorting synthetic blobs in the registry test.
  limitations: Knows three kinds of blob only.
YAML
sql() { "$PY" -c 'import sqlite3, sys; c = sqlite3.connect(".kiln/kiln.db"); r = c.execute(sys.argv[1]).fetchall(); c.commit(); print("\n".join("|".join(str(x) for x in row) for row in r))' "$1"; }

expect_ok "init" "$KILN" init
expect_ok "import registers a dataset version" "$KILN" data import blobs --csv blobs.csv \
  --label species --test-fraction 0.2 --seed 1 -o blobs.h5
[[ $(sql "SELECT COUNT(*) FROM dataset_versions") -ge 1 ]] || fail "data import registered no dataset version"
data_hash=$(sql "SELECT content_sha256 FROM dataset_versions ORDER BY id DESC LIMIT 1")
expect_ok "train records a run" "$KILN" train mlp.yaml --data blobs.h5 --out run1 --threads 1
[[ $(sql "SELECT status FROM runs WHERE id = 1") == finished ]] || fail "run:1 is not recorded as finished"
[[ $(sql "SELECT COUNT(*) FROM checkpoints WHERE run_id = 1 AND final = 1") -eq 1 ]] ||
  fail "run:1 has no final checkpoint"

# --- register, numbering ---
expect_ok "register run:1" "$KILN" model register run:1 --name clf --description "blob sorter" \
  --tag team=ml --tag stage=dev
grep -q 'registered clf@1' out.txt || fail "the first version is not clf@1: $(cat out.txt)"
expect_ok "register run:1 again" "$KILN" model register run:1 --name clf
grep -q 'clf@2' out.txt || fail "the second version is not clf@2"
expect_ok "register a model file (--json)" "$KILN" model register run1/model.h5 --name clf --json
"$PY" -c 'import json; d = json.load(open("out.txt")); assert d["name"] == "clf" and d["version"] == 3, d' ||
  fail "register --json"
pass "register --json parses"
expect_fail "register needs --name" 2 "--name" "$KILN" model register run:1
expect_fail "register a dataset file" 4 "not a kiln model" "$KILN" model register blobs.h5 --name clf
expect_fail "register an unknown run" 11 "run:99: no such run" "$KILN" model register run:99 --name clf
expect_fail "a bad model name" 2 "only letters" "$KILN" model register run:1 --name 'my model'
expect_fail "a model may not take a dataset's name" 2 "names a dataset" "$KILN" model register run:1 --name blobs
sql "INSERT INTO runs(id, status, config, engine_version, git_commit, host, user, started)
     VALUES(77, 'interrupted', 'model: {}', '0.1.0', 'x', 'h', 'u', '2026-01-01T00:00:00Z')" > /dev/null
expect_fail "a run without a final model is refused" 11 \
  "run:77 has no final model \(status interrupted\): resume it or register a checkpoint file" \
  "$KILN" model register run:77 --name clf

# --- aliases, tags, list, show ---
expect_ok "alias clf@1 production" "$KILN" model alias clf@1 production
expect_ok "move production to clf@2" "$KILN" model alias clf@2 production
grep -q 'version 1 -> 2' out.txt || fail "alias move not reported: $(cat out.txt)"
expect_ok "tag" "$KILN" model tag clf@2 risk=low owner=ana
expect_ok "untag" "$KILN" model tag clf@2 --delete owner
expect_fail "untag a missing key" 11 "no tag 'owner'" "$KILN" model tag clf@2 --delete owner
expect_ok "show clf@production" "$KILN" model show clf@production
grep -q '^clf@2' out.txt || fail "clf@production is not clf@2"
grep -qE 'production +1 -> 2 +by ' out.txt || fail "show lacks the alias history"
grep -q 'risk=low' out.txt || fail "show lacks the tag"
grep -q "$data_hash" out.txt || fail "show lacks the dataset version's hash"
expect_ok "show --json" "$KILN" model show clf@1 --json
"$PY" - <<'EOF' || fail "show --json"
import json
d = json.load(open("out.txt"))
assert d["version"] == 1 and d["description"] == "blob sorter", d
assert d["tags"] == {"stage": "dev", "team": "ml"}, d["tags"]
assert d["run"]["id"] == 1 and d["checkpoint"]["final"] is True, d
assert [h["to_version"] for h in d["alias_history"]] == [1, 2], d["alias_history"]
EOF
expect_ok "list" "$KILN" model list
grep -qE '^clf +3 +3 +production=2' out.txt || { cat out.txt; fail "list: clf latest 3, 3 versions, production=2"; }
expect_ok "list clf --json" "$KILN" model list clf --json
"$PY" - <<'EOF' || fail "list clf --json"
import json
d = json.load(open("out.txt"))
v = d["versions"]
assert [x["version"] for x in v] == [1, 2, 3], v
assert v[1]["aliases"] == ["production"] and v[0]["aliases"] == [], v
assert v[0]["dataset"]["name"] == "blobs", v[0]
assert all(x["run"]["id"] == 1 for x in v), v   # the file's bytes are run:1's final model
assert not any(x["archived"] for x in v)
EOF
pass "list clf --json"
expect_ok "list clf (text)" "$KILN" model list clf
grep -qE '^2 .*run:1 +blobs v[0-9]+ .*risk=low +production' out.txt || { cat out.txt; fail "list clf text"; }

# --- lineage ---
expect_ok "lineage (text)" "$KILN" model lineage clf@production
for k in dataset run checkpoint model alias; do grep -q "$k" out.txt || fail "lineage lacks $k"; done
expect_ok "lineage --json" "$KILN" model lineage clf@production --json
DATA_HASH=$data_hash "$PY" - <<'EOF' || fail "lineage --json"
import hashlib, json, os, sqlite3
d = json.load(open("out.txt"))
kinds = [e["kind"] for e in d["chain"]]
assert kinds[-3:] == ["checkpoint", "model", "alias"] and kinds[-4] == "run", kinds
assert kinds[0] == "dataset", kinds
assert d["datasets"][0]["content_sha256"] == os.environ["DATA_HASH"], d["datasets"]
db = sqlite3.connect(".kiln/kiln.db")
config, commit = db.execute("SELECT config, git_commit FROM runs WHERE id = 1").fetchone()
assert d["run"]["config_sha256"] == hashlib.sha256(config.encode()).hexdigest(), d["run"]
assert d["run"]["git_commit"] == commit and d["run"]["status"] == "finished", d["run"]
sha = d["model"]["sha256"]
assert d["aliases"] == [{"alias": "production", "sha256": sha}], d["aliases"]
assert d["chain"][-1]["sha256"] == sha and d["checkpoint"]["sha256"] == sha
assert hashlib.sha256(open(".kiln/objects/%s/%s" % (sha[:2], sha[2:]), "rb").read()).hexdigest() == sha
EOF
pass "lineage --json: dataset -> run -> checkpoint -> model -> alias, hashes check out"

# --- cards ---
expect_ok "card (Markdown)" "$KILN" model card clf@production -o card.md
for s in '## Intended use' 'Sorting synthetic blobs' '## Training data' '## Evaluation' '## Lineage' \
         'versicolor' "$data_hash"; do
  grep -qF -- "$s" card.md || fail "card.md lacks '$s'"
done
pass "card.md has its sections"
expect_ok "card (HTML)" "$KILN" model card clf@2 --html -o card.html
grep -q '<svg' card.html || fail "card.html has no inline SVG"
grep -q 'Knows three kinds of blob only' card.html || fail "card.html lacks the limitations"
pass "card.html has inline SVG"
expect_fail "card needs -o" 2 "-o FILE" "$KILN" model card clf@2
no_partial_files .

# --- archive ---
expect_fail "archiving an aliased version is refused" 2 "aliased as production" "$KILN" model archive clf@2
expect_ok "archive clf@3" "$KILN" model archive clf@3
expect_ok "show clf" "$KILN" model show clf
grep -q '^clf@2' out.txt || fail "after archiving clf@3, clf is not clf@2"
expect_fail "an archived version cannot be aliased" 2 "archived" "$KILN" model alias clf@3 staging
expect_ok "register after an archive" "$KILN" model register run:1 --name clf
grep -q 'clf@4' out.txt || fail "the number after an archived 3 is not 4: $(cat out.txt)"
expect_ok "archive --undo" "$KILN" model archive clf@3 --undo
expect_ok "alias --delete" "$KILN" model alias clf@4 staging
expect_ok "alias --delete" "$KILN" model alias --delete clf staging

# --- bad references and syntax ---
expect_fail "unknown model" 11 "no such model" "$KILN" model show nope@1
expect_fail "unknown version" 11 "no such version" "$KILN" model show clf@9
expect_fail "unknown alias" 11 "no alias 'canary'" "$KILN" model lineage clf@canary
expect_fail "alias without ALIAS" 2 "usage: kiln model alias" "$KILN" model alias clf@1
expect_fail "unknown subcommand" 2 "unknown command" "$KILN" model frobnicate
expect_fail "unknown option" 2 "unknown option" "$KILN" model list --bogus
expect_fail "a run is not a model reference" 2 "model reference" "$KILN" model show run:1
expect_ok "model --help" "$KILN" model --help
expect_ok "model register --help" "$KILN" model register --help
mkdir elsewhere
expect_fail "a folder that is no workspace" 11 "kiln init" "$KILN" model list --workspace elsewhere
expect_ok "--workspace" "$KILN" model list --workspace "$WORK"

# --- model references in eval and predict ---
for ref in clf@1 clf@production clf; do
  expect_ok "eval $ref" "$KILN" eval "$ref" --data blobs.h5 --threads 1
  grep -qi 'accuracy' out.txt || fail "eval $ref printed no accuracy"
done
expect_ok "predict clf@production" "$KILN" predict clf@production --input blobs.csv \
  --drop-column species --output pred.csv --threads 1
[[ $(wc -l < pred.csv) -eq 301 ]] || fail "pred.csv should have a header and 300 rows"

# --- the record ---
expect_ok "audit verify" "$KILN" audit verify
expect_ok "audit log" "$KILN" audit log
for a in model.register model.alias model.tag model.archive model.unarchive; do
  grep -q " $a " out.txt || fail "the audit log lacks $a"
done
pass "every registry change is in the audit log"
[[ $(sql "SELECT COUNT(*) FROM audit WHERE action = 'model.register'") -eq 4 ]] ||
  fail "expected 4 model.register entries (refused registrations append none)"
expect_ok "fsck" "$KILN" fsck
finish
