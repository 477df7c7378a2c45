import json
import os
import re
import signal
import subprocess
import sys
import time

import keras
import numpy as np
import pytest

import deepae
from conftest import small_model
from deepae.exceptions import TrainingError
from deepae.training import CHECKPOINT_MARK, remove_checkpoint


def _weights(model):
    return [w.copy() for w in model.get_weights()]


def test_same_seed_same_weights(table):
    runs = []
    for _ in range(2):
        ae = small_model()
        ae.fit(table, epochs=3, batch_size=32, random_state=7, verbose=0)
        runs.append(_weights(ae))
    for a, b in zip(*runs, strict=True):
        np.testing.assert_array_equal(a, b)
    other = small_model()
    other.fit(table, epochs=3, batch_size=32, random_state=8, verbose=0)
    assert any(not np.array_equal(a, b) for a, b in zip(runs[0], _weights(other), strict=True))


def test_training_reduces_error_and_keeps_history(table):
    ae = small_model(latent_dim=3)
    h = ae.fit(table, epochs=15, batch_size=32, random_state=0, verbose=0)
    assert len(h.history["loss"]) == 15
    assert h.history["loss"][-1] < 0.5 * h.history["loss"][0]
    assert ae.history_["loss"] == h.history["loss"]
    assert ae.training_summary_["epochs_run"] == 15


def test_validation_split_and_data(table):
    ae = small_model()
    h = ae.fit(table, epochs=2, validation_split=0.25, verbose=0)
    assert "val_loss" in h.history
    assert ae.training_summary_["n_validation"] == 50 and ae.training_summary_["n_samples"] == 150
    ae2 = small_model()
    h2 = ae2.fit(table[:150], epochs=2, validation_data=table[150:], verbose=0)
    assert len(h2.history["val_loss"]) == 2


def test_early_stopping_restores_best_weights(table):
    ae = small_model()
    h = ae.fit(table, epochs=60, batch_size=200, learning_rate=0.05, validation_split=0.2,
               early_stopping=3, random_state=1, verbose=0)
    val = h.history["val_loss"]
    best = int(np.argmin(val))
    assert len(val) < 60, "expected this seed and learning rate to stop early"
    assert len(val) == best + 1 + 3  # patience epochs after the best one
    # restored weights give the best validation loss, not the last one
    held_out = table[-40:]
    restored = float(np.mean(ae.reconstruction_error(held_out)))
    assert abs(restored - val[best]) < 1e-4 * max(1.0, val[best])


def test_reduce_lr_on_plateau(table):
    ae = small_model()
    h = ae.fit(table, epochs=12, batch_size=200, learning_rate=0.3, reduce_lr_on_plateau=1,
               random_state=0, verbose=0)
    lrs = h.history["learning_rate"]
    assert min(lrs) < lrs[0]


@pytest.mark.parametrize("loss", ["mse", "mae", "binary_crossentropy"])
@pytest.mark.parametrize("optimizer", ["adam", "sgd"])
def test_losses_and_optimizers(images, loss, optimizer):
    ae = small_model()
    h = ae.fit(images, epochs=2, loss=loss, optimizer=optimizer, verbose=0)
    assert np.isfinite(h.history["loss"]).all()
    assert ae.optimizer.__class__.__name__.lower() == optimizer
    assert ae.training_summary_["loss"] == loss


def test_sgd_uses_momentum(table):
    ae = small_model()
    ae.fit(table, epochs=1, optimizer="sgd", momentum=0.8, verbose=0)
    assert ae.optimizer.momentum == pytest.approx(0.8)


