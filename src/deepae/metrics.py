"""Reconstruction metrics in the units the literature uses."""

from __future__ import annotations

import numpy as np

__all__ = ["reconstruction_errors", "detection_report", "recall_at_fpr", "precision_at_k"]


def reconstruction_errors(x, x_hat) -> dict:
    """Errors between `x` and its reconstruction `x_hat`, both scaled to the same units.

    Returns
    -------
    dict
        ``mse_per_feature``: mean squared error per pixel / feature;
        ``se_per_sample``: squared error summed over a sample's features, averaged over
        samples (Hinton & Salakhutdinov 2006's "average squared error per image" when the
        data is in [0, 1]).
    """
    x = np.asarray(x, np.float64).reshape(len(x), -1)
    x_hat = np.asarray(x_hat, np.float64).reshape(len(x_hat), -1)
    if x.shape != x_hat.shape:
        raise ValueError(f"Expected `x_hat` with the shape of `x` {x.shape}; "
                         f"received {x_hat.shape}.")
    se = ((x - x_hat) ** 2).sum(axis=1)
    return {"mse_per_feature": float(se.mean() / x.shape[1]), "se_per_sample": float(se.mean())}


# -- anomaly detection ----------------------------------------------------------------------
def _labels_scores(y_true, scores):
    from deepae._validation import check_binary_labels

    s = np.asarray(scores, dtype=np.float64).ravel()
    y = check_binary_labels(y_true, "y_true", n=s.size)
    if y.all() or not y.any():
        raise ValueError("Expected `y_true` with both normal (0) and anomalous (1) rows; "
                         f"received {int(y.sum())} anomalies in {y.size} rows.")
    if not np.isfinite(s).all():
        raise ValueError("Expected finite `scores`; received NaN or inf.")
    return y, s


def recall_at_fpr(y_true, scores, fpr=0.01) -> float:
    """Share of anomalies caught when the threshold lets through `fpr` of the normal rows."""
    y, s = _labels_scores(y_true, scores)
    t = float(np.quantile(s[~y], 1.0 - fpr))
    return float((s[y] > t).mean())


def precision_at_k(y_true, scores, k=None) -> float:
    """Share of anomalies among the `k` highest scores (default k = number of anomalies)."""
    y, s = _labels_scores(y_true, scores)
    k = int(y.sum()) if k is None else int(k)
    if k < 1:
        raise ValueError(f"Expected `k` >= 1; received {k}.")
    top = np.argsort(-s, kind="stable")[:k]
    return float(y[top].mean())


def detection_report(y_true, scores, threshold=None, *, fpr=0.01, k=None) -> dict:
    """The numbers a fraud team reads, for anomaly scores (higher = more anomalous).

    Returns
    -------
    dict
        ``roc_auc``; ``average_precision`` (PR-AUC, the headline for rare anomalies);
        ``recall_at_fpr`` at `fpr`; ``precision_at_k`` (k = number of anomalies by default);
        and, when `threshold` is given (flag ``score > threshold``), the confusion matrix
        ``tn, fp, fn, tp`` with ``precision``, ``recall``, ``f1``, ``false_positive_rate``.
    """
    from sklearn.metrics import average_precision_score, roc_auc_score

    y, s = _labels_scores(y_true, scores)
    out = {"n_rows": int(y.size), "n_anomalies": int(y.sum()),
           "roc_auc": float(roc_auc_score(y, s)),
           "average_precision": float(average_precision_score(y, s)),
           "recall_at_fpr": recall_at_fpr(y, s, fpr), "fpr": float(fpr),
           "precision_at_k": precision_at_k(y, s, k), "k": int(y.sum()) if k is None else int(k)}
    if threshold is not None:
        flag = s > float(threshold)
        tp, fp = int((flag & y).sum()), int((flag & ~y).sum())
        fn, tn = int((~flag & y).sum()), int((~flag & ~y).sum())
        p = tp / max(tp + fp, 1)
        r = tp / max(tp + fn, 1)
        out.update(threshold=float(threshold), tn=tn, fp=fp, fn=fn, tp=tp, precision=p,
                   recall=r, f1=2 * p * r / max(p + r, 1e-12),
                   false_positive_rate=fp / max(fp + tn, 1))
    return out
