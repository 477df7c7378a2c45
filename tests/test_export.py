"""`est.export`: every estimator's inference, run by each format's own runtime (TensorFlow,
onnxruntime, the LiteRT interpreter), matches the library on raw inputs to 1e-5."""

import numpy as np
import pandas as pd
import pytest

import deepae
from conftest import smooth_images
from deepae.exporting import ExportError, input_name

pytest.importorskip("tf2onnx")
pytest.importorskip("onnxruntime")
pytest.importorskip("ai_edge_litert")

TOL = {"rtol": 1e-5, "atol": 1e-5}


# -- runtimes: each format run by its own, never by deepae -----------------------------------------
def run_saved_model(path, inputs):
    import tensorflow as tf

    fn = tf.saved_model.load(str(path)).signatures["serving_default"]
    out = fn(**{k: tf.constant(v.astype(bytes) if v.dtype == object else v)
                for k, v in inputs.items()})
    return {k: v.numpy() for k, v in out.items()}


def run_onnx(path, inputs):
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    values = session.run(names, {k: v.astype(str).astype(object) if v.dtype == object else v
                                 for k, v in inputs.items()})
    return dict(zip(names, values, strict=True))


def run_litert(path, inputs):
    from ai_edge_litert.interpreter import Interpreter

    runner = Interpreter(model_path=str(path)).get_signature_runner()
    return runner(**{k: v.astype(bytes) if v.dtype == object else v for k, v in inputs.items()})


RUNTIMES = {"saved_model": run_saved_model, "onnx": run_onnx, "litert": run_litert}
SUFFIX = {"saved_model": "", "onnx": ".onnx", "litert": ".tflite"}


def exported(est, tmp_path, fmt):
    path = est.export(tmp_path / f"model{SUFFIX[fmt]}", format=fmt)
    assert path.exists()
    return lambda inputs: RUNTIMES[fmt](path, inputs)


# -- the estimators, tiny ----------------------------------------------------------------------------
def fraud_table(n, seed):
    r = np.random.default_rng(seed)
    frame = pd.DataFrame({
        "amount ($)": r.lognormal(3, 1, n), "hour": r.integers(0, 24, n).astype(float),
        "merchant": r.choice(["food", "fuel", "travel", "web"], n),
        "mcc": r.choice([5411, 5541, 4511], n), "v1": r.normal(size=n)})
    frame.loc[r.random(n) < 0.1, "hour"] = np.nan
    return frame


@pytest.fixture(scope="module")
def detector():
    return deepae.AnomalyDetector(epochs=2, n_estimators=2, anomaly_score="reconstruction+latent",
                                  missing="indicator", categorical_columns=["mcc"],
                                  random_state=0).fit(fraud_table(300, 0))


def table_inputs(det, frame):
    """One array per column, as a client sends them: float32 with NaN, or the categories'
    strings (a missing one as the empty string)."""
    pre = det.preprocessor_
    out, taken = {}, set()
    for col in pre.columns_:
        v = frame[col]
        if col in pre.categories_:
            labels = [str(int(u)) if isinstance(u, float | int | np.integer) and u == u else
                      ("" if u is None or u != u else str(u)) for u in v]
            out[input_name(col, taken)] = np.asarray(labels, dtype=object)
        else:
            out[input_name(col, taken)] = v.to_numpy(np.float32)
    return out


@pytest.mark.parametrize("fmt", list(RUNTIMES))
def test_detector_table_parity(detector, tmp_path, fmt):
    frame = fraud_table(64, 1)
    frame.loc[3, "merchant"] = "casino"  # unknown category
    frame.loc[4, "merchant"] = None      # missing category
    frame.loc[5, "mcc"] = 9999
    frame = frame.astype({"amount ($)": np.float32, "v1": np.float32})
    out = exported(detector, tmp_path, fmt)(table_inputs(detector, frame))
    np.testing.assert_allclose(out["score"], detector.decision_function(frame), **TOL)
    np.testing.assert_array_equal(out["label"], detector.predict(frame))
    assert out["label"].dtype == np.int64


