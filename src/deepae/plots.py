"""Figures, drawn with matplotlib's Agg backend (no screen needed).

Each function writes a PNG atomically (`deepae.fileio.atomic_write`, with the user's usual
file permissions) and returns its path.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from deepae.fileio import atomic_write

__all__ = ["reconstruction_grid", "training_curves", "embedding_scatter", "error_vs_code_size",
           "score_distribution", "roc_pr_curves"]


def _pyplot():
    try:
        import matplotlib
    except ImportError as e:
        raise ImportError("Plots need matplotlib, a dependency of deepae that is missing "
                          'here: pip install "matplotlib>=3.8"') from e
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path, overwrite: bool = True) -> Path:
    path = Path(path)
    fmt = path.suffix[1:].lower() or "png"
    try:
        atomic_write(path, lambda f: fig.savefig(f, format=fmt, dpi=100, bbox_inches="tight"),
                     overwrite=overwrite)
    finally:
        fig.clf()
        _pyplot().close(fig)
    return path


def _as_image(sample):
    img = np.asarray(sample, np.float32)
    if img.ndim == 1:  # a table row: show it as a strip
        side = int(np.ceil(np.sqrt(img.size)))
        img = np.pad(img, (0, side * side - img.size)).reshape(side, side)
    if img.ndim == 3 and img.shape[-1] == 1:
        img = img[..., 0]
    return img


def reconstruction_grid(originals, reconstructions, path, *, n: int = 10, title=None,
        overwrite: bool = True) -> Path:
    """Originals (top row) beside their reconstructions (bottom row).

    Parameters
    ----------
    originals, reconstructions : array of shape (n_samples, h, w[, c]) or (n_samples, d)
        In the same units; uint8-range data is shown on 0..255, otherwise on its own range.
    """
    plt = _pyplot()
    originals, reconstructions = np.asarray(originals), np.asarray(reconstructions)
    n = min(n, len(originals))
    lo = float(min(originals[:n].min(), 0))
    hi = float(max(originals[:n].max(), 1))
    fig, axes = plt.subplots(2, n, figsize=(1.3 * n, 3.0), squeeze=False)
    for i in range(n):
        for row, data, label in ((0, originals, "original"), (1, reconstructions, "reconstructed")):
            ax = axes[row][i]
            img = np.clip(_as_image(data[i]), lo, hi)
            if img.ndim == 3:
                ax.imshow((img - lo) / (hi - lo))
            else:
                ax.imshow(img, cmap="gray", vmin=lo, vmax=hi)
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_ylabel(label)
    if title:
        fig.suptitle(title)
    return _save(fig, path, overwrite)


def training_curves(history: dict, path, *, title=None,
        overwrite: bool = True) -> Path:
    """Loss (and validation loss) per epoch: log scale, or linear where a loss is not
    positive (a restorer's ``loss="psnr"`` is in dB, below zero)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5, 3.5))
    positive = True
    for key, values in history.items():
        if key.endswith("loss") and values:
            ax.plot(np.arange(1, len(values) + 1), values, marker="o", label=key)
            positive = positive and min(values) > 0
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss")
    ax.set_yscale("log" if positive else "linear")
    ax.legend()
    if title:
        ax.set_title(title)
    return _save(fig, path, overwrite)


def embedding_scatter(codes: dict, labels, path, *, title=None,
        overwrite: bool = True) -> Path:
    """2-D codes of each method side by side (e.g. autoencoder beside PCA), coloured by label.

    Parameters
    ----------
    codes : dict of name -> array of shape (n_samples, 2)
    labels : array of shape (n_samples,)
    """
    plt = _pyplot()
    labels = np.asarray(labels)
    fig, axes = plt.subplots(1, len(codes), figsize=(5.5 * len(codes), 5), squeeze=False)
    for ax, (name, z) in zip(axes[0], codes.items(), strict=True):
        z = np.asarray(z)
        sc = ax.scatter(z[:, 0], z[:, 1], c=labels, cmap="tab10", s=2, alpha=0.6)
        ax.set_title(name)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.colorbar(sc, ax=axes[0].tolist(), label="label")
    if title:
        fig.suptitle(title)
    return _save(fig, path, overwrite)


def error_vs_code_size(sizes, errors: dict, path, *, ylabel="test squared error per sample",
                       title=None,
        overwrite: bool = True) -> Path:
    """Test reconstruction error against code size for each method (log scale)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5, 3.8))
    for name, values in errors.items():
        ax.plot(list(sizes), list(values), marker="o", label=name)
    ax.set_xlabel("code size")
    ax.set_ylabel(ylabel)
    ax.set_yscale("log")
    ax.set_xticks(list(sizes))
    ax.legend()
    if title:
        ax.set_title(title)
    return _save(fig, path, overwrite)


def score_distribution(scores, labels, threshold, path, *, title=None,
        overwrite: bool = True) -> Path:
    """Histograms of the anomaly scores of normal and anomalous rows, with the threshold.

    Scores are drawn on a log axis when they span more than two decades (reconstruction
    errors usually do).
    """
    plt = _pyplot()
    s = np.asarray(scores, np.float64)
    fig, ax = plt.subplots(figsize=(7, 4))
    positive = s[s > 0]
    log = positive.size == s.size and s.size > 0 and positive.max() / positive.min() > 100
    values = np.log10(s) if log else s
    bins = np.linspace(values.min(), values.max(), 60)
    if labels is None:
        ax.hist(values, bins=bins, color="tab:blue", alpha=0.7, label="all rows")
    else:
        y = np.asarray(labels).astype(bool)
        ax.hist(values[~y], bins=bins, color="tab:blue", alpha=0.6, density=True,
                label=f"normal ({int((~y).sum())})")
        ax.hist(values[y], bins=bins, color="tab:red", alpha=0.6, density=True,
                label=f"anomaly ({int(y.sum())})")
    if threshold is not None:
        t = np.log10(threshold) if log and threshold > 0 else threshold
        ax.axvline(t, color="black", linestyle="--", label=f"threshold {threshold:.4g}")
    ax.set_xlabel("log10 anomaly score" if log else "anomaly score")
    ax.set_ylabel("density" if labels is not None else "rows")
    ax.legend()
    ax.set_title(title or "anomaly scores")
    return _save(fig, path, overwrite)


def roc_pr_curves(labels, scores, path, *, title=None,
        overwrite: bool = True) -> Path:
    """ROC curve (left) and precision-recall curve (right), with their areas."""
    from sklearn.metrics import average_precision_score, precision_recall_curve, roc_curve

    plt = _pyplot()
    y = np.asarray(labels).astype(bool)
    s = np.asarray(scores, np.float64)
    fpr, tpr, _ = roc_curve(y, s)
    prec, rec, _ = precision_recall_curve(y, s)
    auc = float(np.trapezoid(tpr, fpr))
    ap = float(average_precision_score(y, s))
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 4.2))
    a.plot(fpr, tpr, color="tab:blue", label=f"ROC-AUC {auc:.3f}")
    a.plot([0, 1], [0, 1], color="grey", linestyle=":")
    a.set_xlabel("false-positive rate")
    a.set_ylabel("recall (true-positive rate)")
    a.legend(loc="lower right")
    b.step(rec, prec, where="post", color="tab:red", label=f"average precision {ap:.3f}")
    b.axhline(y.mean(), color="grey", linestyle=":", label=f"base rate {y.mean():.4f}")
    b.set_xlabel("recall")
    b.set_ylabel("precision")
    b.set_ylim(0, 1.02)
    b.legend(loc="upper right")
    fig.suptitle(title or "detection quality")
    return _save(fig, path, overwrite)


def rate_distortion(panels: dict, path, *, ylabel="PSNR (dB)", title=None,
        overwrite: bool = True) -> Path:
    """Rate-distortion curves: one panel per entry of `panels` (``{title: {method: (bpp,
    quality)}}``), bits per pixel on x."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 3.9), squeeze=False)
    # one colour per method in every panel, even where a panel lacks some method
    methods = list(dict.fromkeys(m for curves in panels.values() for m in curves))
    colour = {m: f"C{i % 10}" for i, m in enumerate(methods)}
    for ax, (name, curves) in zip(axes[0], panels.items(), strict=True):
        for method, (bpp, quality) in curves.items():
            order = np.argsort(bpp)
            ax.plot(np.asarray(bpp)[order], np.asarray(quality)[order], marker="o",
                    markersize=3, label=method, color=colour[method])
        ax.set_xlabel("bits per pixel (file size)")
        ax.set_ylabel(ylabel)
        ax.set_title(name)
        ax.grid(alpha=0.3)
        ax.legend()
    if title:
        fig.suptitle(title)
    return _save(fig, path, overwrite)
