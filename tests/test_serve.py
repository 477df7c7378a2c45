"""`deepae serve`: the Open Inference Protocol (v2) server.

Most cases drive the ASGI application in process (a small ASGI caller below: no HTTP
client library needed); a few start `deepae serve` as a process on 127.0.0.1 and talk to it
with tritonclient.http and urllib, and stop it with SIGTERM while a request is in flight.
"""

import asyncio
import json
import math
import os
import re
import signal
import socket
import struct
import subprocess
import sys
import time
import urllib.error
import urllib.request

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import deepae
from conftest import small_model, smooth_images
from deepae.datasets import make_transactions
from deepae.serve import create_app, model_names, servable
from deepae.serve.protocol import DATATYPES, InferenceError, parse_request

pytest.importorskip("fastapi")
pytest.importorskip("prometheus_client")


# -- an in-process ASGI caller ------------------------------------------------------------------
class Reply:
    def __init__(self, status, headers, body):
        self.status_code, self.headers, self.content = status, headers, body

    def json(self):
        return json.loads(self.content)

    @property
    def text(self):
        return self.content.decode(errors="replace")


async def asgi(app, method, path, *, body=b"", json_body=None, headers=None, chunks=None,
               stall=False):
    """One request to `app`: the body whole (with Content-Length) or in `chunks` (without);
    with `stall`, the client sends what it has, then nothing more (a slow client)."""
    if json_body is not None:
        body = json.dumps(json_body).encode()
    headers = dict(headers or {})
    if chunks is None:
        headers.setdefault("content-length", str(len(body)))
        chunks = [body]
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
             "method": method, "scheme": "http", "path": path, "raw_path": path.encode(),
             "query_string": b"", "root_path": "", "client": ("127.0.0.1", 5000),
             "server": ("127.0.0.1", 8080),
             "headers": [(k.lower().encode(), str(v).encode()) for k, v in headers.items()]}
    done = asyncio.Event()
    messages = [{"type": "http.request", "body": c, "more_body": stall or i < len(chunks) - 1}
                for i, c in enumerate(chunks)]
    out = {"status": None, "headers": {}, "body": []}

    async def receive():
        if messages:
            return messages.pop(0)
        await done.wait()
        return {"type": "http.disconnect"}

    async def send(msg):
        if msg["type"] == "http.response.start":
            out["status"] = msg["status"]
            out["headers"] = {k.decode().lower(): v.decode() for k, v in msg["headers"]}
        elif msg["type"] == "http.response.body":
            out["body"].append(msg.get("body", b""))
            if not msg.get("more_body"):
                done.set()

    await app(scope, receive, send)
    return Reply(out["status"], out["headers"], b"".join(out["body"]))


def call(app, method, path, **kw):
    return asyncio.run(asgi(app, method, path, **kw))


def infer(app, name, inputs, parameters=None, outputs=None, **kw):
    doc = {"inputs": inputs}
    if parameters is not None:
        doc["parameters"] = parameters
    if outputs is not None:
        doc["outputs"] = outputs
    return call(app, "POST", f"/v2/models/{name}/infer", json_body=doc, **kw)


def out(reply, name):
    """An output of a JSON reply as an array of its shape."""
    (t,) = [o for o in reply.json()["outputs"] if o["name"] == name]
    return np.asarray(t["data"]).reshape(t["shape"])


# -- models, trained small ----------------------------------------------------------------------
@pytest.fixture(scope="module")
def fraud(tmp_path_factory):
    """A detector of the 30-column transactions table (numbers and one categorical column),
    saved; and 8 rows of the table with its numbers as float32 (what a client sends)."""
    X, y = make_transactions(600, fraud_rate=0.02, categorical=True, random_state=0)
    det = deepae.AnomalyDetector(epochs=2, threshold="fpr", target=0.2,
                                 random_state=0).fit(X[y == 0])
    path = det.save(tmp_path_factory.mktemp("serve") / "fraud.deepae")
    rows = X.iloc[np.r_[0:6, np.flatnonzero(y)[:2]]].reset_index(drop=True)
    numeric = [c for c in rows.columns if c != "merchant"]
    rows[numeric] = rows[numeric].astype(np.float32)
    return det, path, rows


def table_inputs(rows, datatype="FP32"):
    return [{"name": c, "shape": [len(rows)],
             "datatype": "BYTES" if c == "merchant" else datatype,
             "data": [str(v) for v in rows[c]] if c == "merchant" else rows[c].tolist()}
            for c in rows.columns]


def mixed_array(x):
    """`x` with its column 2 as integer codes 0..3: a categorical column of an array."""
    out = x.astype(np.float64)
    out[:, 2] = np.abs(np.round(out[:, 2])).clip(0, 3)
    return out


@pytest.fixture(scope="module")
def models(fraud):
    """One model of every kind served, by name."""
    r = np.random.default_rng(0)
    x = r.normal(size=(200, 6)).astype(np.float32)
    images = smooth_images(16, 16, 16)
    tiny = dict(filters=(4,), epochs=1, patches_per_epoch=64, patch_size=16, random_state=0)
    ae = small_model()
    ae.fit(x, epochs=1, verbose=0)  # Keras's fit: it returns the history
    ests = {
        "fraud": fraud[0],
        "plain": deepae.AnomalyDetector(epochs=1, missing="reject", random_state=0).fit(x),
        "mixed": deepae.AnomalyDetector(epochs=1, categorical_columns=("x2",),
                                        random_state=0).fit(mixed_array(x)),
        "reducer": deepae.AutoencoderReducer(n_components=3, hidden_units=(8,), epochs=1,
                                             random_state=0).fit(x),
        "ae": ae,
        "hasher": deepae.SemanticHasher(10, hidden_units=(16,), epochs=1, random_state=0)
        .fit(x),
        "index": deepae.SemanticIndex.build(x, np.arange(200) + 100, n_bits=10,
                                            hidden_units=(16,), epochs=1, random_state=0),
        "denoise": deepae.Denoiser(mode="given", **tiny).fit(images),
        "upscale": deepae.SuperResolver(**tiny).fit(images),
    }
    return ests, x, images


