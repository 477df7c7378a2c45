"""Synthetic data with a documented recipe, for tests, demos and benchmarks.

No package ships the credit-card fraud data (284,807 transactions, 0.17% fraud), so
`make_transactions` writes rows of the same shape, with fraud patterns that are written
down rather than guessed at.
"""

from __future__ import annotations

import numbers

import numpy as np

__all__ = ["make_transactions", "time_split", "distort_images"]

_MERCHANTS = ("grocery", "fuel", "restaurant", "online", "travel", "electronics")
_DAY = 86400.0


def _check(value, name, kind, low, high=None):
    ok_type = isinstance(value, numbers.Integral if kind == "int" else numbers.Real)
    if isinstance(value, bool) or not ok_type or value < low or (high is not None and value > high):
        rng = f"[{low}, {high if high is not None else 'inf'}]"
        raise ValueError(f"The '{name}' parameter of make_transactions must be {'an int' if kind == 'int' else 'a float'} "
                         f"in the range {rng}. Got {value!r} instead.")
    return value


def make_transactions(n_samples=100_000, *, fraud_rate=0.002, n_features=28, days=2.0,
                      categorical=False, missing_rate=0.0, random_state=None, as_frame=True):
    """Time-ordered card transactions shaped like the public credit-card fraud data.

    *Normal rows.* Each customer profile is a point ``u`` in a 4-d latent space (a mixture
    of 6 Gaussian clusters). Raw features are a fixed smooth nonlinear map of it,
    ``r = A @ tanh(B @ u) + 0.25 * noise`` (``n_features`` of them), then rotated and
    scaled by the PCA of the normal rows, so that ``V1..Vn`` are uncorrelated with
    decreasing variance, as in the public data. ``Amount`` is log-normal with a median near
    $40 whose level depends on ``u``; ``Time`` counts seconds from the first row, with
    fewer transactions at night (a daily cycle).

    *Fraud rows* (a share ``fraud_rate``), in three documented patterns:

    1. account takeover (50%): a normal-looking profile pushed off the manifold along
       three fixed raw directions (as V14, V17 and V12 are in the public data), amounts
       somewhat higher than usual;
    2. card testing (25%): amounts of $0.50-$3, features with three times the usual noise,
       mostly at night;
    3. cash-out (25%): a profile's features with amounts 10-60 times that profile's usual
       one, mostly at night.

    Some fraud is subtle by construction (small shifts), so no detector separates all of it.
    With ``categorical=True`` a ``merchant`` column is added (fraud leans towards
    ``online`` and ``electronics``); ``missing_rate`` blanks that share of the V values.

    Parameters
    ----------
    n_samples : int, default=100000
    fraud_rate : float in [0, 0.5], default=0.002
    n_features : int, default=28
        Number of V columns.
    days : float, default=2.0
        Span of the ``Time`` column.
    categorical : bool, default=False
    missing_rate : float in [0, 0.5], default=0.0
    random_state : int, optional
    as_frame : bool, default=True
        Return a pandas DataFrame and Series; otherwise a float array (without the
        categorical column) and an int array.

    Returns
    -------
    X : DataFrame with columns ``Time, V1..Vn, Amount`` (and ``merchant``), time-ordered
    y : Series ``Class`` (1 = fraud) of the same length

    Examples
    --------
    >>> from deepae.datasets import make_transactions
    >>> X, y = make_transactions(2000, fraud_rate=0.01, random_state=0)
    >>> X.shape, int(y.sum())
    ((2000, 30), 20)
    """
    n = _check(n_samples, "n_samples", "int", 1)
    rate = _check(fraud_rate, "fraud_rate", "float", 0.0, 0.5)
    d = _check(n_features, "n_features", "int", 4)
    _check(days, "days", "float", 1e-6)
    _check(missing_rate, "missing_rate", "float", 0.0, 0.5)
    rng = np.random.default_rng(random_state)
    structure = np.random.default_rng(1234)  # the map itself is fixed, whatever the seed
    k = 4
    centers = structure.normal(0.0, 1.2, (6, k))
    B = structure.normal(0.0, 0.8, (16, k))
    A = structure.normal(0.0, 1.0, (d, 16)) / 4.0
    fraud_dirs = np.zeros((3, d))
    for i, j in enumerate((d // 2, (2 * d) // 3, d // 3)):
        fraud_dirs[i, j] = 1.0
    fraud_dirs = fraud_dirs + 0.3 * structure.normal(0, 1, (3, d))

    n_fraud = int(round(rate * n))
    y = np.zeros(n, dtype=np.int64)
    y[rng.choice(n, n_fraud, replace=False)] = 1
    pattern = np.where(y == 1, rng.choice(3, n, p=[0.5, 0.25, 0.25]), -1)

    cluster = rng.integers(0, len(centers), n)
    u = centers[cluster] + 0.5 * rng.normal(0, 1, (n, k))
    noise = 0.25 * rng.normal(0, 1, (n, d))
    noise[pattern == 1] *= 3.0
    raw = np.tanh(u @ B.T) @ A.T + noise
    takeover = pattern == 0
    raw[takeover] -= rng.uniform(0.4, 1.6, (takeover.sum(), 1)) * (
        rng.uniform(0.3, 1.0, (takeover.sum(), 3)) @ fraud_dirs)
    V = _principal_axes(raw, structure, centers, A, B)
    amount = _amounts(rng, u, pattern)
    t, order = _arrival_times(rng, n, days, pattern)
    if order is not None:
        V, amount, y, cluster = V[order], amount[order], y[order], cluster[order]
    if missing_rate > 0:
        V[rng.random(V.shape) < missing_rate] = np.nan
    names = ["Time"] + [f"V{i + 1}" for i in range(d)] + ["Amount"]
    X = np.column_stack([t - t[0], V, amount])
    if not as_frame:
        return X, y
    import pandas as pd

    frame = pd.DataFrame(X, columns=names)
    if categorical:
        p_normal = np.array([0.3, 0.15, 0.2, 0.2, 0.05, 0.1])
        p_fraud = np.array([0.05, 0.05, 0.05, 0.45, 0.1, 0.3])
        merchant = np.where(
            y == 1, rng.choice(6, n, p=p_fraud), rng.choice(6, n, p=p_normal))
        frame["merchant"] = pd.Categorical.from_codes(merchant, list(_MERCHANTS))
    return frame, pd.Series(y, name="Class")


def _principal_axes(raw, structure, centers, A, B):
    """PCA-like V columns: `raw` rotated and scaled by the principal components of normal
    rows drawn from the fixed structure, so that V1..Vn mean the same in every call,
    whatever the seed."""
    n_ref, (k, d) = 20_000, (centers.shape[1], raw.shape[1])
    ref_u = centers[structure.integers(0, len(centers), n_ref)] + 0.5 * structure.normal(
        0, 1, (n_ref, k))
    ref = np.tanh(ref_u @ B.T) @ A.T + 0.25 * structure.normal(0, 1, (n_ref, d))
    mean = ref.mean(axis=0)
    _, sv, vt = np.linalg.svd(ref - mean, full_matrices=False)
    vt *= np.sign(vt[:, :1])  # a fixed sign per component
    return (raw - mean) @ vt.T * (np.sqrt(np.linspace(4.0, 0.3, d)) / (sv / np.sqrt(n_ref - 1)))


def _amounts(rng, u, pattern):
    """Log-normal amounts whose level follows the profile `u`; the fraud patterns' own."""
    n = len(u)
    level = 3.2 + 0.5 * np.tanh(u[:, 0]) + 0.3 * u[:, 1] / 1.5
    amount = np.exp(level + 0.9 * rng.normal(0, 1, n))
    takeover = pattern == 0
    amount[takeover] *= rng.uniform(1.5, 4.0, takeover.sum())
    testing = pattern == 1
    amount[testing] = rng.uniform(0.5, 3.0, testing.sum())
    cash = pattern == 2
    amount[cash] = np.exp(level[cash]) * rng.uniform(10, 60, cash.sum())
    return np.round(amount, 2)


def _arrival_times(rng, n, days, pattern):
    """Sorted arrival times with a daily cycle (the hour of day by rejection sampling), and
    the order of the rows that moves most testing and cash-out fraud to night-time slots
    (None when nothing moves)."""
    t = np.sort(rng.uniform(0, days * _DAY, 4 * n + 100))
    keep = rng.random(t.size) < 0.55 - 0.45 * np.cos(2 * np.pi * (t / _DAY - 0.1))
    t = t[keep][:n]
    if t.size < n:
        t = np.sort(np.r_[t, rng.uniform(0, days * _DAY, n - t.size)])
    night = (pattern == 1) | (pattern == 2)
    # swap each with a random night-time slot
    hours = (t / 3600.0) % 24
    night_slots = np.flatnonzero(hours < 5)
    fraud_night = np.flatnonzero(night & (rng.random(n) < 0.7))
    if not (len(night_slots) and len(fraud_night)):
        return t, None
    order = np.arange(n)
    targets = rng.choice(night_slots, len(fraud_night), replace=len(night_slots) < len(
        fraud_night))
    for a, b in zip(fraud_night, targets, strict=True):
        order[a], order[b] = order[b], order[a]
    return t, order


def time_split(X, y=None, *, test_size=0.3, time_column=None):
    """Split rows in time order: the first ``1 - test_size`` for training, the rest for test.

    Parameters
    ----------
    X : DataFrame or array of shape (n, ...)
        Rows in time order, or with a `time_column` to sort by (stable, ties keep order).
    y : array-like, optional
    test_size : float in (0, 1), default=0.3

    Returns
    -------
    X_train, X_test (and y_train, y_test when `y` is given)
    """
    if isinstance(test_size, bool) or not isinstance(test_size, numbers.Real) or not (
            0 < test_size < 1):
        raise ValueError(f"The 'test_size' parameter of time_split must be a float in (0, 1). "
                         f"Got {test_size!r} instead.")
    n = len(X)
    order = None
    if time_column is not None:
        if not hasattr(X, "columns") or time_column not in X.columns:
            raise ValueError(f"The 'time_column' {time_column!r} is not a column of X.")
        order = np.argsort(X[time_column].to_numpy(), kind="stable")
    cut = n - int(np.ceil(test_size * n))
    if cut < 1 or cut >= n:
        raise ValueError(f"time_split of {n} rows with test_size={test_size} leaves an empty "
                         "side.")

    def take(a, idx):
        if hasattr(a, "iloc"):
            return a.iloc[idx]
        return np.asarray(a)[idx]

    idx = np.arange(n) if order is None else order
    parts = [take(X, idx[:cut]), take(X, idx[cut:])]
    if y is not None:
        if len(y) != n:
            raise ValueError(f"Expected `y` with {n} rows like X; received {len(y)}.")
        parts += [take(y, idx[:cut]), take(y, idx[cut:])]
    return tuple(parts)


def distort_images(images, n_samples: int, *, random_state=0, max_shift: float = 2.0,
                   max_rotation: float = 12.0, scale=(0.9, 1.1), keep_originals: bool = True,
                   chunk: int = 20_000):
    """`n_samples` images made from `images` (n, h, w) uint8 by small random affine
    distortions, as infinite MNIST (Loosli, Canu & Bottou 2007) makes its digits: item ``i``
    is image ``i % n`` shifted by up to `max_shift` pixels, turned by up to `max_rotation`
    degrees and scaled by a factor in `scale` around its centre (bilinear, zero outside);
    with `keep_originals` the first ``n`` items are the images themselves.

    Returns ``(distorted (n_samples, h, w) uint8, source (n_samples,) int64)``: `source` is
    the index of each item's image (its label is the image's). The draws depend on
    `random_state` alone, not on `chunk` (how many images are warped at a time).
    """
    images = np.asarray(images)
    if images.ndim != 3 or images.dtype != np.uint8 or not len(images):
        raise ValueError(f"Expected `images` as a non-empty (n, h, w) uint8 array; received "
                         f"shape {images.shape}, dtype {images.dtype}.")
    n = _check(n_samples, "n_samples", "int", 1)
    rng = np.random.default_rng(random_state)
    source = np.arange(n, dtype=np.int64) % len(images)
    angle = np.deg2rad(rng.uniform(-max_rotation, max_rotation, n))
    factor = rng.uniform(scale[0], scale[1], n)
    shift = rng.uniform(-max_shift, max_shift, (n, 2))
    if keep_originals:
        m = min(n, len(images))
        angle[:m], factor[:m], shift[:m] = 0.0, 1.0, 0.0
    out = np.empty((n, *images.shape[1:]), np.uint8)
    for lo in range(0, n, int(chunk)):
        hi = min(n, lo + int(chunk))
        out[lo:hi] = _warp(images[source[lo:hi]], angle[lo:hi], factor[lo:hi], shift[lo:hi])
    return out, source


def _warp(images, angle, factor, shift):
    """Each image (b, h, w) turned by `angle`, scaled by `factor` and moved by `shift`
    (dy, dx) about its centre; bilinear sampling, zero outside."""
    b, h, w = images.shape
    cy, cx = (h - 1) / 2, (w - 1) / 2
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    py = yy[None] - cy - shift[:, 0, None, None]
    px = xx[None] - cx - shift[:, 1, None, None]
    cos, sin = np.cos(angle)[:, None, None], np.sin(angle)[:, None, None]
    inv = 1.0 / factor[:, None, None]
    sy = (cos * py - sin * px) * inv + cy  # where each output pixel comes from
    sx = (sin * py + cos * px) * inv + cx
    y0, x0 = np.floor(sy).astype(np.int64), np.floor(sx).astype(np.int64)
    wy, wx = (sy - y0).astype(np.float32), (sx - x0).astype(np.float32)
    flat = images.reshape(b, -1).astype(np.float32)
    base = (np.arange(b) * h * w)[:, None, None]
    acc = np.zeros((b, h, w), np.float32)
    for dy, dx, weight in ((0, 0, (1 - wy) * (1 - wx)), (0, 1, (1 - wy) * wx),
                           (1, 0, wy * (1 - wx)), (1, 1, wy * wx)):
        y, x = y0 + dy, x0 + dx
        inside = (y >= 0) & (y < h) & (x >= 0) & (x < w)
        idx = base + np.clip(y, 0, h - 1) * w + np.clip(x, 0, w - 1)
        acc += np.where(inside, flat.ravel()[idx] * weight, 0.0)
    return np.clip(np.rint(acc), 0, 255).astype(np.uint8)
