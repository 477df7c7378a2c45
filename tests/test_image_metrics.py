"""PSNR and SSIM: known values, and agreement with scikit-image where it is installed."""

import numpy as np
import pytest

from deepae.metrics import psnr, psnr_per_image, ssim


def noisy_pair(shape, sigma=0.1, seed=0):
    r = np.random.default_rng(seed)
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    clean = 0.5 + 0.4 * np.sin(xx / 5.0) * np.cos(yy / 7.0)
    if len(shape) == 3:
        clean = np.stack([clean * (0.8 + 0.1 * c) for c in range(shape[2])], axis=-1)
    return clean, np.clip(clean + r.normal(0, sigma, clean.shape), 0, 1)


def test_psnr_known_values_and_units():
    a = np.zeros((8, 8))
    b = np.full((8, 8), 0.1)
    assert psnr(a, b) == pytest.approx(20.0)  # 10 log10(1 / 0.01)
    assert psnr(a, a) == float("inf")
    u8a, u8b = np.zeros((4, 4), np.uint8), np.full((4, 4), 51, np.uint8)
    assert psnr(u8a, u8b) == pytest.approx(20 * np.log10(255 / 51))
    batch = np.stack([a, a])
    other = np.stack([b, np.full((8, 8), 0.01)])
    np.testing.assert_allclose(psnr_per_image(batch, other), [20.0, 40.0])


def test_ssim_properties():
    clean, noisy = noisy_pair((48, 40))
    assert ssim(clean, clean, channel_axis=None) == pytest.approx(1.0)
    s1 = ssim(clean, noisy, channel_axis=None)
    _, noisier = noisy_pair((48, 40), sigma=0.3)
    assert 0 < ssim(clean, noisier, channel_axis=None) < s1 < 1


@pytest.mark.parametrize("shape", [(48, 40), (37, 52, 3)])
def test_ssim_and_psnr_match_scikit_image(shape):
    metrics = pytest.importorskip("skimage.metrics")
    clean, noisy = noisy_pair(shape)
    axis = -1 if len(shape) == 3 else None
    ref = metrics.structural_similarity(clean, noisy, data_range=1.0, gaussian_weights=True,
                                        sigma=1.5, use_sample_covariance=False,
                                        channel_axis=axis)
    assert ssim(clean, noisy, channel_axis=axis) == pytest.approx(ref, abs=1e-6)
    assert psnr(clean, noisy) == pytest.approx(
        metrics.peak_signal_noise_ratio(clean, noisy, data_range=1.0), abs=1e-9)


def test_image_metric_errors():
    with pytest.raises(ValueError, match="same shape"):
        psnr(np.zeros((4, 4)), np.zeros((4, 5)))
    with pytest.raises(ValueError, match="data_range"):
        psnr(np.zeros((4, 4), np.uint16), np.zeros((4, 4), np.uint16))
    with pytest.raises(ValueError, match="at least 11 pixels"):
        ssim(np.zeros((8, 8)), np.zeros((8, 8)), channel_axis=None)
    with pytest.raises(ValueError, match="finite"):
        psnr(np.full((4, 4), np.nan), np.zeros((4, 4)))
