"""`deepae detect fit | score | evaluate`: anomaly detection on tables from the shell.

A thin layer over `deepae.AnomalyDetector`: read the table, call the API, print or stream.
DATA may be `-`: a CSV table on standard input, read in chunks like a file.
"""

from __future__ import annotations

import argparse
import io
import os
import sys
from pathlib import Path

from deepae.cli._options import (
    UserError,
    add_common_options,
    add_json_option,
    add_run_options,
    is_stdio,
    json_text,
    not_stdio,
    output_path,
    result,
    result_json,
    result_json_rows,
    results_stream,
    run_parameters,
    save_trained,
    status,
    stdin_stream,
    units,
)

__all__ = ["add_detect_parser"]


class _Columns:
    """The id, label and dropped columns of a table, taken out before the model sees it."""

    def __init__(self, args):
        self.id = args.id_column
        self.label = getattr(args, "label_column", None)
        self.drop = [c for c in (args.drop or "").split(",") if c]

    def split(self, frame, where, *, need_label=False):
        for col in [self.id, self.label, *self.drop]:
            if col and col not in frame.columns:
                if col == self.label and not need_label:
                    continue
                raise ValueError(f"column {col!r} is not in {where}; its columns are "
                                 f"{list(map(str, frame.columns))[:20]}")
        ids = frame[self.id] if self.id else None
        labels = frame[self.label] if self.label and self.label in frame.columns else None
        drop = [c for c in [self.id, self.label, *self.drop] if c and c in frame.columns]
        return frame.drop(columns=drop), ids, labels


def _table_source(data, *, streamed=False):
    """DATA as `read_table` and `iter_table` take it: a file name, or for `-` standard input
    (CSV text; refused past `_options.STDIN_MAX_BYTES` unless `streamed`: read in chunks by
    `iter_table`, never whole)."""
    if not is_stdio(data):
        return data
    from deepae.data.io import GZIP_MAGIC, bytes_kind

    stream = stdin_stream("a CSV table", streamed=streamed)
    head = stream.head(4)
    if head == b"PAR1":
        raise UserError("expected a CSV table on standard input; received Parquet (name the "
                        "Parquet file instead of -)")
    if head.startswith(GZIP_MAGIC):
        raise UserError("expected a CSV table (text) on standard input; received "
                        f"{bytes_kind(head)}, or name the .csv.gz file instead of -")
    return stream


def _where(data) -> str:
    return "standard input" if is_stdio(data) else str(data)


def _threshold_args(args) -> dict:
    if args.threshold_fpr is not None:
        return {"threshold": "fpr", "target": args.threshold_fpr}
    if args.threshold_contamination is not None:
        return {"threshold": "contamination", "contamination": args.threshold_contamination}
    if args.threshold_score is not None:
        return {"threshold": args.threshold_score}
    if args.threshold is not None:
        return {"threshold": args.threshold, "target": args.target}
    return {"threshold": "fpr", "target": 0.01}


def cmd_fit(args):
    from deepae import AnomalyDetector
    from deepae.data.tabular import read_table

    if args.model_old and not args.model:
        print("deepae: note: `detect fit --model FILE` will be removed; write "
              "`detect fit DATA -o FILE`", file=sys.stderr)
        args.model = args.model_old
    if not args.model:
        raise UserError("`deepae detect fit` needs -o/--output, the detector file to write")
    output_path(args, args.model, args.data)
    run = run_parameters(args, args.model, args.data)
    frame = read_table(_table_source(args.data))
    cols = _Columns(args)
    X, _, labels = cols.split(frame, _where(args.data), need_label=bool(args.label_column))
    params = {"epochs": args.epochs, "random_state": args.seed, "missing": args.missing,
              "verbose": 0 if args.quiet else 2, **_threshold_args(args)}
    if args.hidden_units:
        params["hidden_units"] = units(args.hidden_units)
    if args.n_components:
        params["n_components"] = args.n_components
    if args.categorical:
        params["categorical_columns"] = tuple(c for c in args.categorical.split(",") if c)
    if args.threshold == "cost":
        params.update(cost_missed=args.cost_missed, cost_review=args.cost_review)
    det = AnomalyDetector(**params, **run)
    det.fit(X, None if labels is None else labels.to_numpy(), keep_checkpoint=True)
    save_trained(det, args, args.model, run["checkpoint_dir"])
    n_normal = len(X) if labels is None else int((labels.to_numpy() == 0).sum())
    status(f"trained on {n_normal} normal rows of {len(X)} ({X.shape[1]} columns: "
          f"{len(det.preprocessor_.numeric_)} numeric, {len(det.preprocessor_.categories_)} "
          f"categorical; {det.preprocessor_.n_features_out} model features); "
          f"{len(det.history_.get('loss', []))} epochs")
    print(f"threshold: {det.describe()['threshold_rule']}", file=sys.stderr)
    print(f"saved the detector to {args.model}", file=sys.stderr)
    return 0


