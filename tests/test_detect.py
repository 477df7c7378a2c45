"""AnomalyDetector, its tabular preprocessing, thresholds, metrics and synthetic data."""

import pickle

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import average_precision_score, f1_score, roc_auc_score

import deepae
from deepae import AnomalyDetector
from deepae.data.tabular import TabularPreprocessor, read_table
from deepae.datasets import make_transactions, time_split
from deepae.metrics import detection_report, precision_at_k, recall_at_fpr
from deepae.thresholds import choose_threshold

FAST = dict(epochs=15, random_state=0)


@pytest.fixture(scope="module")
def transactions():
    X, y = make_transactions(6000, fraud_rate=0.02, categorical=True, random_state=0)
    X = X.drop(columns="Time")
    return X, y.to_numpy()


@pytest.fixture(scope="module")
def fitted(transactions):
    X, y = transactions
    return AnomalyDetector(threshold="fpr", target=0.02, **FAST).fit(X[y == 0])


def mixed_frame(n=40, seed=0):
    r = np.random.default_rng(seed)
    return pd.DataFrame({"amount": r.gamma(2.0, 20.0, n),
                         "count": r.integers(0, 5, n),
                         "shop": r.choice(["a", "b", "c"], n),
                         "flag": r.choice([True, False], n)})


# -- preprocessing ----------------------------------------------------------------------------
def test_preprocessor_numeric_categorical_and_unknown_category():
    df = mixed_frame()
    pre = TabularPreprocessor().fit(df)
    Z = pre.transform(df)
    assert pre.numeric_ == ["amount", "count", "flag"]  # booleans count as 0/1
    assert set(pre.categories_) == {"shop"}
    assert Z.shape == (40, 3 + 3) and Z.dtype == np.float32
    np.testing.assert_allclose(Z[:, :3].mean(0), 0, atol=1e-5)
    new = df.iloc[:2].copy()
    new["shop"] = ["zzz", "a"]  # an unknown category encodes as all zeros
    Zn = pre.transform(new)
    shop = [i for i, n in enumerate(pre.feature_names_out_) if n.startswith("shop=")]
    assert Zn[0, shop].sum() == 0 and Zn[1, shop].sum() == 1


def test_preprocessor_column_order_and_state_round_trip():
    df = mixed_frame()
    pre = TabularPreprocessor(missing="indicator").fit(df)
    again = TabularPreprocessor.from_state(pre.get_state())
    np.testing.assert_array_equal(again.transform(df[df.columns[::-1]]), pre.transform(df))


def test_missing_policies():
    df = mixed_frame()
    df.loc[3, "amount"] = np.nan
    df.loc[5, "shop"] = None
    Z = TabularPreprocessor(missing="impute").fit(df).transform(df)
    assert np.isfinite(Z).all()
    pre = TabularPreprocessor(missing="indicator").fit(df)
    assert pre.feature_names_out_[-1] == "amount_missing"
    assert pre.transform(df)[3, -1] == 1.0
    with pytest.raises(ValueError, match="Column 'amount' has 1 missing value.*'reject'"):
        TabularPreprocessor(missing="reject").fit(df)
    ok = TabularPreprocessor(missing="reject").fit(mixed_frame())
    with pytest.raises(ValueError, match="Column 'amount'"):
        ok.transform(df)


def test_preprocessor_errors_name_the_column(tmp_path):
    df = mixed_frame()
    pre = TabularPreprocessor().fit(df)
    with pytest.raises(ValueError, match=r"lacks column\(s\) \['count'\]"):
        pre.transform(df.drop(columns="count"))
    with pytest.raises(ValueError, match=r"unknown column\(s\) \['extra'\]"):
        pre.transform(df.assign(extra=1))
    with pytest.raises(TypeError, match="Column 'amount' must be numeric.*'lots'"):
        pre.transform(df.assign(amount=["lots"] + [1.0] * 39))
    with pytest.raises(ValueError, match="Column 'amount' holds 1 infinite"):
        pre.transform(df.assign(amount=[np.inf] + [1.0] * 39))
    with pytest.raises(ValueError, match="categorical_columns.*\\['nope'\\]"):
        TabularPreprocessor(categorical_columns=("nope",)).fit(df)
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(ValueError, match="is empty"):
        read_table(empty)
    header = tmp_path / "header.csv"
    header.write_text("a,b\n")
    with pytest.raises(ValueError, match="header but no rows"):
        read_table(header)


