"""The classic restoration methods deepae is measured against, in one place, so that the
benchmark and `deepae denoise|upscale evaluate` run them the same way.

Each takes one float image (h, w) or (h, w, c) in [0, 1] (noisy images may stray outside)
and returns float32 of the same layout.
- `nl_means`: scikit-image's non-local means, h = 0.8 x the noise's standard deviation
  estimated by `estimate_sigma` (fast mode, 5x5 patches, search distance 6).
- `bm3d`: BM3D (the `bm3d` package), told the true sigma; per channel.
- `bicubic`: Pillow's bicubic resize, per channel.
"""

from __future__ import annotations

import numpy as np

__all__ = ["nl_means", "bm3d", "bicubic"]


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


def bicubic(image, shape):
    """Pillow's bicubic resize of `image` to `shape` = (h, w)."""
    from PIL import Image

    x, squeeze = _channels(image)
    h, w = shape
    out = np.stack([np.asarray(Image.fromarray(x[..., c]).resize((w, h), Image.BICUBIC))
                    for c in range(x.shape[-1])], axis=-1).astype(np.float32)
    return out[..., 0] if squeeze else out
