"""`est.export`: every estimator's inference, run by each format's own runtime (TensorFlow,
onnxruntime, the LiteRT interpreter), matches the library on raw inputs to 1e-5."""

import numpy as np
import pandas as pd
import pytest

import deepae
from conftest import smooth_images
from deepae.exporting import ExportError, input_names

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
    out, names = {}, input_names(pre.columns_)
    for col in pre.columns_:
        v = frame[col]
        if col in pre.categories_:
            labels = [str(int(u)) if isinstance(u, float | int | np.integer) and u == u else
                      ("" if u is None or u != u else str(u)) for u in v]
            out[names[col]] = np.asarray(labels, dtype=object)
        else:
            out[names[col]] = v.to_numpy(np.float32)
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
    np.testing.assert_allclose(out["image"][:1], given.transform(grey[:1], sigma=0.1), **TOL)
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
    with pytest.raises(ValueError, match=r"holds \[.notes.txt.\], which deepae did not write"):
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
    cols = ["Amount", "amount", "a b", "a_b", "a_b_1", ".x", "0", "a/b", "class", "é"]
    assert list(input_names(cols).values()) == [
        "Amount", "amount_1", "a_b_2", "a_b", "a_b_1", "c_x", "c0", "a_b_3", "class_", "c_"]


ODD = ["Amount", "amount", "a b", "a_b", "a_b_1", ".x", "0", "a/b", "class"]


@pytest.fixture(scope="module")
def odd_detector():
    r = np.random.default_rng(0)
    frame = pd.DataFrame(r.normal(size=(200, len(ODD))) * np.arange(1, len(ODD) + 1),
                         columns=ODD)
    return deepae.AnomalyDetector(epochs=2, n_estimators=1, random_state=0).fit(frame)


@pytest.mark.parametrize("fmt", list(RUNTIMES))
def test_every_runtime_names_the_inputs_as_input_names_says(odd_detector, tmp_path, fmt):
    """TensorFlow renamed names it does not take as parameters (arg_0, arg__x) and ignored
    case (Amount / amount clashed); a renamed column took another column's own name."""
    import json

    names = input_names(ODD)
    assert len(set(n.lower() for n in names.values())) == len(ODD)
    r = np.random.default_rng(1)
    frame = pd.DataFrame(r.normal(size=(20, len(ODD))).astype(np.float32), columns=ODD)
    # each column's values differ: a name put on the wrong column changes the scores
    frame *= np.arange(1, len(ODD) + 1, dtype=np.float32) ** 2
    out = exported(odd_detector, tmp_path, fmt)(
        {names[c]: frame[c].to_numpy() for c in ODD})
    np.testing.assert_allclose(out["score"], odd_detector.decision_function(frame), **TOL)
    path = tmp_path / f"model{SUFFIX[fmt]}"
    if fmt == "saved_model":
        assert json.loads((path / "deepae_inputs.json").read_text()) == {
            v: k for k, v in names.items()}
    if fmt == "onnx":
        import onnx

        meta = {p.key: p.value for p in onnx.load(str(path)).metadata_props}
        assert json.loads(meta["deepae.input_columns"]) == {v: k for k, v in names.items()}


@pytest.fixture(scope="module")
def strict_detector():
    frame = fraud_table(300, 0).drop(columns=["merchant", "mcc"]).fillna(1.0)
    return deepae.AnomalyDetector(epochs=2, n_estimators=1, missing="reject",
                                  random_state=0).fit(frame)


@pytest.mark.parametrize("fmt", list(RUNTIMES))
def test_rows_the_library_refuses_are_flagged_not_passed(strict_detector, tmp_path, fmt):
    """An infinite number (refused by the library under every policy) or a NaN under
    missing='reject' scored NaN and was labelled 0, normal: an attacker's way through."""
    frame = fraud_table(6, 3).drop(columns=["merchant", "mcc"]).fillna(1.0)
    frame = frame.astype(np.float32)
    ok = frame.iloc[3:]
    inputs = {k: v.copy() for k, v in table_inputs(strict_detector, frame).items()}
    names = input_names(frame.columns)
    inputs[names["amount ($)"]][0] = np.inf
    inputs["v1"][1] = -np.inf
    inputs["hour"][2] = np.nan
    out = exported(strict_detector, tmp_path, fmt)(inputs)
    assert np.isnan(out["score"][:3]).all()
    np.testing.assert_array_equal(out["label"][:3], [1, 1, 1])
    np.testing.assert_allclose(out["score"][3:], strict_detector.decision_function(ok), **TOL)
    np.testing.assert_array_equal(out["label"][3:], strict_detector.predict(ok))


