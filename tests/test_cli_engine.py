"""Every training command takes --tensorboard DIR, --checkpoint-dir and --resume, and keeps
its checkpoint until the model file is written."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

import deepae
from deepae.cli.main import main
from deepae.training import CHECKPOINT_MARK


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    d = tmp_path_factory.mktemp("engine_cli")
    rng = np.random.default_rng(0)
    x = rng.normal(size=(160, 6)).astype(np.float32)
    np.save(d / "x.npy", x)
    pd.DataFrame(x, columns=[f"c{i}" for i in range(6)]).to_csv(d / "t.csv", index=False)
    (d / "photos").mkdir()
    yy, xx = np.mgrid[:40, :48]
    for i in range(2):
        img = 128 + 100 * np.sin(xx / (3 + i)) * np.cos(yy / (4 + i))
        Image.fromarray(img.astype(np.uint8)).save(d / "photos" / f"im{i}.png")
    return d


def _commands(d, out):
    photos = str(d / "photos")
    patch = ["--epochs", "2", "--patches", "16", "--patch-size", "16", "--quiet"]
    return {
        "train": ["train", str(d / "x.npy"), "-o", out, "--epochs", "2",
                  "--hidden-units", "4", "--latent-dim", "2", "--quiet"],
        "detect fit": ["detect", "fit", str(d / "t.csv"), "-o", out, "--epochs", "2",
                       "--quiet"],
        "denoise train": ["denoise", "train", photos, "-o", out, *patch],
        "upscale train": ["upscale", "train", photos, "-o", out, *patch],
        "compress train": ["compress", "train", photos, "-o", out, "--filters", "8",
                           "--latent-channels", "4", "--levels", "2", *patch],
        "index build": ["index", "build", str(d / "x.npy"), "-o", out, "--bits", "8",
                        "--epochs", "2", "--quiet"],
    }


COMMANDS = ["train", "detect fit", "denoise train", "upscale train", "compress train",
            "index build"]


@pytest.mark.parametrize("name", COMMANDS)
def test_tensorboard_and_checkpoint_options(data, tmp_path, name, monkeypatch):
    pytest.importorskip("tensorboard")
    import deepae.training

    out, ck = tmp_path / "m.deepae", tmp_path / "ck"
    argv = _commands(data, str(out))[name]
    seen = []
    real = deepae.training.remove_checkpoint

    def remove(folder):  # the run's checkpoint is there, marked, once the model is written
        seen.append((Path(folder), (Path(folder) / CHECKPOINT_MARK).is_file(), out.exists()))
        real(folder)

    monkeypatch.setattr(deepae.training, "remove_checkpoint", remove)
    assert main([*argv, "--tensorboard", str(tmp_path / "tb"), "--checkpoint-dir", str(ck)]) == 0
    assert deepae.load(out) is not None
    events = list((tmp_path / "tb").rglob("events.out.tfevents.*"))
    assert events, f"{name}: no TensorBoard log"
    assert seen == [(ck, True, True)], f"{name}: the checkpoint went elsewhere: {seen}"
    assert not ck.exists()  # removed once the model was written
    assert not out.with_name(out.name + ".ckpt").exists()  # not the default folder either


@pytest.mark.parametrize("name", COMMANDS)
def test_failed_save_keeps_the_run_and_resume_saves_it(data, tmp_path, name, capsys,
                                                       monkeypatch):
    """The save fails (a full disk, say): the trained run stays in its checkpoint, and the
    same command with --resume writes the model without training again."""
    out = tmp_path / "m.deepae"
    argv = [*_commands(data, str(out))[name], "--checkpoint-dir", str(tmp_path / "ck")]
    real = deepae.persistence.save_artifact

    def full(*a, **k):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(deepae.persistence, "save_artifact", full)
    for module in ("deepae.apps._base", "deepae.apps.autoencoder", "deepae.apps.hashing"):
        mod = __import__(module, fromlist=["x"])
        if hasattr(mod, "save_artifact"):
            monkeypatch.setattr(mod, "save_artifact", full)
    capsys.readouterr()
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert "could not be written" in err and "--resume" in err, err
    assert (tmp_path / "ck" / CHECKPOINT_MARK).is_file() and not out.exists()
    monkeypatch.undo()
    assert real is deepae.persistence.save_artifact

    trained = []
    import keras

    class Count(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            trained.append(batch)

    import deepae.cli._options as options

    original = options.run_parameters

    def counting(*a, **k):
        run = original(*a, **k)
        run["callbacks"] = [Count()]
        return run

    for module in ("deepae.cli.main", "deepae.cli.detect", "deepae.cli.restore",
                   "deepae.cli.compress", "deepae.cli.index"):
        monkeypatch.setattr(__import__(module, fromlist=["x"]), "run_parameters", counting)
    assert main([*argv, "--resume"]) == 0
    assert out.exists() and not (tmp_path / "ck").exists()
    assert trained == [], f"{name} trained again on resume"


def test_interrupted_training_says_how_to_resume(tmp_path, monkeypatch, capsys):
    import deepae.cli.main as cli

    def stop(args):
        raise KeyboardInterrupt

    def stop_after_an_epoch(args):  # the run's checkpoint folder exists, marked
        folder = tmp_path / "m.deepae.ckpt"
        folder.mkdir()
        (folder / CHECKPOINT_MARK).write_text("")
        raise KeyboardInterrupt

    argv = ["train", "digits", "-o", str(tmp_path / "m.deepae")]
    monkeypatch.setattr(cli, "cmd_train", stop)  # stopped before its first epoch ended
    assert cli.main(argv) == 130
    assert capsys.readouterr().err == "deepae: interrupted\n"  # nothing kept to resume
    monkeypatch.setattr(cli, "cmd_train", stop_after_an_epoch)
    rc = cli.main(argv)
    err = capsys.readouterr().err
    assert rc == 130
    assert "--resume" in err and str(tmp_path / "m.deepae.ckpt") in err
    monkeypatch.setattr(cli, "cmd_info", stop)
    assert cli.main(["info", str(tmp_path / "m.deepae")]) == 130
    assert "--resume" not in capsys.readouterr().err  # not a training command


def test_interrupted_apply_gives_no_resume_hint(data, tmp_path, monkeypatch, capsys):
    """`compress IMG -o OUT`, `denoise`/`upscale` apply and evaluate take --resume (their
    `train` does) but train nothing: an interruption says only that, even where a folder
    OUT.ckpt of an earlier training run is there."""
    import deepae.data.io

    def stop(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(deepae.data.io, "read_image", stop)
    monkeypatch.setattr(deepae.data.io, "read_images", stop)
    image, photos = str(data / "photos" / "im0.png"), str(data / "photos")
    for out in ("new.dae", "new.png"):
        (tmp_path / f"{out}.ckpt").mkdir()
        (tmp_path / f"{out}.ckpt" / CHECKPOINT_MARK).write_text("")
    for argv in (["compress", image, "-o", str(tmp_path / "new.dae")],
                 ["denoise", image, "-o", str(tmp_path / "new.png")],
                 ["upscale", image, "-o", str(tmp_path / "new.png")],
                 ["denoise", "evaluate", photos, "--sigma", "0.1"],
                 ["upscale", "evaluate", photos, "--scale", "2"]):
        assert main(argv) == 130, argv
        assert capsys.readouterr().err == "deepae: interrupted\n", argv