@pytest.mark.parametrize("shape,batch", [((1, 5), 32), ((20, 3), 64), ((7, 4), 3)])
def test_tiny_data_no_batch_dropped(shape, batch, rng):
    x = rng.normal(size=shape).astype(np.float32)
    ae = deepae.Autoencoder(hidden_units=(2,), latent_dim=1)
    h = ae.fit(x, epochs=2, batch_size=batch, verbose=0)
    assert len(h.history["loss"]) == 2
    steps = int(keras.ops.convert_to_numpy(ae.optimizer.iterations))
    assert steps == 2 * -(-shape[0] // batch)  # ceil per epoch: the partial batch is kept


def test_nan_guard_stops_with_clear_error(table):
    ae = small_model(preprocessing="none", output_activation="linear")
    with pytest.raises(TrainingError, match=r"became (nan|inf) at epoch 1.*Lower the learning"):
        ae.fit(table * 1e18, epochs=3, learning_rate=10.0, optimizer="sgd", verbose=0)


@pytest.mark.parametrize("kwargs,exc,match", [
    ({"epochs": 0}, ValueError, r"'epochs' parameter of fit must be an int in the range \[1"),
    ({"batch_size": -1}, ValueError, "'batch_size'.*Got -1"),
    ({"batch_size": 0}, ValueError, "'batch_size'.*Got 0"),
    ({"loss": "huber"}, ValueError, "'loss'.*Got 'huber'"),
    ({"optimizer": "rmsprop"}, ValueError, "'optimizer'.*Got 'rmsprop'"),
    ({"validation_split": 1.5}, ValueError, "'validation_split'.*Got 1.5"),
    ({"learning_rate": -1.0}, ValueError, "'learning_rate'.*Got -1.0"),
    ({"resume": True}, ValueError, "checkpoint_dir"),
])
def test_bad_fit_arguments(table, kwargs, exc, match):
    with pytest.raises(exc, match=match):
        small_model().fit(table, verbose=0, **kwargs)


def test_checkpoint_dir_refuses_silent_resume(table, tmp_path):
    ckpt = tmp_path / "ck"
    ckpt.mkdir()
    (ckpt / CHECKPOINT_MARK).write_text('{"deepae_checkpoint": 1}')
    (ckpt / "run.json").write_text("{}")
    with pytest.raises(ValueError, match="interrupted deepae run; pass resume=True"):
        small_model().fit(table, epochs=1, checkpoint_dir=ckpt, verbose=0)
    ae = small_model()
    ae.fit(table, epochs=2, checkpoint_dir=tmp_path / "fresh", verbose=0)
    assert not (tmp_path / "fresh").exists()  # removed after a completed run


def test_checkpoint_dir_of_someone_else_is_refused_and_kept(table, tmp_path):
    """A non-empty folder deepae did not make is refused (without advice to resume), and
    nothing in it is touched, with or without resume=True."""
    work = tmp_path / "myproject"
    (work / "src").mkdir(parents=True)
    (work / "notes.txt").write_text("mine")
    (work / "src" / "main.py").write_text("print()")
    for resume in (False, True):
        with pytest.raises(ValueError, match="not made by deepae") as err:
            small_model().fit(table, epochs=1, checkpoint_dir=work, resume=resume, verbose=0)
        assert "resume" not in str(err.value)
    assert sorted(p.name for p in work.rglob("*")) == ["main.py", "notes.txt", "src"]


def test_completed_run_removes_only_its_own_files(table, tmp_path):
    """An empty folder given by the user: deepae's files go when training completes, a file
    the user drops there meanwhile stays, and so does the folder."""
    ckpt = tmp_path / "ck"
    ckpt.mkdir()

    class Drop(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            (ckpt / "user.txt").write_text("keep me")

    small_model().fit(table, epochs=2, checkpoint_dir=ckpt, callbacks=[Drop()], verbose=0)
    assert sorted(p.name for p in ckpt.iterdir()) == ["user.txt"]


def test_kept_checkpoint_resumes_finished_run_without_training(table, tmp_path):
    """keep_checkpoint=True (what the CLI passes until the model is saved): after training
    completes the checkpoint stays, a resumed fit restores the finished weights without
    another epoch, and remove_checkpoint then cleans the folder."""
    ckpt = tmp_path / "ck"
    ae = small_model()
    ae.fit(table, epochs=3, checkpoint_dir=ckpt, keep_checkpoint=True, random_state=0,
           verbose=0)
    assert (ckpt / CHECKPOINT_MARK).is_file() and (ckpt / "backup").is_dir()
    again = small_model()
    h = again.fit(table, epochs=3, checkpoint_dir=ckpt, resume=True, keep_checkpoint=True,
                  random_state=0, verbose=0)
    assert len(h.history["loss"]) == 3
    assert int(keras.ops.convert_to_numpy(again.optimizer.iterations)) == \
        int(keras.ops.convert_to_numpy(ae.optimizer.iterations))
    np.testing.assert_allclose(again.reconstruct(table[:5]), ae.reconstruct(table[:5]),
                               rtol=1e-5, atol=1e-5)
    remove_checkpoint(ckpt)
    assert not ckpt.exists()


@pytest.mark.parametrize("change, named", [
    ({"epochs": 5}, "epochs=3 there, 5 now"),
    ({"batch_size": 8}, "batch_size=32 there, 8 now"),
    ({"hidden_units": (6,)}, "the model (hidden_units"),
])
def test_resume_refuses_another_run(table, tmp_path, change, named):
    """A kept checkpoint was resumed with other options: the finished 3-epoch model came
    back for epochs=5, and another architecture failed inside Keras's weight loading."""
    ckpt = tmp_path / "ck"
    small_model().fit(table, epochs=3, batch_size=32, checkpoint_dir=ckpt,
                      keep_checkpoint=True, random_state=0, verbose=0)
    fit = {"epochs": 3, "batch_size": 32, **{k: v for k, v in change.items()
                                               if k in ("epochs", "batch_size")}}
    model = small_model(**{k: v for k, v in change.items() if k == "hidden_units"})
    with pytest.raises(ValueError, match=f"holds another run.*{re.escape(named)}"):
        model.fit(table, **fit, checkpoint_dir=ckpt, resume=True, random_state=0, verbose=0)
    assert (ckpt / "final.weights.h5").is_file()  # the kept run is left as it was


TRAIN_SCRIPT = """
import sys, numpy as np, deepae
x = np.load(sys.argv[1])
ae = deepae.Autoencoder(hidden_units=(64, 32), latent_dim=8)
ae.fit(x, epochs=int(sys.argv[3]), batch_size=32, checkpoint_dir=sys.argv[2],
       resume=len(sys.argv) > 5, random_state=0, verbose=0)
ae.save(sys.argv[4])
"""


CLI = ["-m", "deepae.cli.main", "train", "{data}", "-o", "{out}", "--epochs", "{epochs}",
       "--hidden-units", "64,32", "--latent-dim", "8", "--batch-size", "32", "--seed", "0",
       "--checkpoint-dir", "{ckpt}", "--quiet"]


@pytest.mark.parametrize("entry", ["python", "cli"])
def test_resume_after_kill(tmp_path, rng, entry):
    """SIGKILL a training process mid-run; resuming finishes with every epoch counted once."""
    x = rng.normal(size=(1500, 40)).astype(np.float32)
    data, ckpt, out = tmp_path / "x.npy", tmp_path / "ckpt", tmp_path / "m.deepae"
    np.save(data, x)
    script = tmp_path / "train.py"
    script.write_text(TRAIN_SCRIPT)
    epochs = 20
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    if entry == "python":
        cmd = [sys.executable, str(script), str(data), str(ckpt), str(epochs), str(out)]
        resume_cmd = cmd + ["resume"]
    else:
        fill = {"data": data, "out": out, "epochs": epochs, "ckpt": ckpt}
        cmd = [sys.executable] + [a.format(**fill) for a in CLI]
        resume_cmd = cmd + ["--resume"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL)
    hist = ckpt / "history.json"
    deadline = time.time() + 120
    done_before = []
    while time.time() < deadline and proc.poll() is None:
        if hist.exists():
            done_before = json.loads(hist.read_text())
            if len(done_before) >= 3:
                break
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "training ended before it could be killed"
    assert not out.exists()
    done_before = json.loads(hist.read_text())
    k = len(done_before)
    assert 3 <= k < epochs

    res = subprocess.run(resume_cmd, env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    model = deepae.load(out)
    s = model.training_summary_
    assert s["epochs_run"] == epochs
    assert len(model.history_["loss"]) == epochs
    # epochs finished before the kill are kept exactly, not retrained
    assert model.history_["loss"][:k] == pytest.approx([r["loss"] for r in done_before])
    assert s["first_epoch_this_run"] == k + 1
    # the resumed run continued from the checkpoint: its first epoch is close to the last
    # pre-kill epoch, far below a fresh start's first epoch
    first_new = model.history_["loss"][k]
    assert first_new < 1.05 * done_before[-1]["loss"] < done_before[0]["loss"]
    assert not ckpt.exists()
    if entry == "python":
        # the same run, never interrupted: the same final weights. The redone epoch replays
        # the same order (the shuffle is keyed on the epoch) from the restored weights and
        # optimizer state; what is left is float summation order in threaded kernels.
        out2 = tmp_path / "uninterrupted.deepae"
        cmd2 = [sys.executable, str(script), str(data), str(tmp_path / "ckpt2"), str(epochs),
                str(out2)]
        res = subprocess.run(cmd2, env=env, capture_output=True, text=True, timeout=300)
        assert res.returncode == 0, res.stderr[-2000:]
        ref = deepae.load(out2)
        for a, b in zip(model.get_weights(), ref.get_weights(), strict=True):
            np.testing.assert_allclose(a, b, rtol=0, atol=1e-5)


def test_second_fit_continues_optimizer(table):
    ae = small_model()
    ae.fit(table, epochs=1, batch_size=50, verbose=0)
    opt = ae.optimizer
    ae.fit(table, epochs=1, batch_size=50, verbose=0)
    assert ae.optimizer is opt
    assert int(keras.ops.convert_to_numpy(opt.iterations)) == 8
    ae.fit(table, epochs=1, batch_size=50, loss="mae", verbose=0)  # new settings: recompiled
    assert ae.optimizer is not opt and ae.training_summary_["loss"] == "mae"


def test_user_compiled_model_is_kept(table):
    ae = small_model()
    ae.build((None, 12))
    ae.compile(optimizer=keras.optimizers.RMSprop(1e-3), loss="mae")
    ae.fit(table, epochs=1, verbose=0)
    assert isinstance(ae.optimizer, keras.optimizers.RMSprop)
    assert ae.training_summary_["loss"] == "user-compiled"


def test_a_worker_never_removes_a_backup_folder_it_did_not_make(table, tmp_path, monkeypatch):
    """Under a multi-worker strategy the workers other than the chief skip the folder checks;
    Keras's BackupAndRestore removes its folder whole at the end, so a user's own `backup`
    folder in the checkpoint_dir would have gone."""
    import deepae.distribute

    work = tmp_path / "myproject"
    (work / "backup").mkdir(parents=True)
    (work / "backup" / "thesis.tex").write_text("mine")
    monkeypatch.setattr(deepae.distribute, "is_chief", lambda: False)
    with pytest.raises(ValueError, match="'backup' folder that deepae did not make"):
        small_model().fit(table, epochs=1, checkpoint_dir=work, strategy="mirrored", verbose=0)
    assert (work / "backup" / "thesis.tex").read_text() == "mine"


def test_progress_bar_ends_at_its_total(table, capsys):
    """With several steps per call Keras reported the call's last step: 32/7, 256/235 in
    `make demo`. The count now stops at the epoch's steps."""
    small_model().fit(table, epochs=2, batch_size=32, verbose=1)
    counts = [(int(a), int(b)) for a, b in
              re.findall(r"(\d+)/(\d+)\x1b\[0m", capsys.readouterr().out)]
    assert counts and all(a <= b for a, b in counts), counts
    assert counts[-1][0] == counts[-1][1]


def test_a_users_files_inside_backup_are_kept(table, tmp_path):
    """Only Keras's backup files go: a file the user puts in the `backup` folder of a
    checkpoint stays (and so does that folder)."""
    ckpt = tmp_path / "ck"

    class Drop(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            (ckpt / "backup" / "notes.txt").write_text("keep me")

    small_model().fit(table, epochs=2, checkpoint_dir=ckpt, callbacks=[Drop()], verbose=0)
    assert sorted(p.relative_to(ckpt).as_posix() for p in ckpt.rglob("*")) == [
        "backup", "backup/notes.txt"]


def test_a_worker_cleans_its_backup_after_each_run(tmp_path):
    """A non-chief worker (multi-worker training) leaves no backup behind when its run
    completes, so its next run starts clean."""
    from deepae.training import CheckpointedRun

    ck = tmp_path / "wk"
    x = np.random.default_rng(0).normal(size=(64, 3)).astype("float32")
    for _ in range(2):
        m = keras.Sequential([keras.Input((3,)), keras.layers.Dense(3)])
        m.compile("adam", "mse")
        run = CheckpointedRun(ck, resume=False, keep=False, run={"a": 1}, chief=False)
        run.open(m)
        m.fit(x, x, epochs=2, verbose=0, callbacks=run.callbacks)
        run.close(m)
        assert not list(ck.rglob("*.h5")), sorted(map(str, ck.rglob("*")))