@pytest.fixture(scope="module")
def app(models):
    ests = models[0]
    application = create_app([servable(n, e) for n, e in ests.items()], batch_wait_ms=1.0)
    yield application
    application.state.server.close()


# -- protocol -----------------------------------------------------------------------------------
def test_health_server_and_model_metadata(app, fraud):
    assert call(app, "GET", "/v2/health/live").json() == {"live": True}
    assert call(app, "GET", "/v2/health/ready").json() == {"ready": True}
    meta = call(app, "GET", "/v2").json()
    assert meta["name"] == "deepae" and "binary_tensor_data" in meta["extensions"]
    assert call(app, "GET", "/v2/models/fraud/ready").json() == {"name": "fraud", "ready": True}
    m = call(app, "GET", "/v2/models/fraud").json()
    assert m["name"] == "fraud" and m["platform"] == "deepae"
    assert [i["name"] for i in m["inputs"]] == list(fraud[2].columns)
    kinds = {i["name"]: (i["datatype"], i["shape"]) for i in m["inputs"]}
    assert kinds["V1"] == ("FP32", [-1]) and kinds["merchant"] == ("BYTES", [-1])
    assert {o["name"]: o["datatype"] for o in m["outputs"]} == {
        "score": "FP64", "label": "INT64", "explanation_column": "BYTES",
        "explanation_share": "FP32"}
    assert call(app, "GET", "/v2/models/ae").json()["inputs"] == [
        {"name": "x", "datatype": "FP32", "shape": [-1, 6]}]
    assert call(app, "GET", "/v2/models/upscale").json()["outputs"] == [
        {"name": "image", "datatype": "FP32", "shape": [-1, -1, -1, 1]}]
    assert call(app, "GET", "/v2/models/fraud/versions/1").json()["name"] == "fraud"
    assert call(app, "GET", "/v2/models/nope").status_code == 404


def test_table_scores_labels_and_explanations(app, fraud):
    det, _, rows = fraud
    r = infer(app, "fraud", table_inputs(rows), parameters={"explain": 2})
    assert r.status_code == 200, r.text
    np.testing.assert_allclose(out(r, "score"), det.decision_function(rows), rtol=1e-6)
    assert out(r, "label").tolist() == det.predict(rows).tolist()
    assert det.predict(rows).sum() > 0  # the fraud rows: both labels are seen
    ex = det.explain(rows, top_k=2, only_flagged=False)
    assert out(r, "explanation_column").tolist() == ex["column"].to_numpy().reshape(-1, 2).tolist()
    np.testing.assert_allclose(out(r, "explanation_share"),
                               ex["share"].to_numpy().reshape(-1, 2), rtol=1e-6)
    plain = infer(app, "fraud", table_inputs(rows, "FP64"))  # FP64 taken too; no explanation
    assert [o["name"] for o in plain.json()["outputs"]] == ["score", "label"]
    # columns by name, in any order; NaN (JSON null) is a missing number
    shuffled = table_inputs(rows)[::-1]
    assert shuffled[1]["name"] == "Amount"
    shuffled[1]["data"][0] = None
    nan_rows = rows.copy()
    nan_rows.loc[0, "Amount"] = np.nan
    np.testing.assert_allclose(out(infer(app, "fraud", shuffled), "score"),
                               det.decision_function(nan_rows), rtol=1e-6)