def test_numeric_codes_as_categories():
    df = pd.DataFrame({"mcc": [5411, 5411, 4111, np.nan], "x": [1.0, 2.0, 3.0, 4.0]})
    pre = TabularPreprocessor(categorical_columns=("mcc",)).fit(df)
    assert pre.categories_["mcc"] == ["4111", "5411"]  # 5411.0 (float with NaN) is "5411"
    Z = pre.transform(pd.DataFrame({"mcc": ["5411"], "x": [1.0]}))
    assert Z[0, pre.feature_names_out_.index("mcc=5411")] == 1.0


# -- thresholds ---------------------------------------------------------------------------------
@pytest.fixture
def labelled_scores():
    r = np.random.default_rng(1)
    y = np.r_[np.zeros(950), np.ones(50)].astype(int)
    s = np.r_[r.normal(0, 1, 950), r.normal(2.5, 1, 50)]
    return s, y


def test_contamination_and_fpr_thresholds(labelled_scores):
    s, y = labelled_scores
    t, info = choose_threshold("contamination", s, contamination=0.05)
    assert (s > t).sum() == 50 and info["achieved"]["flagged"] == 50
    normal = s[y == 0]
    t, info = choose_threshold("fpr", normal, target=0.02)
    assert (normal > t).mean() == pytest.approx(0.02, abs=1 / 950)
    assert info["target"] == 0.02
    t, _ = choose_threshold("score", s, score=1.5)
    assert t == 1.5


def brute_force(s, y, objective):
    best = None
    for t in np.r_[np.unique(s) - 1e-9, s.max() + 1]:
        v = objective(s > t)
        if best is None or v > best[0]:
            best = (v, t)
    return best[0]


def test_labelled_thresholds_match_brute_force(labelled_scores):
    s, y = labelled_scores
    t, info = choose_threshold("f1", s, y)
    assert f1_score(y, s > t) == pytest.approx(brute_force(s, y, lambda f: f1_score(y, f)))
    t, info = choose_threshold("precision", s, y, target=0.8)
    flag = s > t
    assert (y[flag] == 1).mean() >= 0.8
    # no lower threshold keeps precision >= 0.8 with more recall
    lower = np.sort(s[s <= t])[::-1][:5]
    for u in lower - 1e-9:
        f = s > u
        assert (y[f] == 1).mean() < 0.8 or (f & (y == 1)).sum() <= (flag & (y == 1)).sum()
    t, info = choose_threshold("recall", s, y, target=0.9)
    assert ((s > t) & (y == 1)).sum() / 50 >= 0.9
    # the next distinct score up would lose recall below the target
    higher = np.sort(np.unique(s[s > t]))[0]
    assert ((s > higher) & (y == 1)).sum() / 50 < 0.9
    t, info = choose_threshold("cost", s, y, cost_missed=50, cost_review=1)

    def cost(f):
        return -(((~f) & (y == 1)).sum() * 50 + (f & (y == 0)).sum())

    assert -info["expected_cost"] == pytest.approx(brute_force(s, y, cost))
    assert info["expected_cost"] == pytest.approx(-cost(s > t))


def test_threshold_errors(labelled_scores):
    s, y = labelled_scores
    with pytest.raises(ValueError, match="needs labels"):
        choose_threshold("f1", s)
    with pytest.raises(ValueError, match="at least one anomaly"):
        choose_threshold("f1", s, np.zeros_like(y))
    with pytest.raises(ValueError, match="must be one of"):
        choose_threshold("best", s)
    with pytest.raises(ValueError, match="'target' parameter must be a float in \\(0, 1\\)"):
        choose_threshold("fpr", s, target=1.5)
    with pytest.raises(ValueError, match="labels 0 \\(normal\\) and 1"):
        choose_threshold("f1", s, y * 2)