def _progress(total, quiet):
    if quiet or not sys.stderr.isatty() and os.environ.get("DEEPAE_PROGRESS") != "1":
        return None
    try:
        from tqdm import tqdm
    except ImportError:
        return None
    return tqdm(total=total, unit="B", unit_scale=True, file=sys.stderr, desc="scoring")


def _scored_chunks(args, det, *, need_label=False):
    """Yield (scores, ids, labels, frame) per chunk of the input table, in row order."""
    from deepae.data.tabular import iter_table

    cols = _Columns(args)
    source = _table_source(args.data, streamed=True)  # in chunks: no cap on standard input
    bar = _progress(None if is_stdio(args.data) else Path(args.data).stat().st_size,
                    args.quiet)
    done = 0
    try:
        for frame, pos in iter_table(source, chunk_size=args.chunk_size):
            X, ids, labels = cols.split(frame, _where(args.data), need_label=need_label)
            yield det.decision_function(X), ids, labels, X
            if bar is not None:
                bar.update(pos - done)
                done = pos
    finally:
        if bar is not None:
            bar.close()


def _load_detector(path):
    import deepae

    not_stdio(path, "MODEL", "a detector is read from a file that deepae can check before it "
              "loads it; name the file")
    det = deepae.load(path)
    if not isinstance(det, deepae.AnomalyDetector):
        raise ValueError(f"{path!r} holds a {type(det).__name__}, not an AnomalyDetector")
    return det


def _explained(res, det, X, flagged, k) -> None:
    """Add columns top1..topK to `res`: the K columns behind each flagged row."""
    import numpy as np

    tops = [[None] * len(res) for _ in range(k)]
    if flagged.any():
        ex = det.explain(X.iloc[np.flatnonzero(flagged)], top_k=k, only_flagged=False)
        rows = np.flatnonzero(flagged)[ex["row"].to_numpy()]
        for r, rank, col in zip(rows, ex["rank"], ex["column"], strict=True):
            tops[rank - 1][r] = col
    for i in range(k):
        res[f"top{i + 1}"] = tops[i]


def _score_frames(args, det):
    """Yield (table, flagged count) per chunk: id (or row), score, anomaly (0/1) and, with
    --explain K, top1..topK."""
    import numpy as np
    import pandas as pd

    n_rows = 0
    for scores, ids, _, X in _scored_chunks(args, det):
        flagged = scores > det.threshold_
        res = pd.DataFrame({args.id_column or "row": ids.to_numpy() if ids is not None
                            else np.arange(n_rows, n_rows + len(scores)),
                            "score": scores, "anomaly": flagged.astype(np.int8)})
        if args.explain:
            _explained(res, det, X, flagged, args.explain)
        n_rows += len(res)
        yield res, int(flagged.sum())


def _csv_rows(frames) -> tuple[int, int]:
    """Write the tables of `frames` to standard output as one CSV; (rows, flagged)."""
    return _csv_to(frames, results_stream())


def _csv_to(frames, out) -> tuple[int, int]:
    n_rows = n_flagged = 0
    for res, flagged in frames:
        res.to_csv(out, header=n_rows == 0, index=False, float_format="%.6g")
        out.flush()  # a chunk at a time: a closed pipe stops the command here
        n_rows, n_flagged = n_rows + len(res), n_flagged + flagged
    return n_rows, n_flagged


def _json_rows(frames, threshold) -> tuple[int, int]:
    """Write the tables of `frames` to standard output as one JSON document, a chunk at a
    time: threshold, rows (an object per row), n_rows, n_flagged; (rows, flagged)."""
    counts = [0, 0]

    def records():
        for res, flagged in frames:
            counts[1] += flagged
            for record in res.to_dict(orient="records"):
                counts[0] += 1
                yield record

    result_json_rows({"threshold": threshold}, records(),
                     lambda: {"n_rows": counts[0], "n_flagged": counts[1]})
    return counts[0], counts[1]