def test_array_models(app, models):
    ests, x, images = models
    q = {"name": "x", "datatype": "FP32", "shape": [4, 6], "data": x[:4].tolist()}
    r = infer(app, "plain", [q])
    np.testing.assert_allclose(out(r, "score"), ests["plain"].decision_function(x[:4]),
                               rtol=1e-6)
    assert out(r, "label").tolist() == ests["plain"].predict(x[:4]).tolist()
    np.testing.assert_allclose(out(infer(app, "reducer", [q]), "codes"),
                               ests["reducer"].transform(x[:4]), rtol=1e-5, atol=1e-6)
    r = infer(app, "ae", [q])
    np.testing.assert_allclose(out(r, "codes"), ests["ae"].encode(x[:4]), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(out(r, "reconstruction"), ests["ae"].reconstruct(x[:4]),
                               rtol=1e-5, atol=1e-6)
    r = infer(app, "hasher", [q])
    assert r.json()["outputs"][0]["datatype"] == "UINT8"
    assert out(r, "codes").tolist() == ests["hasher"].transform(x[:4]).tolist()
    r = infer(app, "index", [q], parameters={"k": 5})
    found = ests["index"].nearest(x[:4], k=5)
    assert out(r, "ids").tolist() == [ids.tolist() for ids, _ in found]
    assert out(r, "distances").tolist() == [d.tolist() for _, d in found]
    assert out(r, "ids").min() >= 100  # the stored ids, not positions


def test_array_detector_with_a_categorical_column(app, models):
    ests, x, _ = models
    data = mixed_array(x[:4])
    meta = call(app, "GET", "/v2/models/mixed").json()
    assert [(i["name"], i["datatype"]) for i in meta["inputs"]] == [
        ("x0", "FP32"), ("x1", "FP32"), ("x2", "BYTES"), ("x3", "FP32"), ("x4", "FP32"),
        ("x5", "FP32")]
    inputs = [{"name": f"x{j}", "shape": [4], "datatype": "BYTES" if j == 2 else "FP64",
               "data": [str(int(v)) for v in data[:, j]] if j == 2 else data[:, j].tolist()}
              for j in range(6)]
    r = infer(app, "mixed", inputs)
    assert r.status_code == 200, r.text
    np.testing.assert_allclose(out(r, "score"), ests["mixed"].decision_function(data),
                               rtol=1e-6)


def test_image_models(app, models):
    ests, _, images = models
    img = {"name": "x", "datatype": "FP32", "shape": [2, 16, 16, 1], "data": images[:2].ravel()
           .tolist()}
    r = infer(app, "upscale", [img])
    assert out(r, "image").shape == (2, 32, 32, 1)
    np.testing.assert_allclose(out(r, "image"), ests["upscale"].transform(images[:2]),
                               atol=1e-5)
    den = ests["denoise"]
    by_param = out(infer(app, "denoise", [img], parameters={"sigma": 0.2}), "image")
    np.testing.assert_allclose(by_param, den.transform(images[:2], sigma=0.2), atol=1e-5)
    sig = {"name": "sigma", "datatype": "FP32", "shape": [2], "data": [0.0, 0.3]}
    per_row = out(infer(app, "denoise", [img, sig]), "image")
    np.testing.assert_allclose(per_row[1], den.transform(images[1:2], sigma=0.3)[0], atol=1e-5)
    assert not np.allclose(per_row[0], per_row[1] * 0 + den.transform(images[:1], sigma=0.3)[0])
    r = infer(app, "denoise", [img])
    assert r.status_code == 400 and "sigma" in r.json()["error"]


def binary_request(inputs, *, binary_output=True):
    """A request in the binary tensor data extension: (body, JSON header length)."""
    specs, blobs = [], []
    for name, datatype, arr in inputs:
        if datatype == "BYTES":
            raw = b"".join(struct.pack("<I", len(v)) + v for v in arr)
        else:
            raw = np.ascontiguousarray(arr).tobytes()
        specs.append({"name": name, "datatype": datatype, "shape": list(np.shape(arr)),
                      "parameters": {"binary_data_size": len(raw)}})
        blobs.append(raw)
    head = json.dumps({"inputs": specs, "parameters": {"binary_data_output": binary_output}})
    return head.encode() + b"".join(blobs), len(head)


def binary_outputs(reply):
    n = int(reply.headers["inference-header-content-length"])
    doc, pos, outs = json.loads(reply.content[:n]), n, {}
    for t in doc["outputs"]:
        size = t["parameters"]["binary_data_size"]
        dtype = {"FP64": "<f8", "INT64": "<i8", "FP32": "<f4"}[t["datatype"]]
        outs[t["name"]] = np.frombuffer(reply.content[pos:pos + size], dtype).reshape(t["shape"])
        pos += size
    assert pos == len(reply.content)
    return outs


def test_binary_tensor_data_extension(app, fraud):
    det, _, rows = fraud
    inputs = [(c, "BYTES", [str(v).encode() for v in rows[c]]) if c == "merchant"
              else (c, "FP32", rows[c].to_numpy(np.float32)) for c in rows.columns]
    body, n = binary_request(inputs)
    r = call(app, "POST", "/v2/models/fraud/infer", body=body,
             headers={"Inference-Header-Content-Length": n})
    assert r.status_code == 200 and r.headers["content-type"] == "application/octet-stream"
    got = binary_outputs(r)
    np.testing.assert_allclose(got["score"], det.decision_function(rows), rtol=1e-6)
    assert got["label"].tolist() == det.predict(rows).tolist()
    body, n = binary_request(inputs, binary_output=False)  # binary in, JSON out
    r = call(app, "POST", "/v2/models/fraud/infer", body=body,
             headers={"Inference-Header-Content-Length": n})
    np.testing.assert_allclose(out(r, "score"), det.decision_function(rows), rtol=1e-6)


# -- bad requests -------------------------------------------------------------------------------
def _table_case(change):
    def make(rows):
        inputs = table_inputs(rows)
        change(inputs)
        return {"inputs": inputs}
    return make


def _set(name, **values):
    def change(inputs):
        (spec,) = [i for i in inputs if i["name"] == name]
        spec.update(values)
    return change


BAD_TABLE = {
    "missing column": (_table_case(lambda i: i.pop()), "merchant"),
    "extra input": (_table_case(lambda i: i.append({**i[0], "name": "bogus"})), "bogus"),
    "wrong datatype": (_table_case(_set("V1", datatype="BYTES",
                                        data=["a"] * 8)), "'V1' as FP32; received BYTES"),
    "categorical as float": (_table_case(_set("merchant", datatype="FP32", data=[1.0] * 8)),
                             "'merchant' as BYTES"),
    "wrong shape": (_table_case(_set("V2", shape=[8, 1])), "'V2' of shape [-1]"),
    "shape and data disagree": (_table_case(_set("V3", shape=[9])), "9 values"),
    "rows disagree": (_table_case(lambda i: [s.update(shape=[7], data=s["data"][:7])
                                            for s in i[:2]]), "same number of rows"),
    "strings as numbers": (_table_case(_set("V4", data=["1.5"] * 8)), "'V4'"),
    "infinite": (_table_case(_set("V5", data=[1e300] * 8)), "'V5'"),
    "bad datatype name": (_table_case(_set("V6", datatype="FLOAT")), "'V6'"),
    "explain parameter": (lambda rows: {"inputs": table_inputs(rows),
                                        "parameters": {"explain": "all"}}, "`explain`"),
    "unknown output": (lambda rows: {"inputs": table_inputs(rows),
                                     "outputs": [{"name": "scores"}]}, "'scores'"),
    "no inputs": (lambda rows: {"input": []}, "`inputs`"),
    "inputs not a list": (lambda rows: {"inputs": {"V1": 1}}, "`inputs`"),
    "negative shape": (_table_case(_set("V7", shape=[-1])), "`shape` of input 'V7'"),
}


@pytest.mark.parametrize("case", sorted(BAD_TABLE))
def test_bad_table_requests_answer_400_naming_the_field(app, fraud, case):
    make, words = BAD_TABLE[case]
    r = call(app, "POST", "/v2/models/fraud/infer", json_body=make(fraud[2]))
    assert r.status_code == 400, r.text
    assert words in r.json()["error"]
    assert "Traceback" not in r.text


@pytest.mark.parametrize("body, headers, status, words", [
    (b"{not json", {}, 400, "malformed JSON"),
    (b"[1, 2]", {}, 400, "JSON object"),
    (b"[" * 100_000, {}, 400, "JSON"),
    (b'{"inputs": []}', {"Inference-Header-Content-Length": "99"}, 400,
     "Inference-Header-Content-Length"),
    (b'{"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 6], '
     b'"parameters": {"binary_data_size": 24}}]}' + b"\0" * 20, {}, 400, "binary"),
])
def test_malformed_bodies_answer_400(app, body, headers, status, words):
    if "Inference-Header-Content-Length" not in headers and b"binary_data_size" in body:
        headers = {"Inference-Header-Content-Length": str(len(body) - 20)}
    r = call(app, "POST", "/v2/models/plain/infer", body=body, headers=headers)
    assert r.status_code == status and words in r.json()["error"], r.text


def test_other_bad_requests(app, models):
    x = models[1]
    q = {"name": "x", "datatype": "FP32", "shape": [1, 6], "data": x[0].tolist()}
    r = infer(app, "nope", [q])
    assert r.status_code == 404 and "'nope'" in r.json()["error"]
    nan = {**q, "data": [None] + x[0, 1:].tolist()}  # the detector's policy is 'reject'
    r = infer(app, "plain", [nan])
    assert r.status_code == 400 and "NaN" in r.json()["error"] and "reject" in r.json()["error"]
    r = infer(app, "plain", [{**q, "shape": [1, 5], "data": x[0, :5].tolist()}])
    assert r.status_code == 400 and "[-1, 6]" in r.json()["error"]
    r = infer(app, "index", [q], parameters={"k": 0})
    assert r.status_code == 400 and "`k`" in r.json()["error"]
    r = call(app, "POST", "/v2/models/plain/versions/2/infer", json_body={"inputs": [q]})
    assert r.status_code == 404 and "version" in r.json()["error"]
    r = call(app, "GET", "/v2/models/plain/infer")
    assert r.status_code == 405 and "error" in r.json()
    tiny = {"name": "x", "datatype": "FP32", "shape": [1, 1, 1, 1], "data": [0.5]}
    r = infer(app, "upscale", [tiny])  # the estimator's own check: a ValueError -> 400
    assert r.status_code == 400 and "pixels" in r.json()["error"]


@pytest.mark.parametrize("name, shape", [
    ("grey", [1, 1, 1, 0]), ("grey", [1, 0, 4, 3]), ("upscale", [1, 4, 0, 1]),
    ("plain", [0, 6]), ("ae", [0, 6])])
def test_a_zero_size_dimension_is_refused_naming_the_input_and_shape(models, monkeypatch,
                                                                      name, shape):
    # a grey denoiser applied per channel took [1, 1, 1, 0] and answered NumPy's own words
    ests = models[0]
    monkeypatch.setattr(ests["denoise"], "per_channel", True)
    served = {"grey": ests["denoise"], **({name: ests[name]} if name in ests else {})}
    application = create_app([servable(n, e) for n, e in served.items()])
    assert call(application, "GET", "/v2/models/grey").json()["inputs"][0]["shape"] == [
        -1, -1, -1, -1]  # any number of channels
    r = infer(application, name, [{"name": "x", "datatype": "FP32", "shape": shape,
                                   "data": []}], parameters={"sigma": 0.1})
    assert r.status_code == 400, r.text
    error = r.json()["error"]
    assert "input 'x'" in error and str(shape) in error and "size 0" in error, error
    assert "zero-size array" not in error
    application.state.server.close()


def test_request_body_limit(models):
    ests = models[0]
    small = create_app([servable("plain", ests["plain"])], max_request_bytes=1000)
    q = {"name": "x", "datatype": "FP32", "shape": [50, 6], "data": models[1][:50].tolist()}
    r = infer(small, "plain", [q])
    assert r.status_code == 413 and "1000 bytes" in r.json()["error"]
    body = json.dumps({"inputs": [q]}).encode()  # no Content-Length: counted while read
    r = call(small, "POST", "/v2/models/plain/infer", chunks=[body[:600], body[600:]])
    assert r.status_code == 413 and "limit" in r.json()["error"]
    q1 = {**q, "shape": [1, 6], "data": models[1][0].tolist()}
    assert infer(small, "plain", [q1]).status_code == 200
    small.state.server.close()


def test_json_body_limit_is_smaller_than_the_binary_one(models):
    # JSON takes ~20 times its size in memory; large tensors go in the binary extension
    x = np.tile(models[1][:50], (4, 1))  # 200 rows: ~7 kB of JSON, 4.8 kB binary
    small = create_app([servable("plain", models[0]["plain"])], max_json_bytes=2000,
                       max_request_bytes=20_000)
    q = {"name": "x", "datatype": "FP32", "shape": [200, 6], "data": x.tolist()}
    r = infer(small, "plain", [q])
    assert r.status_code == 413, r.text
    error = r.json()["error"]
    assert "2000 bytes" in error and "--max-json-bytes" in error and "binary" in error
    body = json.dumps({"inputs": [q]}).encode()  # no Content-Length: counted while read
    r = call(small, "POST", "/v2/models/plain/infer", chunks=[body[:1500], body[1500:]])
    assert r.status_code == 413 and "--max-json-bytes" in r.json()["error"]
    body, n = binary_request([("x", "FP32", x)], binary_output=False)
    assert len(body) > 2000
    r = call(small, "POST", "/v2/models/plain/infer", body=body,
             headers={"Inference-Header-Content-Length": n})
    assert r.status_code == 200, r.text
    assert len(out(r, "score")) == 200
    # the JSON part of a binary request is held to the JSON limit too
    big_head = json.dumps({"inputs": [{"name": "x", "datatype": "FP32", "shape": [200, 6],
                                       "parameters": {"binary_data_size": 4800}}],
                           "id": "z" * 3000}).encode()
    r = call(small, "POST", "/v2/models/plain/infer", body=big_head + b"\0" * 4800,
             headers={"Inference-Header-Content-Length": len(big_head)})
    assert r.status_code == 413 and "--max-json-bytes" in r.json()["error"], r.text
    small.state.server.close()


def test_a_slow_body_is_answered_408(models):
    # Content-Length 100, one byte sent, then nothing: the connection was held forever
    application = create_app([servable("plain", models[0]["plain"])], read_timeout_s=0.5)

    async def slow():
        return await asyncio.wait_for(asgi(application, "POST", "/v2/models/plain/infer",
                                           headers={"content-length": "100"},
                                           chunks=[b"{"], stall=True), 10)

    start = time.monotonic()
    r = asyncio.run(slow())
    assert 0.5 <= time.monotonic() - start < 5
    assert r.status_code == 408 and "--read-timeout-s" in r.json()["error"], r.text
    assert r.headers.get("connection") == "close"
    text = call(application, "GET", "/metrics").text
    assert metric(text, "deepae_requests_total", model="plain", code="408") == 1
    application.state.server.close()


def test_errors_of_the_estimator(models, monkeypatch):
    model = servable("plain", models[0]["plain"])
    application = create_app([model])
    q = {"name": "x", "datatype": "FP32", "shape": [1, 6], "data": models[1][0].tolist()}

    def refuse(arrays, options):
        raise ValueError("Expected `x` rows that the model likes; received others.")

    monkeypatch.setattr(model, "run", refuse)
    r = infer(application, "plain", [q])
    assert r.status_code == 400 and "rows that the model likes" in r.json()["error"]

    def crash(arrays, options):
        raise RuntimeError("secret internals at /home/someone")

    monkeypatch.setattr(model, "run", crash)
    r = infer(application, "plain", [q])
    assert r.status_code == 500 and "secret" not in r.text and "Traceback" not in r.text
    assert "log" in r.json()["error"]
    application.state.server.close()


# -- the parser takes anything -----------------------------------------------------------------
HUGE = "1" + "0" * 400  # a JSON integer that no float holds (float() raises OverflowError)


def literal_request(datatype, shape, numbers):
    """A JSON request of one input 'x' whose `data` is the JSON text `numbers`."""
    spec = {"name": "x", "datatype": datatype, "shape": shape, "data": "NUMBERS"}
    return json.dumps({"inputs": [spec]}).replace('"NUMBERS"', f"[{numbers}]").encode()


@pytest.mark.parametrize("datatype", ["FP16", "FP32", "FP64", "INT64", "UINT64", "BOOL"])
@pytest.mark.parametrize("number", [HUGE, "-" + HUGE, "0.5, " + HUGE])
def test_a_huge_json_integer_is_refused_naming_the_input(datatype, number):
    body = literal_request(datatype, [number.count(",") + 1], number)
    with pytest.raises(InferenceError, match="input 'x'") as e:
        parse_request(body)
    assert e.value.status == 400


def test_a_huge_json_integer_answers_400(app):
    body = literal_request("FP32", [1, 6], HUGE + ", 0" * 5)
    r = call(app, "POST", "/v2/models/plain/infer", body=body)
    assert r.status_code == 400, r.text
    assert "input 'x'" in r.json()["error"] and "range" in r.json()["error"]
    # more digits than Python reads as an int (4300): the JSON itself is refused
    r = call(app, "POST", "/v2/models/plain/infer", body=body.replace(HUGE.encode(), b"9" * 5000))
    assert r.status_code == 400 and "digits" in r.json()["error"], r.text
    assert "refused the input" not in r.json()["error"]  # the parser's 400, not the model's


@pytest.mark.parametrize("shape", [[0, 10 ** 30], [0, int("9" * 400)], [2, 0, 2 ** 62, 4]])
@pytest.mark.parametrize("binary", [False, True])
def test_a_shape_of_no_values_but_huge_dimensions_is_refused(shape, binary):
    # found by scripts/fuzz_protocol.py: NumPy's ValueError, not the parser's InferenceError
    spec = {"name": "x", "datatype": "FP32", "shape": shape}
    spec.update({"parameters": {"binary_data_size": 0}} if binary else {"data": []})
    body = json.dumps({"inputs": [spec]}).encode()
    with pytest.raises(InferenceError, match="`shape` of input 'x'"):
        parse_request(body, str(len(body)) if binary else None)


_scalars = st.one_of(st.none(), st.booleans(), st.integers(-2 ** 70, 2 ** 70), st.integers(),
                     st.integers(10 ** 399, 10 ** 400), st.integers(-10 ** 400, -10 ** 399),
                     st.floats(allow_nan=True), st.text(max_size=4))
_tensor = st.fixed_dictionaries(
    {"name": st.sampled_from(["x", "y", "V1"]),
     "datatype": st.sampled_from([*DATATYPES, "FLOAT", 3]),
     "shape": st.one_of(st.lists(st.integers(-1, 4), max_size=4),
                        st.lists(st.sampled_from([0, 1, 2 ** 40, 2 ** 63, 10 ** 400]),
                                 max_size=3),
                        _scalars)},
    optional={"data": st.recursive(_scalars, lambda c: st.lists(c, max_size=4), max_leaves=12),
              "parameters": st.one_of(
                  st.fixed_dictionaries({"binary_data_size": st.one_of(
                      st.integers(-1, 40), _scalars)}), _scalars)})


@settings(max_examples=400, deadline=None, suppress_health_check=list(HealthCheck))
@given(inputs=st.lists(_tensor, max_size=3), tail=st.binary(max_size=40),
       header=st.sampled_from(["exact", None, "bad", "long"]))
def test_the_parser_answers_any_request_or_names_what_is_wrong(inputs, tail, header):
    head = json.dumps({"inputs": inputs}).encode()
    length = {"exact": str(len(head)), "bad": "x1", "long": str(len(head) + len(tail) + 1),
              None: None}[header]
    body = head + tail if header == "exact" else head
    try:
        req = parse_request(body, length)
    except InferenceError as e:
        assert str(e)
        return
    for spec, tensor in zip(inputs, req.inputs.values(), strict=True):
        assert tensor.data.shape == tuple(spec["shape"])
        assert tensor.data.dtype == DATATYPES[spec["datatype"]]


@settings(max_examples=300, deadline=None)
@given(cut=st.integers(0, 400), flips=st.lists(st.tuples(st.integers(0, 10 ** 6),
                                                         st.integers(0, 255)), max_size=4))
def test_the_parser_refuses_mutated_binary_requests_cleanly(cut, flips):
    body, n = binary_request([("x", "FP32", np.ones((2, 3), np.float32)),
                              ("c", "BYTES", [b"abc", b"", b"de"])])
    raw = bytearray(body)
    for pos, value in flips:
        raw[pos % len(raw)] = value
    raw = bytes(raw[:len(raw) - cut % len(raw)])
    try:
        req = parse_request(raw, str(n))
    except InferenceError:
        return
    assert sum(t.data.size for t in req.inputs.values()) <= 9


# -- metrics and batching -----------------------------------------------------------------------
def metric(text, name, **labels):
    want = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in text.splitlines():
        m = re.fullmatch(rf"{re.escape(name)}\{{(.*)\}} (\S+)", line)
        if m and ",".join(sorted(m.group(1).split(","))) == want:
            return float(m.group(2))
    return 0.0


def test_metrics_count_requests_latency_and_batches(models):
    x = models[1]
    application = create_app([servable("plain", models[0]["plain"])])
    q = {"name": "x", "datatype": "FP32", "shape": [3, 6], "data": x[:3].tolist()}
    for _ in range(2):
        assert infer(application, "plain", [q]).status_code == 200
    assert infer(application, "plain", [{**q, "shape": [2, 6]}]).status_code == 400
    assert infer(application, "other", [q]).status_code == 404
    text = call(application, "GET", "/metrics").text
    assert metric(text, "deepae_requests_total", model="plain", code="200") == 2
    assert metric(text, "deepae_requests_total", model="plain", code="400") == 1
    assert metric(text, "deepae_requests_total", model="unknown", code="404") == 1
    assert metric(text, "deepae_request_duration_seconds_count", model="plain") == 3
    assert metric(text, "deepae_batch_rows_count", model="plain") == 2
    assert metric(text, "deepae_batch_rows_sum", model="plain") == 6
    assert metric(text, "deepae_batch_rows_bucket", model="plain", le="2.0") == 0
    assert metric(text, "deepae_batch_rows_bucket", model="plain", le="4.0") == 2
    application.state.server.close()


def test_concurrent_requests_are_batched(fraud):
    det, _, rows = fraud
    application = create_app([servable("fraud", det)], batch_wait_ms=50)

    async def many():
        return await asyncio.gather(*[
            asgi(application, "POST", "/v2/models/fraud/infer",
                 json_body={"inputs": table_inputs(rows.iloc[[i % len(rows)]])})
            for i in range(16)])

    replies = asyncio.run(many())
    assert all(r.status_code == 200 for r in replies)
    want = det.decision_function(rows)
    got = [out(r, "score")[0] for r in replies]  # each reply has its own row's score
    np.testing.assert_allclose(got, [want[i % len(rows)] for i in range(16)], rtol=1e-6)
    text = call(application, "GET", "/metrics").text
    calls = metric(text, "deepae_batch_rows_count", model="fraud")
    assert metric(text, "deepae_batch_rows_sum", model="fraud") == 16
    assert calls < 16, "16 concurrent requests made 16 model calls: nothing was batched"
    assert metric(text, "deepae_batch_requests_bucket", model="fraud", le="1.0") < calls
    application.state.server.close()


def test_a_bad_request_in_a_batch_fails_alone(models, monkeypatch):
    x = models[1]
    model = servable("plain", models[0]["plain"])
    run = model.run
    calls = []  # (rows, whether the row marked 99 was among them) of every model call

    def picky(arrays, options):  # refuses any call that holds the row marked 99
        calls.append((len(arrays["x"]), bool((arrays["x"][:, 0] == 99).any())))
        if calls[-1][1]:
            raise ValueError("Expected no row starting with 99; received one.")
        return run(arrays, options)

    monkeypatch.setattr(model, "run", picky)
    application = create_app([model], batch_wait_ms=50)
    rows = [x[i].tolist() for i in range(5)]
    rows[2][0] = 99.0

    async def together():
        return await asyncio.gather(*[
            asgi(application, "POST", "/v2/models/plain/infer", json_body={"inputs": [
                {"name": "x", "datatype": "FP32", "shape": [1, 6], "data": r}]})
            for r in rows])

    replies = asyncio.run(together())
    # the bad request was merged with others, and that call failed; then each ran alone
    assert calls[0][0] > 1 and calls[0][1], f"the requests were not batched: {calls}"
    assert (1, True) in calls[1:], calls  # the bad one alone
    assert sum(n for n, bad in calls if not bad) == 4, calls  # the good ones, once each
    assert [r.status_code for r in replies] == [200, 200, 400, 200, 200]
    assert "99" in replies[2].json()["error"]
    np.testing.assert_allclose(out(replies[4], "score"),
                               models[0]["plain"].decision_function(x[4:5]), rtol=1e-6)
    application.state.server.close()


# -- the command line ---------------------------------------------------------------------------
def test_model_names():
    assert model_names(["a/fraud.deepae", "b/x.v2.deepae"]) == ["fraud", "x.v2"]
    assert model_names(["a/fraud.deepae", "b/fraud.deepae"], ["one"]) == ["one", "fraud"]
    with pytest.raises(ValueError, match="--name"):
        model_names(["a/fraud.deepae", "b/fraud.deepae"])
    with pytest.raises(ValueError, match="URL path segment"):
        model_names(["m.deepae"], ["bad/name"])
    with pytest.raises(ValueError, match="at most one name per model"):
        model_names(["m.deepae"], ["a", "b"])


def test_help_does_not_import_fastapi():
    code = ("import sys\nfrom deepae.cli.main import main\n"
            "try:\n    main(['serve', '--help'])\nexcept SystemExit as e:\n"
            "    assert e.code == 0\n"
            "print('fastapi' in sys.modules, 'uvicorn' in sys.modules)")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120)
    assert res.returncode == 0, res.stderr
    for option in ("--batch-wait-ms", "--max-request-bytes", "--max-json-bytes",
                   "--read-timeout-s", "--max-concurrency"):
        assert option in res.stdout
    assert res.stdout.strip().endswith("False False")