# -- metrics -----------------------------------------------------------------------------------
def test_detection_report_agrees_with_sklearn(labelled_scores):
    s, y = labelled_scores
    r = detection_report(y, s, threshold=1.0, fpr=0.05)
    assert r["roc_auc"] == pytest.approx(roc_auc_score(y, s))
    assert r["average_precision"] == pytest.approx(average_precision_score(y, s))
    assert r["tp"] + r["fn"] == 50 and r["tn"] + r["fp"] == 950
    assert r["tp"] == int(((s > 1.0) & (y == 1)).sum())
    t = np.quantile(s[y == 0], 0.95)
    assert recall_at_fpr(y, s, 0.05) == pytest.approx(((s > t) & (y == 1)).sum() / 50)
    top = np.argsort(-s)[:50]
    assert precision_at_k(y, s) == pytest.approx(y[top].mean())
    with pytest.raises(ValueError, match="both normal"):
        detection_report(np.zeros(5), np.arange(5.0))


# -- synthetic data ------------------------------------------------------------------------------
def test_make_transactions_shape_order_and_determinism():
    X, y = make_transactions(5000, fraud_rate=0.002, random_state=3)
    assert list(X.columns[:2]) == ["Time", "V1"] and X.columns[-1] == "Amount"
    assert X.shape == (5000, 30) and int(y.sum()) == 10
    assert (np.diff(X["Time"].to_numpy()) >= 0).all()
    X2, y2 = make_transactions(5000, fraud_rate=0.002, random_state=3)
    pd.testing.assert_frame_equal(X, X2)
    v = X.filter(like="V").to_numpy()[y.to_numpy() == 0]
    var = v.var(axis=0)
    assert var[0] > var[-1] * 3  # PCA-like: decreasing variance
    Xc, _ = make_transactions(500, categorical=True, missing_rate=0.1, random_state=0)
    assert "merchant" in Xc and Xc.filter(like="V").isna().mean().mean() == pytest.approx(
        0.1, abs=0.02)
    with pytest.raises(ValueError, match="'fraud_rate' parameter"):
        make_transactions(10, fraud_rate=2.0)


def test_time_split():
    X, y = make_transactions(1000, random_state=0)
    a, b, ya, yb = time_split(X, y, test_size=0.25)
    assert len(a) == 750 and len(b) == 250 and a["Time"].max() <= b["Time"].min()
    shuffled = X.sample(frac=1.0, random_state=0)
    a, b = time_split(shuffled, test_size=0.5, time_column="Time")
    assert a["Time"].max() <= b["Time"].min()
    with pytest.raises(ValueError, match="test_size"):
        time_split(X, test_size=1.0)