def cmd_score(args):
    out_path = output_path(args, args.output, args.model, args.data, stdout=True)
    det = _load_detector(args.model)
    frames = _score_frames(args, det)
    if out_path is None:
        n_rows, n_flagged = _json_rows(frames, det.threshold_) if args.json \
            else _csv_rows(frames)
    else:
        from deepae.fileio import atomic_write

        counts = []

        def write_file(f):
            text = io.TextIOWrapper(f, encoding="utf-8", newline="")
            counts.extend(_csv_to(frames, text))
            text.flush()
            text.detach()

        atomic_write(out_path, write_file, overwrite=args.overwrite)
        n_rows, n_flagged = counts
        if args.json:
            result_json({"threshold": det.threshold_, "n_rows": n_rows,
                         "n_flagged": n_flagged, "output": str(out_path)})
    status(f"scored {n_rows} rows; {n_flagged} above the threshold {det.threshold_:.6g}"
           + (f"; wrote {out_path}" if out_path else ""))
    return 0


def _json_file(args, inputs):
    """The file of the older ``--json FILE.json`` (main() turns it into the hidden
    ``--json-file``), checked by the output rule before any work; None without it."""
    if args.json_file is None:
        return None
    path = output_path(args, args.json_file, *inputs)
    status(f"deepae: note: `detect evaluate --json FILE` will be removed; write `deepae detect "
           f"evaluate ... --json > {args.json_file}` (--json prints the figures on standard "
           "output)")
    return path


def _report_table(rep, fpr, threshold_rule) -> None:
    rows = [("rows / anomalies", f"{rep['n_rows']} / {rep['n_anomalies']}"),
            ("ROC-AUC", f"{rep['roc_auc']:.4f}"),
            ("PR-AUC (average precision)", f"{rep['average_precision']:.4f}"),
            (f"recall at FPR {fpr:g}", f"{rep['recall_at_fpr']:.4f}"),
            (f"precision at k={rep['k']}", f"{rep['precision_at_k']:.4f}"),
            ("threshold", threshold_rule),
            ("confusion at threshold", f"TN {rep['tn']}  FP {rep['fp']}  FN {rep['fn']}  "
                                       f"TP {rep['tp']}"),
            ("precision / recall / F1", f"{rep['precision']:.4f} / {rep['recall']:.4f} / "
                                        f"{rep['f1']:.4f}"),
            ("false-positive rate", f"{rep['false_positive_rate']:.4f}")]
    width = max(len(r[0]) for r in rows)
    for name, value in rows:
        result(f"{name:<{width}}  {value}")


def cmd_evaluate(args):
    import numpy as np

    from deepae.metrics import detection_report

    if not args.label_column:
        raise ValueError("evaluate needs --label-column: the 0/1 column (1 = anomaly)")
    inputs = (args.model, args.data)
    json_file = _json_file(args, inputs)
    if args.plots:
        for name in ("scores.png", "roc_pr.png"):
            output_path(args, Path(args.plots) / name, *inputs)
    det = _load_detector(args.model)
    all_scores, all_labels = [], []
    for scores, _, labels, _ in _scored_chunks(args, det, need_label=True):
        all_scores.append(scores)
        all_labels.append(labels.to_numpy())
    s, y = np.concatenate(all_scores), np.concatenate(all_labels)
    rep = detection_report(y, s, det.threshold_, fpr=args.fpr)
    rep["threshold_rule"] = det.describe()["threshold_rule"]
    if args.json:
        result_json(rep)
    else:
        _report_table(rep, args.fpr, rep["threshold_rule"])
    if json_file is not None:
        from deepae.fileio import atomic_write

        atomic_write(json_file, json_text(rep).encode(), overwrite=args.overwrite)
    if args.plots:
        from deepae.plots import roc_pr_curves, score_distribution

        folder = Path(args.plots)
        paths = [score_distribution(s, y, det.threshold_, folder / "scores.png",
                                    overwrite=args.overwrite),
                 roc_pr_curves(y, s, folder / "roc_pr.png", overwrite=args.overwrite)]
        status("plots: " + ", ".join(str(p) for p in paths))
    return 0


def add_detect_parser(sub):
    """Add ``detect`` with its ``fit``, ``score`` and ``evaluate`` commands."""
    d = sub.add_parser("detect", help="anomaly / fraud detection on tables (fit, score, "
                       "evaluate)", description="Anomaly detection by reconstruction error: "
                       "train on normal rows, score new ones, evaluate against labels.")
    dsub = d.add_subparsers(dest="detect_command", metavar="COMMAND", required=True)
    _add_fit_parser(dsub)
    _add_score_parser(dsub)
    _add_evaluate_parser(dsub)
    return d


def _table_options(p, *, label_help):
    p.add_argument("--id-column", help="column kept in the output, not used as a feature")
    p.add_argument("--label-column", help=label_help)
    p.add_argument("--drop", help="comma-separated columns to ignore")
    p.add_argument("--quiet", action="store_true", help="no progress output")


