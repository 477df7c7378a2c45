"""Every bad input gets an error that names the argument and what was received."""

import numpy as np
import pytest

from conftest import small_model


@pytest.fixture(scope="module")
def fitted():
    x = np.random.default_rng(0).normal(size=(50, 6)).astype(np.float32)
    ae = small_model()
    ae.fit(x, epochs=1, verbose=0)
    return ae


@pytest.mark.parametrize("x,exc,match", [
    (np.array([[1.0, np.nan]]), ValueError, r"`x` with finite values; received 1 NaN and 0 inf"),
    (np.array([[1.0, np.inf], [2, -np.inf]]), ValueError, r"0 NaN and 2 inf"),
    (np.zeros((0, 5)), ValueError, r"at least one sample.*shape \(0, 5\)"),
    (np.zeros((5, 0)), ValueError, r"shape \(5, 0\)"),
    (np.arange(5.0), ValueError, r"at least 2 dimensions.*shape \(5,\).*reshape"),
    (np.float32(3.0), ValueError, r"shape \(\)"),
    (np.array([["a", "b"]]), TypeError, "numeric dtype; received dtype <U1"),
    ([[1, 2], [3]], ValueError, "rectangular numeric array"),
    ("missing.csv", FileNotFoundError, "No data at 'missing.csv'"),
    (b"data", TypeError, "received bytes"),
    (None, TypeError, "received None"),
    (np.array([[1 + 2j, 1]]), TypeError, "real values"),
])
def test_bad_training_data(x, exc, match):
    with pytest.raises(exc, match=match):
        small_model().fit(x, epochs=1, verbose=0)


def test_feature_count_differs(fitted):
    bad = np.zeros((3, 5), np.float32)
    for method in (fitted.encode, fitted.reconstruct, fitted.reconstruction_error):
        with pytest.raises(ValueError, match="`x` has 5 features, but Autoencoder is expecting 6"):
            method(bad)


def test_image_shape_differs(images):
    ae = small_model()
    ae.fit(images, epochs=1, verbose=0)
    with pytest.raises(ValueError, match=r"shape \(9, 8\), but Autoencoder is expecting "
                                         r"shape \(8, 8\)"):
        ae.encode(np.zeros((2, 9, 8), np.uint8))


def test_nan_at_inference(fitted):
    with pytest.raises(ValueError, match="finite values"):
        fitted.encode(np.full((2, 6), np.nan))


def test_decode_checks_codes(fitted):
    with pytest.raises(ValueError, match=r"`codes` of shape \(n_samples, 4\); received shape "
                                         r"\(2, 3\)"):
        fitted.decode(np.zeros((2, 3)))


def test_y_shape_mismatch():
    x = np.zeros((4, 3), np.float32)
    with pytest.raises(ValueError, match=r"`y` with the shape of `x` \(4, 3\); received \(4, 2\)"):
        small_model().fit(x, np.zeros((4, 2)), epochs=1, verbose=0)


def test_single_sample_inference(fitted):
    assert fitted.encode(np.zeros(6, np.float32)).shape == (1, 4)
