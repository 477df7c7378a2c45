"""One training engine for every estimator: Keras callbacks, checkpoints and resume work the
same in the patch loop (denoiser, upscaler, codec) as in `fit`."""

import csv
import os
import signal
import subprocess
import sys
import time

import keras
import numpy as np
import pytest

import deepae
from conftest import smooth_images
from deepae.training import CHECKPOINT_MARK

PATCH = dict(filters=(4, 8), convs_per_level=1, patch_size=16, patches_per_epoch=32,
             batch_size=8, random_state=0)


def _make(kind, **kw):
    if kind == "Denoiser":
        return deepae.Denoiser(**PATCH, **kw)
    if kind == "SuperResolver":
        return deepae.SuperResolver(scale=2, **PATCH, **kw)
    return deepae.ImageCodec(filters=8, latent_channels=8, levels=2, patch_size=16,
                             patches_per_epoch=32, batch_size=8, random_state=0, **kw)


@pytest.mark.parametrize("kind", ["Denoiser", "SuperResolver", "ImageCodec"])
def test_patch_loop_takes_keras_callbacks(kind, tmp_path):
    """EarlyStopping stops it, CSVLogger logs each epoch, a user's callback sees every
    batch and the trained networks."""
    seen = {"batches": 0, "weights": 0}

    class Count(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            seen["batches"] += 1
            assert np.isfinite(logs["loss"])

        def on_train_end(self, logs=None):
            seen["weights"] = len(self.model.weights)

    # no improvement can reach min_delta: stopped after the second epoch
    stop = keras.callbacks.EarlyStopping(monitor="loss", patience=1, min_delta=1e9)
    log = tmp_path / "log.csv"
    est = _make(kind, epochs=6, callbacks=[stop, keras.callbacks.CSVLogger(str(log)), Count()])
    est.fit(smooth_images(2, 32, 32))
    assert len(est.history_["loss"]) == 2
    rows = list(csv.DictReader(log.open()))
    assert [int(r["epoch"]) for r in rows] == [0, 1]
    assert float(rows[1]["loss"]) == pytest.approx(est.history_["loss"][1], rel=1e-5)
    assert seen["batches"] == 2 * 4 and seen["weights"] > 0
    assert "callbacks" in est.get_params() and est.get_params()["callbacks"][0] is stop


def test_patch_loop_writes_tensorboard_logs(tmp_path):
    pytest.importorskip("tensorboard")
    est = _make("Denoiser", epochs=2,
                callbacks=[keras.callbacks.TensorBoard(str(tmp_path / "tb"))])
    est.fit(smooth_images(2, 32, 32))
    events = list((tmp_path / "tb").rglob("events.out.tfevents.*"))
    assert events and sum(e.stat().st_size for e in events) > 100


def test_callbacks_and_checkpoints_are_not_saved_with_the_model(tmp_path):
    est = _make("SuperResolver", epochs=1, callbacks=[keras.callbacks.History()],
                checkpoint_dir=tmp_path / "ck").fit(smooth_images(2, 32, 32))
    assert not (tmp_path / "ck").exists()  # removed when training completed
    est.save(tmp_path / "m.deepae")
    back = deepae.load(tmp_path / "m.deepae")
    assert back.callbacks is None and back.checkpoint_dir is None and back.resume is False


PATCH_SCRIPT = """
import os, signal, sys
import keras, numpy as np, deepae
from conftest import smooth_images

class KillAt(keras.callbacks.Callback):
    def on_epoch_begin(self, epoch, logs=None):
        if epoch == int(sys.argv[2]):
            os.kill(os.getpid(), signal.SIGKILL)

from test_engine import _make

est = _make(sys.argv[3], epochs=4, checkpoint_dir=sys.argv[1], callbacks=[KillAt()])
est.fit(smooth_images(2, 32, 32))
"""


@pytest.mark.parametrize("kind", ["SuperResolver", "Denoiser", "ImageCodec"])
def test_patch_loop_resumes_after_kill(tmp_path, kind):
    """SIGKILL at the start of the third epoch; resuming trains the last two epochs only,
    and ends with the weights of a run that was never interrupted: the patches come from
    the saved generator, the noise of the denoiser and the codec from stateless draws keyed
    on the optimizer's (saved) step count."""
    script = tmp_path / "train.py"
    script.write_text(PATCH_SCRIPT)
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2",
           "PYTHONPATH": os.pathsep.join([os.path.dirname(__file__),
                                          os.environ.get("PYTHONPATH", "")])}
    ckpt = tmp_path / "ck"
    done = subprocess.run([sys.executable, str(script), str(ckpt), "2", kind], env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == -signal.SIGKILL, done.stderr[-2000:]
    assert (ckpt / CHECKPOINT_MARK).is_file() and (ckpt / "loop.npz").is_file()

    batches = []

    class Count(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            batches.append(batch)

    images = smooth_images(2, 32, 32)
    resumed = _make(kind, epochs=4, checkpoint_dir=ckpt, resume=True,
                    callbacks=[Count()]).fit(images)
    assert len(batches) == 2 * 4  # two epochs of four steps, not four epochs
    assert len(resumed.history_["loss"]) == 4 and not ckpt.exists()
    whole = _make(kind, epochs=4).fit(images)
    assert resumed.history_["loss"] == pytest.approx(whole.history_["loss"], rel=1e-4)
    for a, b in zip(_weights(resumed), _weights(whole), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)


def _weights(est):
    nets = [est.model_] if hasattr(est, "model_") else [est.analysis_, est.synthesis_,
                                                         est.prior_]
    return [w for net in nets for w in net.get_weights()]


def test_patch_loop_resume_refuses_another_run(tmp_path):
    ckpt = tmp_path / "ck"
    images = smooth_images(2, 32, 32)
    _make("Denoiser", epochs=2, checkpoint_dir=ckpt).fit(images, keep_checkpoint=True)
    assert (ckpt / "loop.npz").is_file()
    with pytest.raises(ValueError, match="holds another run"):
        _make("Denoiser", epochs=3, checkpoint_dir=ckpt, resume=True).fit(images)
    with pytest.raises(ValueError, match="interrupted deepae run; pass resume=True"):
        _make("Denoiser", epochs=2, checkpoint_dir=ckpt).fit(images)
    # the same run, resumed: nothing left to train, the kept state comes back
    t0 = time.perf_counter()
    again = _make("Denoiser", epochs=2, checkpoint_dir=ckpt, resume=True).fit(images)
    assert len(again.history_["loss"]) == 2 and time.perf_counter() - t0 < 30
    assert not ckpt.exists()


def test_restorer_checkpoint_names_its_loss_and_old_ones_still_resume(tmp_path):
    """A checkpoint of a loss="mse" run records the parameters as before there was a choice
    of loss (so checkpoints written then still resume); resuming it with loss="psnr" is
    refused with an error that names the parameter that differs."""
    import json

    ckpt = tmp_path / "ck"
    images = smooth_images(2, 32, 32)
    _make("Denoiser", epochs=2, checkpoint_dir=ckpt).fit(images, keep_checkpoint=True)
    params = json.loads((ckpt / "run.json").read_text())["params"]
    assert "loss" not in params and params["clipped"] == 0.0
    with pytest.raises(ValueError, match=r"holds another run \(params \(loss: None there, "
                                         r"'psnr' now\)"):
        _make("Denoiser", epochs=2, loss="psnr", checkpoint_dir=ckpt, resume=True).fit(images)
    again = _make("Denoiser", epochs=2, checkpoint_dir=ckpt, resume=True).fit(images)
    assert again.history_["objective"] == ["mse", "mse"] and not ckpt.exists()


def test_restorer_checkpoints_from_before_colour_network_still_resume(tmp_path):
    """colour_network="joint" (the default) and grayscale runs record the parameters as
    before the choice existed, so their checkpoints still resume; a colour run of the
    other design is refused, naming the parameter."""
    import json

    ckpt = tmp_path / "ck"
    gray, colour = smooth_images(2, 32, 32), smooth_images(2, 32, 32, c=3)
    for images, design in ((gray, "joint"), (gray, "shared"), (colour, "joint")):
        _make("Denoiser", epochs=2, colour_network=design, checkpoint_dir=ckpt).fit(
            images, keep_checkpoint=True)
        assert "colour_network" not in json.loads((ckpt / "run.json").read_text())["params"]
        again = _make("Denoiser", epochs=2, checkpoint_dir=ckpt, resume=True).fit(images)
        assert len(again.history_["loss"]) == 2 and not ckpt.exists()
    _make("Denoiser", epochs=2, colour_network="shared", checkpoint_dir=ckpt).fit(
        colour, keep_checkpoint=True)
    with pytest.raises(ValueError, match=r"colour_network: 'shared' there, None now"):
        _make("Denoiser", epochs=2, checkpoint_dir=ckpt, resume=True).fit(colour)


HASH_SCRIPT = """
import os, signal, sys
import keras, numpy as np, deepae

class KillAt(keras.callbacks.Callback):
    def on_epoch_begin(self, epoch, logs=None):
        if epoch == int(sys.argv[2]):
            os.kill(os.getpid(), signal.SIGKILL)

x = np.random.default_rng(0).normal(size=(300, 12)).astype("float32")
deepae.SemanticHasher(8, hidden_units=(16,), n_neighbors=5, epochs=5, batch_size=50,
                      random_state=0, checkpoint_dir=sys.argv[1],
                      callbacks=[KillAt()]).fit(x)
"""


def test_hasher_resumes_after_kill_and_takes_callbacks(tmp_path):
    """The hasher trains through the same checkpoints as `fit` (it had none): killed at the
    start of its fourth epoch, it resumes for the last two, keeping the three done."""
    script = tmp_path / "hash.py"
    script.write_text(HASH_SCRIPT)
    ckpt = tmp_path / "ck"
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    done = subprocess.run([sys.executable, str(script), str(ckpt), "3"], env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == -signal.SIGKILL, done.stderr[-2000:]
    import json

    before = json.loads((ckpt / "history.json").read_text())
    assert [r["epoch"] for r in before] == [1, 2, 3]
    epochs = []

    class Seen(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            epochs.append(epoch)

    x = np.random.default_rng(0).normal(size=(300, 12)).astype("float32")
    h = deepae.SemanticHasher(8, hidden_units=(16,), n_neighbors=5, epochs=5, batch_size=50,
                              random_state=0, checkpoint_dir=ckpt, resume=True,
                              callbacks=[Seen()]).fit(x)
    assert epochs == [3, 4]  # only the epochs the kill left
    assert len(h.history_["loss"]) == 5 and not ckpt.exists()
    assert h.history_["loss"][:3] == pytest.approx([r["loss"] for r in before])
    assert h.transform(x).shape == (300, 1)


def test_hasher_stops_on_nan(tmp_path):
    x = np.random.default_rng(0).normal(size=(100, 6)).astype("float32")
    x[5, 2] = 1e30  # standardised: finite; squared in the loss: inf
    from deepae.exceptions import TrainingError

    with pytest.raises(TrainingError, match="loss"):
        deepae.SemanticHasher(8, hidden_units=(8,), n_neighbors=3, epochs=2,
                              preprocessing="none", random_state=0).fit(x)


def test_detector_members_checkpoint_and_resume(tmp_path):
    """Each member of the ensemble trains in its own subfolder; a kept run resumes to the
    same detector without training, and the folder goes when the detector is done."""
    x = np.random.default_rng(1).normal(size=(240, 5)).astype("float32")
    ckpt = tmp_path / "ck"
    epochs = []

    class Seen(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            epochs.append(epoch)

    params = dict(hidden_units=(4,), n_components=2, epochs=3, n_estimators=2,
                  early_stopping=None, random_state=0)
    first = deepae.AnomalyDetector(**params, checkpoint_dir=ckpt, callbacks=[Seen()])
    first.fit(x, keep_checkpoint=True)
    assert epochs == [0, 1, 2] * 2
    assert sorted(p.name for p in ckpt.iterdir() if p.is_dir()) == ["member0", "member1"]
    epochs.clear()
    again = deepae.AnomalyDetector(**params, checkpoint_dir=ckpt, resume=True,
                                   callbacks=[Seen()]).fit(x)
    assert epochs == []  # both members had finished
    np.testing.assert_allclose(again.decision_function(x), first.decision_function(x),
                               rtol=1e-5)
    assert not ckpt.exists()


def test_reducer_checkpoint_dir_and_resume_are_parameters(tmp_path):
    x = np.random.default_rng(2).normal(size=(200, 8)).astype("float32")
    red = deepae.AutoencoderReducer(2, hidden_units=(4,), epochs=2, checkpoint_dir=tmp_path / "c",
                                    random_state=0)
    assert {"callbacks", "checkpoint_dir", "resume"} <= set(red.get_params())
    red.fit(x, keep_checkpoint=True)
    assert (tmp_path / "c" / "final.json").is_file()
    with pytest.raises(ValueError, match="holds another run"):
        deepae.AutoencoderReducer(2, hidden_units=(4,), epochs=3, random_state=0,
                                  checkpoint_dir=tmp_path / "c", resume=True).fit(x)


def test_resume_needs_the_record_of_its_run(tmp_path):
    """A marked folder without run.json (an ensemble's top folder, or a damaged one) was
    resumed without any check, and then removed with the other run in it."""
    x = np.random.default_rng(1).normal(size=(240, 5)).astype("float32")
    ckpt = tmp_path / "ck"
    deepae.AnomalyDetector(hidden_units=(4,), n_components=2, epochs=2, n_estimators=2,
                           early_stopping=None, random_state=0,
                           checkpoint_dir=ckpt).fit(x, keep_checkpoint=True)
    with pytest.raises(ValueError, match="holds no record of its run"):
        deepae.AutoencoderReducer(2, hidden_units=(4,), epochs=2, checkpoint_dir=ckpt,
                                  resume=True).fit(x)
    assert (ckpt / "member0" / "final.json").is_file()  # the detector's run is still there
    images = smooth_images(2, 32, 32)
    loop = tmp_path / "loop"
    _make("Denoiser", epochs=2, checkpoint_dir=loop).fit(images, keep_checkpoint=True)
    (loop / "run.json").unlink()
    with pytest.raises(ValueError, match="holds no record of its run"):
        _make("Denoiser", epochs=2, checkpoint_dir=loop, resume=True).fit(images)


@pytest.mark.parametrize("change", [{"loss": "mae"}, {"optimizer": "sgd"},
                                    {"learning_rate": 0.3}])
def test_dense_resume_compares_the_training_options(tmp_path, change):
    x = np.random.default_rng(2).normal(size=(200, 8)).astype("float32")
    kw = dict(hidden_units=(4,), epochs=2, random_state=0, checkpoint_dir=tmp_path / "c")
    deepae.AutoencoderReducer(2, **kw).fit(x, keep_checkpoint=True)
    with pytest.raises(ValueError, match="holds another run"):
        deepae.AutoencoderReducer(2, **kw, **change, resume=True).fit(x)


def test_patch_loop_kept_finished_run_is_not_trained_again(tmp_path):
    """EarlyStopping stopped the kept run at two epochs: resuming gives that run back
    (its best weights), without training more."""
    images = smooth_images(2, 32, 32)
    stop = keras.callbacks.EarlyStopping(monitor="loss", patience=1, min_delta=1e9,
                                         restore_best_weights=True)
    first = _make("SuperResolver", epochs=6, checkpoint_dir=tmp_path / "c",
                  callbacks=[stop]).fit(images, keep_checkpoint=True)
    assert len(first.history_["loss"]) == 2
    batches = []

    class Count(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            batches.append(batch)

    again = _make("SuperResolver", epochs=6, checkpoint_dir=tmp_path / "c", resume=True,
                  callbacks=[Count()]).fit(images)
    assert batches == [] and again.history_["loss"] == first.history_["loss"]
    for a, b in zip(again.model_.get_weights(), first.model_.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)


def test_damaged_loop_state_is_a_clear_error(tmp_path):
    images = smooth_images(2, 32, 32)
    ckpt = tmp_path / "c"
    _make("Denoiser", epochs=2, checkpoint_dir=ckpt).fit(images, keep_checkpoint=True)
    (ckpt / "loop.npz").write_bytes(b"PK\x03\x04 not a zip")
    with pytest.raises(ValueError, match="damaged"):
        _make("Denoiser", epochs=2, checkpoint_dir=ckpt, resume=True).fit(images)
