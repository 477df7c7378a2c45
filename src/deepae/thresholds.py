"""Choosing the anomaly-score threshold, each way for a stated reason.

A row is flagged when its score is strictly greater than the threshold (PyOD's rule).
Every chooser returns ``(threshold, info)``; `info` records the method, its target and what
the threshold achieves on the data it was chosen on, so the choice can be shown later
(`deepae info`) and audited.

=================  ==============================================  =====================
method             chooses                                         needs
=================  ==============================================  =====================
"contamination"    the (1 - contamination) quantile of scores      scores
"fpr"              the quantile giving a target false-positive     scores of normal rows
                   rate on held-out normal rows                    (not trained on)
"score"            a fixed score given by the user                 a number
"f1"               the cut with the best F1                        scores and labels
"precision"        the lowest cut whose precision >= target        scores and labels
"recall"           the highest cut whose recall >= target          scores and labels
"cost"             the cut minimising missed * cost_missed +       scores and labels
                   false alarms * cost_review
=================  ==============================================  =====================
"""

from __future__ import annotations

import numbers

import numpy as np

from deepae._validation import check_binary_labels

__all__ = ["choose_threshold", "METHODS", "LABELLED_METHODS"]

METHODS = ("contamination", "fpr", "score", "f1", "precision", "recall", "cost")
LABELLED_METHODS = ("f1", "precision", "recall", "cost")
DEFAULT_TARGET = {"fpr": 0.01, "precision": 0.9, "recall": 0.9, "contamination": 0.1}


def _check_rate(value, name, *, low_open=True):
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not np.isfinite(value):
        raise TypeError(f"The '{name}' parameter must be a float in (0, 1). Got "
                        f"{type(value).__name__} {value!r} instead.")
    if not (0 < value < 1) and not (not low_open and value == 0):
        raise ValueError(f"The '{name}' parameter must be a float in (0, 1). Got {value} "
                         "instead.")
    return float(value)


def _check_scores(scores, name="scores"):
    s = np.asarray(scores, dtype=np.float64).ravel()
    if s.size == 0:
        raise ValueError(f"Expected `{name}` with at least one value; received none.")
    if not np.isfinite(s).all():
        raise ValueError(f"Expected finite `{name}`; received {int((~np.isfinite(s)).sum())} "
                         "NaN or inf value(s).")
    return s


def _check_labels(y, n):
    if y is None:
        raise ValueError("This threshold method needs labels: pass y (0 normal, 1 anomaly) with "
                         "at least one anomaly.")
    y = check_binary_labels(y, "y", n=n)
    if not y.any():
        raise ValueError("Expected `y` with at least one anomaly (label 1) to choose this "
                         "threshold; received none.")
    return y


def _cut_between(sorted_desc, i):
    """A threshold that flags exactly the first i+1 of the sorted (descending) scores."""
    hi = sorted_desc[i]
    if i + 1 < len(sorted_desc):
        lo = sorted_desc[i + 1]
        return float((hi + lo) / 2.0)
    return float(np.nextafter(hi, -np.inf))


def _quantile_threshold(scores, rate):
    """The threshold that flags a fraction `rate` of `scores` (ties kept together)."""
    return float(np.quantile(scores, 1.0 - rate))


def _curve(scores, y):
    """Counts at each distinct cut: flag rows with score >= the i-th distinct score."""
    order = np.argsort(-scores, kind="stable")
    s, t = scores[order], y[order]
    # the last row of each run of tied scores: a cut cannot split ties
    last = np.r_[np.flatnonzero(np.diff(s) != 0), len(s) - 1]
    tp = np.cumsum(t)[last].astype(np.float64)
    fp = (last + 1) - tp
    return s, last, tp, fp


def _summary(scores, y, threshold):
    flagged = scores > threshold
    out = {"flagged": int(flagged.sum()), "flagged_rate": round(float(flagged.mean()), 6)}
    if y is not None:
        tp = int((flagged & y).sum())
        fp = int((flagged & ~y).sum())
        fn = int((~flagged & y).sum())
        out.update(precision=round(tp / max(tp + fp, 1), 6), recall=round(tp / max(tp + fn, 1), 6),
                   false_positive_rate=round(fp / max(int((~y).sum()), 1), 6),
                   tp=tp, fp=fp, fn=fn)
    return out


