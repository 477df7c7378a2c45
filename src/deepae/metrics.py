"""Reconstruction metrics in the units the literature uses."""

from __future__ import annotations

import numbers

import numpy as np

__all__ = ["retrieval_precision_at", "reconstruction_errors", "detection_report", "recall_at_fpr", "precision_at_k",
           "psnr", "psnr_per_image", "ssim", "bits_per_pixel", "bd_rate",
           "mean_average_precision", "precision_within_radius", "hamming_pr_curve"]


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


# -- images ---------------------------------------------------------------------------------
def _image_pair(x, y, data_range, name):
    x, y = np.asarray(x), np.asarray(y)
    if x.shape != y.shape:
        raise ValueError(f"{name}: expected two images of the same shape; received {x.shape} "
                         f"and {y.shape}.")
    if x.ndim < 2 or x.size == 0:
        raise ValueError(f"{name}: expected an image (h, w), (h, w, c) or a batch "
                         f"(n, h, w, c); received shape {x.shape}.")
    if data_range is None:
        kinds = {a.dtype.kind for a in (x, y)}
        if kinds <= {"u"} and {a.dtype.itemsize for a in (x, y)} == {1}:
            data_range = 255.0
        elif kinds <= {"f"}:
            data_range = 1.0
        else:
            raise ValueError(f"{name}: pass data_range for images of dtype {x.dtype} and "
                             f"{y.dtype} (uint8 images use 255, float images 1.0).")
    if not np.isfinite(np.asarray(x, np.float64)).all() or \
            not np.isfinite(np.asarray(y, np.float64)).all():
        raise ValueError(f"{name}: expected finite pixel values; received NaN or inf.")
    return x.astype(np.float64), y.astype(np.float64), float(data_range)


def psnr(x, y, data_range=None) -> float:
    """Peak signal-to-noise ratio in dB: ``10 log10(data_range**2 / MSE)`` over all pixels.

    `data_range` defaults to 255 for uint8 images and 1.0 for float images in [0, 1].
    Identical images give ``inf``. For a batch, average `psnr` over images yourself when
    you want the per-image mean that restoration papers report (`psnr_per_image`).
    """
    x, y, r = _image_pair(x, y, data_range, "psnr")
    mse = float(np.mean((x - y) ** 2))
    return float("inf") if mse == 0 else float(10.0 * np.log10(r * r / mse))


def psnr_per_image(x, y, data_range=None) -> np.ndarray:
    """PSNR of each image of two (n, h, w[, c]) batches, shape (n,)."""
    x, y, r = _image_pair(x, y, data_range, "psnr_per_image")
    mse = ((x - y) ** 2).reshape(len(x), -1).mean(axis=1)
    with np.errstate(divide="ignore"):
        return 10.0 * np.log10(r * r / mse)


def ssim(x, y, data_range=None, *, sigma=1.5, channel_axis=-1) -> float:
    """Structural similarity (Wang et al. 2004), mean over the image.

    Gaussian window of standard deviation `sigma` (1.5, truncated at 3.5 sigma), K1 = 0.01,
    K2 = 0.03, population (co)variances: the settings of the paper and of
    ``skimage.metrics.structural_similarity(gaussian_weights=True,
    use_sample_covariance=False)``. Colour images are averaged over channels
    (`channel_axis`, use None for a grayscale (h, w) image or (n, h, w) batch); a batch
    (n, h, w, c) is averaged over images. Borders within the window's radius are left out
    of the mean, as scikit-image does.
    """
    from scipy.ndimage import gaussian_filter

    x, y, r = _image_pair(x, y, data_range, "ssim")
    if channel_axis is not None and x.ndim >= 3:
        x, y = np.moveaxis(x, channel_axis, -1), np.moveaxis(y, channel_axis, -1)
    else:
        x, y = x[..., None], y[..., None]
    x = x.reshape((-1,) + x.shape[-3:])
    y = y.reshape((-1,) + y.shape[-3:])
    radius = int(3.5 * sigma + 0.5)
    if min(x.shape[1:3]) < 2 * radius + 1:
        raise ValueError(f"ssim: images must be at least {2 * radius + 1} pixels on each side "
                         f"for sigma={sigma}; received {x.shape[1]}x{x.shape[2]}.")
    s = (0, sigma, sigma, 0)

    def f(a):
        return gaussian_filter(a, s, truncate=3.5, mode="reflect")

    c1, c2 = (0.01 * r) ** 2, (0.03 * r) ** 2
    mx, my = f(x), f(y)
    vx, vy, cxy = f(x * x) - mx * mx, f(y * y) - my * my, f(x * y) - mx * my
    m = ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx * mx + my * my + c1) * (vx + vy + c2))
    return float(m[:, radius:-radius, radius:-radius, :].mean())


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


