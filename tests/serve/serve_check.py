"""kiln serve checks, driven by tests/cli/serve.sh.

Each subcommand talks to a running `kiln serve` at --url HOST:PORT with real
clients (Triton's tritonclient.http, and http.client for raw status codes
and bodies), asserts real outcomes and exits non-zero on the first failure.

  rows        write N random rows of the blobs model's 4 features to an HDF5 file
  protocol    every endpoint through tritonclient (JSON and binary tensors) and raw HTTP
  bad         every bad request: its status, its error JSON, and the server still answers
  parse       the streaming JSON parser's edge cases: key order, nesting, unknown keys,
              bodies arriving in many small pieces, number forms and FP32 limits
  metrics     /metrics parsed by prometheus_client; counters move by what was sent
  concurrent  16 client threads with different rows; answers equal kiln predict's
  auth        --token-file: 401 without or with a wrong token, health probes open
  drain       SIGTERM while requests wait in the batcher: every one is answered
  predlog     the prediction log's lines against what the server answered
"""
import argparse
import http.client
import json
import os
import signal
import socket
import sys
import threading
import time

import h5py
import numpy as np

MODEL = "clf"
FEATURES = 4
CLASSES = 3
checks = 0


def ok(what):
    global checks
    checks += 1
    print("ok:", what, flush=True)


def fail(what):
    print("FAIL:", what, file=sys.stderr, flush=True)
    sys.exit(1)


def check(cond, what):
    if not cond:
        fail(what)


class Server:
    def __init__(self, url, token=None):
        host, port = url.rsplit(":", 1)
        self.host, self.port, self.url = host, int(port), url
        self.token = token

    def request(self, method, path, body=None, headers=None, auth=True, timeout=30):
        """(status, headers, body bytes) of one request on a new connection."""
        h = dict(headers or {})
        if auth and self.token is not None:
            h.setdefault("Authorization", "Bearer " + self.token)
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode()
            h.setdefault("Content-Type", "application/json")
        c = http.client.HTTPConnection(self.host, self.port, timeout=timeout)
        try:
            c.request(method, path, body=body, headers=h)
            r = c.getresponse()
            return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
        finally:
            c.close()

    def live(self):
        status, _, _ = self.request("GET", "/v2/health/live", auth=False)
        return status == 200

    def infer_json(self, x, path="/v2/models/%s/infer" % MODEL, timeout=30, **extra):
        doc = {"inputs": [{"name": "input", "shape": list(x.shape), "datatype": "FP32",
                           "data": x.tolist()}]}
        doc.update(extra)
        return self.request("POST", path, body=doc, timeout=timeout)

    def metrics_text(self):
        status, _, body = self.request("GET", "/metrics")
        check(status == 200, "GET /metrics answered %d" % status)
        return body.decode()


def error_of(body):
    doc = json.loads(body)
    check(isinstance(doc, dict) and isinstance(doc.get("error"), str) and doc["error"],
          "error body is not {\"error\": \"...\"}: %r" % body[:200])
    return doc["error"]


def outputs_of(body):
    doc = json.loads(body)
    out = {o["name"]: o for o in doc["outputs"]}
    return doc, out


def load_ref(args):
    with h5py.File(args.rows, "r") as f:
        x = f["X"][()]
    with h5py.File(args.ref, "r") as f:
        prob, pred = f["prob"][()], f["pred"][()]
    return x, prob, pred


def same(prob, ref, what):
    """Probabilities equal kiln predict's: the server prints FP32 with 9
    significant digits, which reads back to the same float32."""
    got = np.asarray(prob, dtype=np.float64).astype(np.float32).reshape(ref.shape)
    diff = float(np.max(np.abs(got - ref))) if ref.size else 0.0
    check(diff <= 1e-6, "%s: probabilities differ from kiln predict's by %g" % (what, diff))
    return bool(np.array_equal(got, ref))


# --- rows -----------------------------------------------------------------------------

def cmd_rows(args):
    rng = np.random.default_rng(args.seed)
    x = (rng.random((args.n, FEATURES)) * 8 - 2).astype(np.float32)
    with h5py.File(args.out, "w") as f:
        f["X"] = x


# --- protocol -------------------------------------------------------------------------

