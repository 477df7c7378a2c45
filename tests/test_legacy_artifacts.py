"""Artifacts saved by an earlier deepae (tests/data/legacy, written by
scripts/make_legacy_artifacts.py before the layering of issue 18) still load and give the
outputs they gave then."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import deepae

LEGACY = Path(__file__).parent / "data" / "legacy"
KINDS = ["Autoencoder", "AutoencoderReducer", "AnomalyDetector", "SemanticHasher",
         "HammingIndex", "SemanticIndex", "Denoiser", "SuperResolver", "ImageCodec"]


@pytest.fixture(scope="module")
def expected():
    with np.load(LEGACY / "expected.npz") as f:
        return dict(f)


def test_every_kind_is_there():
    assert sorted(p.stem for p in LEGACY.glob("*.deepae")) == sorted(KINDS)


@pytest.mark.parametrize("kind", KINDS)
def test_legacy_artifact_loads_as_its_kind(kind):
    est = deepae.load(LEGACY / f"{kind}.deepae")
    assert type(est).__name__ == kind
    cls = getattr(deepae, kind)
    if kind != "Autoencoder":  # the Keras model loads through deepae.load only
        assert type(cls.load(LEGACY / f"{kind}.deepae")).__name__ == kind


def test_every_kind_loads_in_a_fresh_process():
    # a fresh interpreter has imported only what `import deepae` imports: every kind's Keras
    # classes must be registered by then (a hasher saved in one process once failed to load
    # in another, the tests' own process having imported deepae.nn.hashing while fitting)
    code = ("import sys, deepae\n"
            "for p in sys.argv[1:]:\n"
            "    print(type(deepae.load(p)).__name__)\n")
    paths = [str(LEGACY / f"{k}.deepae") for k in KINDS]
    done = subprocess.run([sys.executable, "-c", code, *paths], capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == KINDS


def test_legacy_outputs(expected):
    x, img = expected["x"], expected["image"]
    xq = x[:16]
    load = {k: deepae.load(LEGACY / f"{k}.deepae") for k in KINDS}
    tol = {"rtol": 1e-5, "atol": 1e-5}
    np.testing.assert_allclose(load["Autoencoder"].encode(xq), expected["Autoencoder.encode"],
                               **tol)
    np.testing.assert_allclose(load["Autoencoder"].reconstruct(xq),
                               expected["Autoencoder.reconstruct"], **tol)
    np.testing.assert_allclose(load["AutoencoderReducer"].transform(xq),
                               expected["AutoencoderReducer.transform"], **tol)
    table = pd.read_csv(LEGACY / "table.csv")[:16]
    np.testing.assert_allclose(load["AnomalyDetector"].decision_function(table),
                               expected["AnomalyDetector.decision_function"], **tol)
    np.testing.assert_array_equal(load["AnomalyDetector"].predict(table),
                                  expected["AnomalyDetector.predict"])
    np.testing.assert_array_equal(load["SemanticHasher"].transform(xq),
                                  expected["SemanticHasher.transform"])
    np.testing.assert_array_equal(load["SemanticIndex"].hasher.transform(xq),
                                  expected["SemanticHasher.transform"])
    codes = load["SemanticHasher"].transform(xq[:4])
    np.testing.assert_array_equal(load["HammingIndex"].rank(codes, k=5)[0][0],
                                  expected["HammingIndex.rank.ids"])
    np.testing.assert_array_equal(load["SemanticIndex"].index.rank(codes, k=5)[0][0],
                                  expected["HammingIndex.rank.ids"])
    np.testing.assert_allclose(load["Denoiser"].transform(img), expected["Denoiser.transform"],
                               **tol)
    np.testing.assert_allclose(load["SuperResolver"].transform(img[:20, :24]),
                               expected["SuperResolver.transform"], **tol)
    # the codec's bytes decode to the same pixels, and the image codes to the same bytes
    data = (LEGACY / "ImageCodec.dae").read_bytes()
    np.testing.assert_array_equal(load["ImageCodec"].decompress(data),
                                  expected["ImageCodec.decompress"])
    # encoding runs in floating point, so another CPU may round a latent the other way: the
    # same size and the same picture, not necessarily the same bytes
    again = load["ImageCodec"].compress(img)
    assert abs(len(again) - len(data)) <= 8
    np.testing.assert_allclose(load["ImageCodec"].decompress(again),
                               expected["ImageCodec.decompress"], atol=2 / 255)
