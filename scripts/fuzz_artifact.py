"""Fuzz the artifact reader: forged model files must load or raise ArtifactError, nothing
else, write nothing outside their own folder, and take bounded memory.

    python scripts/fuzz_artifact.py [--n 10000] [--seed 0] [--json fuzz_artifact.json]
                                    [--max-extra-mb 300]

Seed artifacts of five kinds (Autoencoder, AnomalyDetector with two members, HammingIndex,
SemanticHasher, ImageCodec) are trained here in seconds, then each case applies one to three
mutations, chosen at random among

- bytes: flips, overwrites, insertions, deletions, truncation, a splice of another artifact;
- members: renamed to hostile names (``../x.keras``, absolute paths, sub-folders, long or
  non-ASCII names), duplicated, dropped, added, or padded into a decompression bomb; a
  central-directory size that lies; a member compressed with bzip2 or LZMA, or flagged as
  encrypted;
- JSON: deepae.json and each model's Keras config.json with keys dropped, values of another
  type, numbers scaled up to a thousandfold, model lists of hostile names, other kinds,
  unknown format versions, deep nesting, Keras classes swapped (``Lambda``, unknown modules);
  widths, input shapes and deepae's own layers (GDN, the factorised prior) widened a hundred
  to a thousandfold;
- inner bytes: flips in the HDF5 weights and in the ``.npz`` arrays, re-zipped so that the
  CRCs hold and the damage reaches the parsers.

Each forged file is written to a fresh folder and given to ``deepae.load`` and, when it
loads, to ``deepae info``. A case fails if anything but `ArtifactError` (or
`FileNotFoundError`) escapes, if ``deepae info`` raises, if a file appears anywhere but the
case's folder (the process's temporary and working folders are private ones, watched, and
the system temporary folder is watched for the hostile names), or if the
peak resident memory grows by more than --max-extra-mb over the warmed-up process. Prints a
table, writes JSON, exits 1 on any failure.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import resource
import sys
import tempfile
import time
import zipfile
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

HOSTILE_NAMES = ["../evil", "../../evil", "/tmp/evil", "sub/evil", "..", ".", "", "MODEL",
                 "model\x00x", "évil", "a" * 300, "model.keras", "C:\\evil", "model/../model",
                 "member0_model", "member1_model", "member9999_model", "analysis", "prior"]
KINDS = ["Autoencoder", "AutoencoderReducer", "AnomalyDetector", "HammingIndex",
         "SemanticIndex", "SemanticHasher", "Denoiser", "SuperResolver", "ImageCodec", "Evil"]


# -- seeds ---------------------------------------------------------------------------------
def seed_artifacts(rng) -> dict[str, bytes]:
    """Small real artifacts of five kinds, as bytes."""
    import deepae
    from deepae.persistence import artifact_bytes

    out = {}
    x = rng.normal(size=(96, 6)).astype(np.float32)
    ae = deepae.Autoencoder(hidden_units=(8,), latent_dim=3)
    ae.fit(x, epochs=1, verbose=0, random_state=0)
    from deepae.apps.autoencoder import autoencoder_state

    meta, arrays = autoencoder_state(ae)
    out["Autoencoder"] = artifact_bytes("Autoencoder", meta, models={"model": ae},
                                        arrays=arrays)
    det = deepae.AnomalyDetector(hidden_units=(6,), n_components=2, epochs=2, n_estimators=2,
                                 random_state=0, verbose=0).fit(x)
    out["AnomalyDetector"] = det.__getstate__()["_artifact_bytes"]
    index = deepae.HammingIndex(n_bits=16)
    index.add(rng.integers(0, 256, size=(50, 2)).astype(np.uint8))  # packed 16-bit codes
    with tempfile.TemporaryDirectory() as tmp:
        index.save(Path(tmp) / "i.deepae")
        out["HammingIndex"] = (Path(tmp) / "i.deepae").read_bytes()
    hasher = deepae.SemanticHasher(n_bits=8, hidden_units=(8,), epochs=1, random_state=0,
                                   verbose=0).fit(x)
    out["SemanticHasher"] = hasher.__getstate__()["_artifact_bytes"]
    imgs = rng.random((4, 16, 16, 1)).astype(np.float32)
    codec = deepae.ImageCodec(filters=4, latent_channels=3, levels=2, patch_size=8,
                              patches_per_epoch=16, epochs=1, batch_size=8, random_state=0,
                              verbose=0).fit(imgs)
    out["ImageCodec"] = codec.__getstate__()["_artifact_bytes"]
    return out


# -- mutations -----------------------------------------------------------------------------
def members(data: bytes) -> list[tuple[str, bytes]]:
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        return [(i.filename, zf.read(i)) for i in zf.infolist()]


def rezip(items, compression=zipfile.ZIP_DEFLATED) -> bytes:
    """Items are (name, bytes) or (name, bytes, compression method)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=compression) as zf, \
            contextlib.suppress(Exception):
        for name, data, *method in items:
            with contextlib.suppress(Exception):
                zf.writestr(name, data, compress_type=method[0] if method else None)
    return buf.getvalue()