def cmd_protocol(args):
    import tritonclient.http as th
    from tritonclient.utils import InferenceServerException

    srv = Server(args.url)
    x, prob, pred = load_ref(args)
    c = th.InferenceServerClient(url=args.url)
    check(c.is_server_live(), "tritonclient: server not live")
    check(c.is_server_ready(), "tritonclient: server not ready")
    check(c.is_model_ready(MODEL), "tritonclient: model not ready")
    check(c.is_model_ready(MODEL, "1"), "tritonclient: model version 1 not ready")
    check(not c.is_model_ready("nope"), "tritonclient: an unknown model is ready")
    check(not c.is_model_ready(MODEL, "9"), "tritonclient: an unknown version is ready")
    ok("tritonclient: is_server_live, is_server_ready, is_model_ready (and not for unknown ones)")
    sm = c.get_server_metadata()
    check(sm["name"] == "kiln" and "binary_tensor_data" in sm["extensions"], "server metadata %r" % sm)
    want = {"name": MODEL, "versions": ["1"], "platform": "kiln",
            "inputs": [{"name": "input", "datatype": "FP32", "shape": [-1, FEATURES]}],
            "outputs": [{"name": "probabilities", "datatype": "FP32", "shape": [-1, CLASSES]},
                        {"name": "class", "datatype": "INT32", "shape": [-1]}]}
    for v in ("", "1"):
        md = c.get_model_metadata(MODEL, v)
        check(md == want, "model metadata (version %r): %r" % (v, md))
    try:
        c.get_model_metadata("nope")
        fail("tritonclient: metadata of an unknown model did not raise")
    except InferenceServerException as e:
        check("unknown model 'nope'" in str(e), "tritonclient error for an unknown model: %s" % e)
    ok("tritonclient: server and model metadata (also by version); unknown model raises")

    def tc_infer(rows, binary_in, outputs, **kw):
        inp = th.InferInput("input", list(rows.shape), "FP32")
        inp.set_data_from_numpy(rows, binary_data=binary_in)
        outs = None if outputs is None else [th.InferRequestedOutput(n, binary_data=b) for n, b in outputs]
        return c.infer(MODEL, [inp], outputs=outs, **kw)

    a = slice(0, 5)
    res = tc_infer(x[a], False, [("probabilities", False), ("class", False)], request_id="req-a")
    same(res.as_numpy("probabilities"), prob[a], "tritonclient JSON")
    check(np.array_equal(res.as_numpy("class"), pred[a]), "tritonclient JSON: classes differ")
    r = res.get_response()
    check(r["model_name"] == MODEL and r["model_version"] == "1" and r["id"] == "req-a",
          "infer response header %r" % {k: r[k] for k in r if k != "outputs"})
    ok("tritonclient infer, JSON tensors: probabilities and classes equal kiln predict's; id echoed")
    b = slice(5, 37)
    res = tc_infer(x[b], True, None)
    same(res.as_numpy("probabilities"), prob[b], "tritonclient binary")
    check(np.array_equal(res.as_numpy("class"), pred[b]), "tritonclient binary: classes differ")
    res = tc_infer(x[b], True, [("class", True)], model_version="1")
    check(res.as_numpy("probabilities") is None, "an output that was not asked for came back")
    check(np.array_equal(res.as_numpy("class"), pred[b]), "binary class output differs")
    ok("tritonclient infer, binary tensor extension both ways; the outputs asked for only; by version")
    try:
        tc_infer(x[a], False, [("nope", False)])
        fail("an unknown output did not raise")
    except InferenceServerException as e:
        check("unknown output 'nope'" in str(e), "unknown output error: %s" % e)
    ok("tritonclient: an unknown output is a clear error")

    # Raw HTTP: status codes and bodies.
    for path in ("/v2/health/live", "/v2/health/ready", "/v2/models/clf/ready",
                 "/v2/models/clf/versions/1/ready"):
        status, _, body = srv.request("GET", path)
        check(status == 200 and body == b"", "GET %s: %d %r" % (path, status, body))
        status, _, body = srv.request("HEAD", path)
        check(status == 200, "HEAD %s: %d" % (path, status))
    for path in ("/v2/models/clf", "/v2/models/clf/versions/1"):
        status, hdr, body = srv.request("GET", path)
        check(status == 200 and hdr["content-type"] == "application/json" and json.loads(body) == want,
              "GET %s: %d %r" % (path, status, body))
    status, _, body = srv.request("GET", "/v2")
    check(status == 200 and json.loads(body)["name"] == "kiln", "GET /v2: %d" % status)
    ok("raw HTTP: health, readiness, metadata: 200 with the protocol's bodies")
    nested = x[a]
    status, hdr, body = srv.infer_json(nested, id="n1")
    doc, out = outputs_of(body)
    check(status == 200 and doc["id"] == "n1", "nested infer: %d %r" % (status, body[:200]))
    check(out["probabilities"]["shape"] == [5, CLASSES] and out["class"]["shape"] == [5],
          "output shapes %r" % ({k: v["shape"] for k, v in out.items()}))
    check(out["probabilities"]["datatype"] == "FP32" and out["class"]["datatype"] == "INT32",
          "output datatypes")
    same(out["probabilities"]["data"], prob[a], "raw nested JSON")
    flat = {"inputs": [{"name": "input", "shape": [5, FEATURES], "datatype": "FP32",
                        "data": x[a].reshape(-1).tolist()}],
            "outputs": [{"name": "class"}]}
    status, _, body = srv.request("POST", "/v2/models/clf/versions/1/infer", body=flat)
    doc, out = outputs_of(body)
    check(status == 200 and list(out) == ["class"] and out["class"]["data"] == pred[a].tolist(),
          "flat infer by version: %d %r" % (status, body[:200]))
    ok("raw HTTP infer: nested and flat data, outputs selection, version path")
    print("%d protocol checks passed" % checks)


# --- bad requests ---------------------------------------------------------------------

def infer_doc(shape, data, dtype="FP32", name="input", **extra):
    d = {"inputs": [{"name": name, "shape": shape, "datatype": dtype, "data": data}]}
    d.update(extra)
    return d