def bits_per_pixel(data, image_shape) -> float:
    """Bits per pixel of a compressed file: its real size in bits (`data` as bytes, or a byte
    count) over the image's height x width, whatever the channels."""
    n = data if isinstance(data, numbers.Integral) else len(data)
    h, w = image_shape[:2]
    return 8.0 * int(n) / (int(h) * int(w))


def bd_rate(rate_ref, psnr_ref, rate_test, psnr_test) -> float:
    """Bjontegaard delta rate (VCEG-M33): the average bit-rate difference, in percent, of the
    test codec against the reference at equal PSNR, over the PSNR range both curves cover.
    Negative: the test codec needs fewer bits.

    Each curve's log-rate is fitted by a cubic polynomial in PSNR (at least 4 points each),
    integrated over the common PSNR interval.
    """
    curves = []
    for name, r, d in (("reference", rate_ref, psnr_ref), ("test", rate_test, psnr_test)):
        r, d = np.asarray(r, np.float64), np.asarray(d, np.float64)
        if r.shape != d.shape or r.ndim != 1 or r.size < 4:
            raise ValueError(f"Expected the {name} curve as two 1-d sequences of the same "
                             f"length, at least 4 points; received {r.shape} and {d.shape}.")
        if (r <= 0).any():
            raise ValueError(f"Expected positive rates in the {name} curve; received {r}.")
        curves.append((np.log(r), d))
    lo = max(c[1].min() for c in curves)
    hi = min(c[1].max() for c in curves)
    if lo >= hi:
        raise ValueError(f"The curves' PSNR ranges do not overlap (reference "
                         f"{curves[0][1].min():.2f}-{curves[0][1].max():.2f} dB, test "
                         f"{curves[1][1].min():.2f}-{curves[1][1].max():.2f} dB).")
    areas = []
    for log_r, d in curves:
        poly = np.polyint(np.polyfit(d, log_r, 3))
        areas.append((np.polyval(poly, hi) - np.polyval(poly, lo)) / (hi - lo))
    return float((np.exp(areas[1] - areas[0]) - 1) * 100)


def _relevance(rankings, db_labels, query_labels):
    db_labels, query_labels = np.asarray(db_labels), np.asarray(query_labels)
    if len(rankings) != len(query_labels):
        raise ValueError(f"Expected one ranking per query: {len(query_labels)}; received "
                         f"{len(rankings)}.")
    return [db_labels[np.asarray(r, np.int64)] == q for r, q in
            zip(rankings, query_labels, strict=True)]


def mean_average_precision(rankings, db_labels, query_labels, top: int = 5000) -> float:
    """Mean over queries of the average precision of the first `top` retrieved items.

    ``rankings[i]`` holds database positions, best first; an item is relevant when its
    label equals the query's. A query's AP is the mean of the precision at each relevant
    position within the top `top` (0 when none is relevant): the usual mAP@N of the
    hashing literature.
    """
    aps = []
    for rel in _relevance([np.asarray(r)[:top] for r in rankings], db_labels, query_labels):
        if not rel.any():
            aps.append(0.0)
            continue
        hits = np.cumsum(rel)
        aps.append(float(np.mean(hits[rel] / (np.flatnonzero(rel) + 1))))
    return float(np.mean(aps))


def retrieval_precision_at(rankings, db_labels, query_labels, k: int = 100) -> float:
    """Mean over queries of the share of relevant items among the first `k` retrieved
    (``rankings[i]``: database positions, best first; fewer than `k` count as retrieved)."""
    if isinstance(k, bool) or not isinstance(k, int | np.integer) or k < 1:
        raise ValueError(f"Expected `k` as an int >= 1; received {k!r}.")
    rels = _relevance([np.asarray(r)[:k] for r in rankings], db_labels, query_labels)
    return float(np.mean([rel.mean() if rel.size else 0.0 for rel in rels]))


def precision_within_radius(found, db_labels, query_labels) -> float:
    """Mean over queries of the share of relevant items among those found within a Hamming
    radius (``found[i]``: database positions); a query that finds nothing counts 0, as in
    semantic hashing's evaluation."""
    return float(np.mean([rel.mean() if rel.size else 0.0
                          for rel in _relevance(found, db_labels, query_labels)]))


def hamming_pr_curve(distances, db_labels, query_labels, n_bits: int):
    """Precision and recall at each Hamming radius 0..n_bits, micro-averaged over queries.

    ``distances`` is (n_queries, n_db), the Hamming distance of every database item to each
    query. Returns ``(radii, precision, recall)``.
    """
    d = np.asarray(distances)
    rel = np.asarray(db_labels)[None, :] == np.asarray(query_labels)[:, None]
    radii = np.arange(int(n_bits) + 1)
    tp = np.array([(rel & (d <= r)).sum() for r in radii], np.float64)
    retrieved = np.array([(d <= r).sum() for r in radii], np.float64)
    precision = np.divide(tp, retrieved, out=np.zeros_like(tp), where=retrieved > 0)
    return radii, precision, tp / max(1, rel.sum())
