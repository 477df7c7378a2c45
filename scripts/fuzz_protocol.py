"""Fuzz the v2 request parser of `deepae serve`: mutated and forged requests must parse or
raise InferenceError (a 4xx), nothing else, in bounded memory.

    python scripts/fuzz_protocol.py [--n 10000] [--seed 0] [--json fuzz.json]
                                    [--max-extra-mb 200]

Valid requests (JSON and the binary tensor extension; FP32, INT64, BOOL and BYTES tensors of
random shapes) are mutated: 1 to 4 edits each (bit flips, byte overwrites, insertions,
deletions, truncation, a run of 400 digits); a third of the cases change the
Inference-Header-Content-Length header, and one case in four forges the JSON header instead
(huge shapes, sizes that do not add up, wrong types, deep nesting, integers of 400 digits
that no float holds and of 5,000, more than Python reads). Each body goes to `deepae.serve.protocol.parse_request`.
The exit status is 1 if any other exception was raised, if a parsed tensor's size differs
from its declared shape, or if the peak resident set grew by more than --max-extra-mb
(Linux: VmHWM).
"""

from __future__ import annotations

import argparse
import json
import struct
import sys
from pathlib import Path

import numpy as np

from deepae.serve.protocol import InferenceError, parse_request

KINDS = {"FP32": np.float32, "INT64": np.int64, "BOOL": np.bool_}
HUGE = 10 ** 400  # an int that float() refuses (OverflowError)
LONG = b"9" * 5000  # more digits than json.loads converts (sys.get_int_max_str_digits)


def peak_mb() -> float:
    status = Path("/proc/self/status")
    if not status.exists():
        return 0.0
    for line in status.read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def valid_request(rng) -> tuple[bytes, str | None]:
    specs, blobs, binary = [], [], bool(rng.integers(2))
    for i in range(int(rng.integers(1, 4))):
        shape = [int(d) for d in rng.integers(0, 4, size=int(rng.integers(1, 3)))]
        kind = str(rng.choice([*KINDS, "BYTES"]))
        n = int(np.prod(shape))
        if kind == "BYTES":
            values = [bytes(rng.integers(0, 256, int(rng.integers(0, 5)), dtype=np.uint8))
                      for _ in range(n)]
            raw = b"".join(struct.pack("<I", len(v)) + v for v in values)
            data = [v.decode("latin-1") for v in values]
        else:
            arr = rng.normal(size=n).astype(KINDS[kind])
            raw, data = arr.tobytes(), arr.tolist()
        spec = {"name": f"t{i}", "datatype": kind, "shape": shape}
        if binary:
            spec["parameters"] = {"binary_data_size": len(raw)}
            blobs.append(raw)
        else:
            spec["data"] = data
        specs.append(spec)
    head = json.dumps({"inputs": specs, "parameters": {"binary_data_output": binary}}).encode()
    return head + b"".join(blobs), str(len(head)) if binary else None


def forged(rng) -> tuple[bytes, str | None]:
    shape = [[2 ** 40], [2 ** 31, 2 ** 31], [-1], [3], "x", [[1]]][rng.integers(6)]
    data = [[1.0, [2.0]], [1] * 3, "abc", None, [[[[[[[[[[1]]]]]]]]]], [1e400], [HUGE],
            [0.5, -HUGE, 2], [[HUGE], [1]], ["LONG"]][rng.integers(10)]
    spec = {"name": "x", "datatype": str(rng.choice(["FP32", "BYTES", "INT8", "FP16", "FP64",
                                                     "INT64", "UINT64", "BOOL"])),
            "shape": shape}
    if rng.integers(2):
        spec["parameters"] = {"binary_data_size": int(rng.integers(-2, 2 ** 40))}
    else:
        spec["data"] = data
    head = json.dumps({"inputs": [spec]}).encode().replace(b'"LONG"', LONG)
    tail = bytes(rng.integers(0, 256, int(rng.integers(0, 64)), dtype=np.uint8))
    return head + tail, str(len(head))


def mutate(body: bytes, rng) -> bytes:
    raw = bytearray(body)
    for _ in range(int(rng.integers(1, 5))):
        if not raw:
            break
        op, pos = int(rng.integers(6)), int(rng.integers(len(raw)))
        if op == 0:
            raw[pos] ^= 1 << int(rng.integers(8))
        elif op == 1:
            raw[pos] = int(rng.integers(256))
        elif op == 2:
            raw[pos:pos] = bytes(rng.integers(0, 256, int(rng.integers(1, 8)), dtype=np.uint8))
        elif op == 3:
            del raw[pos:pos + int(rng.integers(1, 8))]
        elif op == 4:
            del raw[pos:]
        else:  # a number that may turn into an integer of 400 digits
            raw[pos:pos] = b"9" * 400
    return bytes(raw)


def one_case(rng) -> str:
    """'parsed', 'refused' or the name of an unexpected exception."""
    if rng.integers(4) == 0:
        body, header = forged(rng)
    else:
        body, header = valid_request(rng)
        body = mutate(body, rng)
    if rng.integers(3) == 0:
        header = str(rng.choice(["0", "-5", "abc", str(len(body) + 1), str(len(body))]))
    try:
        req = parse_request(body, header)
    except InferenceError:
        return "refused"
    except Exception as e:  # noqa: BLE001 - what the fuzzer is for
        return f"{type(e).__name__}: {e}"[:200]
    for t in req.inputs.values():
        if t.data.size != int(np.prod(t.data.shape)):
            return f"tensor {t.name!r} holds {t.data.size} values for shape {t.data.shape}"
    return "parsed"


def run(n=10_000, seed=0) -> dict:
    rng = np.random.default_rng(seed)
    for _ in range(50):  # warm-up, then the peak memory is measured from here
        one_case(rng)
    start = peak_mb()
    counts: dict = {}
    failures = []
    for i in range(n):
        outcome = one_case(rng)
        key = outcome if outcome in ("parsed", "refused") else "unexpected"
        counts[key] = counts.get(key, 0) + 1
        if key == "unexpected" and len(failures) < 20:
            failures.append({"case": i, "error": outcome})
    return {"cases": n, "seed": seed, **counts, "failures": failures,
            "extra_peak_mb": round(peak_mb() - start, 1)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=10_000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json")
    ap.add_argument("--max-extra-mb", type=float, default=200.0)
    args = ap.parse_args()
    res = run(args.n, args.seed)
    print(f"{res['cases']} cases: {res.get('parsed', 0)} parsed, {res.get('refused', 0)} "
          f"refused with InferenceError, {res.get('unexpected', 0)} unexpected; peak memory "
          f"+{res['extra_peak_mb']} MB")
    for f in res["failures"]:
        print(f"  case {f['case']}: {f['error']}")
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=1))
    bad = res.get("unexpected", 0) or res["extra_peak_mb"] > args.max_extra_mb
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