def cmd_bad(args):
    srv = Server(args.url)
    path = "/v2/models/clf/infer"
    good = [[0.5, 1.0, 0.25, 2.0], [1.0, -1.0, 0.0, 3.0]]

    def expect(what, code, needle, method="POST", p=path, body=None, headers=None, raw=None):
        status, hdr, data = srv.request(method, p, body=raw if raw is not None else body,
                                        headers=headers)
        check(status == code, "%s: expected %d, got %d %r" % (what, code, status, data[:300]))
        msg = error_of(data)
        check(needle in msg, "%s: error %r lacks %r" % (what, msg, needle))
        check(hdr.get("content-type") == "application/json", "%s: error is not JSON" % what)
        check(srv.live(), "%s: the server stopped answering" % what)
        ok("%s -> %d %r" % (what, code, msg[:90]))
        return hdr

    expect("malformed JSON", 400, "malformed JSON", raw=b'{"inputs": [')
    expect("JSON that is not an object", 400, "JSON object", raw=b"[1, 2]")
    expect("no inputs", 400, '"inputs"', body={"outputs": []})
    expect("two inputs", 400, "one input", body={"inputs": [infer_doc([1, 4], good[0])["inputs"][0]] * 2})
    expect("unknown input name", 400, "unknown input 'x'", body=infer_doc([2, 4], good, name="x"))
    expect("wrong shape (features)", 400, "shape [2, 3]", body=infer_doc([2, 3], [r[:3] for r in good]))
    expect("wrong shape (rank)", 400, "has shape [8]", body=infer_doc([8], sum(good, [])))
    expect("zero rows", 400, "rows >= 1", body=infer_doc([0, 4], []))
    expect("shape and data disagree", 400, "has 7 values", body=infer_doc([2, 4], sum(good, [])[:7]))
    expect("too many values", 400, "more than the 4 values", body=infer_doc([1, 4], good))
    expect("wrong datatype", 400, "datatype INT64", body=infer_doc([2, 4], good, dtype="INT64"))
    expect("a string in the data", 400, "row 2, column 3) is not a number",
           body=infer_doc([2, 4], [good[0], [1.0, 2.0, "x", 4.0]]))
    expect("NaN in JSON", 400, "NaN", raw=json.dumps(infer_doc([2, 4], [good[0], [1.0, float("nan"), 0, 0]])).encode())
    expect("a number past FP32", 400, "row 2, column 1 is 1e+39, outside FP32", body=infer_doc([2, 4], [good[0], [1e39, 0, 0, 0]]))
    expect("id not a string", 400, '"id"', body=infer_doc([2, 4], good, id=7))
    expect("unknown output", 400, "unknown output 'y'", body=infer_doc([2, 4], good, outputs=[{"name": "y"}]))
    many = [[0.0] * 4] * (args.max_rows + 1)
    expect("too many rows", 400, "--max-rows", body=infer_doc([len(many), 4], many))
    # Binary tensor extension.
    xb = np.array(good, dtype=np.float32)
    xb[1, 2] = np.nan
    hdr = json.dumps({"inputs": [{"name": "input", "shape": [2, 4], "datatype": "FP32",
                                  "parameters": {"binary_data_size": 32}}]}).encode()
    expect("NaN in binary data", 400, "row 2, column 3 is nan", raw=hdr + xb.tobytes(),
           headers={"Inference-Header-Content-Length": str(len(hdr))})
    expect("binary size mismatch", 400, "binary data", raw=hdr + xb.tobytes()[:20],
           headers={"Inference-Header-Content-Length": str(len(hdr))})
    expect("bad Inference-Header-Content-Length", 400, "Inference-Header-Content-Length",
           raw=hdr, headers={"Inference-Header-Content-Length": "99999"})
    # Unknown model, version, path, method.
    expect("unknown model", 404, "unknown model 'nope'", p="/v2/models/nope/infer", body=infer_doc([2, 4], good))
    expect("unknown version", 404, "no version '7'", p="/v2/models/clf/versions/7/infer", body=infer_doc([2, 4], good))
    expect("unknown model metadata", 404, "unknown model", method="GET", p="/v2/models/nope")
    expect("unknown path", 404, "no such endpoint", method="GET", p="/v1/models")
    expect("unknown path under a model", 404, "no such endpoint", method="GET", p="/v2/models/clf/stats")
    h = expect("GET on infer", 405, "not allowed", method="GET", p=path)
    check(h.get("allow") == "POST", "405 without Allow: POST")
    h = expect("POST on a health probe", 405, "not allowed", p="/v2/health/live", body={})
    check("GET" in h.get("allow", ""), "405 without Allow: GET")
    expect("DELETE on model metadata", 405, "not allowed", method="DELETE", p="/v2/models/clf")
    # Body over --max-body: refused from Content-Length, before the body is read.
    big = b"[" + b"0," * (args.max_body // 2) + b"0]"
    expect("body over --max-body", 413, "--max-body", raw=big)
    # A chunked body's size is unknown until read: refused up front.
    c = http.client.HTTPConnection(srv.host, srv.port, timeout=30)
    c.putrequest("POST", path)
    c.putheader("Transfer-Encoding", "chunked")
    c.endheaders()
    try:
        for _ in range(args.max_body // 8192 + 8):
            chunk = b"0," * 4096
            c.send(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        c.send(b"0\r\n\r\n")
    except OSError:
        pass  # the server answered and closed while we were sending
    try:
        r = c.getresponse()
        status, data = r.status, r.read()
    except OSError as e:
        fail("chunked body: no answer (%s)" % e)
    c.close()
    check(status == 411 and "Content-Length" in error_of(data), "chunked body: %s %r" % (status, data[:200]))
    check(srv.live(), "the server stopped answering after a chunked body")
    ok("chunked body (size unknown up front) -> 411")
    # A client that connects and says nothing does not hold the server.
    s = socket.create_connection((srv.host, srv.port))
    s.sendall(b"POST /v2/models/clf/infer HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{")
    check(srv.live(), "a stalled upload blocks other clients")
    s.close()
    # Still serving real requests after all of that.
    status, _, body = srv.infer_json(np.array(good, dtype=np.float32))
    check(status == 200, "a good request after the bad ones: %d" % status)
    ok("the server still answers a good infer after every bad request")
    print("%d bad-request checks passed" % checks)


# --- the request parser ---------------------------------------------------------------

def send_in_pieces(srv, path, body, piece, headers=None, pause=0.0005):
    """(status, body) of a POST whose body goes out piece bytes at a time,
    Nagle off and a pause after each, so the server reads it in pieces
    that split numbers, keys and strings."""
    s = socket.create_connection((srv.host, srv.port), timeout=30)
    try:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        head = "POST %s HTTP/1.1\r\nHost: kiln\r\nContent-Length: %d\r\nConnection: close\r\n" % (
            path, len(body))
        for k, v in (headers or {}).items():
            head += "%s: %s\r\n" % (k, v)
        s.sendall(head.encode() + b"\r\n")
        for i in range(0, len(body), piece):
            s.sendall(body[i:i + piece])
            time.sleep(pause)
        r = http.client.HTTPResponse(s)
        r.begin()
        return r.status, r.read()
    finally:
        s.close()


def cmd_parse(args):
    srv = Server(args.url)
    path = "/v2/models/clf/infer"
    good = np.array([[0.5, 1.0, 0.25, 2.0], [1.0, -1.0, 0.0, 3.0]], dtype=np.float32)
    status, _, body = srv.infer_json(good)
    check(status == 200, "the reference request: %d %r" % (status, body[:200]))
    ref = json.loads(body)["outputs"]

    def answer_of(what, status, data):
        check(status == 200, "%s: %d %r" % (what, status, data[:300]))
        doc = json.loads(data)
        check(doc["outputs"] == ref, "%s: the answer differs from the plain request's: %r" %
              (what, doc["outputs"]))
        check(srv.live(), "%s: the server stopped answering" % what)
        ok("%s -> 200, same answer" % what)

    def same_answer(what, raw, headers=None):
        status, _, data = srv.request("POST", path, body=raw.encode() if isinstance(raw, str) else raw,
                                      headers=headers)
        answer_of(what, status, data)

    def refused(what, raw, needle, code=400):
        status, hdr, data = srv.request("POST", path, body=raw.encode() if isinstance(raw, str) else raw)
        check(status == code, "%s: expected %d, got %d %r" % (what, code, status, data[:300]))
        msg = error_of(data)
        check(needle in msg, "%s: error %r lacks %r" % (what, msg, needle))
        check(srv.live(), "%s: the server stopped answering" % what)
        ok("%s -> %d %r" % (what, code, msg[:100]))

    inp = '"name":"input","shape":[2,4],"datatype":"FP32"'
    same_answer("data nested three deep", '{"inputs":[{%s,"data":[[[0.5,1.0],[0.25,2.0]],'
                '[[1.0,-1.0],[0.0,3.0]]]}]}' % inp)
    same_answer("data nested unevenly", '{"inputs":[{%s,"data":[0.5,[1.0,[0.25]],2.0,[[1.0]],'
                '-1.0,[],0.0,[[[3.0]]]]}]}' % inp)
    same_answer("keys in any order: data before datatype, shape and name; inputs last",
                '{"outputs":[{"name":"probabilities"},{"name":"class"}],"id":"k1",'
                '"inputs":[{"data":[[0.5,1.0,0.25,2.0],[1.0,-1.0,0.0,3.0]],"datatype":"FP32",'
                '"shape":[2,4],"name":"input"}]}')
    same_answer("unknown keys holding nested values, at every level",
                '{"x-trace":{"a":[1,{"b":[[{}],[]]}],"c":null,"d":"s"},"parameters":{"priority":1,'
                '"headers":{"k":["v",{"w":true}]}},"inputs":[{"extra":[[{"x":"y"}]],%s,'
                '"parameters":{"content_type":"float","shared_memory_region":{"n":[1,2]}},'
                '"data":[0.5,1.0,0.25,2.0,1.0,-1.0,0.0,3.0]}],"outputs":[{"name":"probabilities",'
                '"parameters":{"classification":{"top":[0]}},"more":[false]},{"name":"class"}]}' % inp)
    same_answer("integers and exponents in FP32 data",
                '{"inputs":[{%s,"data":[5e-1,1,2.5E-1,2,1E0,-1,0,3]}]}' % inp)
    same_answer("whitespace everywhere", '\n {\t"inputs" : [ { %s ,\r\n "data" : [ 0.5 , 1 , '
                '0.25 , 2 , 1 , -1 , 0 , 3 ] } ] }\n' % inp.replace(",", " , "))
    # Bodies that arrive in many small pieces, split inside numbers, keys
    # and strings: the parser reads each piece as it comes.
    pieces = ('{"id":"pieces-%d","inputs":[{"data":[[0.5,1.0,0.25,2.0],[1.0,-1.0,0.0,3.0]],'
              '"datatype":"FP32","shape":[2,4],"name":"input"}]}')
    for piece in (1, 3, 7):
        status, data = send_in_pieces(srv, path, (pieces % piece).encode(), piece)
        answer_of("a body sent %d byte%s at a time" % (piece, "s" if piece > 1 else ""), status, data)
    hdr = json.dumps({"inputs": [{"name": "input", "shape": [2, 4], "datatype": "FP32",
                                  "parameters": {"binary_data_size": 32}}]}).encode()
    status, data = send_in_pieces(srv, path, hdr + good.tobytes(), 5,
                                  headers={"Inference-Header-Content-Length": str(len(hdr))})
    answer_of("binary tensors sent 5 bytes at a time (pieces across the header's end)", status, data)
    rows = np.round(np.random.default_rng(5).random((args.max_rows, FEATURES)) * 4 - 1, 3).astype(np.float32)
    whole = json.dumps(infer_doc([args.max_rows, 4], rows.tolist())).encode()
    status, _, one = srv.request("POST", path, body=whole)
    status2, split = send_in_pieces(srv, path, whole, 64, pause=0.0002)
    check(status == 200 and status2 == 200 and json.loads(one)["outputs"] == json.loads(split)["outputs"],
          "%d rows in 64-byte pieces: %d/%d, answers differ" % (args.max_rows, status, status2))
    ok("%d rows (%d bytes) in 64-byte pieces: the same answer as in one piece" % (args.max_rows, len(whole)))

    # Refused, with the reason.
    deep = "[" * 40 + "]" * 40
    refused("deep nesting in an unknown key", '{"x":%s,"inputs":[{%s,"data":[0,0,0,0,0,0,0,0]}]}'
            % (deep, inp), "deeper than 32")
    refused("deep nesting in the data", '{"inputs":[{%s,"data":%s}]}' % (inp, "[" * 40 + "0" + "]" * 40),
            "deeper than 32")
    full = '{"inputs":[{%s,"data":[0.5,1.0,0.25,2.0,1.0,-1.0,0.0,3.0]}]}' % inp
    for cut in (1, full.index('"data"') + 4, full.index("0.25") + 2, len(full) - 2):
        refused("a body cut at byte %d of %d" % (cut, len(full)), full[:cut], "malformed JSON")
    refused("an empty body", b"", "body is empty")
    refused("trailing garbage", full + "x", "malformed JSON")
    refused("Infinity", full.replace("2.0", "Infinity"), "no NaN or Infinity")
    refused("-Infinity", full.replace("2.0", "-Infinity"), "no NaN or Infinity")
    refused("a key twice", '{"inputs":[{%s,"data":[0,0,0,0,0,0,0,0],"data":[1,1,1,1,1,1,1,1]}]}' % inp,
            'key "data" appears twice')
    refused("data that is a string", '{"inputs":[{%s,"data":"0,0,0"}]}' % inp, 'needs "data"')
    refused("null in the data", full.replace("0.25", "null"), "value 2 (row 1, column 3) is not a number")
    refused("true in the data", full.replace("0.25", "true"), "value 2 (row 1, column 3) is not a number")
    refused("an object in the data", full.replace("0.25", '{"v":1}'), "is not a number")
    refused("a fractional shape", '{"inputs":[{"name":"input","shape":[2.0,4],"datatype":"FP32",'
            '"data":[0,0,0,0,0,0,0,0]}]}', "has shape [2.0,4]")
    refused("a shape that is not an array", '{"inputs":[{"name":"input","shape":"2x4",'
            '"datatype":"FP32","data":[0,0,0,0,0,0,0,0]}]}', "has shape a string")
    refused("data before a shape it overflows", '{"inputs":[{"data":[0,0,0,0,0,0,0,0],'
            '"shape":[1,4],"name":"input","datatype":"FP32"}]}', "more than the 4 values")
    many = ",".join(["0"] * (FEATURES * (args.max_rows + 1)))
    refused("data before the shape, past --max-rows", '{"inputs":[{"data":[%s],"name":"input",'
            '"datatype":"FP32","shape":[%d,4]}]}' % (many, args.max_rows + 1), "--max-rows")
    for v in ("1e39", "-1e39", "1e400", "3.40282357e38"):
        refused("%s in FP32 data" % v, full.replace("0.25", v), "is %s, outside FP32" % v)
    refused("binary_data_size and data both", '{"inputs":[{%s,"parameters":{"binary_data_size":32},'
            '"data":[0,0,0,0,0,0,0,0]}]}' % inp, "both")
    refused("an output asked for twice", full[:-1] + ',"outputs":[{"name":"class"},{"name":"class"}]}',
            "asked for twice")
    refused("an id too long", full[:-1] + ',"id":"%s"}' % ("x" * 129), "longer than 128")
    # A client that sends part of its body and hangs up.
    s = socket.create_connection((srv.host, srv.port))
    s.sendall(b"POST /v2/models/clf/infer HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n"
              + full[:40].encode())
    time.sleep(0.05)
    s.close()
    check(srv.live(), "a client hanging up mid-body stopped the server")
    ok("a client hanging up mid-body: the server carries on")

    # Numbers become float32 exactly as kiln's CSV reader makes them
    # (strtod, then rounded to float); the prediction log (--log-sample 1)
    # shows the rows the model saw, checked by `predlog --exact`.
    texts = [["-0", "1e-45", "1e-40", "7"], ["1.1", "16777217", "1.5e-38", "-0.0"]]
    body = '{"id":"exact-values","inputs":[{%s,"data":[%s]}]}' % (
        inp, ",".join(",".join(r) for r in texts))
    status, _, data = srv.request("POST", path, body=body.encode())
    check(status == 200, "-0, denormals, integers: %d %r" % (status, data[:300]))
    ok("-0, 1e-45 and 1e-40 (denormals), 2^24+1 accepted")
    # FP32's largest values are valid inputs (FLT_MAX's shortest form
    # 3.4028235e38 included); this small model's outputs overflow on them,
    # which is answered as such, not as a parse error.
    for v in ("3.4e38", "-3.40282356e38", "3.4028235e38"):
        status, _, data = srv.request("POST", path, body=full.replace("0.25", v).encode())
        check(status == 200 or (status == 400 and "output for row 1 is not finite" in error_of(data)),
              "%s in FP32 data: %d %r" % (v, status, data[:300]))
        check(srv.live(), "%s: the server stopped answering" % v)
        ok("%s in FP32 data is read (%s)" % (v, "200" if status == 200 else "400: " + error_of(data)[:60]))
    # Random decimals of 1 to 18 digits, some with exponents: those of at
    # most 15 digits take the parser's fast path, the rest strtod; all must
    # round as Python's float() (correctly rounded, as strtod) then float32.
    rng = np.random.default_rng(11)

    def token():
        ip = "".join(rng.choice(list("0123456789"), int(rng.integers(1, 7)))).lstrip("0") or "0"
        fp = "".join(rng.choice(list("0123456789"), int(rng.integers(0, 13))))
        t = ("-" if rng.random() < 0.3 else "") + ip + ("." + fp if fp else "")
        return t + ("e%d" % rng.integers(-5, 3) if rng.random() < 0.1 else "")

    rtexts = [[token() for _ in range(FEATURES)] for _ in range(args.max_rows)]
    body = '{"id":"exact-random","inputs":[{"name":"input","shape":[%d,4],"datatype":"FP32",' \
           '"data":[%s]}]}' % (args.max_rows, ",".join(",".join(r) for r in rtexts))
    status, _, data = srv.request("POST", path, body=body.encode())
    check(status == 200, "random decimals: %d %r" % (status, data[:300]))
    ok("%d random decimals of 1 to 18 digits accepted" % (FEATURES * args.max_rows))
    if args.save_exact:
        with open(args.save_exact, "w") as f:
            json.dump({"exact-values": texts, "exact-random": rtexts}, f)
    print("%d parser checks passed" % checks)


# --- metrics --------------------------------------------------------------------------

def parse_metrics(text):
    from prometheus_client.parser import text_string_to_metric_families
    fams = {}
    for f in text_string_to_metric_families(text):
        fams[f.name] = f
    return fams


def sample(fams, family, sample_name=None, **labels):
    f = fams.get(family)
    if f is None:
        return None
    name = sample_name or family
    for s in f.samples:
        if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
            return s.value
    return None


def cmd_metrics(args):
    srv = Server(args.url, token=args.token)
    x, prob, pred = load_ref(args)
    text = srv.metrics_text()
    fams = parse_metrics(text)
    before = {
        "ok": sample(fams, "kiln_http_requests", "kiln_http_requests_total", endpoint="infer", code="200") or 0,
        "bad": sample(fams, "kiln_http_requests", "kiln_http_requests_total", endpoint="infer", code="400") or 0,
        "rows": sample(fams, "kiln_rows_scored", "kiln_rows_scored_total") or 0,
        "pred": {str(c): sample(fams, "kiln_predictions", "kiln_predictions_total", **{"class": c}) or 0
                 for c in args.classes.split(",")},
        "lat": sample(fams, "kiln_http_request_duration_seconds",
                      "kiln_http_request_duration_seconds_count", endpoint="infer") or 0,
        "batched": sample(fams, "kiln_batch_rows", "kiln_batch_rows_sum") or 0,
    }
    sent_ok, sent_bad, rows = 0, 0, 0
    names = args.classes.split(",")
    counts = {n: 0 for n in names}
    for i, n in enumerate((1, 3, 7, 2, 11)):
        part = slice(100 + 20 * i, 100 + 20 * i + n)
        status, _, body = srv.infer_json(x[part])
        check(status == 200, "metrics run: infer %d" % status)
        sent_ok += 1
        rows += n
        for p in pred[part]:
            counts[names[p]] += 1
    for _ in range(3):
        status, _, _ = srv.request("POST", "/v2/models/clf/infer", body=b"{")
        check(status == 400, "metrics run: bad infer %d" % status)
        sent_bad += 1
    # Counters move once the answers have gone out: poll briefly.
    deadline = time.time() + 5
    while True:
        fams = parse_metrics(srv.metrics_text())
        got_ok = sample(fams, "kiln_http_requests", "kiln_http_requests_total", endpoint="infer", code="200")
        if got_ok == before["ok"] + sent_ok or time.time() > deadline:
            break
        time.sleep(0.05)
    for fam, typ in (("kiln_model_info", "gauge"), ("kiln_http_requests", "counter"),
                     ("kiln_http_request_duration_seconds", "histogram"), ("kiln_batch_rows", "histogram"),
                     ("kiln_batch_requests", "histogram"), ("kiln_rows_scored", "counter"),
                     ("kiln_predictions", "counter"), ("kiln_http_requests_in_flight", "gauge"),
                     ("kiln_drift_psi", "gauge"), ("kiln_drift_ks", "gauge"),
                     ("kiln_drift_psi_max", "gauge"), ("kiln_drift_ks_max", "gauge"),
                     ("kiln_drift_window_rows", "gauge")):
        check(fam in fams, "/metrics lacks %s" % fam)
        check(fams[fam].type == typ, "%s is a %s, not a %s" % (fam, fams[fam].type, typ))
    check(sample(fams, "kiln_model_info", name=MODEL, version="1", package_sha256=args.sha256) == 1,
          "kiln_model_info{name,version,package_sha256} is not 1")
    ok("/metrics parses with prometheus_client; every family present with its type; model info")
    check(sample(fams, "kiln_http_requests", "kiln_http_requests_total", endpoint="infer", code="200")
          == before["ok"] + sent_ok, "infer 200 counter did not move by %d" % sent_ok)
    check(sample(fams, "kiln_http_requests", "kiln_http_requests_total", endpoint="infer", code="400")
          == before["bad"] + sent_bad, "infer 400 counter did not move by %d" % sent_bad)
    check(sample(fams, "kiln_rows_scored", "kiln_rows_scored_total") == before["rows"] + rows,
          "rows scored did not move by %d" % rows)
    for n in names:
        check(sample(fams, "kiln_predictions", "kiln_predictions_total", **{"class": n}) ==
              before["pred"][n] + counts[n], "predictions of class %s did not move by %d" % (n, counts[n]))
    check(sample(fams, "kiln_http_request_duration_seconds", "kiln_http_request_duration_seconds_count",
                 endpoint="infer") == before["lat"] + sent_ok + sent_bad, "latency histogram count")
    inf = sample(fams, "kiln_http_request_duration_seconds", "kiln_http_request_duration_seconds_bucket",
                 endpoint="infer", le="+Inf")
    check(inf == before["lat"] + sent_ok + sent_bad, "latency +Inf bucket != count")
    check(sample(fams, "kiln_batch_rows", "kiln_batch_rows_sum") == before["batched"] + rows,
          "batch rows histogram sum did not move by the rows sent")
    ok("counters moved by exactly what was sent: %d ok, %d bad, %d rows, per class %s" %
       (sent_ok, sent_bad, rows, counts))
    feats = {s.labels["feature"]: s.value for s in fams["kiln_drift_psi"].samples}
    check(sorted(feats) == sorted(args.features.split(",")), "drift features %r" % sorted(feats))
    check(all(v >= 0 for v in feats.values()), "negative PSI")
    check(sample(fams, "kiln_drift_window_rows") >= rows, "drift window rows")
    ok("drift gauges per feature (%s), window rows %d" % (",".join(sorted(feats)),
                                                          sample(fams, "kiln_drift_window_rows")))
    if args.save_ok:
        with open(args.save_ok, "w") as f:
            f.write("%d\n" % sample(fams, "kiln_http_requests", "kiln_http_requests_total",
                                   endpoint="infer", code="200"))


# --- concurrent -----------------------------------------------------------------------

def cmd_concurrent(args):
    srv = Server(args.url, token=args.token)
    x, prob, pred = load_ref(args)
    threads, per = 16, args.requests
    errors, bitwise = [], [True]
    lock = threading.Lock()

    def client(t):
        rng = np.random.default_rng(t)
        at = t * (len(x) // threads)
        end = (t + 1) * (len(x) // threads)
        # tritonclient on half the threads (binary tensors), raw JSON on the others.
        tc = None
        if t % 2 == 0:
            import tritonclient.http as th
            tc = th.InferenceServerClient(url=args.url, connection_timeout=60, network_timeout=60)
        for i in range(per):
            n = int(rng.integers(1, 9))
            if at + n > end:
                at = t * (len(x) // threads)
            part = slice(at, at + n)
            at += n
            try:
                if tc is not None:
                    import tritonclient.http as th
                    inp = th.InferInput("input", [n, FEATURES], "FP32")
                    inp.set_data_from_numpy(x[part], binary_data=True)
                    hdrs = {"Authorization": "Bearer " + args.token} if args.token else None
                    res = tc.infer(MODEL, [inp], headers=hdrs)
                    p, k = res.as_numpy("probabilities"), res.as_numpy("class")
                else:
                    status, _, body = srv.infer_json(x[part])
                    if status != 200:
                        raise RuntimeError("status %d %r" % (status, body[:200]))
                    _, out = outputs_of(body)
                    p, k = out["probabilities"]["data"], out["class"]["data"]
                got = np.asarray(p, dtype=np.float64).astype(np.float32).reshape(n, CLASSES)
                diff = float(np.max(np.abs(got - prob[part])))
                if diff > 1e-6 or list(np.asarray(k).reshape(-1)) != list(pred[part]):
                    raise RuntimeError("rows %d..%d differ from kiln predict (%g)" % (part.start, part.stop, diff))
                if not np.array_equal(got, prob[part]):
                    with lock:
                        bitwise[0] = False
            except Exception as e:  # noqa: BLE001 - collected and reported below
                with lock:
                    errors.append("thread %d request %d: %s" % (t, i, e))
                return

    ts = [threading.Thread(target=client, args=(t,)) for t in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    check(not errors, "concurrent clients: %s" % "; ".join(errors[:5]))
    ok("%d client threads x %d requests: every answer equals kiln predict's (%s)" %
       (threads, per, "bitwise" if bitwise[0] else "within 1e-6"))
    if args.expect_batching:
        fams = parse_metrics(srv.metrics_text())
        n = sample(fams, "kiln_batch_requests", "kiln_batch_requests_count")
        total = sample(fams, "kiln_batch_requests", "kiln_batch_requests_sum")
        check(total > n, "no forward pass gathered more than one request (%s requests in %s passes)" % (total, n))
        ok("dynamic batching: %d requests ran in %d forward passes" % (total, n))


# --- auth -----------------------------------------------------------------------------

def cmd_auth(args):
    srv = Server(args.url)
    good = np.array([[0.5, 1.0, 0.25, 2.0]], dtype=np.float32)
    for path in ("/v2/health/live", "/v2/health/ready"):
        status, _, _ = srv.request("GET", path)
        check(status == 200, "health probe %s needs no token: %d" % (path, status))
    for what, hdrs in (("no token", {}), ("wrong token", {"Authorization": "Bearer " + args.token + "x"}),
                       ("short token", {"Authorization": "Bearer x"}),
                       ("not a bearer", {"Authorization": "Basic " + args.token})):
        for method, path in (("GET", "/v2/models/clf"), ("GET", "/metrics"), ("POST", "/v2/models/clf/infer")):
            body = {"inputs": [{"name": "input", "shape": [1, 4], "datatype": "FP32", "data": good.tolist()}]}
            status, h, data = srv.request(method, path, body=body if method == "POST" else None, headers=hdrs)
            check(status == 401 and "bearer token" in error_of(data), "%s on %s: %d" % (what, path, status))
            check(h.get("www-authenticate", "").startswith("Bearer"), "401 without WWW-Authenticate")
        ok("%s -> 401 on metadata, metrics and infer" % what)
    srv.token = args.token
    status, _, body = srv.infer_json(good)
    check(status == 200, "with the token: %d %r" % (status, body[:200]))
    status, _, _ = srv.request("GET", "/metrics")
    check(status == 200, "metrics with the token: %d" % status)
    ok("with the right token: 200; health probes open without one")


# --- drain ----------------------------------------------------------------------------

def cmd_drain(args):
    srv = Server(args.url)
    x, prob, pred = load_ref(args)
    waiting, results, stream = 8, {}, []
    lock = threading.Lock()
    stop_stream = threading.Event()

    def one(i):
        part = slice(i * 3, i * 3 + 3)
        try:
            status, _, body = srv.infer_json(x[part])
            with lock:
                results[i] = (status, body)
        except Exception as e:  # noqa: BLE001
            with lock:
                results[i] = (None, str(e).encode())

    def slow_stream():
        j = 0
        while not stop_stream.is_set():
            part = slice(200 + j % 100, 200 + j % 100 + 2)
            t0 = time.time()
            try:
                status, _, body = srv.infer_json(x[part], timeout=10)
                stream.append((t0, status, body, part))
            except OSError as e:
                stream.append((t0, None, str(e).encode(), part))
                break
            j += 1
            time.sleep(0.02)

    ts = [threading.Thread(target=one, args=(i,), daemon=True) for i in range(waiting)]
    for t in ts:
        t.start()
    # Wait until all of them sit in the batcher (its --max-delay-us is long),
    # start a stream of requests, and stop the server under both.
    deadline = time.time() + 10
    while time.time() < deadline:
        fams = parse_metrics(srv.metrics_text())
        if (sample(fams, "kiln_batcher_queue_rows") or 0) >= waiting * 3:
            break
    else:
        fail("the requests never queued up in the batcher")
    st = threading.Thread(target=slow_stream, daemon=True)
    st.start()
    time.sleep(0.05)
    t_sig = time.time()
    os.kill(args.pid, signal.SIGTERM)
    for t in ts:
        t.join(timeout=30)
    stop_stream.set()
    st.join(timeout=30)
    for i in range(waiting):
        status, body = results.get(i, (None, b"no answer"))
        check(status == 200, "request %d in flight at SIGTERM: %s %r" % (i, status, body[:200]))
        _, out = outputs_of(body)
        same(out["probabilities"]["data"], prob[i * 3:i * 3 + 3], "drained request %d" % i)
    ok("SIGTERM with %d requests waiting in the batcher: every one answered 200, correctly" % waiting)
    answered = 0
    for t0, status, body, part in stream:
        if status == 200:
            _, out = outputs_of(body)
            same(out["probabilities"]["data"], prob[part], "stream request")
            answered += 1
        else:
            # Refused once the server stopped accepting: never a broken answer.
            check(t0 >= t_sig - 0.5 and (status is None or status == 503),
                  "stream request at %+.3f s: %s %r" % (t0 - t_sig, status, body[:200]))
    check(answered > 0, "the slow stream got no answers")
    ok("a slow stream across SIGTERM: %d answered correctly, the rest refused cleanly" % answered)
    with open(args.save_ok, "w") as f:
        f.write("%d\n" % (waiting + answered))


# --- predlog --------------------------------------------------------------------------

def cmd_predlog(args):
    lines = []
    for name in sorted(os.listdir(args.dir)) if os.path.isdir(args.dir) else []:
        if name.startswith("predictions") and name.endswith(".jsonl"):
            with open(os.path.join(args.dir, name)) as f:
                lines += f.read().splitlines()
    recs = []
    for i, line in enumerate(lines):
        try:
            recs.append(json.loads(line))
        except ValueError:
            fail("%s: line %d is not JSON: %r" % (args.dir, i + 1, line[:200]))
    check(len(recs) == args.expect, "%s: %d records, expected %d" % (args.dir, len(recs), args.expect))
    for r in recs:
        for key in ("time", "request_id", "model_version", "rows", "outputs"):
            check(key in r, "record lacks %r: %r" % (key, sorted(r)))
        check(r["model_version"] == 1 and r.get("model") == MODEL, "record's model %r" % r.get("model"))
        check(len(r["outputs"]) == r["rows"], "outputs rows")
        if args.redact:
            check("inputs" not in r, "a redacted log holds inputs")
        else:
            check(len(r["inputs"]) == r["rows"] and len(r["inputs"][0]) == FEATURES, "inputs rows")
    ids = [r["request_id"] for r in recs]
    check(len(set(ids)) == len(ids), "request ids repeat in the log")
    if args.exact:
        with open(args.exact) as f:
            exact = json.load(f)
        for rid, texts in exact.items():
            rec = [r for r in recs if r["request_id"] == rid]
            check(len(rec) == 1, "no record of request %r in the log" % rid)
            want = np.array([[np.float32(float(t)) for t in row] for row in texts], dtype=np.float32)
            got = np.array(rec[0]["inputs"], dtype=np.float64).astype(np.float32)
            check(np.array_equal(want.view(np.uint32), got.view(np.uint32)),
                  "request %r: the model saw %r, expected %r (float32 of the JSON text)" %
                  (rid, got.tolist(), want.tolist()))
            ok("request %r: the rows the model saw are the float32 roundings of the JSON text, "
               "bit for bit (-0 included)" % rid)
    ok("prediction log %s: %d complete JSON lines%s" % (args.dir, len(recs),
                                                         ", no inputs (redacted)" if args.redact else ""))


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("rows")
    p.add_argument("out")
    p.add_argument("--n", type=int, default=2000)
    p.add_argument("--seed", type=int, default=3)
    for name in ("protocol", "bad", "parse", "metrics", "concurrent", "auth", "drain"):
        p = sub.add_parser(name)
        p.add_argument("--url", required=True)
        p.add_argument("--rows")
        p.add_argument("--ref")
        p.add_argument("--token")
        p.add_argument("--max-rows", type=int, default=50)
        p.add_argument("--max-body", type=int, default=65536)
        p.add_argument("--sha256")
        p.add_argument("--classes", default="setosa,versicolor,virginica")
        p.add_argument("--features", default="f1,f2,f3,f4")
        p.add_argument("--requests", type=int, default=12)
        p.add_argument("--expect-batching", action="store_true")
        p.add_argument("--pid", type=int)
        p.add_argument("--save-ok")
        p.add_argument("--save-exact")
    p = sub.add_parser("predlog")
    p.add_argument("dir")
    p.add_argument("--expect", type=int, required=True)
    p.add_argument("--redact", action="store_true")
    p.add_argument("--exact")
    args = ap.parse_args()
    if args.cmd == "auth" and args.token is None:
        ap.error("auth needs --token")
    globals()["cmd_" + args.cmd](args)


if __name__ == "__main__":
    main()