def set_encrypted(data: bytes, rng) -> bytes:
    """Set the 'encrypted' flag of a central-directory entry (and of its local header)."""
    b = bytearray(data)
    starts = [i for i in range(len(b) - 4) if b[i:i + 4] in (b"PK\x01\x02", b"PK\x03\x04")]
    if starts:
        i = starts[int(rng.integers(0, len(starts)))]
        b[i + (8 if b[i + 2] == 1 else 6)] |= 1
    return bytes(b)


def mutate_bytes(data: bytes, rng, other: bytes) -> bytes:
    b = bytearray(data)
    for _ in range(int(rng.integers(1, 5))):
        op = rng.choice(["flip", "set", "insert", "delete", "cut", "splice"])
        i = int(rng.integers(0, len(b) + 1))
        if op == "flip" and b:
            b[i % len(b)] ^= 1 << int(rng.integers(0, 8))
        elif op == "set" and b:
            b[i % len(b)] = int(rng.integers(0, 256))
        elif op == "insert":
            b[i:i] = bytes([int(rng.integers(0, 256))])
        elif op == "delete" and b:
            del b[i % len(b)]
        elif op == "cut":
            b = b[:i]
        elif op == "splice" and other:
            j = int(rng.integers(0, len(other)))
            b = b[:i] + bytearray(other[j:])
    return bytes(b)


def random_value(rng, depth=0):
    kind = int(rng.integers(0, 9))
    if kind == 0:
        return None
    if kind == 1:
        return bool(rng.integers(0, 2))
    if kind == 2:
        return int(rng.choice([-1, 0, 1, 7, 2**31, 10**9, 10**18]))
    if kind == 3:
        return float(rng.choice([0.5, -1e300, 1e308, float("nan")]))
    if kind == 4:
        return str(rng.choice(["", "x", "../../evil", "model", "standard", "dense", "conv"]))
    if kind == 5 and depth < 3:
        return [random_value(rng, depth + 1) for _ in range(int(rng.integers(0, 4)))]
    if kind == 6 and depth < 3:
        return {str(rng.choice(["a", "kind", "config", "params"])): random_value(rng, depth + 1)}
    if kind == 7:
        deep = []
        for _ in range(200):
            deep = [deep]
        return deep
    return "a" * int(rng.choice([1, 1000, 100_000]))


def paths_in(obj, prefix=()):
    """Every (path, value) in a JSON tree."""
    yield prefix, obj
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from paths_in(v, (*prefix, k))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from paths_in(v, (*prefix, i))


def set_path(obj, path, value):
    for k in path[:-1]:
        obj = obj[k]
    if value is _DELETE:
        if isinstance(obj, dict):
            obj.pop(path[-1], None)
        elif isinstance(obj, list) and obj:
            obj.pop(path[-1])
    else:
        obj[path[-1]] = value


_DELETE = object()