@pytest.mark.parametrize("option, value", [
    ("--batch-wait-ms", "inf"), ("--batch-wait-ms", "nan"), ("--batch-wait-ms", "-1"),
    ("--batch-wait-ms", "1001"), ("--max-batch-rows", "0"), ("--max-batch-rows", "1e9"),
    ("--shutdown-timeout", "inf"), ("--shutdown-timeout", "nan"),
    ("--max-request-bytes", "0"), ("--max-json-bytes", "-1"), ("--read-timeout-s", "inf"),
    ("--read-timeout-s", "0"), ("--max-concurrency", "0")])
def test_cli_refuses_options_out_of_range(option, value, capsys):
    # --batch-wait-ms inf was taken, and then a lone request never got its answer
    from deepae.cli.main import build_parser

    with pytest.raises(SystemExit) as e:
        build_parser().parse_args(["serve", "m.deepae", option, value])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert option in err and repr(value) in err
    ok = build_parser().parse_args(["serve", "m.deepae", "--batch-wait-ms", "1000"])
    assert ok.batch_wait_ms == 1000.0


def test_create_app_refuses_a_wait_that_never_ends(models):
    for wait in (math.inf, math.nan, -1.0):
        with pytest.raises(ValueError, match="batch_wait_ms"):
            create_app([servable("plain", models[0]["plain"])], batch_wait_ms=wait)


