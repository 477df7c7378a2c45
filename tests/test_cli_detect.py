"""`deepae detect fit | score | evaluate` and `deepae info` on a detector."""

import json
import re

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score

import deepae
from deepae.cli.main import main
from deepae.data.tabular import read_table
from deepae.datasets import make_transactions


@pytest.fixture(scope="module")
def tables(tmp_path_factory):
    d = tmp_path_factory.mktemp("detect")
    X, y = make_transactions(5000, fraud_rate=0.02, categorical=True, missing_rate=0.01,
                             random_state=0)
    X = X.drop(columns="Time")
    X.insert(0, "txn_id", np.arange(100, 5100))
    X["Class"] = y
    X.iloc[:3000].to_csv(d / "train.csv", index=False)
    X.iloc[3000:].to_csv(d / "test.csv", index=False)
    X.iloc[3000:].to_parquet(d / "test.parquet", index=False)
    model = d / "m.deepae"
    rc = main(["detect", "fit", str(d / "train.csv"), "-o", str(model), "--id-column",
               "txn_id", "--label-column", "Class", "--threshold-fpr", "0.02", "--epochs", "10",
               "--quiet"])
    assert rc == 0
    return d, model, X


def test_fit_info_and_threshold_shown(tables, capsys):
    d, model, X = tables
    det = deepae.load(model)
    assert det.threshold_info_["method"] == "fpr" and det.threshold_info_["target"] == 0.02
    assert main(["info", str(model)]) == 0
    out = capsys.readouterr().out
    assert "threshold:" in out and "fpr, target 0.02" in out and "held-out normal rows" in out
    assert "categorical [merchant]" in out
    assert det.n_estimators_ == 3  # 3,000 rows: "auto"
    assert re.search(r"^members: +3$", out, re.M)
    assert main(["info", str(model), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["threshold"] == pytest.approx(det.threshold_)
    assert info["members"] == len(det.autoencoders_)
    assert info["anomaly_score"] == det.anomaly_score_


def test_score_keeps_order_and_ids_in_chunks(tables, tmp_path):
    d, model, X = tables
    out = tmp_path / "scores.csv"
    assert main(["detect", "score", str(model), str(d / "test.csv"), "--id-column", "txn_id",
                 "--label-column", "Class", "--chunk-size", "300", "--explain", "2", "-o",
                 str(out), "--quiet"]) == 0
    res = pd.read_csv(out)
    test = X.iloc[3000:]
    assert list(res.columns) == ["txn_id", "score", "anomaly", "top1", "top2"]
    np.testing.assert_array_equal(res["txn_id"], test["txn_id"])
    det = deepae.load(model)
    expected = det.decision_function(test.drop(columns=["txn_id", "Class"]))
    np.testing.assert_allclose(res["score"], expected, rtol=1e-5)
    np.testing.assert_array_equal(res["anomaly"], (expected > det.threshold_).astype(int))
    flagged = res[res["anomaly"] == 1]
    assert flagged["top1"].notna().all() and res.loc[res["anomaly"] == 0, "top1"].isna().all()
    # Parquet input, to standard output, same scores
    out2 = tmp_path / "scores2.csv"
    assert main(["detect", "score", str(model), str(d / "test.parquet"), "--id-column",
                 "txn_id", "--drop", "Class", "-o", str(out2), "--quiet"]) == 0
    np.testing.assert_allclose(pd.read_csv(out2)["score"], res["score"], rtol=1e-6)


def test_score_to_stdout(tables, capsys):
    d, model, _ = tables
    assert main(["detect", "score", str(model), str(d / "test.csv"), "--id-column", "txn_id",
                 "--label-column", "Class", "--quiet"]) == 0
    captured = capsys.readouterr()
    lines = captured.out.strip().splitlines()
    assert lines[0] == "txn_id,score,anomaly" and len(lines) == 2001
    assert "scored 2000 rows" in captured.err


def test_evaluate_prints_report_and_plots(tables, tmp_path, capsys):
    d, model, _ = tables
    assert main(["detect", "evaluate", str(model), str(d / "test.csv"), "--id-column", "txn_id",
                 "--label-column", "Class", "--plots", str(tmp_path / "p"), "--json",
                 str(tmp_path / "r.json"), "--quiet"]) == 0
    out = capsys.readouterr().out
    for key in ("ROC-AUC", "PR-AUC", "recall at FPR 0.01", "precision at k", "TN", "FP"):
        assert key in out
    # the report is the model's: ROC-AUC, average precision and the confusion at its
    # threshold computed from its scores of these rows (not estimates, not other rows) ...
    rep = json.loads((tmp_path / "r.json").read_text())
    det = deepae.load(model)
    test = read_table(d / "test.csv")
    y = test["Class"].to_numpy()
    s = det.decision_function(test.drop(columns=["txn_id", "Class"]))
    assert rep["roc_auc"] == pytest.approx(roc_auc_score(y, s), abs=1e-9)
    assert rep["average_precision"] == pytest.approx(average_precision_score(y, s), abs=1e-9)
    flag = s > det.threshold_
    assert (rep["tp"], rep["fp"], rep["fn"], rep["tn"]) == (
        (flag & (y == 1)).sum(), (flag & (y == 0)).sum(), (~flag & (y == 1)).sum(),
        (~flag & (y == 0)).sum())
    # ... and the model is the one the library fits with the same options on the same rows
    # (the id and label columns left out), so its ROC-AUC is the library's
    train = read_table(d / "train.csv")
    ref = deepae.AnomalyDetector(threshold="fpr", target=0.02, epochs=10, random_state=0).fit(
        train.drop(columns=["txn_id", "Class"]), train["Class"].to_numpy())
    np.testing.assert_allclose(s, ref.decision_function(test.drop(columns=["txn_id", "Class"])),
                               rtol=1e-5)
    assert (tmp_path / "p" / "scores.png").stat().st_size > 5000
    assert (tmp_path / "p" / "roc_pr.png").stat().st_size > 5000


def test_detect_errors_are_one_line(tables, tmp_path, capsys):
    d, model, X = tables
    cases = [
        (["detect", "score", str(model), str(d / "test.csv"), "--quiet"], "txn_id"),
        (["detect", "score", str(model), str(d / "test.csv"), "--id-column", "nope"], "'nope'"),
        (["detect", "evaluate", str(model), str(d / "test.csv"), "--id-column", "txn_id"],
         "--label-column"),
    ]
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    cases.append((["detect", "score", str(model), str(empty)], "empty"))
    bad = X.iloc[3000:3010].drop(columns=["Class"]).assign(Amount="lots")
    bad.to_csv(tmp_path / "bad.csv", index=False)
    cases.append((["detect", "score", str(model), str(tmp_path / "bad.csv"), "--id-column",
                   "txn_id"], "Column 'Amount' must be numeric"))
    X.iloc[3000:3010].drop(columns=["Class", "V4"]).to_csv(tmp_path / "lack.csv", index=False)
    cases.append((["detect", "score", str(model), str(tmp_path / "lack.csv"), "--id-column",
                   "txn_id"], "lacks column(s) ['V4']"))
    for argv, needle in cases:
        assert main(argv) == 1, argv
        err = capsys.readouterr().err.strip()
        assert err.startswith("deepae: error:") and needle in err and "\n" not in err, err
    # an existing model is not replaced (checked before any training)
    before = model.read_bytes()
    assert main(["detect", "fit", str(d / "train.csv"), "-o", str(model)]) == 1
    assert "exists" in capsys.readouterr().err and model.read_bytes() == before
