#!/usr/bin/env bash
# kiln serve end to end, with real clients (tests/serve/serve_check.py):
# Open Inference Protocol conformance through Triton's tritonclient (JSON and
# binary tensors) and raw HTTP; the streaming JSON parser's edge cases (key
# order, nesting, bodies in small pieces, FP32 limits); every bad request answered with its 4xx and
# error JSON while the server stays up; /metrics through prometheus_client's
# parser with counters that move by what was sent; 16 concurrent clients
# whose answers equal kiln predict's; bearer tokens; the prediction log at
# sample 1, 0 and redacted; SIGTERM draining requests in flight; and a
# package that fails verification (or its golden check) never served.
source "$(dirname "$0")/lib.sh"
PY=$(find_python) || { echo "SKIP: no python with h5py and numpy"; exit 77; }
"$PY" -c 'import tritonclient.http, prometheus_client' 2>/dev/null ||
  { echo "SKIP: $PY has no tritonclient/prometheus_client (scripts/test.sh makes the venv)"; exit 77; }
CHECK=("$PY" "$KILN_SRC/tests/serve/serve_check.py")

setup_blobs_model
expect_ok "keygen" "$KILN" keygen -o release
expect_ok "package (signed)" "$KILN" model package clf@1 -o clf.kiln --sign release.key
SHA=$(sha256sum clf.kiln | cut -d' ' -f1)
expect_ok "make request rows" "${CHECK[@]}" rows rows.h5 --n 2000
expect_ok "kiln predict (the reference answers)" "$KILN" predict clf@1 --input rows.h5 --output ref.h5

# start_server NAME ARGS...: kiln serve on a free port in the background;
# sets SRV (pid) and URL (host:port) from its first line.
start_server() {
  local name=$1; shift
  "$KILN" serve clf.kiln --port 0 --threads 1 "$@" > "$name.out" 2> "$name.err" &
  SRV=$!
  URL=""
  for _ in $(seq 600); do
    URL=$(sed -n 's|^serving clf v1 on http://\([0-9.]*:[0-9]*\)$|\1|p' "$name.out")
    [[ -n $URL ]] && break
    kill -0 "$SRV" 2>/dev/null || { cat "$name.err" >&2; fail "$name: kiln serve exited at start"; }
    sleep 0.05
  done
  [[ -n $URL ]] || { kill -9 "$SRV"; fail "$name: no 'serving ... on http://' line"; }
  pass "$name: kiln serve $* is up at $URL"
}

# stop_server NAME: SIGTERM, then it must exit 0 within 30 s, cleanly.
stop_server() {
  kill -TERM "$SRV" 2>/dev/null || true
  wait_server "$1"
}
wait_server() {
  local rc=0
  for _ in $(seq 600); do kill -0 "$SRV" 2>/dev/null || break; sleep 0.05; done
  kill -0 "$SRV" 2>/dev/null && { kill -9 "$SRV"; fail "$1: still running 30 s after SIGTERM"; }
  wait "$SRV" || rc=$?
  [[ $rc -eq 0 ]] || { cat "$1.err" >&2; fail "$1: exited $rc after SIGTERM"; }
  grep -qE 'AddressSanitizer|runtime error|LeakSanitizer' "$1.err" && { cat "$1.err" >&2; fail "$1: sanitizer report"; }
  grep -q 'serve: stopped' "$1.err" || { cat "$1.err" >&2; fail "$1: no 'stopped' line"; }
  pass "$1: SIGTERM -> drained and exited 0"
}
# A failing check must not leave a server behind.
trap 'if [[ -n ${SRV:-} ]]; then kill -9 "$SRV" 2>/dev/null || true; fi; rm -rf "$WORK"' EXIT

# --- main server: protocol, bad requests, metrics, concurrency, log at 1.0 ---
start_server main --key release.pub --require-signature --max-rows 50 --max-body 65536 \
  --max-delay-us 20000 --log-dir logA --log-sample 1