def test_an_empty_string_category_is_refused(tmp_path):
    frame = fraud_table(200, 0)
    frame.loc[:20, "merchant"] = ""
    det = deepae.AnomalyDetector(epochs=1, n_estimators=1, random_state=0).fit(frame)
    with pytest.raises(ExportError, match="'merchant' has the empty string"):
        det.export(tmp_path / "sm")
    assert not (tmp_path / "sm").exists()


def test_overwrite_replaces_only_a_folder_of_a_saved_model(detector, tmp_path):
    """A folder holding saved_model.pb beside the user's files (the model among them) was
    deleted whole by an export with overwrite."""
    proj = tmp_path / "proj"
    detector.export(proj)
    model = detector.save(proj / "fraud.deepae")
    (proj / "notes.txt").write_text("keep")
    with pytest.raises(ValueError, match="fraud.deepae"):
        detector.export(proj, overwrite=True)
    from deepae.cli.main import main

    assert main(["export", str(model), str(proj), "--overwrite"]) == 1
    assert model.is_file() and (proj / "notes.txt").read_text() == "keep"
    assert (proj / "saved_model.pb").is_file()
    (tmp_path / "link").symlink_to(proj)
    with pytest.raises(ValueError, match="not one"):
        detector.export(tmp_path / "link", overwrite=True)


def test_no_export_inside_the_package(detector):
    from importlib.resources import files

    with pytest.raises(ValueError, match="inside the deepae package"):
        detector.export(files("deepae") / "pretrained" / "exported")
    assert not (files("deepae") / "pretrained" / "exported").exists()


def test_cli_export(detector, tmp_path, capsys):
    from deepae.cli.main import main

    model = detector.save(tmp_path / "fraud.deepae")
    assert main(["export", str(model), str(tmp_path / "fraud.tflite"), "--format",
                 "litert", "--json"]) == 0
    said = capsys.readouterr()
    assert '"format": "litert"' in said.out and (tmp_path / "fraud.tflite").is_file()
    frame = fraud_table(10, 2)
    out = run_litert(tmp_path / "fraud.tflite", table_inputs(detector, frame))
    np.testing.assert_allclose(out["score"], detector.decision_function(frame), **TOL)
    assert main(["export", str(model), str(tmp_path / "fraud.tflite"), "--format", "litert"]) == 1
    assert "exists" in capsys.readouterr().err
    assert main(["export", str(model), str(tmp_path / "sm"), "--format", "pickle"]) == 1
    assert "--format must be one of saved_model, onnx, litert" in capsys.readouterr().err
    from importlib.resources import files

    codec = files("deepae") / "pretrained" / "codec_q1.deepae"
    assert main(["export", str(codec), str(tmp_path / "c")]) == 1
    assert "ImageCodec has no inference graph to export" in capsys.readouterr().err
    assert not (tmp_path / "c").exists()


@pytest.mark.parametrize("fmt", list(RUNTIMES))
def test_shared_colour_networks_export(tmp_path, fmt):
    """colour_network='shared' (SplitChannels/MergeChannels) runs in every runtime."""
    clean = smooth_images(8, 24, 24, c=3)
    kw = dict(filters=(4, 8), patch_size=16, patches_per_epoch=32, epochs=1, batch_size=16,
              random_state=0, colour_network="shared")
    given = deepae.Denoiser(mode="given", **kw).fit(clean)
    noisy = smooth_images(2, 13, 10, c=3, seed=5)
    run = exported(given, tmp_path / "g", fmt)
    out = run({"x": noisy, "sigma": np.array([0.1, 0.2], np.float32)})
    np.testing.assert_allclose(out["image"][:1], given.transform(noisy[:1], sigma=0.1), **TOL)
    np.testing.assert_allclose(out["image"][1:], given.transform(noisy[1:], sigma=0.2), **TOL)
    if fmt != "litert":  # LiteRT has no bicubic resize (tested above)
        sr = deepae.SuperResolver(scale=2, **kw).fit(clean)
        low = smooth_images(2, 11, 9, c=3, seed=3)
        out = exported(sr, tmp_path / "s", fmt)({"x": low})
        assert out["image"].shape == (2, 22, 18, 3)
        np.testing.assert_allclose(out["image"], sr.transform(low), **TOL)
