#!/usr/bin/env bash
# Model packages end to end: keygen, package with and without --sign, verify
# (with the right key), and every tampering case refused: a changed byte, a
# missing or extra member, a symlink, an absolute or '..' path, a wrong key,
# a missing signature under --require-signature, changed golden outputs.
source "$(dirname "$0")/lib.sh"
PY=$(find_python) || { echo "SKIP: no python with h5py and numpy"; exit 77; }
# verify extracts into a private folder under $TMPDIR: one of our own, to
# check that it is removed afterwards.
mkdir xtmp
export TMPDIR=$WORK/xtmp

sql() { "$PY" -c 'import sqlite3, sys; c = sqlite3.connect(".kiln/kiln.db"); print("\n".join("|".join(str(x) for x in r) for r in c.execute(sys.argv[1])))' "$1"; }

setup_blobs_model

# --- keys ---
expect_ok "keygen" "$KILN" keygen -o release
[[ $(stat -c %a release.key) == 600 ]] || fail "release.key is not mode 0600"
grep -q 'BEGIN PUBLIC KEY' release.pub || fail "release.pub is not a PEM public key"
expect_fail "keygen never overwrites" 2 "exists already" "$KILN" keygen -o release
expect_ok "a second key pair" "$KILN" keygen -o other

# --- package ---
expect_ok "package unsigned" "$KILN" model package clf@1 -o clf.kiln
expect_ok "package signed" "$KILN" model package clf@1 -o clf-signed.kiln --sign release.key --golden 5
no_partial_files .
[[ $(sql "SELECT COUNT(*) FROM packages") -eq 2 ]] || fail "packages table does not hold 2 rows"
[[ $(sql "SELECT signed FROM packages ORDER BY id") == $'0\n1' ]] || fail "signed flags are wrong"
[[ $(sql "SELECT COUNT(*) FROM audit WHERE action = 'model.package'") -eq 2 ]] ||
  fail "no model.package audit entries"
"$PY" - <<'EOF' || fail "package layout"
import tarfile, hashlib
t = tarfile.open("clf-signed.kiln")
names = t.getnames()
assert names == ["manifest.yaml", "manifest.sig", "model.h5", "card.md", "stats.json", "golden.h5"], names
for m in t.getmembers():
    assert m.isreg() and m.mtime == 0 and m.uid == 0 and m.gid == 0, m
assert len(t.extractfile("manifest.sig").read()) == 64
man = t.extractfile("manifest.yaml").read().decode()
for key in ("format: kiln-package", "name: \"clf\"", "version: 1", "content_sha256:", "run_id: 1",
            "checkpoint_sha256:", "model_sha256:", "metrics:", "dtype: float32", "features: 4",
            "classes: [\"setosa\", \"versicolor\", \"virginica\"]", "transforms: null", "commit:",
            "created:", "rows: 5"):
    assert key in man, key
for n in names[2:]:
    assert hashlib.sha256(t.extractfile(n).read()).hexdigest() in man, n
EOF
pass "package layout: members, fixed headers, manifest keys and hashes"
expect_fail "package needs -o" 2 "-o FILE" "$KILN" model package clf@1
expect_fail "package an unknown version" 11 "clf@9" "$KILN" model package clf@9 -o x.kiln
expect_fail "package with a public key as the signing key" 2 "private" \
  "$KILN" model package clf@1 -o x.kiln --sign release.pub
[[ ! -e x.kiln ]] || fail "a failed package left x.kiln"

# --- verify ---
expect_ok "verify unsigned" "$KILN" model verify clf.kiln
grep -q 'ready' out.txt || fail "verify does not say ready"
expect_ok "verify signed with the right key" "$KILN" model verify clf-signed.kiln --key release.pub \
  --require-signature
grep -q 'signature: verified' out.txt || fail "verify does not report the signature"
expect_ok "verify signed without a key" "$KILN" model verify clf-signed.kiln
expect_fail "a wrong key" 12 "does not verify" "$KILN" model verify clf-signed.kiln --key other.pub
expect_fail "an unsigned package with --require-signature" 12 "not signed" \
  "$KILN" model verify clf.kiln --key release.pub --require-signature
expect_fail "--require-signature without a key" 2 "needs --key" \
  "$KILN" model verify clf-signed.kiln --require-signature