def mutate_json(text: bytes, rng, *, keras: bool) -> bytes:
    if rng.random() < 0.03:  # nesting deeper than any parser's recursion limit
        return b"[" * 100_000 + b"]" * 100_000
    try:
        obj = json.loads(text)
    except (ValueError, RecursionError):
        return text
    for _ in range(int(rng.integers(1, 4))):
        nodes = [p for p, _ in paths_in(obj) if p]
        if not nodes:
            break
        path = nodes[int(rng.integers(0, len(nodes)))]
        parent = obj
        for k in path[:-1]:
            parent = parent[k]
        old = parent[path[-1]]
        r = int(rng.integers(0, 6))
        if r == 0:
            set_path(obj, path, _DELETE)
        elif r == 1 and isinstance(old, int | float) and not isinstance(old, bool):
            set_path(obj, path, old * int(rng.choice([2, 10, 1000])) + 1)
        elif r == 2 and path[-1] == "models":
            set_path(obj, path, list(rng.choice(HOSTILE_NAMES, size=int(rng.integers(1, 3)))))
        elif r == 3 and path[-1] == "kind":
            set_path(obj, path, str(rng.choice(KINDS)))
        elif r == 4 and keras and path[-1] in ("class_name", "module", "registered_name"):
            set_path(obj, path, str(rng.choice(["Lambda", "Dense", "os", "builtins",
                                                "keras.layers", "Functional", "Sequential",
                                                "deepae>Autoencoder", "Evil"])))
        else:
            set_path(obj, path, random_value(rng))
    try:
        return json.dumps(obj).encode()
    except (ValueError, TypeError, RecursionError):
        return text


def mutate_h5(data: bytes, rng) -> bytes:
    return mutate_bytes(data, rng, b"")


def widen_keras(data: bytes, rng) -> bytes:
    """Scale every width in a Keras config.json up: the model would need far more weights
    than the file holds."""
    try:
        cfg = json.loads(data)
    except (ValueError, RecursionError):
        return data
    factor = int(rng.choice([100, 1000]))
    for path, value in list(paths_in(cfg)):
        if path and path[-1] in ("batch_shape", "input_shape") and isinstance(value, list) \
                and value and isinstance(value[-1], int):
            set_path(cfg, path, [*value[:-1], value[-1] * factor])
        elif path and path[-1] in ("units", "filters", "latent_dim", "hidden_units",
                                   "latent_channels") and value:
            if isinstance(value, int):
                set_path(cfg, path, value * factor)
            elif isinstance(value, list):
                set_path(cfg, path, [v * factor if isinstance(v, int) else v for v in value])
    return json.dumps(cfg).encode()


def lie_about_size(data: bytes, rng) -> bytes:
    """Patch a central-directory entry's uncompressed size (and sometimes the local one)."""
    b = bytearray(data)
    starts = []
    pos = b.find(b"PK\x01\x02")
    while pos >= 0:
        starts.append(pos)
        pos = b.find(b"PK\x01\x02", pos + 4)
    if not starts:
        return data
    pos = starts[int(rng.integers(0, len(starts)))]
    value = int(rng.choice([0, 1, 10, 2**31, 2**32 - 1]))
    b[pos + 24:pos + 28] = value.to_bytes(4, "little")
    return bytes(b)


