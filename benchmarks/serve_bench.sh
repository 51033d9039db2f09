#!/usr/bin/env bash
# kiln serve under load: the Fashion-MNIST example MLP packaged and served
# on loopback, wrk (Debian's) POSTing Open Inference Protocol requests of 64
# rows each from 64 connections for $DURATION seconds, with dynamic
# batching and without, with JSON tensors and with the binary tensor
# extension. Prints requests/s, p50/p99 latency, errors, rows/s and the
# ratio of rows/s to `kiln score` over the training images on the same
# machine.
#
#   benchmarks/serve_bench.sh [KILN]            (default build/kiln)
#   DURATION=30 CONNECTIONS=64 ROWS=64 WRK_THREADS=2 MAX_BATCH=1024 MAX_DELAY_US=2000 KINDS="json binary"
#   MODES="batch nobatch" SERVE_ARGS="--threads 1"   (extra kiln serve options for every run)
#
# The model is trained for one epoch (accuracy does not matter here) and
# packaged in a workspace under $KILN_BENCH_DIR (default /tmp/kiln-serve-bench),
# reused by later runs. Needs wrk, curl and a python with numpy and h5py
# (the test venv, .venv-test, which scripts/test.sh makes).
set -euo pipefail
cd "$(dirname "$0")/.."
src=$PWD
kiln=$(realpath "${1:-${KILN:-build/kiln}}")
duration=${DURATION:-30}
conns=${CONNECTIONS:-64}
rows=${ROWS:-64}
wrk_threads=${WRK_THREADS:-2}
max_batch=${MAX_BATCH:-1024}
max_delay=${MAX_DELAY_US:-2000}
kinds=${KINDS:-json binary}
modes=${MODES:-batch nobatch}
read -r -a serve_args <<< "${SERVE_ARGS:-}"
work=${KILN_BENCH_DIR:-/tmp/kiln-serve-bench}
fm=/usr/share/datasets/fashion-mnist
py=${KILN_PYTHON:-$src/.venv-test/bin/python}
[[ -x $kiln ]] || { echo "no kiln binary at $kiln (scripts/build.sh build)" >&2; exit 2; }
command -v wrk > /dev/null || { echo "wrk is not installed (apt-get install wrk)" >&2; exit 2; }
command -v curl > /dev/null || { echo "curl is not installed" >&2; exit 2; }
"$py" -c 'import numpy, h5py' 2> /dev/null ||
  { echo "$py lacks numpy/h5py (scripts/test.sh makes .venv-test)" >&2; exit 2; }
mkdir -p "$work"
cd "$work"

# --- the package ---
if [[ ! -f fashion.kiln ]]; then
  echo "== packaging the Fashion-MNIST MLP (one epoch) in $work"
  rm -rf .kiln run
  "$kiln" init > /dev/null
  "$kiln" data import fashion-mnist --idx $fm/train-images-idx3-ubyte.gz $fm/train-labels-idx1-ubyte.gz \
    --test-idx $fm/t10k-images-idx3-ubyte.gz $fm/t10k-labels-idx1-ubyte.gz \
    --classes "T-shirt/top,Trouser,Pullover,Dress,Coat,Sandal,Shirt,Sneaker,Bag,Ankle boot" \
    -o fm.h5 > /dev/null
  "$kiln" train "$src/examples/fashion-mnist-mlp.yaml" --data fm.h5 --out run \
    --set train.epochs=1 > /dev/null 2>&1
  "$kiln" model register run:1 --name fashion > /dev/null
  "$kiln" model package fashion@1 -o fashion.kiln > /dev/null
fi

# --- the peer: kiln score over the 60,000 training images ---
# Its defaults are the ratio's peer; --threads 1 is shown too (on a small
# busy machine it may be faster: idle OpenMP threads spin, docs/SERVING.md).
# A run takes about a second, so the best of 3 is kept: the ratio is then
# against score on a quiet moment, never flattered by a busy one.
score_best() { # score_best FILE [ARGS...]: rows/s of the fastest of 3 runs
  local out=$1 best=0 r; shift
  for _ in 1 2 3; do
    "$kiln" score fashion.kiln --input fm.h5 --split train --output score.h5 "$@" > "$out" 2> /dev/null
    r=$(sed -n 's/.*(\([0-9.]*\) rows\/s)$/\1/p' "$out" | head -1)
    best=$(awk -v a="$best" -v b="$r" 'BEGIN { print (b > a ? b : a) }')
  done
  echo "$best"
}
score_rps=$(score_best score.txt)
score1_rps=$(score_best score1.txt --threads 1)
echo "kiln score: $score_rps rows/s (best of 3; --threads 1: $score1_rps)"

# --- request bodies: 16 different requests of $rows test images each, as JSON
# (float32 values printed shortest-first, as a careful client sends them)
# and with the binary tensor extension (raw FP32 after a JSON header, binary
# outputs back: how tritonclient sends numpy arrays by default). ---
"$py" - "$rows" <<'PYEOF'
import json, os, sys, h5py, numpy as np
rows = int(sys.argv[1])
with h5py.File("fm.h5", "r") as f:
    x = f["test/X"][: 16 * rows].reshape(16 * rows, -1).astype(np.float32) * np.float32(1 / 255)