def test_detector_table_inputs_are_named_as_the_columns(detector):
    from deepae.apps.export import detector_graph, signature_inputs

    names = signature_inputs(detector_graph(detector)[1])
    assert names == {"amount____": ((None,), "float32"), "hour": ((None,), "float32"),
                     "merchant": ((None,), "string"), "mcc": ((None,), "string"),
                     "v1": ((None,), "float32")}


@pytest.mark.parametrize("fmt", list(RUNTIMES))
def test_detector_array_parity(table, tmp_path, fmt):
    det = deepae.AnomalyDetector(epochs=2, n_estimators=1, random_state=0).fit(table[:150])
    x = table[150:].copy()
    x[2, 3] = np.nan
    out = exported(det, tmp_path, fmt)({"x": x})
    np.testing.assert_allclose(out["score"], det.decision_function(x), **TOL)
    np.testing.assert_array_equal(out["label"], det.predict(x))


@pytest.mark.parametrize("fmt", list(RUNTIMES))
def test_autoencoder_and_reducer_parity(table, tmp_path, fmt):
    ae = deepae.Autoencoder(hidden_units=(16,), latent_dim=3, input_shape=(12,))
    ae.compile(optimizer="adam", loss="mse")
    ae.fit(table, epochs=2, verbose=0)
    out = exported(ae, tmp_path / "ae", fmt)({"x": table})
    np.testing.assert_allclose(out["codes"], ae.encode(table), **TOL)
    np.testing.assert_allclose(out["reconstruction"], ae.reconstruct(table), rtol=1e-5, atol=1e-4)
    red = deepae.AutoencoderReducer(n_components=3, epochs=2, random_state=0).fit(table)
    out = exported(red, tmp_path, fmt)({"x": table})
    np.testing.assert_allclose(out["codes"], red.transform(table), **TOL)
    assert set(out) == {"codes"}


@pytest.mark.parametrize("fmt", list(RUNTIMES))
def test_conv_autoencoder_takes_images(images, tmp_path, fmt):
    ae = deepae.Autoencoder(kind="conv", hidden_units=(4, 8), latent_dim=3, input_shape=(8, 8, 1))
    x = images[..., None]
    ae.compile(optimizer="adam", loss="mse")
    ae.fit(x, epochs=1, verbose=0)
    raw = x.astype(np.float32)  # uint8 values, the user's units
    out = exported(ae, tmp_path, fmt)({"x": raw})
    np.testing.assert_allclose(out["codes"], ae.encode(x), **TOL)
    np.testing.assert_allclose(out["reconstruction"], ae.reconstruct(x), rtol=1e-5, atol=1e-3)


@pytest.mark.parametrize("fmt", list(RUNTIMES))
def test_hasher_packed_codes(table, tmp_path, fmt):
    h = deepae.SemanticHasher(n_bits=12, hidden_units=(16,), epochs=2, random_state=0).fit(table)
    out = exported(h, tmp_path, fmt)({"x": table})
    assert out["codes"].dtype == np.uint8 and out["codes"].shape == (len(table), 2)
    np.testing.assert_array_equal(out["codes"], h.transform(table))


@pytest.fixture(scope="module")
def denoisers():
    clean = smooth_images(8, 24, 24)
    kw = dict(filters=(4, 8), patch_size=16, patches_per_epoch=32, epochs=1, batch_size=16,
              random_state=0)
    return (deepae.Denoiser(per_channel=True, **kw).fit(clean),
            deepae.Denoiser(mode="given", **kw).fit(clean),
            deepae.SuperResolver(scale=2, **kw).fit(clean))


@pytest.mark.parametrize("fmt", list(RUNTIMES))
def test_denoiser_any_size_and_channels(denoisers, tmp_path, fmt):
    blind, given, _ = denoisers
    noisy = np.clip(smooth_images(2, 13, 10, c=3, seed=5)
                    + 0.1 * np.random.default_rng(0).normal(size=(2, 13, 10, 3)), 0, 1)
    noisy = noisy.astype(np.float32)
    out = exported(blind, tmp_path / "b", fmt)({"x": noisy})
    np.testing.assert_allclose(out["image"], blind.transform(noisy), **TOL)
    grey = noisy[..., :1]
    run = exported(given, tmp_path / "g", fmt)
    out = run({"x": grey, "sigma": np.array([0.1, 0.2], np.float32)})
    np.testing.assert_allclose(out["image"][1:], given.transform(grey[1:], sigma=0.2), **TOL)


