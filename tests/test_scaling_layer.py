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
    st = ae.scaling.statistics()
    np.testing.assert_allclose(st["offset"], x.astype(np.float64).mean(axis=0), rtol=1e-5)
    np.testing.assert_allclose(st["scale"], x.astype(np.float64).std(axis=0), rtol=1e-5)
    # everything fitted is a (non-trainable) weight of the model: saved with its weights
    paths = {v.path for v in ae.non_trainable_weights}
    assert {"scaling/offset", "scaling/scale", "scaling/kind_index", "scaling/data_range"} <= {
        p.split("/", 1)[1] for p in paths}
    assert not any("scaling" in v.path for v in ae.trainable_weights)


def test_inference_model_takes_the_users_units(fitted, tmp_path):
    ae, x = fitted
    model = ae.inference_model()
    out = model.predict(x, verbose=0)
    np.testing.assert_allclose(out["codes"], ae.encode(x), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(out["reconstruction"], ae.reconstruct(x), rtol=1e-5, atol=1e-4)
    # a plain Keras file (its layers are deepae's registered Keras classes), still taking
    # raw data once loaded
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
    assert "scaler" not in meta and "standard" not in json.dumps(meta["config"])
    loaded = deepae.load(path)
    assert loaded.scaling.kind == "standard"
    np.testing.assert_array_equal(loaded.scaling.statistics()["scale"],
                                  ae.scaling.statistics()["scale"])
    np.testing.assert_array_equal(loaded.reconstruct(x), ae.reconstruct(x))


def test_a_file_from_before_the_layer_is_converted(tmp_path):
    """Files saved by the previous format (scaler beside the model) load into a model with
    the layer, give the outputs recorded when they were saved, and save back in the new
    format."""
    from pathlib import Path

    legacy = Path(__file__).parent / "data" / "legacy"
    expected = np.load(legacy / "expected.npz")
    model = deepae.load(legacy / "Autoencoder.deepae")
    assert isinstance(model.scaling, Scaling) and model.scaling.kind is not None
    x = expected["x"][:16]  # the first rows, as tests/test_legacy_artifacts.py records them
    np.testing.assert_allclose(model.encode(x), expected["Autoencoder.encode"], atol=1e-5)
    np.testing.assert_allclose(model.reconstruct(x), expected["Autoencoder.reconstruct"],
                               atol=1e-4)
    model.save(tmp_path / "new.deepae")
    again = deepae.load(tmp_path / "new.deepae")
    np.testing.assert_array_equal(again.encode(x), model.encode(x))


def test_a_clone_has_no_scaling_until_fitted(fitted):
    """A copy from the configuration alone (fresh weights) has no fitted scaling: it fits its
    own on its first fit, as a new model does."""
    ae, x = fitted
    clone = keras.models.clone_model(ae)
    assert clone.scaling.kind is None and clone.scaler_ is None
    clone.fit(x, epochs=1, verbose=0)
    assert clone.scaling.kind == "standard" and clone.describe()["preprocessing"] == "standard"
    np.testing.assert_allclose(clone.scaling.statistics()["offset"],
                               ae.scaling.statistics()["offset"], rtol=1e-5)


def test_setting_no_scaler_resets_the_layer(fitted, tmp_path):
    ae, x = fitted
    clone = deepae.load(_saved(ae, tmp_path / "a.deepae"))
    clone.scaler_ = None
    assert clone.scaling.kind is None and clone.scaler_ is None
    np.testing.assert_array_equal(clone.scaling(x[:2]), x[:2])


def test_bad_statistics_are_refused_with_the_values():
    layer = Scaling(("none", "standard"))
    layer.build((None, 3))
    with pytest.raises(ValueError, match="kind among .*received 'unit'"):
        layer.set_statistics("unit", 0.0, 1.0, 0.0, 1.0)
    with pytest.raises(ValueError, match=r"1 scale\(s\) .*smallest scale -2.0"):
        layer.set_statistics("standard", 0.0, [1.0, -2.0, 1.0], 0.0, 1.0)
    assert layer.kind is None  # nothing was set


@pytest.mark.parametrize("field,value,match", [
    ("scale", 0.0, r"received 0 non-finite offset\(s\) and 12 scale\(s\).*smallest scale 0.0"),
    ("offset", np.nan, r"received 12 non-finite offset\(s\)"),
    ("kind_index", 7, "kind 7"), ("kind_index", -1, "no scaling.*received offsets in"),
    ("kind_index", 0, "no scaling.*kind 'none'"),  # kind "none" with statistics
    ("data_range", np.nan, r"data range.*received \[nan, nan\]")])
def test_forged_scaling_is_refused(fitted, tmp_path, field, value, match):
    ae, _ = fitted
    clone = deepae.load(_saved(ae, tmp_path / "ok.deepae"))
    var = getattr(clone.scaling, field)
    var.assign(np.full(var.shape, value, var.dtype))
    path = tmp_path / "forged.deepae"
    clone.save(path)
    with pytest.raises(ArtifactError, match=match):
        deepae.load(path)


def _saved(ae, path):
    ae.save(path)
    return path