expect_fail "verify a missing file" 3 "nope.kiln" "$KILN" model verify nope.kiln
expect_fail "verify a file that is not a tar" 4 "tar" "$KILN" model verify blobs.csv
expect_ok "two packages of one version both verify" "$KILN" model verify clf-signed.kiln

# --- tampering: rebuild the tar with python ---
# retar SRC DST MODE: copy the members of SRC into DST, changed as MODE says.
retar() {
  "$PY" - "$@" <<'EOF'
import io, sys, tarfile, h5py, numpy as np
src, dst, mode = sys.argv[1:4]
t = tarfile.open(src)
members = [(m.name, t.extractfile(m).read()) for m in t.getmembers()]
out = tarfile.open(dst, "w", format=tarfile.PAX_FORMAT)
def add(name, data):
    ti = tarfile.TarInfo(name); ti.size = len(data); out.addfile(ti, io.BytesIO(data))
for name, data in members:
    if mode == "flip" and name == "model.h5":
        b = bytearray(data); b[len(b) // 2] ^= 1; data = bytes(b)
    if mode == "missing" and name == "card.md":
        continue
    add(name, data)
if mode == "extra":
    add("notes.txt", b"hello\n")
if mode == "symlink":
    ti = tarfile.TarInfo("link.h5"); ti.type = tarfile.SYMTYPE; ti.linkname = "/etc/passwd"; out.addfile(ti)
if mode == "absolute":
    add("/tmp/evil.txt", b"x")
if mode == "dotdot":
    add("../evil.txt", b"x")
if mode == "dir":
    ti = tarfile.TarInfo("sub"); ti.type = tarfile.DIRTYPE; out.addfile(ti)
if mode == "dup":
    add("card.md", b"again")
out.close()
EOF
}
expect_ok "retar unchanged" retar clf.kiln same.kiln none
expect_ok "a rebuilt, unchanged tar verifies" "$KILN" model verify same.kiln
retar clf.kiln t-flip.kiln flip
expect_fail "one changed byte in model.h5" 12 "model.h5 has SHA-256" "$KILN" model verify t-flip.kiln
retar clf.kiln t-missing.kiln missing
expect_fail "a missing member" 12 "card.md is in the manifest but not in the package" \
  "$KILN" model verify t-missing.kiln
retar clf.kiln t-extra.kiln extra
expect_fail "an extra member" 12 "notes.txt is not in the manifest" "$KILN" model verify t-extra.kiln
retar clf.kiln t-link.kiln symlink
expect_fail "a symlink member" 4 "is a link" "$KILN" model verify t-link.kiln
retar clf.kiln t-abs.kiln absolute
expect_fail "an absolute path" 4 "absolute path" "$KILN" model verify t-abs.kiln
retar clf.kiln t-dotdot.kiln dotdot
expect_fail "a '..' path" 4 "'\.\.' component" "$KILN" model verify t-dotdot.kiln
retar clf.kiln t-dir.kiln dir
expect_fail "a folder member" 4 "not a regular file" "$KILN" model verify t-dir.kiln
retar clf.kiln t-dup.kiln dup
expect_fail "a duplicate member" 4 "appears twice" "$KILN" model verify t-dup.kiln
[[ ! -e /tmp/evil.txt || $(cat /tmp/evil.txt 2>/dev/null) != x ]] || fail "an absolute path was extracted"
[[ ! -e ../evil.txt ]] || fail "a '..' path was extracted"
retar clf-signed.kiln t-sig-flip.kiln flip
expect_fail "a changed byte in a signed package" 12 "SHA-256" \
  "$KILN" model verify t-sig-flip.kiln --key release.pub

# golden outputs changed, and the manifest re-hashed to match (a consistent
# but wrong package): the golden check itself must refuse readiness.
"$PY" "$KILN_SRC/tests/cli/tamper_golden.py" clf.kiln t-golden.kiln || fail "making the golden tamper case"
expect_fail "changed golden outputs: not ready" 12 "not ready" "$KILN" model verify t-golden.kiln
left=$(ls -A "$TMPDIR")
[[ -z $left ]] || fail "verify left extraction folders behind: $left"
pass "no extraction folders left behind"
finish