def test_cli_refuses_a_bad_model_file_in_one_line(tmp_path, capsys):
    from deepae.cli.main import main

    bad = tmp_path / "broken.deepae"
    bad.write_bytes(b"not a model")
    assert main(["serve", str(bad), "--port", "1"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("deepae: error: cannot serve")
    assert "broken.deepae" in err[0]
    assert main(["serve", str(bad), str(bad)]) == 1
    assert "--name" in capsys.readouterr().err


# -- a real server ------------------------------------------------------------------------------
def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(path, *extra, name="fraud"):
    port = free_port()
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    proc = subprocess.Popen([sys.executable, "-m", "deepae.cli.main", "serve", str(path),
                             "--port", str(port), "--name", name, *extra],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"deepae serve exited: {proc.stderr.read().decode()[-2000:]}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/health/ready",
                                        timeout=2) as r:
                if r.status == 200:
                    return proc, port
        except OSError:
            time.sleep(0.2)
    proc.kill()
    raise AssertionError("deepae serve did not become ready in 90 s")


def stop(proc):
    if proc.poll() is None:
        proc.kill()
        proc.wait(10)
    proc.stderr.close()


@pytest.fixture(scope="module")
def server(fraud):
    proc, port = start_server(fraud[1])
    yield port
    stop(proc)


def post(port, path, doc, timeout=30):
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=json.dumps(doc).encode(),
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def test_tritonclient_against_a_real_server(server, fraud):
    httpclient = pytest.importorskip("tritonclient.http")
    det, path, rows = fraud
    want = deepae.load(path).decision_function(rows)
    client = httpclient.InferenceServerClient(url=f"127.0.0.1:{server}",
                                              connection_timeout=10, network_timeout=30)
    assert client.is_server_live() and client.is_server_ready()
    assert client.is_model_ready("fraud")
    meta = client.get_model_metadata("fraud")
    assert [i["name"] for i in meta["inputs"]] == list(rows.columns)
    for binary in (False, True):
        inputs = []
        for c in rows.columns:
            kind = "BYTES" if c == "merchant" else "FP32"
            data = (np.asarray([str(v).encode() for v in rows[c]], dtype=object)
                    if kind == "BYTES" else rows[c].to_numpy(np.float32))
            inp = httpclient.InferInput(c, [len(rows)], kind)
            inp.set_data_from_numpy(data, binary_data=binary)
            inputs.append(inp)
        outputs = [httpclient.InferRequestedOutput(n, binary_data=binary)
                   for n in ("score", "label")]
        res = client.infer("fraud", inputs, outputs=outputs)
        np.testing.assert_allclose(res.as_numpy("score"), want, rtol=1e-6)
        assert res.as_numpy("label").tolist() == (want > det.threshold_).astype(int).tolist()
        every = client.infer("fraud", inputs, parameters={"explain": 2})  # binary outputs
        assert every.as_numpy("explanation_column").shape == (len(rows), 2)
    client.close()


def test_plain_http_against_a_real_server(server, fraud):
    det, path, rows = fraud
    status, doc = post(server, "/v2/models/fraud/infer", {"inputs": table_inputs(rows)})
    assert status == 200
    (score,) = [o for o in doc["outputs"] if o["name"] == "score"]
    np.testing.assert_allclose(score["data"], deepae.load(path).decision_function(rows),
                               rtol=1e-6)
    status, doc = post(server, "/v2/models/fraud/infer", {"inputs": table_inputs(rows)[1:]})
    assert status == 400 and "'Time'" in doc["error"]
    status, doc = post(server, "/v2/models/other/infer", {"inputs": []})
    assert status == 404 and "other" in doc["error"]
    with urllib.request.urlopen(f"http://127.0.0.1:{server}/metrics", timeout=10) as r:
        text = r.read().decode()
    assert metric(text, "deepae_requests_total", model="fraud", code="400") >= 1
    assert metric(text, "deepae_requests_total", model="fraud", code="200") >= 1


def read_reply(sock):
    """(status, JSON body) of one HTTP/1.1 reply with a Content-Length, read from `sock`."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"the server closed the connection: {data[:200]!r}"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = int(re.search(rb"(?i)content-length: *(\d+)", head).group(1))
    while len(body) < length:
        chunk = sock.recv(65536)
        assert chunk, "the server closed the connection inside the body"
        body += chunk
    return int(head.split()[1]), json.loads(body[:length])


def test_sigterm_finishes_the_request_in_flight(fraud):
    det, path, rows = fraud
    # provably in flight: the server has answered on this connection, then has the
    # request's headers and half its body when SIGTERM comes; the rest follows the signal,
    # and the request then waits 500 ms in the batcher
    proc, port = start_server(path, "--batch-wait-ms", "500")
    try:
        body = json.dumps({"inputs": table_inputs(rows)}).encode()
        with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
            sock.sendall(b"GET /v2/health/live HTTP/1.1\r\nHost: t\r\n\r\n")
            assert read_reply(sock) == (200, {"live": True})  # the connection is the server's
            sock.sendall(b"POST /v2/models/fraud/infer HTTP/1.1\r\nHost: t\r\n"
                         b"Content-Type: application/json\r\n"
                         b"Content-Length: %d\r\n\r\n" % len(body) + body[:len(body) // 2])
            time.sleep(0.1)
            proc.send_signal(signal.SIGTERM)
            time.sleep(0.3)
            assert proc.poll() is None  # still finishing the request
            sock.sendall(body[len(body) // 2:])
            status, doc = read_reply(sock)
        assert proc.wait(30) == 0
        assert status == 200, doc
        (score,) = [o for o in doc["outputs"] if o["name"] == "score"]
        np.testing.assert_allclose(score["data"], deepae.load(path).decision_function(rows),
                                   rtol=1e-6)
        assert not math.isnan(score["data"][0])
        log = proc.stderr.read().decode()
        assert f"serving 1 model(s) at http://127.0.0.1:{port}/v2/models/{{fraud}}" in log
        assert "Traceback" not in log
    finally:
        stop(proc)
