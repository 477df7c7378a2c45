"""`deepae index build | query | evaluate`: semantic hashing from the shell.

A thin layer over `deepae.SemanticIndex` (a `SemanticHasher` and the `HammingIndex` of a
collection's codes in one file): read the vectors, call the API, print. DATA and QUERIES may
be `-`: .npz, .npy, Parquet or CSV bytes on standard input, told apart by their first bytes.
"""

from __future__ import annotations

import sys
import time

from deepae.cli._options import (
    add_common_options,
    add_json_option,
    add_run_options,
    is_stdio,
    named_dataset,
    not_stdio,
    output_path,
    read_stdin,
    result,
    result_json,
    result_json_rows,
    result_text,
    run_parameters,
    save_trained,
    status,
    units,
)

__all__ = ["add_index_parser"]

LABEL_KEYS = ("y", "labels", "y_train", "label")
ID_KEYS = ("ids", "id")


def _vectors(source, *, key=None, split="train"):
    """(X (n, features), ids or None, labels or None) from a data set name or a file; an
    .npz may hold ``ids`` and ``y``/``labels`` beside the vectors."""
    import io

    import numpy as np

    from deepae.data.io import read_data, read_data_bytes

    named = named_dataset(source)
    if named is not None:
        (x_tr, y_tr), (x_te, y_te) = named
        x, y = (x_tr, y_tr) if split == "train" else (x_te, y_te)
        return x.reshape(len(x), -1), None, y
    archive = source if str(source).lower().endswith(".npz") else None
    if is_stdio(source):
        data = read_stdin("vectors (.npz, .npy, Parquet, or CSV with a header row)")
        x = read_data_bytes(data, key=key)
        archive = io.BytesIO(data) if data.startswith(b"PK\x03\x04") else None  # an .npz
    else:
        x = read_data(source, key=key)
    ids = labels = None
    if archive is not None:
        with np.load(archive, allow_pickle=False) as npz:
            ids = next((npz[k] for k in ID_KEYS if k in npz.files), None)
            labels = next((npz[k] for k in LABEL_KEYS if k in npz.files), None)
    return x.reshape(len(x), -1), ids, labels


def _load_index(path):
    import deepae

    not_stdio(path, "INDEX", "an index is read from a file that deepae can check before it "
              "loads it; name the file")
    obj = deepae.load(path)
    if not isinstance(obj, deepae.SemanticIndex):
        raise ValueError(f"{path!r} holds a {type(obj).__name__}, not a SemanticIndex "
                         "(written by `deepae index build`)")
    return obj


def cmd_build(args):
    import numpy as np

    from deepae import SemanticHasher, SemanticIndex

    output_path(args, args.out, args.data)
    run = run_parameters(args, args.out, args.data)
    X, ids, labels = _vectors(args.data, key=args.key)
    params = {"n_bits": args.bits, "epochs": args.epochs, "random_state": args.seed,
              "verbose": 0 if args.quiet else 2}
    if args.hidden_units:
        params["hidden_units"] = units(args.hidden_units)
    if args.neighbors is not None:
        params["n_neighbors"] = args.neighbors
    t = time.perf_counter()
    hasher = SemanticHasher(**params, **run).fit(X, keep_checkpoint=True)
    idx = SemanticIndex.build(X, ids, labels, hasher=hasher)
    seconds = time.perf_counter() - t
    save_trained(idx, args, args.out, run["checkpoint_dir"])
    codes = idx.index.codes
    bits = np.unpackbits(codes, axis=1)[:, :idx.n_bits]
    on = bits.mean(axis=0) if len(bits) else np.zeros(idx.n_bits)
    buckets = np.unique(codes, axis=0).shape[0]
    status(f"indexed {len(idx):,} items ({X.shape[1]} features) with {idx.n_bits}-bit codes in "
          f"{seconds:.1f} s; {buckets:,} distinct codes; bits on for {on.min():.0%} to "
          f"{on.max():.0%} of items; {idx.index.bytes_per_item:.0f} bytes per item in the "
          f"table{'; labels kept' if idx.labels is not None else ''}")
    print(f"saved the index to {args.out}", file=sys.stderr)
    return 0


