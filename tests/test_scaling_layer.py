"""The autoencoder carries its input scaling as a Keras layer (`deepae.nn.Scaling`)."""

import json
import zipfile

import keras
import numpy as np
import pytest

import deepae
from deepae.exceptions import ArtifactError
from deepae.nn.scaling import Scaling


@pytest.fixture(scope="module")
def fitted():
    rng = np.random.default_rng(0)
    x = (rng.normal(size=(300, 12)) * 40 + 100).astype(np.float32)
    ae = deepae.Autoencoder(hidden_units=(16,), latent_dim=3)
    ae.fit(x, epochs=2, verbose=0, random_state=0)
    return ae, x


def test_scaling_is_a_layer_with_the_fitted_statistics(fitted):
    ae, x = fitted
    assert isinstance(ae.scaling, Scaling) and ae.scaling.kind == "standard"
    offset, scale = ae.scaling.statistics()
    np.testing.assert_allclose(offset, x.astype(np.float64).mean(axis=0), rtol=1e-5)
    np.testing.assert_allclose(scale, x.astype(np.float64).std(axis=0), rtol=1e-5)
    # the statistics are (non-trainable) weights of the model: saved with its weights
    paths = {v.path for v in ae.non_trainable_weights}
    assert {"scaling/offset", "scaling/scale"} <= {p.split("/", 1)[1] for p in paths}
    assert not any("scaling" in v.path for v in ae.trainable_weights)


def test_inference_model_takes_the_users_units(fitted, tmp_path):
    ae, x = fitted
    model = ae.inference_model()
    out = model.predict(x, verbose=0)
    np.testing.assert_allclose(out["codes"], ae.encode(x), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(out["reconstruction"], ae.reconstruct(x), rtol=1e-5, atol=1e-4)
    # a plain Keras file, loaded by Keras alone, still takes raw data
    path = tmp_path / "inference.keras"
    keras.saving.save_model(model, path)
    again = keras.saving.load_model(path)
    out2 = again.predict(x, verbose=0)
    np.testing.assert_allclose(out2["reconstruction"], out["reconstruction"], rtol=1e-6)


def test_artifact_keeps_the_scaling_inside_the_model(fitted, tmp_path):
    ae, x = fitted
    path = tmp_path / "a.deepae"
    ae.save(path)
    with zipfile.ZipFile(path) as zf:
        meta = json.loads(zf.read("deepae.json"))["metadata"]
    assert "scaler" not in meta and meta["config"]["scaling_config"]["kind"] == "standard"
    loaded = deepae.load(path)
    np.testing.assert_array_equal(loaded.scaling.statistics()[1], ae.scaling.statistics()[1])
    np.testing.assert_array_equal(loaded.reconstruct(x), ae.reconstruct(x))


def test_a_file_from_before_the_layer_is_converted(tmp_path):
    """Files saved by the previous format (scaler beside the model) load into a model with
    the layer, and save back in the new format."""
    from pathlib import Path

    legacy = Path(__file__).parent / "data" / "legacy" / "Autoencoder.deepae"
    model = deepae.load(legacy)
    assert isinstance(model.scaling, Scaling) and model.scaling.kind is not None
    model.save(tmp_path / "new.deepae")
    again = deepae.load(tmp_path / "new.deepae")
    rng = np.random.default_rng(1)
    x = rng.random((5, *model.data_shape)).astype(np.float32)
    np.testing.assert_array_equal(again.encode(x), model.encode(x))


@pytest.mark.parametrize("field,value,match", [
    ("scale", 0.0, "positive"), ("offset", np.nan, "non-finite"),
    ("kind", "bogus", "kind"), ("kind", None, "no kind"), ("data_min", "x", "data range")])
def test_forged_scaling_is_refused(fitted, tmp_path, field, value, match):
    ae, _ = fitted
    clone = deepae.load(_saved(ae, tmp_path / "ok.deepae"))
    if field in ("scale", "offset"):
        var = getattr(clone.scaling, field)
        var.assign(np.full(var.shape, value, np.float32))
    else:
        setattr(clone.scaling, field, value)
    path = tmp_path / "forged.deepae"
    clone.save(path)
    with pytest.raises(ArtifactError, match=match):
        deepae.load(path)


def _saved(ae, path):
    ae.save(path)
    return path