# -- the detector --------------------------------------------------------------------------------
def test_detector_finds_fraud_and_keeps_its_fpr(transactions, fitted):
    X, y = transactions
    s = fitted.decision_function(X)
    assert roc_auc_score(y, s) > 0.85
    # scikit-learn's sign for score_samples (higher = more normal), PyOD's for the decision
    np.testing.assert_array_equal(fitted.score_samples(X), -s)
    assert roc_auc_score(y, -fitted.score_samples(X)) > 0.85
    assert fitted.threshold_info_["method"] == "fpr"
    info = fitted.threshold_info_
    assert info["rows"] == "held-out normal rows" and info["target"] == 0.02
    # it flags the target's share of the held-out rows (up to one row), as it records
    held = fitted.decision_scores_[fitted._held_out]
    k, m = info["achieved"]["flagged"], info["n_rows"]
    assert m == len(held) and k == (held > fitted.threshold_).sum() and abs(k - 0.02 * m) <= 1
    # On normal rows that neither training nor the threshold saw, the false-positive rate is
    # what a 2% target on m held-out rows gives: the threshold sits between the k-th and
    # (k+1)-th highest of m exchangeable scores, so a new row exceeds it with a probability
    # drawn from Beta(k, m - k + 1) (up to one rank), and the count flagged among n new rows
    # is beta-binomial. Bounds: its 0.1% and 99.9% quantiles.
    from scipy.stats import betabinom

    n = 20_000
    Xn, _ = make_transactions(n, fraud_rate=0.0, categorical=True, random_state=9)
    flagged = int(fitted.predict(Xn.drop(columns="Time")).sum())
    low, high = betabinom(n, k, m - k + 1).ppf(0.001), betabinom(n, k + 1, m - k).ppf(0.999)
    assert low <= flagged <= high, (flagged / n, low / n, high / n)
    p = fitted.predict_proba(X)
    assert p.shape == (len(X), 2) and np.all((p >= 0) & (p <= 1))
    np.testing.assert_allclose(p.sum(1), 1.0)
    u = fitted.predict_proba(X, method="unify")
    order = np.argsort(s)
    assert np.all(np.diff(u[order, 1]) >= -1e-12) and np.all(np.diff(p[order, 1]) >= -1e-12)
    assert set(fitted.labels_) <= {0, 1} and len(fitted.decision_scores_) == (y == 0).sum()


def test_labelled_threshold_and_set_threshold(transactions, fitted):
    X, y = transactions
    det = AnomalyDetector(threshold="f1", **{**FAST, "epochs": 5}).fit(X, y)
    assert det.threshold_info_["method"] == "f1"
    assert det.threshold_info_["rows"].startswith("held-out normal rows and")
    # anomalies were not trained on: the scores of the fitted rows include them
    assert len(det.decision_scores_) == len(X)
    with pytest.raises(ValueError, match="pass y with at least one anomaly"):
        AnomalyDetector(threshold="cost", **FAST).fit(X[y == 0])
    det.set_threshold("recall", X, y, target=0.5)
    assert det.threshold_info_["achieved"]["recall"] >= 0.5
    det.set_threshold(0.75)
    assert det.threshold_ == 0.75 and det.threshold_info_["method"] == "score"
    det.set_threshold("contamination")
    assert det.labels_.mean() == pytest.approx(0.1, abs=0.01)


def test_contributions_sum_to_the_score_and_explain(transactions, fitted):
    X, y = transactions
    part = X.iloc[:300]
    contrib = fitted.feature_contributions(part)
    assert contrib.shape == (300, X.shape[1])
    assert fitted.n_estimators_ == 3  # "auto" on fewer than 10,000 rows
    err = np.mean([ae.reconstruction_error(fitted.preprocessor_.transform(part))
                   for ae in fitted.autoencoders_], axis=0)
    np.testing.assert_allclose(contrib.sum(1), err, rtol=1e-4)  # the members' mean error
    plain = AnomalyDetector(anomaly_score="reconstruction", epochs=2, random_state=0).fit(part)
    np.testing.assert_allclose(plain.feature_contributions(part).sum(1),
                               plain.decision_function(part), rtol=1e-4)
    ex = fitted.explain(part, top_k=2, only_flagged=False)
    assert len(ex) == 600 and set(ex["rank"]) == {1, 2}
    first = ex[ex["rank"] == 1].set_index("row")["column"]
    assert first.loc[0] == X.columns[int(np.argmax(contrib[0]))]
    # a row with one absurd feature is explained by that feature
    odd = part.iloc[:1].copy()
    odd["V3"] = 40.0
    top = fitted.explain(odd, top_k=1, only_flagged=False)
    assert top["column"].iloc[0] == "V3" and top["share"].iloc[0] > 0.25


def test_save_load_and_pickle_give_identical_scores(tmp_path, transactions, fitted):
    X, _ = transactions
    path = fitted.save(tmp_path / "det.deepae")
    again = deepae.load(path)
    assert isinstance(again, AnomalyDetector)
    np.testing.assert_array_equal(again.decision_function(X), fitted.decision_function(X))
    assert again.threshold_ == fitted.threshold_
    assert again.threshold_info_ == fitted.threshold_info_
    assert again.get_params() == fitted.get_params()
    clone = pickle.loads(pickle.dumps(fitted))
    np.testing.assert_array_equal(clone.predict(X), fitted.predict(X))