def _found(args, idx, X):
    """The (ids, distances) of each query, by the lookup the options choose."""
    if args.exhaustive:
        return idx.rank(X, k=args.k)
    if args.radius_only:
        return idx.search(X, radius=args.radius, k=args.k)
    return idx.nearest(X, k=args.k, radius=args.radius)


def cmd_query(args):
    import numpy as np

    out_path = output_path(args, args.output, args.index, args.queries, stdout=True)
    idx = _load_index(args.index)
    X, qids, _ = _vectors(args.queries, key=args.key, split="test")
    if args.limit:
        X = X[:args.limit]
        qids = None if qids is None else qids[:args.limit]
    qids = np.arange(len(X)) if qids is None else qids
    rows = [(q, r, i, d) for q, (ids, dist) in zip(qids, _found(args, idx, X), strict=True)
            for r, (i, d) in enumerate(zip(ids, dist, strict=True), start=1)]
    counts = {"n_queries": len(X), "n_rows": len(rows), "k": args.k, "radius": args.radius}
    if out_path is None and args.json:
        columns = ("query", "rank", "id", "distance")
        result_json_rows(counts, (dict(zip(columns, r, strict=True)) for r in rows))
        return 0
    text = "query,rank,id,distance\n" + "".join(f"{q},{r},{i},{d}\n" for q, r, i, d in rows)
    if out_path is None:
        result_text(text)
        return 0
    from deepae.fileio import atomic_write

    atomic_write(out_path, text.encode(), overwrite=args.overwrite)
    status(f"wrote {len(rows):,} results for {len(X):,} queries to {out_path}")
    if args.json:
        result_json({**counts, "output": str(out_path)})
    return 0


def cmd_evaluate(args):
    import numpy as np

    from deepae.metrics import (
        mean_average_precision,
        precision_within_radius,
        retrieval_precision_at,
    )

    idx = _load_index(args.index)
    if idx.labels is None:
        raise ValueError(f"{args.index!r} holds no labels; build it from data with labels "
                         f"(an .npz with one of {list(LABEL_KEYS)}, or a data set name)")
    not_stdio(args.labels, "--labels", "standard input can hold only QUERIES")
    X, _, y = _vectors(args.queries, key=args.key, split="test")
    if args.labels:
        y = np.load(args.labels, allow_pickle=False)
    if y is None or len(y) != len(X):
        raise ValueError(f"Expected one label per query ({len(X)}); pass an .npz with "
                         f"{list(LABEL_KEYS)[0]!r} or --labels FILE.npy")
    n = min(args.queries_count, len(X))
    pick = np.random.default_rng(args.seed).choice(len(X), n, replace=False)
    X, y = X[pick], np.asarray(y)[pick]
    db = idx.labels
    top = min(args.top, len(idx))
    pos_of = {int(i): p for p, i in enumerate(idx.index.ids)}

    def positions(found):
        return [np.fromiter((pos_of[int(i)] for i in ids), np.int64, count=len(ids))
                for ids, _ in found]

    t = time.perf_counter()
    ranked = positions(idx.rank(X, k=top))
    rank_s = time.perf_counter() - t
    t = time.perf_counter()
    within = positions(idx.search(X, radius=args.radius))
    search_s = time.perf_counter() - t
    k = min(args.k, top)
    p_at_k = retrieval_precision_at(ranked, db, y, k)
    res = {"queries": n, "items": len(idx), "n_bits": idx.n_bits,
           f"mAP@{top}": mean_average_precision(ranked, db, y, top=top),
           f"precision@{k}": p_at_k,
           f"precision within radius {args.radius}": precision_within_radius(within, db, y),
           f"queries with a hit within radius {args.radius}": float(np.mean(
               [r.size > 0 for r in within])),
           "rank ms/query": 1e3 * rank_s / n, "radius search ms/query": 1e3 * search_s / n}
    if args.json:
        result_json(res)
    else:
        for key, v in res.items():
            result(f"{key:<36} {v:.4f}" if isinstance(v, float) else f"{key:<36} {v}")
    return 0


_DATA_HELP = ("vectors: .npz (array 'x', optional 'ids' and 'y'/'labels'), .npy, .csv, "
              ".parquet, a data set name (mnist, fashion-mnist, digits), or - for the "
              "bytes of one of those files on standard input")