def choose_threshold(method, scores, y=None, *, target=None, contamination=0.1,
                     cost_missed=100.0, cost_review=1.0, score=None):
    """Choose a threshold on `scores` (higher = more anomalous); flag rows scoring above it.

    Parameters
    ----------
    method : {"contamination", "fpr", "score", "f1", "precision", "recall", "cost"}
    scores : array of shape (n,)
        For "fpr", the scores of normal rows the model was *not* trained on.
    y : array of shape (n,), optional
        0 normal, 1 anomaly; needed by "f1", "precision", "recall" and "cost".
    target : float, optional
        The false-positive rate ("fpr", default 0.01), precision ("precision", 0.9) or recall
        ("recall", 0.9) to reach.
    contamination : float in (0, 0.5], default=0.1
        For "contamination": the share of rows expected to be anomalous.
    cost_missed, cost_review : float
        For "cost": the cost of a missed anomaly and of reviewing a false alarm.
    score : float
        For "score": the threshold itself.

    Returns
    -------
    threshold : float
    info : dict
        ``method``, its target, ``n_rows`` it was chosen on and what it achieves there.
    """
    if method not in METHODS:
        raise ValueError(f"The 'threshold' method must be one of {list(METHODS)} or a number. "
                         f"Got {method!r} instead.")
    s = _check_scores(scores)
    yb = _check_labels(y, len(s)) if method in LABELLED_METHODS else (
        None if y is None else check_binary_labels(y, "y", n=len(s)))
    info = {"method": method, "n_rows": int(len(s))}
    if method in ("score", "contamination", "fpr"):
        # ("fpr" with labels is chosen on the normal rows; reported below on every row)
        t = _unlabelled_threshold(method, s, yb, info, target=target,
                                  contamination=contamination, score=score)
    else:
        srt, last, tp, fp = _curve(s, yb)
        i = _labelled_cut(method, tp, fp, float(yb.sum()), info, target=target,
                          cost_missed=cost_missed, cost_review=cost_review)
        t = float(np.nextafter(srt[0], np.inf)) if i < 0 else _cut_between(srt, int(last[i]))
    info["threshold"] = t
    info["achieved"] = _summary(s, yb, t)
    return t, info


def _unlabelled_threshold(method, s, yb, info, *, target, contamination, score):
    """The "score", "contamination" and "fpr" thresholds ("fpr" with labels measured on the
    normal rows' scores); notes go into `info`."""
    if method == "score":
        if isinstance(score, bool) or not isinstance(score, numbers.Real) or not np.isfinite(score):
            raise TypeError(f"A fixed threshold must be a finite number. Got {score!r} instead.")
        return float(score)
    if method == "contamination":
        c = float(contamination)
        if isinstance(contamination, bool) or not (0 < c <= 0.5):
            raise ValueError("The 'contamination' parameter must be a float in (0, 0.5]. Got "
                             f"{contamination!r} instead.")
        info["contamination"] = c
        return _quantile_threshold(s, c)
    rate = _check_rate(DEFAULT_TARGET["fpr"] if target is None else target, "target")
    if yb is not None:
        s = s[~yb]
    t = _quantile_threshold(s, rate) if rate * len(s) >= 1 else float(s.max())
    info["target"] = rate
    if len(s) < 1.0 / rate:
        info["warning"] = (f"{len(s)} normal rows cannot measure a false-positive rate of "
                           f"{rate}; the threshold is the highest normal score.")
    return t


def _labelled_cut(method, tp, fp, n_pos, info, *, target, cost_missed, cost_review) -> int:
    """Where the labelled methods cut the ranked scores: an index into the curve's points
    (-1: flag nothing); notes go into `info`."""
    precision = tp / (tp + fp)
    recall = tp / n_pos
    if method == "f1":
        f1 = np.where(tp > 0, 2 * precision * recall / np.maximum(precision + recall, 1e-12),
                      0.0)
        return int(np.argmax(f1))
    if method == "precision":
        goal = _check_rate(DEFAULT_TARGET["precision"] if target is None else target, "target")
        ok = np.flatnonzero(precision >= goal)
        info["target"] = goal
        if len(ok):
            return int(ok[-1])  # the most rows flagged while precision holds
        i = int(np.argmax(precision))
        info["warning"] = (f"no threshold reaches precision {goal}; the one with the "
                           f"highest precision ({precision[i]:.3f}) is used.")
        return i
    if method == "recall":
        goal = _check_rate(DEFAULT_TARGET["recall"] if target is None else target, "target")
        info["target"] = goal
        return int(np.flatnonzero(recall >= goal - 1e-12)[0])  # the fewest rows flagged
    for name, v in (("cost_missed", cost_missed), ("cost_review", cost_review)):
        if isinstance(v, bool) or not isinstance(v, numbers.Real) or v < 0:
            raise ValueError(f"The '{name}' parameter must be a non-negative number. "
                             f"Got {v!r} instead.")
    cost = (n_pos - tp) * cost_missed + fp * cost_review
    none_cost = n_pos * cost_missed  # flag nothing
    i = int(np.argmin(cost))
    info.update(cost_missed=float(cost_missed), cost_review=float(cost_review))
    if none_cost <= cost[i]:
        i = -1
    info["expected_cost"] = float(none_cost if i < 0 else cost[i])
    return i