os.makedirs("bodies", exist_ok=True)
with open("bodies-json.txt", "w") as js, open("bodies-binary.txt", "w") as bs:
    for i in range(16):
        part = x[i * rows:(i + 1) * rows]
        data = ",".join(np.format_float_positional(v, unique=True, trim="-") if v else "0"
                        for v in part.reshape(-1))
        with open("bodies/%d.json" % i, "w") as out:
            out.write('{"inputs":[{"name":"input","shape":[%d,%d],"datatype":"FP32","data":[%s]}]}'
                      % (rows, part.shape[1], data))
        js.write("0 %s/bodies/%d.json\n" % (os.getcwd(), i))
        hdr = json.dumps({"inputs": [{"name": "input", "shape": list(part.shape), "datatype": "FP32",
                                      "parameters": {"binary_data_size": part.nbytes}}],
                          "parameters": {"binary_data_output": True}}, separators=(",", ":")).encode()
        with open("bodies/%d.bin" % i, "wb") as out:
            out.write(hdr + part.tobytes())
        bs.write("%d %s/bodies/%d.bin\n" % (len(hdr), os.getcwd(), i))
PYEOF
echo "request: $rows rows x 784 features: $(stat -c %s bodies/0.json) bytes as JSON, $(stat -c %s bodies/0.bin) with binary tensors"

# run_one LABEL KIND SERVE_ARGS...: one server, one wrk run with KIND (json or
# binary) bodies; prints a result line.
run_one() {
  local label=$1 kind=$2; shift 2
  "$kiln" serve fashion.kiln --port 0 --max-rows "$rows" --max-connections $((conns + 16)) "$@" \
    ${serve_args[@]+"${serve_args[@]}"} \
    > serve.out 2> serve.err &
  local pid=$! url="" code hlen file
  for _ in $(seq 200); do
    url=$(sed -n 's|^serving fashion v1 on \(http://.*\)$|\1|p' serve.out)
    [[ -n $url ]] && break
    sleep 0.05
  done
  [[ -n $url ]] || { cat serve.err >&2; kill "$pid" 2> /dev/null; echo "server did not start" >&2; exit 1; }
  # The bench's request must be answered before anything is timed.
  read -r hlen file < "bodies-$kind.txt"
  if [[ $hlen -gt 0 ]]; then
    code=$(curl -s -o answer.out -w '%{http_code}' -H 'Expect:' -H "Inference-Header-Content-Length: $hlen" \
           -H 'Content-Type: application/octet-stream' --data-binary @"$file" "$url/v2/models/fashion/infer")
  else
    code=$(curl -s -o answer.out -w '%{http_code}' -H 'Expect:' -H 'Content-Type: application/json' \
           --data-binary @"$file" "$url/v2/models/fashion/infer")
  fi
  if [[ $code != 200 ]] || ! grep -aq '"class"' answer.out; then
    echo "the bench request got $code: $(head -c 300 answer.out)" >&2
    kill "$pid"; exit 1
  fi
  KILN_BENCH_BODIES=$work/bodies-$kind.txt KILN_BENCH_MODEL=fashion \
    wrk -t"$wrk_threads" -c"$conns" -d"${duration}s" --timeout 10s -s "$src/benchmarks/serve_infer.lua" \
    "$url" > "wrk-$label.txt" 2>&1 || true
  curl -s "$url/metrics" > "metrics-$label.txt"
  kill -TERM "$pid"
  wait "$pid" || { echo "kiln serve exited $? after SIGTERM" >&2; exit 1; }
  local res batches
  res=$(grep '^RESULT' "wrk-$label.txt") || { cat "wrk-$label.txt" >&2; exit 1; }
  batches=$(awk '/^kiln_batch_requests_sum/ {s=$2} /^kiln_batch_requests_count/ {c=$2}
                 END { if (c > 0) printf "%.1f", s / c; else print "-" }' "metrics-$label.txt")
  echo "$res" | awk -v l="$label" -v r="$rows" -v s="$score_rps" -v s1="$score1_rps" -v b="$batches" '{
      for (i = 2; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
      rows_s = v["rps"] * r
      printf "%-15s %8.1f req/s  p50 %8.2f ms  p99 %8.2f ms  errors %d (non-2xx %d)  %8.0f rows/s  %.2fx score (%.2fx --threads 1)  (%s requests per forward pass)\n",
             l, v["rps"], v["p50_ms"], v["p99_ms"], v["non2xx"] + v["socket_errors"], v["non2xx"], rows_s, rows_s / s, rows_s / s1, b
  }'
}

echo "== wrk -t$wrk_threads -c$conns -d${duration}s, $rows-row requests; kiln score: $score_rps rows/s (--threads 1: $score1_rps)"
for kind in $kinds; do
  for mode in $modes; do
    if [[ $mode == batch ]]; then
      run_one "$kind" "$kind" --max-batch "$max_batch" --max-delay-us "$max_delay"
    else
      run_one "$kind-nobatch" "$kind" --no-batching
    fi
  done
done