def _add_fit_parser(dsub):
    from deepae.data.tabular import MISSING_POLICIES
    from deepae.thresholds import LABELLED_METHODS

    f = dsub.add_parser("fit", help="train a detector on a CSV or Parquet table",
                        description="Train an AnomalyDetector on a CSV/Parquet table and save "
                        "it with its preprocessing and threshold. Rows labelled 1 in "
                        "--label-column are not trained on; they help choose the threshold.")
    f.add_argument("data", help="a .csv or .parquet table, or - for CSV on standard input")
    f.add_argument("-o", "--output", dest="model", help="detector file to write (.deepae)")
    f.add_argument("--model", dest="model_old", help=argparse.SUPPRESS)  # the older name
    _table_options(f, label_help="0/1 column (1 = anomaly); optional")
    th = f.add_mutually_exclusive_group()
    th.add_argument("--threshold-fpr", type=float, metavar="RATE",
                    help="flag this share of held-out normal rows (default 0.01)")
    th.add_argument("--threshold-contamination", type=float, metavar="SHARE",
                    help="flag this share of the training rows (PyOD's rule)")
    th.add_argument("--threshold-score", type=float, metavar="SCORE", help="a fixed threshold")
    th.add_argument("--threshold", choices=LABELLED_METHODS,
                    help="choose from labels (needs --label-column)")
    f.add_argument("--target", type=float, help="precision or recall to reach (default 0.9)")
    f.add_argument("--cost-missed", type=float, default=100.0,
                   help="cost of a missed anomaly, for --threshold cost (default 100)")
    f.add_argument("--cost-review", type=float, default=1.0,
                   help="cost of reviewing a false alarm, for --threshold cost (default 1)")
    f.add_argument("--missing", choices=MISSING_POLICIES, default="impute",
                   help="missing-value policy (default impute)")
    f.add_argument("--categorical", help="comma-separated numeric columns to treat as "
                   "categories (text columns always are)")
    f.add_argument("--hidden-units", help="encoder layers, e.g. 64,32 (default from the width)")
    f.add_argument("--n-components", type=int, help="code size (default from the width)")
    f.add_argument("--epochs", type=int, default=100, help="at most (early stopping; "
                   "default 100)")
    f.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    add_run_options(f)
    add_common_options(f)
    f.set_defaults(func=cmd_fit)


def _add_score_parser(dsub):
    s = dsub.add_parser("score", help="score a table in chunks (CSV to stdout or -o)",
                        description="Score every row of a CSV/Parquet table in chunks (memory "
                        "stays flat), keeping the row order: columns id (or row), score, "
                        "anomaly (0/1) and, with --explain K, the K columns behind each "
                        "flagged row. With --json, standard output holds one JSON document: "
                        "threshold, rows (one object per row; with -o FILE the rows go to "
                        "FILE as CSV instead), n_rows, n_flagged.")
    s.add_argument("model", help="a detector file (.deepae)")
    s.add_argument("data", help="a .csv or .parquet table, or - for CSV on standard input")
    s.add_argument("-o", "--output", help="CSV to write (default, or -: standard output)")
    add_json_option(s, "the scores (or, with -o FILE, the counts)")
    _table_options(s, label_help="column to ignore if present")
    s.add_argument("--explain", type=int, metavar="K", default=0,
                   help="add the top K contributing columns of flagged rows")
    s.add_argument("--chunk-size", type=int, default=20_000, help="rows per chunk "
                   "(default 20000)")
    add_common_options(s)
    s.set_defaults(func=cmd_score)


def _add_evaluate_parser(dsub):
    e = dsub.add_parser("evaluate", help="ROC-AUC, PR-AUC, recall at FPR, confusion matrix",
                        description="Evaluate a detector on a labelled table: ROC-AUC, PR-AUC "
                        "(average precision), recall at a false-positive rate, precision at "
                        "k, and the confusion matrix at its threshold.")
    e.add_argument("model", help="a detector file (.deepae)")
    e.add_argument("data", help="a labelled .csv or .parquet table, or - for CSV on "
                   "standard input")
    _table_options(e, label_help="0/1 column (1 = anomaly), required")
    e.add_argument("--fpr", type=float, default=0.01, help="for recall at FPR (default 0.01)")
    e.add_argument("--plots", metavar="DIR", help="write scores.png and roc_pr.png to DIR")
    add_json_option(e, "the figures")
    # the older `--json FILE.json`, rewritten to this by cli.main.main (JSON_FILE_OPTION)
    e.add_argument("--json-file", help=argparse.SUPPRESS)
    e.add_argument("--chunk-size", type=int, default=20_000, help="rows per chunk "
                   "(default 20000)")
    add_common_options(e)
    e.set_defaults(func=cmd_evaluate)