def forge(seed: bytes, rng, other: bytes) -> tuple[bytes, list[str]]:
    ops = []
    items = members(seed)
    raw = None
    for _ in range(int(rng.integers(1, 4))):
        op = str(rng.choice(["bytes", "rename", "duplicate", "drop", "add", "bomb", "lie",
                             "header", "keras", "widen", "h5", "npz", "method", "encrypt"],
                            p=[.07, .07, .04, .05, .04, .05, .05, .19, .14, .08, .08, .08,
                               .04, .02]))
        ops.append(op)
        if op == "bytes":
            raw = mutate_bytes(rezip(items) if raw is None else raw, rng, other)
            continue
        if op == "lie":
            raw = lie_about_size(rezip(items) if raw is None else raw, rng)
            continue
        if op == "encrypt":
            raw = set_encrypted(rezip(items) if raw is None else raw, rng)
            continue
        if raw is not None:  # structured edits need a readable zip
            try:
                items = members(raw)
            except Exception:
                continue
            raw = None
        i = int(rng.integers(0, len(items)))
        name, data = items[i][:2]
        if op == "rename":
            items[i] = (str(rng.choice(HOSTILE_NAMES)) + str(rng.choice(["", ".keras"])), data)
        elif op == "method":  # bzip2 or LZMA, a bomb in the header or not
            method = int(rng.choice([zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA]))
            pad = b" " * int(rng.choice([0, 1 << 20])) if name == "deepae.json" else b""
            items[i] = (name, data + pad, method)
        elif op == "duplicate":
            items.append((name, data))
        elif op == "drop":
            items.pop(i)
            if not items:
                items = [("deepae.json", b"{}")]
        elif op == "add":
            items.append((str(rng.choice(HOSTILE_NAMES)) + ".keras", other[:5000]))
        elif op == "bomb":
            n = int(rng.choice([9 << 20, 40 << 20]))
            items[i] = (name, data + b"\0" * n if name != "deepae.json" else data + b" " * n)
        elif op == "header":
            j = [k for k, (nm, *_) in enumerate(items) if nm == "deepae.json"]
            if j:
                items[j[0]] = ("deepae.json", mutate_json(items[j[0]][1], rng, keras=False))
        elif op in ("keras", "widen", "h5"):
            ks = [k for k, (nm, *_) in enumerate(items) if nm.endswith(".keras")]
            if not ks:
                continue
            k = ks[int(rng.integers(0, len(ks)))]
            try:
                inner = members(items[k][1])
            except Exception:
                continue
            for m, (nm, d) in enumerate(inner):
                if nm == "config.json" and op in ("keras", "widen"):
                    inner[m] = (nm, mutate_json(d, rng, keras=True) if op == "keras"
                                else widen_keras(d, rng))
                elif nm == "model.weights.h5" and op == "h5":
                    inner[m] = (nm, mutate_h5(d, rng))
            items[k] = (items[k][0], rezip(inner, zipfile.ZIP_STORED))
        elif op == "npz":
            ks = [k for k, (nm, *_) in enumerate(items) if nm == "arrays.npz"]
            if ks:
                try:
                    inner = members(items[ks[0]][1])
                    if inner:
                        m = int(rng.integers(0, len(inner)))
                        inner[m] = (inner[m][0], mutate_bytes(inner[m][1], rng, b""))
                    items[ks[0]] = ("arrays.npz", rezip(inner))
                except Exception:
                    items[ks[0]] = ("arrays.npz", mutate_bytes(items[ks[0]][1], rng, b""))
    return (rezip(items) if raw is None else raw), ops


