"""The classic methods deepae is measured against, in one place, so that the benchmarks and
the `evaluate` commands run them the same way.

Restoration:

Each takes one float image (h, w) or (h, w, c) in [0, 1] (noisy images may stray outside)
and returns float32 of the same layout.
- `nl_means`: scikit-image's non-local means, h = 0.8 x the noise's standard deviation
  estimated by `estimate_sigma` (fast mode, 5x5 patches, search distance 6).
- `bm3d`: BM3D (the `bm3d` package), told the true sigma; per channel.
- `cbm3d`: colour BM3D (the `bm3d` package's ``bm3d_rgb``: BM3D in an opponent colour
  space, with the block matching of the luminance shared by the three channels), told the
  true sigma; for (h, w, 3) images.
- `bicubic`: Pillow's bicubic resize, per channel.

Hashing (each fitted on the database, `transform` giving packed codes as `SemanticHasher`):
- `LSHHasher`: random hyperplanes through the data's mean (sign of Gaussian projections).
- `PCAHasher`: the signs of the top principal components (PCA-sign), or with
  ``itq=True`` those components rotated by iterative quantisation (Gong & Lazebnik 2011,
  50 iterations): PCA-ITQ.
"""

from __future__ import annotations

import numpy as np

__all__ = ["nl_means", "bm3d", "cbm3d", "bicubic", "LSHHasher", "PCAHasher"]


def _channels(image):
    image = np.asarray(image, np.float32)
    return image[..., None] if image.ndim == 2 else image, image.ndim == 2


def nl_means(image):
    """Non-local means with h tuned from the estimated noise level."""
    try:
        import pywt  # noqa: F401  (estimate_sigma's wavelet transform)
        from skimage.restoration import denoise_nl_means, estimate_sigma
    except ImportError as e:
        raise ImportError('nl_means needs scikit-image and PyWavelets: pip install '
                          '"deepae[images]"') from e
    x, squeeze = _channels(image)
    out = np.empty_like(x)
    for c in range(x.shape[-1]):
        s = float(estimate_sigma(x[..., c]))
        out[..., c] = denoise_nl_means(x[..., c], h=0.8 * s, sigma=s, fast_mode=True,
                                       patch_size=5, patch_distance=6)
    return out[..., 0] if squeeze else out


def bm3d(image, sigma):
    """BM3D with the noise's standard deviation `sigma` (in [0, 1] units) given."""
    try:
        import bm3d as _bm3d
    except ImportError as e:
        raise ImportError('The BM3D baseline needs the bm3d package: pip install "bm3d==4.0.3"') \
            from e
    x, squeeze = _channels(image)
    out = np.stack([np.asarray(_bm3d.bm3d(x[..., c], float(sigma)), np.float32)
                    for c in range(x.shape[-1])], axis=-1)
    return out[..., 0] if squeeze else out


def cbm3d(image, sigma):
    """Colour BM3D (CBM3D) of an (h, w, 3) image, the noise's standard deviation `sigma` (in
    [0, 1] units, the same in each RGB channel) given."""
    try:
        import bm3d as _bm3d
    except ImportError as e:
        raise ImportError('The CBM3D baseline needs the bm3d package: pip install '
                          '"bm3d==4.0.3"') from e
    x = np.asarray(image, np.float32)
    if x.ndim != 3 or x.shape[-1] != 3:
        raise ValueError(f"cbm3d takes an (h, w, 3) colour image; received shape {x.shape}.")
    return np.asarray(_bm3d.bm3d_rgb(x, float(sigma)), np.float32)


def bicubic(image, shape):
    """Pillow's bicubic resize of `image` to `shape` = (h, w)."""
    from PIL import Image

    x, squeeze = _channels(image)
    h, w = shape
    out = np.stack([np.asarray(Image.fromarray(x[..., c]).resize((w, h), Image.BICUBIC))
                    for c in range(x.shape[-1])], axis=-1).astype(np.float32)
    return out[..., 0] if squeeze else out


class LSHHasher:
    """Random-hyperplane LSH: bit j of x is ``(x - mean) . w_j > 0``, w_j ~ N(0, I)."""

    def __init__(self, n_bits=32, random_state=None):
        self.n_bits = n_bits
        self.random_state = random_state

    def fit(self, X):
        X = np.asarray(X, np.float32)
        self.mean_ = X.mean(axis=0)
        rng = np.random.default_rng(self.random_state)
        self.planes_ = rng.standard_normal((X.shape[1], int(self.n_bits))).astype(np.float32)
        return self

    def transform(self, X):
        return np.packbits((np.asarray(X, np.float32) - self.mean_) @ self.planes_ > 0, axis=1)


class PCAHasher:
    """PCA-sign, or PCA-ITQ with ``itq=True``: project on the top `n_bits` principal
    components, optionally rotate by the orthogonal matrix that iterative quantisation finds
    (alternating B = sign(V R) and the Procrustes solution for R), take signs."""

    def __init__(self, n_bits=32, itq=True, n_iter=50, random_state=None):
        self.n_bits = n_bits
        self.itq = itq
        self.n_iter = n_iter
        self.random_state = random_state

    def fit(self, X):
        from sklearn.decomposition import PCA

        X = np.asarray(X, np.float32)
        self.pca_ = PCA(n_components=int(self.n_bits), random_state=self.random_state).fit(X)
        k = int(self.n_bits)
        self.rotation_ = np.eye(k, dtype=np.float32)
        if self.itq:
            V = self.pca_.transform(X).astype(np.float32)
            rng = np.random.default_rng(self.random_state)
            R, _ = np.linalg.qr(rng.standard_normal((k, k)))
            R = R.astype(np.float32)
            for _ in range(int(self.n_iter)):
                B = np.where(V @ R >= 0, 1.0, -1.0).astype(np.float32)
                U, _, Wt = np.linalg.svd(V.T @ B)  # max tr(B^T V R): R = U W^T
                R = (U @ Wt).astype(np.float32)
            self.rotation_ = R
        return self

    def transform(self, X):
        V = self.pca_.transform(np.asarray(X, np.float32)).astype(np.float32)
        return np.packbits(V @ self.rotation_ >= 0, axis=1)