def test_detector_on_arrays_with_nan_and_bad_input():
    r = np.random.default_rng(0)
    X = r.normal(size=(120, 5))
    X[3, 2] = np.nan
    det = AnomalyDetector(epochs=2, random_state=0).fit(X)
    assert np.isfinite(det.decision_function(X)).all()
    with pytest.raises(ValueError, match="X has 4 features, but AnomalyDetector is expecting 5"):
        det.decision_function(X[:, :4])
    with pytest.raises(ValueError, match="Column 'x2' has 1 missing value"):
        AnomalyDetector(epochs=1, missing="reject").fit(X)
    with pytest.raises(ValueError, match="infinite"):
        det.decision_function(np.full((2, 5), np.inf))
    with pytest.raises(ValueError, match="'contamination' parameter of AnomalyDetector"):
        AnomalyDetector(contamination=0.7).fit(X)
    with pytest.raises(ValueError, match="'threshold' parameter of AnomalyDetector"):
        AnomalyDetector(threshold="best").fit(X)
    with pytest.raises(ValueError, match="labels 0 \\(normal\\) and 1"):
        AnomalyDetector(epochs=1).fit(X, np.full(120, 3))


def test_dataframe_columns_are_checked_by_name(transactions, fitted):
    X, _ = transactions
    with pytest.raises(ValueError, match="Amount"):
        fitted.decision_function(X.drop(columns="Amount"))
    with pytest.raises(ValueError, match="unknown column.*'card_id'"):
        fitted.decision_function(X.assign(card_id=1))
    # columns are matched by name, in any order
    s = fitted.decision_function(X[list(X.columns[::-1])])
    np.testing.assert_array_equal(s, fitted.decision_function(X))


def test_auto_dropout_and_score_follow_the_training_rows(tmp_path):
    r = np.random.default_rng(0)
    small = AnomalyDetector(epochs=1, random_state=0).fit(r.normal(size=(200, 3)))
    assert small.dropout_ == 0.0 and small.autoencoder_.dropout == 0.0
    assert small.anomaly_score_ == "reconstruction+latent" and small.n_estimators_ == 3
    # 12,500 rows, 20% held out: 10,000 training rows reach the "auto" threshold
    big = AnomalyDetector(epochs=1, random_state=0).fit(r.normal(size=(12_500, 3)))
    assert big.dropout_ == 0.2 and big.autoencoder_.dropout == 0.2
    assert big.anomaly_score_ == "reconstruction" and big.n_estimators_ == 1
    again = deepae.load(big.save(tmp_path / "big.deepae"))
    assert again.dropout_ == 0.2 and again.anomaly_score_ == "reconstruction"
    probe = r.normal(size=(3, 3))
    np.testing.assert_allclose(
        big.decision_function(probe),
        big.autoencoder_.reconstruction_error(big.preprocessor_.transform(probe)), rtol=1e-5)
    fixed = AnomalyDetector(epochs=1, dropout=0.1, random_state=0).fit(r.normal(size=(200, 3)))
    assert fixed.dropout_ == 0.1
    for bad in ("high", 1.0, -0.1):
        with pytest.raises((ValueError, TypeError), match="'dropout' parameter of AnomalyDetector"):
            AnomalyDetector(epochs=1, dropout=bad).fit(r.normal(size=(20, 3)))


def test_tiny_data_works():
    det = AnomalyDetector(epochs=1, random_state=0).fit(np.ones((1, 3)))
    assert det.predict(np.ones((1, 3))).shape == (1,)


