"""Serving: `deepae serve` (Open Inference Protocol v2) beside the same detector in process.

    python benchmarks/serving.py [--seconds 30] [--json benchmarks/serving.json]
                                 [--rows 20000] [--epochs 3] [--bulk-concurrency 4]

One run measures, on loopback only:
1. An AnomalyDetector trained for --epochs epochs on --rows normal rows of
   `make_transactions` (30 numeric columns and the categorical merchant column), saved and
   served by `deepae serve` in its own process (default options: 2 ms batch wait).
2. Single-row requests (JSON) at concurrency 1, 8 and 64 for --seconds each: requests/s,
   p50 and p99 latency. The load comes from another process (this script again, with
   --load: one thread and one keep-alive connection per concurrent client, no TensorFlow).
3. 1,024-row requests, JSON and the binary tensor data extension, at --bulk-concurrency
   for --seconds each: rows/s, against `decision_function` in process on 1,024-row
   DataFrames in the same run (and, when the detector has `export`, the exported SavedModel
   and ONNX model run in process on the same rows).
4. Requests lost (no answer) or answered 5xx over the whole run (must be 0), and the
   server's resident memory (VmRSS) after start-up and at the end.
Targets (issue 19): p99 < 20 ms at concurrency 8; 1,024-row rows/s at least half of the
in-process rate.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

COMMAND = "python benchmarks/serving.py"
BULK = 1024


# -- the load generator (its own process, no TensorFlow) ------------------------------------------
def _client(port, body, headers, seconds, out):
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    stop = time.perf_counter() + seconds
    while time.perf_counter() < stop:
        t0 = time.perf_counter()
        try:
            conn.request("POST", "/v2/models/fraud/infer", body=body, headers=headers)
            resp = conn.getresponse()
            resp.read()
            out["latency"].append(time.perf_counter() - t0)
            out["codes"][resp.status] = out["codes"].get(resp.status, 0) + 1
        except (OSError, http.client.HTTPException):
            out["lost"] += 1
            conn.close()
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.close()


def run_load(port, body_file, header_length, concurrency, seconds) -> dict:
    """`concurrency` clients posting the body in `body_file` for `seconds`."""
    body = Path(body_file).read_bytes()
    headers = {"Content-Type": "application/json"}
    if header_length:
        headers["Inference-Header-Content-Length"] = str(header_length)
    outs = [{"latency": [], "codes": {}, "lost": 0} for _ in range(concurrency)]
    threads = [threading.Thread(target=_client, args=(port, body, headers, seconds, o))
               for o in outs]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - start
    lat = np.sort(np.concatenate([o["latency"] for o in outs]))
    codes: dict = {}
    for o in outs:
        for k, v in o["codes"].items():
            codes[str(k)] = codes.get(str(k), 0) + v
    return {"requests": int(lat.size), "seconds": wall, "requests_per_s": lat.size / wall,
            "p50_ms": float(np.percentile(lat, 50) * 1e3) if lat.size else None,
            "p99_ms": float(np.percentile(lat, 99) * 1e3) if lat.size else None,
            "codes": codes, "lost": sum(o["lost"] for o in outs)}


def load_process(port, body, header_length, concurrency, seconds, tmp) -> dict:
    """`run_load` in a child process (so the client's threads do not share our GIL)."""
    body_file = Path(tmp) / f"body_{concurrency}_{len(body)}.bin"
    body_file.write_bytes(body)
    res = subprocess.run([sys.executable, __file__, "--load", str(port), str(body_file),
                          str(header_length or 0), str(concurrency), str(seconds)],
                         capture_output=True, text=True, timeout=seconds + 120)
    if res.returncode:
        raise RuntimeError(f"load generator failed: {res.stderr[-2000:]}")
    return json.loads(res.stdout)


# -- requests ------------------------------------------------------------------------------------
def json_body(rows) -> bytes:
    inputs = [{"name": c, "shape": [len(rows)],
               "datatype": "BYTES" if c == "merchant" else "FP32",
               "data": [str(v) for v in rows[c]] if c == "merchant"
               else rows[c].astype(np.float32).tolist()} for c in rows.columns]
    return json.dumps({"inputs": inputs}).encode()


def binary_body(rows) -> tuple[bytes, int]:
    specs, blobs = [], []
    for c in rows.columns:
        if c == "merchant":
            raw = b"".join(struct.pack("<I", len(b)) + b
                           for b in (str(v).encode() for v in rows[c]))
        else:
            raw = rows[c].to_numpy(np.float32).tobytes()
        specs.append({"name": c, "shape": [len(rows)],
                      "datatype": "BYTES" if c == "merchant" else "FP32",
                      "parameters": {"binary_data_size": len(raw)}})
        blobs.append(raw)
    head = json.dumps({"inputs": specs, "parameters": {"binary_data_output": True}}).encode()
    return head + b"".join(blobs), len(head)


# -- the server ----------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(model_path, port):
    proc = subprocess.Popen([sys.executable, "-m", "deepae.cli.main", "serve", str(model_path),
                             "--name", "fraud", "--port", str(port), "--log-level", "warning"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("deepae serve exited at start-up")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/health/ready",
                                        timeout=2):
                return proc
        except OSError:
            time.sleep(0.25)
    proc.kill()
    raise RuntimeError("deepae serve was not ready in 120 s")


def rss_mib(pid) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


# -- in process ----------------------------------------------------------------------------------
def rows_per_s(fn, seconds) -> float:
    fn()  # warm
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        fn()
        n += 1
    return n * BULK / (time.perf_counter() - start)


def exported_rates(det, rows, tmp, seconds) -> dict:
    """In-process rows/s of the exported SavedModel and ONNX model, where `export` exists."""
    if not hasattr(det, "export"):
        return {"saved_model": "not available (no export in this deepae)",
                "onnx": "not available (no export in this deepae)"}
    from deepae.exporting import input_names

    names = input_names(rows.columns)
    cats = set(det.describe()["columns"]["categorical"])
    arrays = {names[c]: (rows[c].astype(str).to_numpy(object) if c in cats
                         else rows[c].to_numpy(np.float32)) for c in rows.columns}
    want = det.decision_function(rows)
    out = {}
    try:
        import tensorflow as tf

        path = det.export(Path(tmp) / "saved_model", format="saved_model")
        fn = tf.saved_model.load(str(path)).signatures["serving_default"]
        feed = {k: tf.constant(v) for k, v in arrays.items()}
        out["saved_model_max_abs_diff"] = float(np.abs(fn(**feed)["score"].numpy() - want).max())
        out["saved_model"] = rows_per_s(lambda: fn(**feed), seconds)
    except Exception as e:  # noqa: BLE001 - reported in the table
        out["saved_model"] = f"not available ({type(e).__name__}: {str(e)[:120]})"
    try:
        import onnxruntime as ort

        path = det.export(Path(tmp) / "model.onnx", format="onnx")
        sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        score = [o.name for o in sess.get_outputs()].index("score")
        out["onnx_max_abs_diff"] = float(np.abs(sess.run(None, arrays)[score] - want).max())
        out["onnx"] = rows_per_s(lambda: sess.run(None, arrays), seconds)
    except Exception as e:  # noqa: BLE001 - reported in the table
        out["onnx"] = f"not available ({type(e).__name__}: {str(e)[:120]})"
    return out


# -- the run -------------------------------------------------------------------------------------
def train(args, tmp):
    from deepae import AnomalyDetector
    from deepae.datasets import make_transactions

    X, y = make_transactions(args.rows + 2 * BULK, fraud_rate=0.002, categorical=True,
                             random_state=0)
    X, y = X.reset_index(drop=True), y.to_numpy()
    start = time.perf_counter()
    det = AnomalyDetector(epochs=args.epochs, random_state=0).fit(X[:args.rows][y[:args.rows]
                                                                                == 0])
    fit_s = time.perf_counter() - start
    path = det.save(Path(tmp) / "fraud.deepae")
    return det, path, X.iloc[args.rows:args.rows + BULK].reset_index(drop=True), fit_s


def measure(args, tmp) -> dict:
    det, path, rows, fit_s = train(args, tmp)
    port = free_port()
    proc = start_server(path, port)
    res = {"rows": args.rows, "epochs": args.epochs, "fit_seconds": round(fit_s, 1),
           "columns": int(rows.shape[1]), "seconds_per_level": args.seconds, "loads": {}}
    try:
        res["rss_start_mib"] = rss_mib(proc.pid)
        single = json_body(rows.iloc[:1])
        for c in (1, 8, 64):
            print(f"  1 row, concurrency {c} ...", flush=True)
            res["loads"][f"1 row, concurrency {c}"] = load_process(
                port, single, None, c, args.seconds, tmp)
        bulk_json, (bulk_bin, head) = json_body(rows), binary_body(rows)
        for kind, body, n in (("JSON", bulk_json, None), ("binary", bulk_bin, head)):
            print(f"  {BULK} rows, {kind} ...", flush=True)
            res["loads"][f"{BULK} rows {kind}, concurrency {args.bulk_concurrency}"] = \
                load_process(port, body, n, args.bulk_concurrency, args.seconds, tmp)
        res["rss_end_mib"] = rss_mib(proc.pid)
    finally:
        proc.terminate()
        res["server_exit_code"] = proc.wait(60)
    print("  in process ...", flush=True)
    res["in_process_rows_per_s"] = rows_per_s(lambda: det.decision_function(rows),
                                              min(args.seconds, 10))
    res["exported"] = exported_rates(det, rows, tmp, min(args.seconds, 10))
    return res


def report(res) -> None:
    print(f"\n{COMMAND} --seconds {res['seconds_per_level']}")
    print(f"AnomalyDetector ({res['epochs']} epochs, {res['fit_seconds']} s, on the normal "
          f"rows of {res['rows']:,} make_transactions rows; {res['columns']} columns: 30 "
          "numbers, 1 category) behind `deepae serve` on 127.0.0.1; load from another process")
    head = f"{'load':<34} {'requests':>9} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'rows/s':>9}"
    print(head)
    print("-" * len(head))
    for name, r in res["loads"].items():
        rows = BULK if name.startswith(str(BULK)) else 1
        print(f"{name:<34} {r['requests']:>9} {r['requests_per_s']:>8.1f} {r['p50_ms']:>8.2f} "
              f"{r['p99_ms']:>8.2f} {r['requests_per_s'] * rows:>9,.0f}")
    print(f"{'in process: decision_function':<34} {'':>9} {'':>8} {'':>8} {'':>8} "
          f"{res['in_process_rows_per_s']:>9,.0f}")
    for fmt, v in res["exported"].items():
        if fmt.endswith("_max_abs_diff"):
            continue
        shown = f"{v:>9,.0f}" if isinstance(v, float) else v
        diff = res["exported"].get(f"{fmt}_max_abs_diff")
        shown += "" if diff is None else f"  (scores within {diff:.1e} of the library's)"
        print(f"{'in process: exported ' + fmt:<34} {'':>9} {'':>8} {'':>8} {'':>8} {shown}")
    p99 = res["loads"]["1 row, concurrency 8"]["p99_ms"]
    bulk = max(r["requests_per_s"] * BULK for n, r in res["loads"].items()
               if n.startswith(str(BULK)))
    ratio = bulk / res["in_process_rows_per_s"]
    print(f"\np99 at concurrency 8: {p99:.1f} ms (target < 20: "
          f"{'met' if p99 < 20 else 'NOT met'}); best 1,024-row rate / in process: "
          f"{ratio:.2f} (target >= 0.5: {'met' if ratio >= 0.5 else 'NOT met'})")
    print(f"lost or 5xx: {res['failed']} of {res['total_requests']} requests; server RSS "
          f"{res['rss_start_mib']:.0f} MiB after start-up, {res['rss_end_mib']:.0f} MiB at "
          f"the end; exit code on SIGTERM {res['server_exit_code']}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", default="benchmarks/serving.json")
    ap.add_argument("--seconds", type=float, default=30.0, help="per load level (default 30)")
    ap.add_argument("--rows", type=int, default=20000, help="training rows (default 20000)")
    ap.add_argument("--epochs", type=int, default=3, help="training epochs (default 3)")
    ap.add_argument("--bulk-concurrency", type=int, default=4,
                    help="clients sending 1,024-row requests (default 4)")
    ap.add_argument("--load", nargs=5, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.load:
        port, body, head, conc, secs = args.load
        print(json.dumps(run_load(int(port), body, int(head), int(conc), float(secs))))
        return
    with tempfile.TemporaryDirectory() as tmp:
        res = measure(args, tmp)
    loads = res["loads"].values()
    res["total_requests"] = sum(r["requests"] + r["lost"] for r in loads)
    res["failed"] = sum(r["lost"] + sum(v for k, v in r["codes"].items() if int(k) >= 500)
                        for r in loads)
    res["non_200"] = sum(v for r in loads for k, v in r["codes"].items() if k != "200")
    report(res)
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