# -- the run -------------------------------------------------------------------------------
def snapshot(folders) -> set:
    found = set()
    for folder in folders:
        with contextlib.suppress(OSError):
            found |= {str(p) for p in Path(folder).iterdir()}
    return found


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run(n: int, seed: int = 0, max_extra_mb: float = 300.0, verbose: bool = True) -> dict:
    import warnings

    import keras

    import deepae
    from deepae.cli.main import main as cli
    from deepae.exceptions import ArtifactError

    warnings.simplefilter("ignore")  # forged files warn (other versions, duplicate names)
    rng = np.random.default_rng(seed)
    seeds = seed_artifacts(rng)
    names = sorted(seeds)
    # a private temporary folder (what tempfile, Keras and TensorFlow use from here on) and
    # an empty working folder: any file the loader writes outside a case's folder shows there
    work = Path(tempfile.mkdtemp(prefix="fuzz_artifact_"))
    (work / "tmp").mkdir()
    (work / "cwd").mkdir()
    (work / "failures").mkdir()
    tempfile.tempdir = str(work / "tmp")
    os.environ["TMPDIR"] = str(work / "tmp")
    cwd = os.getcwd()
    os.chdir(work / "cwd")
    watch = [work / "tmp", work / "cwd", work]
    # what a hostile name would reach from a case's folder or from the real temporary folder
    outer_tmp = work.parent
    evil_before = {str(p) for p in Path(outer_tmp).glob("*evil*")}
    # warm up: every seed loads and is described once, so the baseline holds TensorFlow's
    # own allocations
    for name in names:
        (work / "seed.deepae").write_bytes(seeds[name])
        obj = deepae.load(work / "seed.deepae")
        assert type(obj).__name__ == name, (name, type(obj).__name__)
        with contextlib.redirect_stdout(io.StringIO()):
            assert cli(["info", str(work / "seed.deepae")]) == 0
    base = peak_mb()
    before = snapshot(watch)
    outcomes, failures, ops_count = {}, [], {}
    t0 = time.perf_counter()
    for case in range(n):
        name = names[case % len(names)]
        other = seeds[names[(case + 1) % len(names)]]
        data, ops = forge(seeds[name], rng, other)
        for op in ops:
            ops_count[op] = ops_count.get(op, 0) + 1
        folder = work / "case"
        folder.mkdir()
        path = folder / "m.deepae"
        path.write_bytes(data)
        outcome = None
        try:
            deepae.load(path)
            outcome = "loaded"
            err = io.StringIO()
            with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
                rc = cli(["info", str(path)])
            if rc != 0:  # a file that loads is one that deepae info describes
                raise RuntimeError(f"deepae info exited with {rc} on a file that loads: "
                                   f"{err.getvalue().strip()[:200]}")
        except (ArtifactError, FileNotFoundError):
            outcome = outcome or "ArtifactError"
        except Exception as e:  # noqa: BLE001 - what the fuzzer looks for
            outcome = f"FAIL {type(e).__name__}"
            failures.append({"case": case, "seed_kind": name, "ops": ops,
                             "error": f"{type(e).__name__}: {str(e)[:300]}"})
            (work / "failures" / f"case{case}.deepae").write_bytes(data)
        outcomes[outcome] = outcomes.get(outcome, 0) + 1
        left = sorted(p.name for p in folder.iterdir())
        if left != ["m.deepae"]:
            failures.append({"case": case, "ops": ops, "error": f"files written: {left}"})
        for p in folder.iterdir():
            p.unlink()
        folder.rmdir()
        extra = peak_mb() - base
        if extra > max_extra_mb:
            failures.append({"case": case, "seed_kind": name, "ops": ops,
                             "error": f"peak memory grew by {extra:.0f} MB"})
            break
        if case % 200 == 199:
            keras.backend.clear_session()
        if verbose and case % 1000 == 999:
            print(f"{case + 1} cases, {time.perf_counter() - t0:.0f} s, "
                  f"{len(failures)} failures", file=sys.stderr, flush=True)
    new = snapshot(watch) - before
    new |= {str(p) for p in Path(outer_tmp).glob("*evil*")} - evil_before
    os.chdir(cwd)
    if new:
        failures.append({"case": None, "error": f"files appeared outside: {sorted(new)[:10]}"})
    seconds = time.perf_counter() - t0
    (work / "seed.deepae").unlink()
    for p in (work / "tmp", work / "cwd", work / "failures"):
        with contextlib.suppress(OSError):
            p.rmdir()
    with contextlib.suppress(OSError):
        work.rmdir()  # kept, with the failing files, if any failed
    return {"cases": n, "seconds": round(seconds, 1), "outcomes": outcomes,
            "mutations": ops_count, "failures": failures,
            "peak_extra_mb": round(peak_mb() - base, 1), "base_mb": round(base, 1),
            "failure_files": str(work / "failures") if failures else None}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=10_000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--max-extra-mb", type=float, default=300.0)
    ap.add_argument("--json")
    args = ap.parse_args(argv)
    res = run(args.n, args.seed, args.max_extra_mb)
    print(f"\nartifact fuzzer: {res['cases']} cases in {res['seconds']} s "
          f"(python scripts/fuzz_artifact.py --n {args.n} --seed {args.seed})")
    print(f"{'outcome':<28} {'cases':>8}")
    for k, v in sorted(res["outcomes"].items(), key=lambda kv: -kv[1]):
        print(f"{k:<28} {v:>8}")
    print(f"mutations applied: {res['mutations']}")
    print(f"peak memory over the warmed-up process: {res['peak_extra_mb']} MB "
          f"(limit {args.max_extra_mb:g})")
    print(f"failures: {len(res['failures'])}")
    for f in res["failures"][:20]:
        print("  ", f)
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=1))
    return 1 if res["failures"] else 0


if __name__ == "__main__":
    sys.exit(main())