def test_latent_score_flags_rows_far_along_the_manifold(tmp_path):
    r = np.random.default_rng(0)
    z = r.normal(size=(600, 2))
    X = np.c_[z, z @ r.normal(size=(2, 4))] + 0.05 * r.normal(size=(600, 6))
    far = X[:20] * 6.0  # on the normal data's (linear) manifold, far out along it
    both = AnomalyDetector(anomaly_score="reconstruction+latent", hidden_units=(16,), n_components=2,
                           epochs=40, random_state=0).fit(X)
    s_normal, s_far = both.decision_function(X[20:]), both.decision_function(far)
    assert np.median(s_far) > np.quantile(s_normal, 0.99)
    # on the training rows the latent term averages about 1 and the error term 1
    assert np.mean(both.decision_scores_) == pytest.approx(2.0, rel=0.3)
    again = deepae.load(both.save(tmp_path / "l.deepae"))
    np.testing.assert_array_equal(again.decision_function(far), s_far)
    ex = both.explain(np.r_[X[20:40], far], top_k=1)
    assert len(set(ex["row"]) & set(range(20, 40))) >= 18  # the far rows are flagged
    with pytest.raises(ValueError, match="'anomaly_score' parameter of AnomalyDetector"):
        AnomalyDetector(anomaly_score="latent").fit(X)


def test_ensemble_of_autoencoders(tmp_path, transactions):
    """n_estimators members on one split: their scores' mean is the score; contributions
    still sum to the (mean) error; save -> load keeps every member."""
    X, y = transactions
    part = X.iloc[:1500][y[:1500] == 0]
    for score in ("reconstruction", "reconstruction+latent"):
        det = AnomalyDetector(n_estimators=3, anomaly_score=score, epochs=3,
                              random_state=0).fit(part)
        assert len(det.autoencoders_) == 3 and det.autoencoder_ is det.autoencoders_[0]
        w = [ae.get_weights()[0] for ae in det.autoencoders_]
        assert not np.allclose(w[0], w[1])  # other initial weights
        one = AnomalyDetector(anomaly_score=score, n_estimators=1, epochs=3,
                              random_state=0).fit(part)
        np.testing.assert_array_equal(one.autoencoder_.get_weights()[0], w[0])  # member 0
        s = det.decision_function(X.iloc[:200])
        parts = []
        for ae, (err_scale, mu, prec) in zip(det.autoencoders_, det._latent, strict=True):
            err, codes = ae.reconstruction_error_and_codes(det._model_input(X.iloc[:200]))
            if score == "reconstruction":
                parts.append(err)
            else:
                d = codes - mu
                parts.append(err / err_scale + np.einsum("ij,jk,ik->i", d, prec, d) / d.shape[1])
        np.testing.assert_allclose(s, np.mean(parts, axis=0), rtol=1e-5)
    plain = AnomalyDetector(n_estimators=2, anomaly_score="reconstruction", epochs=2,
                            random_state=0).fit(part)
    np.testing.assert_allclose(plain.feature_contributions(part).sum(1),
                               plain.decision_function(part), rtol=1e-4)
    again = deepae.load(det.save(tmp_path / "ens.deepae"))
    assert len(again.autoencoders_) == 3
    np.testing.assert_array_equal(again.decision_function(X), det.decision_function(X))
    for bad in (0, "many"):
        with pytest.raises(ValueError, match="'n_estimators' parameter"):
            AnomalyDetector(n_estimators=bad).fit(part)


def test_fpr_threshold_with_labels_reports_on_every_row():
    """"fpr" with labels is chosen on the normal rows and reported on all of them: the
    achieved false-positive rate is the normal rows' (it failed with a shape error)."""
    from deepae.thresholds import choose_threshold

    rng = np.random.default_rng(0)
    s = np.r_[rng.normal(size=900), rng.normal(4.0, 1.0, size=100)]
    y = np.r_[np.zeros(900, int), np.ones(100, int)]
    t, info = choose_threshold("fpr", s, y, target=0.05)
    assert info["achieved"]["false_positive_rate"] == pytest.approx(
        np.mean(s[:900] > t), abs=1e-6)
    assert 0.03 <= info["achieved"]["false_positive_rate"] <= 0.05
    assert info["achieved"]["recall"] > 0.8