def add_index_parser(sub):
    """Add ``index`` with its ``build``, ``query`` and ``evaluate`` commands."""
    p = sub.add_parser("index", help="semantic hashing: build a Hamming index, query it, "
                       "evaluate it", description="Semantic hashing: train a SemanticHasher on "
                       "a collection of vectors and store their binary codes in a hash table "
                       "(one .deepae file); look up queries by their code and the codes a few "
                       "bits away.")
    isub = p.add_subparsers(dest="index_command", metavar="COMMAND", required=True)
    _add_build_parser(isub)
    _add_query_parser(isub)
    _add_evaluate_parser(isub)


def _add_build_parser(isub):
    b = isub.add_parser("build", help="train a hasher on a collection and index it",
                        description="Train a SemanticHasher on DATA and save it with the "
                        "Hamming index of DATA's codes (and its labels, if DATA has them).")
    b.add_argument("data", help=_DATA_HELP + "; a data set's training split")
    b.add_argument("-o", "--out", required=True, help="index file to write (.deepae)")
    b.add_argument("--bits", type=int, default=32, help="code length, 1 to 64 (default 32)")
    b.add_argument("--epochs", type=int, default=30, help="training epochs (default 30)")
    b.add_argument("--hidden-units", help="encoder layers, widest first (default 512,256)")
    b.add_argument("--neighbors", type=int, help="neighbours per item for the similarity "
                   "term (0: plain autoencoder; default the hasher's)")
    b.add_argument("--key", help="array name inside a .npz file")
    b.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    b.add_argument("--quiet", action="store_true", help="no per-epoch lines")
    add_run_options(b)
    add_common_options(b)
    b.set_defaults(func=cmd_build)


def _add_query_parser(isub):
    q = isub.add_parser("query", help="the nearest stored items of each query (CSV)",
                        description="For each query: hash it, look up its code and the codes "
                        "up to --radius bits away, and complete with the exhaustive Hamming "
                        "ranking when that finds fewer than K items. Writes CSV: query, rank, "
                        "id, distance.")
    q.add_argument("index", help="an index file (deepae index build)")
    q.add_argument("queries", help=_DATA_HELP + "; a data set's test split")
    q.add_argument("-k", type=int, default=100, help="results per query (default 100)")
    q.add_argument("--radius", type=int, default=2, help="Hamming radius of the hash lookup "
                   "(default 2)")
    how = q.add_mutually_exclusive_group()
    how.add_argument("--radius-only", action="store_true",
                     help="only the items within --radius (at most K), no ranking")
    how.add_argument("--exhaustive", action="store_true",
                     help="rank the whole collection by Hamming distance")
    q.add_argument("--limit", type=int, help="only the first LIMIT queries")
    q.add_argument("--key", help="array name inside a .npz file")
    q.add_argument("-o", "--output", help="CSV file to write (default, or -: standard output)")
    add_json_option(q, "the results (or, with -o FILE, the counts)")
    add_common_options(q)
    q.set_defaults(func=cmd_query)


def _add_evaluate_parser(isub):
    e = isub.add_parser("evaluate", help="retrieval quality against labels",
                        description="Same-label retrieval on random queries: mAP over the top "
                        "of the Hamming ranking, precision at K, precision within a radius, "
                        "and the time per query.")
    e.add_argument("index", help="an index built from labelled data")
    e.add_argument("queries", help=_DATA_HELP + "; a data set's test split")
    e.add_argument("--labels", help=".npy of query labels (default: in QUERIES)")
    e.add_argument("--key", help="array name inside a .npz file")
    e.add_argument("-n", "--queries-count", type=int, default=1000,
                   help="random queries (default 1000)")
    e.add_argument("--top", type=int, default=5000, help="mAP over this many (default 5000)")
    e.add_argument("-k", type=int, default=100, help="precision at K (default 100)")
    e.add_argument("--radius", type=int, default=2, help="radius for precision (default 2)")
    e.add_argument("--seed", type=int, default=0, help="query sample seed (default 0)")
    add_json_option(e, "the figures")
    add_common_options(e, output=False)
    e.set_defaults(func=cmd_evaluate)