@pytest.mark.parametrize("fmt", ["saved_model", "onnx"])
def test_super_resolver_parity(denoisers, tmp_path, fmt):
    sr = denoisers[2]
    low = smooth_images(2, 11, 9, seed=3)
    out = exported(sr, tmp_path, fmt)({"x": low})
    assert out["image"].shape == (2, 22, 18, 1)
    np.testing.assert_allclose(out["image"], sr.transform(low), **TOL)


def test_litert_refuses_bicubic_naming_the_operator(denoisers, tmp_path):
    """LiteRT's built-in operators have no bicubic resize: a clear error, no file."""
    with pytest.raises(ExportError, match="ResizeBicubic"):
        denoisers[2].export(tmp_path / "sr.tflite", format="litert")
    assert not (tmp_path / "sr.tflite").exists()


# -- paths -------------------------------------------------------------------------------------------
def test_export_refuses_existing_outputs_and_foreign_folders(detector, tmp_path):
    target = tmp_path / "sm"
    detector.export(target)
    with pytest.raises(FileExistsError, match="overwrite"):
        detector.export(target)
    detector.export(target, overwrite=True)  # a SavedModel folder: replaced
    assert (target / "saved_model.pb").is_file()
    assert [p.name for p in tmp_path.iterdir()] == ["sm"]  # no temporary left
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep")
    with pytest.raises(ValueError, match="not a SavedModel"):
        detector.export(mine, overwrite=True)
    assert (mine / "notes.txt").read_text() == "keep"
    with pytest.raises(ValueError, match="format"):
        detector.export(tmp_path / "x", format="pickle")
    (tmp_path / "m.onnx").write_bytes(b"old")
    with pytest.raises(FileExistsError):
        detector.export(tmp_path / "m.onnx", format="onnx")
    assert (tmp_path / "m.onnx").read_bytes() == b"old"


def test_unfitted_and_codec_are_refused(tmp_path):
    from sklearn.exceptions import NotFittedError

    with pytest.raises(NotFittedError):
        deepae.AnomalyDetector().export(tmp_path / "x")
    assert not hasattr(deepae.ImageCodec(), "export")


def test_input_names():
    taken = set()
    assert [input_name(c, taken) for c in ["Amount", "amount ($)", "_id", "amount____", "9"]] \
        == ["Amount", "amount____", "c_id", "amount_____1", "9"]


def test_cli_export(detector, tmp_path, capsys):
    from deepae.cli.main import main

    model = detector.save(tmp_path / "fraud.deepae")
    assert main(["export", str(model), str(tmp_path / "fraud.onnx"), "--format", "onnx",
                 "--json"]) == 0
    said = capsys.readouterr()
    assert '"format": "onnx"' in said.out and (tmp_path / "fraud.onnx").is_file()
    frame = fraud_table(10, 2)
    out = run_onnx(tmp_path / "fraud.onnx", table_inputs(detector, frame))
    np.testing.assert_allclose(out["score"], detector.decision_function(frame), **TOL)
    assert main(["export", str(model), str(tmp_path / "fraud.onnx"), "--format", "onnx"]) == 1
    assert "exists" in capsys.readouterr().err
    assert main(["export", str(model), str(tmp_path / "sm"), "--format", "pickle"]) == 1
    assert "--format must be one of saved_model, onnx, litert" in capsys.readouterr().err
    from importlib.resources import files

    codec = files("deepae") / "pretrained" / "codec_q1.deepae"
    assert main(["export", str(codec), str(tmp_path / "c")]) == 1
    assert "ImageCodec has no inference graph to export" in capsys.readouterr().err
    assert not (tmp_path / "c").exists()
