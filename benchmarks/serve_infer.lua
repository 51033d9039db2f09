-- wrk script for benchmarks/serve_bench.sh: POSTs Open Inference Protocol
-- requests to /v2/models/$KILN_BENCH_MODEL/infer, cycling through the
-- request bodies listed in $KILN_BENCH_BODIES (lines "HEADER_LEN PATH":
-- HEADER_LEN 0 for a JSON body, else the JSON header's length of a body
-- using the binary tensor extension), and prints one RESULT line at the end.
local bodies = {}
local path = "/v2/models/" .. (os.getenv("KILN_BENCH_MODEL") or "fashion") .. "/infer"

for line in io.lines(os.getenv("KILN_BENCH_BODIES")) do
  local hlen, file = line:match("^(%d+) (.+)$")
  if hlen then
    local f = assert(io.open(file, "rb"))
    local headers = {["Content-Type"] = "application/json"}
    if tonumber(hlen) > 0 then
      headers["Content-Type"] = "application/octet-stream"
      headers["Inference-Header-Content-Length"] = hlen
    end
    bodies[#bodies + 1] = wrk.format("POST", path, headers, f:read("*a"))
    f:close()
  end
end
assert(#bodies > 0, "no request bodies in $KILN_BENCH_BODIES")

local n = 0
function init(args)
  -- Threads start at different bodies.
  n = math.random(#bodies)
end

function request()
  n = n % #bodies + 1
  return bodies[n]
end

-- One machine-readable line for serve_bench.sh.
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "RESULT requests=%d seconds=%.3f rps=%.1f p50_ms=%.3f p99_ms=%.3f non2xx=%d socket_errors=%d\n",
    summary.requests, summary.duration / 1e6, summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1000, latency:percentile(99) / 1000, e.status,
    e.connect + e.read + e.write + e.timeout))
end