expect_ok "protocol conformance (tritonclient + raw HTTP)" "${CHECK[@]}" protocol --url "$URL" \
  --rows rows.h5 --ref ref.h5
cat out.txt
expect_ok "every bad request: 4xx with an error JSON, server stays up" "${CHECK[@]}" bad --url "$URL" \
  --max-rows 50 --max-body 65536
cat out.txt
expect_ok "the streaming JSON parser's edge cases" "${CHECK[@]}" parse --url "$URL" --max-rows 50 \
  --save-exact exact.json
cat out.txt
expect_ok "16 concurrent clients equal kiln predict (batching on)" "${CHECK[@]}" concurrent \
  --url "$URL" --rows rows.h5 --ref ref.h5 --requests 12 --expect-batching
cat out.txt
expect_ok "/metrics parsed by prometheus_client" "${CHECK[@]}" metrics --url "$URL" --rows rows.h5 \
  --ref ref.h5 --sha256 "$SHA" --save-ok okA.txt
cat out.txt
stop_server main
expect_ok "prediction log at --log-sample 1: one line per answered request" "${CHECK[@]}" predlog logA \
  --expect "$(cat okA.txt)" --exact exact.json
cat out.txt

# --- token, no batching, log at 0 ---
printf '  s3cret-token-%s \n' "$RANDOM" > token.txt
start_server auth --token-file token.txt --no-batching --log-dir logB --log-sample 0
TOKEN=$(tr -d ' \n' < token.txt)
expect_ok "bearer token: 401 without it, health probes open" "${CHECK[@]}" auth --url "$URL" --token "$TOKEN"
expect_ok "16 concurrent clients equal kiln predict (--no-batching)" "${CHECK[@]}" concurrent \
  --url "$URL" --rows rows.h5 --ref ref.h5 --requests 4 --token "$TOKEN"
stop_server auth
expect_ok "prediction log at --log-sample 0: no lines" "${CHECK[@]}" predlog logB --expect 0

# --- SIGTERM drain, with a redacted log ---
start_server drain --max-delay-us 400000 --max-batch 4096 --max-rows 4096 --log-dir logC \
  --log-sample 1 --log-redact
expect_ok "SIGTERM drains requests in flight" "${CHECK[@]}" drain --url "$URL" --rows rows.h5 \
  --ref ref.h5 --pid "$SRV" --save-ok okC.txt
cat out.txt
wait_server drain
expect_ok "drained prediction log: complete JSON lines, redacted" "${CHECK[@]}" predlog logC \
  --expect "$(cat okC.txt)" --redact

# --- refusals at start: nothing is served ---
"$PY" "$KILN_SRC/tests/cli/tamper_golden.py" clf.kiln golden-bad.kiln --drop-signature || fail "making the golden tamper case"
expect_fail "a package failing its golden check is not served" 12 "not ready" \
  "$KILN" serve golden-bad.kiln --port 0
expect_fail "an unsigned package under --require-signature" 12 "not signed" \
  "$KILN" serve golden-bad.kiln --port 0 --key release.pub --require-signature
expect_fail "--require-signature without --key" 2 "needs --key" "$KILN" serve clf.kiln --require-signature
expect_fail "not a package" 4 "" "$KILN" serve blobs.csv --port 0
: > empty-token.txt
expect_fail "an empty token file" 2 "token is empty" "$KILN" serve clf.kiln --port 0 --token-file empty-token.txt
expect_fail "a bad --log-sample" 2 "log-sample" "$KILN" serve clf.kiln --log-sample 2
expect_fail "a bad --port" 2 "port" "$KILN" serve clf.kiln --port 70000
expect_fail "a bad --max-batch" 2 "max-batch" "$KILN" serve clf.kiln --max-batch 0
expect_fail "a host that does not resolve" 2 "host" "$KILN" serve clf.kiln --host no.such.host.invalid
start_server busy
PORT=${URL##*:}
expect_fail "a port in use" 3 "cannot listen" "$KILN" serve clf.kiln --port "$PORT"
stop_server busy
finish
