"""The command line with other people's folders and files: one output rule for every command,
checkpoints that never cost the user's work, one-line errors, the user's file permissions."""

import json
import os
import stat
import subprocess
import sys

import numpy as np
import pytest

import deepae
from deepae.cli.main import main
from deepae.training import CHECKPOINT_MARK


@pytest.fixture
def data_file(tmp_path, table):
    path = tmp_path / "x.npy"
    np.save(path, table)
    return path


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """A tiny trained model, a table for the detector, a tiny detector and a small image."""
    d = tmp_path_factory.mktemp("cli_safety")
    rng = np.random.default_rng(0)
    x = rng.normal(size=(120, 6)).astype(np.float32)
    np.save(d / "x.npy", x)
    assert main(["train", str(d / "x.npy"), "-o", str(d / "m.deepae"), "--epochs", "1",
                 "--hidden-units", "4", "--latent-dim", "2", "--quiet"]) == 0
    import pandas as pd

    pd.DataFrame(x, columns=[f"c{i}" for i in range(6)]).to_csv(d / "t.csv", index=False)
    assert main(["detect", "fit", str(d / "t.csv"), "-o", str(d / "det.deepae"),
                 "--epochs", "2", "--quiet"]) == 0
    from PIL import Image

    img = (rng.random((24, 24)) * 255).astype(np.uint8)
    Image.fromarray(img).save(d / "img.png")
    assert main(["compress", str(d / "img.png"), "-o", str(d / "img.dae"), "--quiet"]) == 0
    return d


def _commands(d, out):
    """Every command that writes one output file, writing to `out`."""
    return {
        "encode": ["encode", str(d / "m.deepae"), str(d / "x.npy"), "-o", str(out) + ".npy"],
        "reconstruct": ["reconstruct", str(d / "m.deepae"), str(d / "x.npy"), "-o",
                        str(out) + ".npy"],
        "reconstruct-png": ["reconstruct", str(d / "m.deepae"), str(d / "x.npy"), "-o",
                            str(out) + ".png", "-n", "2"],
        "denoise": ["denoise", str(d / "img.png"), "-o", str(out) + ".png"],
        "upscale": ["upscale", str(d / "img.png"), "-o", str(out) + ".png"],
        "compress": ["compress", str(d / "img.png"), "-o", str(out) + ".dae", "--quiet"],
        "decompress": ["decompress", str(d / "img.dae"), "-o", str(out) + ".png", "--quiet"],
        "detect-score": ["detect", "score", str(d / "det.deepae"), str(d / "t.csv"), "-o",
                         str(out) + ".csv"],
    }


@pytest.mark.parametrize("name", ["encode", "reconstruct", "reconstruct-png", "denoise",
                                  "upscale", "compress", "decompress", "detect-score"])
def test_existing_output_refused_unless_overwrite(files, tmp_path, name, capsys):
    argv = _commands(files, tmp_path / "out")[name]
    out = next(tmp_path / os.path.basename(a) for a in argv
               if a.startswith(str(tmp_path / "out")))
    out.write_bytes(b"precious")
    capsys.readouterr()
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert "exists" in err and "--overwrite" in err and err.count("\n") == 1
    assert out.read_bytes() == b"precious"
    assert main([*argv, "--overwrite"]) == 0
    assert out.read_bytes() != b"precious" and out.stat().st_size > 0
    # no temporary file left beside it
    assert sorted(p.name for p in tmp_path.iterdir()) == [out.name]


@pytest.mark.parametrize("argv", [
    ["denoise", "{img}", "-o", "{img}", "--overwrite"],
    ["upscale", "{img}", "-o", "{img}", "--overwrite"],
    ["compress", "{img}", "-o", "{img}", "--overwrite", "--quiet"],
    ["encode", "{model}", "{x}", "-o", "{x}", "--overwrite"],
    ["encode", "{model}", "{x}", "-o", "{model}", "--overwrite"],
    ["detect", "score", "{det}", "{csv}", "-o", "{csv}", "--overwrite"],
])
def test_input_is_never_its_own_output(files, tmp_path, argv, capsys):
    import shutil

    for name in ("img.png", "x.npy", "m.deepae", "det.deepae", "t.csv"):
        shutil.copy(files / name, tmp_path / name)
    names = {"img": "img.png", "x": "x.npy", "model": "m.deepae", "det": "det.deepae",
             "csv": "t.csv"}
    before = {n: (tmp_path / n).read_bytes() for n in names.values()}
    argv = [a.format(**{k: str(tmp_path / v) for k, v in names.items()}) for a in argv]
    capsys.readouterr()
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert "is the input" in err and err.count("\n") == 1
    assert {n: (tmp_path / n).read_bytes() for n in names.values()} == before


def test_input_through_a_link_is_its_own_output(files, tmp_path, capsys):
    import shutil

    shutil.copy(files / "img.png", tmp_path / "img.png")
    (tmp_path / "alias.png").symlink_to(tmp_path / "img.png")
    before = (tmp_path / "img.png").read_bytes()
    assert main(["denoise", str(tmp_path / "img.png"), "-o", str(tmp_path / "alias.png"),
                 "--overwrite"]) == 1
    assert "is the input" in capsys.readouterr().err
    assert (tmp_path / "img.png").read_bytes() == before


@pytest.mark.parametrize("umask,mode", [(0o027, 0o640), (0o002, 0o664)])
def test_written_files_get_the_users_permissions(files, tmp_path, umask, mode):
    """Files deepae writes get 0666 less the umask, as open() gives (they came out 0600)."""
    old = os.umask(umask)
    try:
        d = files
        outs = {
            "png": ["reconstruct", str(d / "m.deepae"), str(d / "x.npy"), "-o",
                    str(tmp_path / "r.png"), "-n", "2"],
            "npy": ["encode", str(d / "m.deepae"), str(d / "x.npy"), "-o",
                    str(tmp_path / "z.npy")],
            "csv": ["detect", "score", str(d / "det.deepae"), str(d / "t.csv"), "-o",
                    str(tmp_path / "s.csv")],
            "deepae": ["train", str(d / "x.npy"), "-o", str(tmp_path / "m2.deepae"),
                       "--epochs", "1", "--hidden-units", "4", "--latent-dim", "2",
                       "--quiet", "--curves", str(tmp_path / "curves.png")],
        }
        for argv in outs.values():
            assert main(argv) == 0
        assert os.umask(umask) == umask  # deepae did not change the process umask
    finally:
        os.umask(old)
    for name in ("r.png", "z.npy", "s.csv", "m2.deepae", "curves.png"):
        got = stat.S_IMODE((tmp_path / name).stat().st_mode)
        assert got == mode, (name, oct(got))


def test_atomic_write_keeps_the_old_file_on_error(tmp_path):
    from deepae.fileio import atomic_write

    target = tmp_path / "f.bin"
    target.write_bytes(b"old")

    def fail(f):
        f.write(b"half")
        raise OSError("No space left on device")

    with pytest.raises(OSError, match="No space"):
        atomic_write(target, fail)
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["f.bin"]
    with pytest.raises(FileExistsError):
        atomic_write(target, b"new", overwrite=False)
    assert target.read_bytes() == b"old"


# -- training: checkpoints and a failed save -------------------------------------------------
def _train_argv(data_file, out, *extra):
    return ["train", str(data_file), "-o", str(out), "--epochs", "2", "--hidden-units", "8",
            "--latent-dim", "3", "--seed", "0", "--quiet", *extra]


def test_train_refuses_a_folder_deepae_did_not_make(tmp_path, data_file, capsys):
    work = tmp_path / "myproject"
    (work / "src").mkdir(parents=True)
    (work / "src" / "code.py").write_text("x = 1")
    (work / "data.csv").write_text("a,b\n1,2\n")
    rc = main(_train_argv(data_file, tmp_path / "m.deepae", "--checkpoint-dir", str(work),
                          "--resume"))
    err = capsys.readouterr().err
    assert rc == 1 and "not made by deepae" in err and "--resume" not in err
    assert sorted(p.name for p in work.rglob("*")) == ["code.py", "data.csv", "src"]
    assert not (tmp_path / "m.deepae").exists()


def test_train_output_that_is_a_folder_is_refused_before_training(tmp_path, data_file,
                                                                   capsys):
    (tmp_path / "out.deepae").mkdir()
    assert main(_train_argv(data_file, tmp_path / "out.deepae")) == 1
    err = capsys.readouterr().err
    assert "is a folder" in err
    assert not (tmp_path / "out.deepae.ckpt").exists()  # nothing trained


@pytest.mark.parametrize("stopping", [[], ["--early-stopping", "1", "--validation-split",
                                            "0.25", "--epochs", "30", "--learning-rate",
                                            "0.05"]])
def test_failed_save_keeps_the_training(tmp_path, data_file, capsys, monkeypatch, stopping):
    """The checkpoint is removed only once the model is on disk: a save that fails (disk
    full here) keeps it, and --resume then saves the trained model without training again."""
    out = tmp_path / "m.deepae"
    ckpt = tmp_path / "m.deepae.ckpt"

    finished = {}

    def disk_full(self, *a, **k):
        finished["weights"] = self.get_weights()
        finished["summary"] = dict(self.training_summary_)
        raise OSError(28, "No space left on device")

    with monkeypatch.context() as m:
        m.setattr(deepae.Autoencoder, "save", disk_full)
        rc = main(_train_argv(data_file, out, *stopping))
    err = capsys.readouterr().err.splitlines()[-1]  # after the progress lines: one error
    assert rc == 1 and err.startswith("deepae: error:") and "No space left" in err
    assert "--resume" in err
    assert not out.exists()
    assert (ckpt / CHECKPOINT_MARK).is_file() and (ckpt / "backup").is_dir()
    history = json.loads((ckpt / "history.json").read_text())
    assert [r["epoch"] for r in history] == list(range(1, finished["summary"]["epochs_run"]
                                                        + 1))

    import keras

    epochs_seen = []
    real_fit = keras.Model.fit

    def counting_fit(self, *a, **k):
        h = real_fit(self, *a, **k)
        epochs_seen.extend(h.epoch)
        return h

    with monkeypatch.context() as m:
        m.setattr(keras.Model, "fit", counting_fit)
        assert main(_train_argv(data_file, out, *stopping, "--resume")) == 0
    assert epochs_seen == []  # restored, not retrained
    model = deepae.load(out)
    # the very model that finished: under early stopping, the best epoch's weights (the
    # backup holds the last epoch's), its summary and history
    assert model.training_summary_ == finished["summary"]
    for a, b in zip(model.get_weights(), finished["weights"], strict=True):
        np.testing.assert_array_equal(a, b)
    if stopping:
        assert finished["summary"]["stopped_early"]
    assert not ckpt.exists()


def test_checkpoint_links_and_damaged_files(tmp_path, data_file, capsys):
    """A marked folder whose backup/ is a link to someone's folder: refused before Keras
    writes there (it wrote into the linked folder, then rmtree failed after training); a
    damaged run.json or history.json is a one-line error, not a traceback."""
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "thesis.txt").write_text("years of work")
    ck = tmp_path / "ck"
    ck.mkdir()
    (ck / CHECKPOINT_MARK).write_text('{"deepae_checkpoint": 1}')
    (ck / "backup").symlink_to(victim)
    rc = main(_train_argv(data_file, tmp_path / "m.deepae", "--checkpoint-dir", str(ck),
                          "--resume"))
    assert rc == 1 and "links" in capsys.readouterr().err
    assert [p.name for p in victim.iterdir()] == ["thesis.txt"]
    for name, text in (("run.json", "[]"), ("run.json", "{not json"),
                       ("history.json", "[{}]"), ("history.json", "{}")):
        d = tmp_path / f"ck_{name}_{len(text)}"
        d.mkdir()
        (d / CHECKPOINT_MARK).write_text('{"deepae_checkpoint": 1}')
        (d / name).write_text(text)
        rc = main(_train_argv(data_file, tmp_path / "m.deepae", "--checkpoint-dir", str(d),
                              "--resume"))
        err = capsys.readouterr().err
        assert rc == 1 and "damaged" in err and err.count("\n") == 1, err


def test_checkpoint_folder_is_not_the_output(tmp_path, data_file, capsys):
    out = tmp_path / "t.deepae"
    assert main(_train_argv(data_file, out, "--checkpoint-dir", str(out))) == 1
    assert "checkpoint folder" in capsys.readouterr().err
    assert not out.exists()


def test_outputs_that_are_not_plain_files(files, tmp_path, capsys):
    """'-' where a command writes a file (a model: no standard output), a link to a device,
    a link to a file (kept, its target replaced), and a long but legal name."""
    encode = ["encode", str(files / "m.deepae"), str(files / "x.npy"), "-o"]
    assert main(["train", str(files / "x.npy"), "-o", "-"]) == 1
    assert "expected an output file name" in capsys.readouterr().err
    dev = tmp_path / "dev.npy"
    dev.symlink_to("/dev/null")
    assert main([*encode, str(dev), "--overwrite"]) == 1
    assert "not a regular file" in capsys.readouterr().err
    assert dev.is_symlink()
    target = tmp_path / "real.npy"
    target.write_bytes(b"old")
    link = tmp_path / "link.npy"
    link.symlink_to(target)
    assert main([*encode, str(link), "--overwrite"]) == 0
    assert link.is_symlink() and np.load(target).shape == (120, 2)
    long = tmp_path / ("z" * 240 + ".npy")
    assert main([*encode, str(long)]) == 0 and np.load(long).shape == (120, 2)


# -- errors ------------------------------------------------------------------------------------
def test_debug_shows_the_traceback(tmp_path):
    missing = str(tmp_path / "missing.deepae")
    assert main(["info", missing]) == 1
    with pytest.raises(FileNotFoundError):
        main(["info", missing, "--debug"])
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    code = "import sys; from deepae.cli.main import main; sys.exit(main(sys.argv[1:]))"
    r = subprocess.run([sys.executable, "-c", code, "info", missing, "--debug"],
                       capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode != 0 and "Traceback (most recent call last)" in r.stderr


def test_memory_error_is_one_line(files, tmp_path, capsys, monkeypatch):
    def boom(*a, **k):
        raise MemoryError("Unable to allocate 64.0 GiB")

    monkeypatch.setattr(deepae.Autoencoder, "encode", boom)
    assert main(["encode", str(files / "m.deepae"), str(files / "x.npy"), "-o",
                 str(tmp_path / "z.npy")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("deepae: error: out of memory") and err.count("\n") == 1


@pytest.mark.parametrize("name", ["encode", "reconstruct", "reconstruct-png", "denoise",
                                  "upscale", "compress", "decompress", "detect-score"])
def test_output_made_while_the_command_runs_is_not_replaced(files, tmp_path, name, capsys,
                                                             monkeypatch):
    # the output is checked first and written last: a file that appears in between (another
    # program, a second run) is not replaced without --overwrite
    import deepae.cli.compress
    import deepae.cli.detect
    import deepae.cli.main
    import deepae.cli.restore

    original = deepae.cli._options.output_path

    def then_someone_writes_it(args, path, *inputs, **kw):
        checked = original(args, path, *inputs, **kw)
        if checked is not None:
            checked.write_bytes(b"precious")
        return checked

    for module in (deepae.cli.main, deepae.cli.compress, deepae.cli.detect, deepae.cli.restore):
        monkeypatch.setattr(module, "output_path", then_someone_writes_it)
    argv = _commands(files, tmp_path / "out")[name]
    out = next(tmp_path / os.path.basename(a) for a in argv
               if a.startswith(str(tmp_path / "out")))
    capsys.readouterr()
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert "exists" in err and err.count("\n") == 1
    assert out.read_bytes() == b"precious"
    assert sorted(p.name for p in tmp_path.iterdir()) == [out.name]


def test_link_to_a_missing_file_is_an_existing_output(files, tmp_path, capsys):
    out, target = tmp_path / "codes.npy", tmp_path / "elsewhere" / "deep" / "codes.npy"
    out.symlink_to(target)
    argv = ["encode", str(files / "m.deepae"), str(files / "x.npy"), "-o", str(out)]
    assert main(argv) == 1
    assert "link to a missing file" in capsys.readouterr().err
    assert out.is_symlink() and not (tmp_path / "elsewhere").exists()
    # --overwrite replaces the link with the output, and creates nothing where it pointed
    assert main([*argv, "--overwrite"]) == 0
    assert not out.is_symlink() and np.load(out).shape == (120, 2)
    assert not (tmp_path / "elsewhere").exists()


def test_the_shipped_models_are_never_an_output(files, capsys):
    package = os.path.dirname(deepae.__file__)
    shipped = os.path.join(package, "pretrained", "codec_q4.deepae")
    before = open(shipped, "rb").read()
    assert main(["compress", str(files / "img.png"), "-o", shipped, "--overwrite", "--quiet"]) == 1
    assert "inside the deepae package" in capsys.readouterr().err
    assert open(shipped, "rb").read() == before


def test_no_tensorflow_start_up_lines_unless_debug(tmp_path):
    """`deepae` printed TensorFlow's C++ start-up lines (oneDNN, absl) before every command's
    own output; they are kept, and shown with --debug."""
    missing = str(tmp_path / "missing.deepae")
    env = {k: v for k, v in os.environ.items() if k not in ("DEEPAE_DEBUG",
                                                             "TF_CPP_MIN_LOG_LEVEL")}
    code = "import sys; from deepae.cli.main import main; sys.exit(main(sys.argv[1:]))"
    quiet = subprocess.run([sys.executable, "-c", code, "info", missing],
                           capture_output=True, text=True, env=env, timeout=120)
    assert quiet.returncode == 1
    assert quiet.stderr.splitlines() == [f"deepae: error: No deepae model at `path` "
                                         f"{missing!r}."]
    loud = subprocess.run([sys.executable, "-c", code, "info", missing, "--debug"],
                          capture_output=True, text=True, env=env, timeout=120)
    # what this machine's TensorFlow says at start-up, in a fresh process
    said = subprocess.run([sys.executable, "-c", "import sys, deepae; "
                           "sys.stdout.write(deepae.STARTUP_LOG)"], capture_output=True,
                          text=True, env=env, timeout=120)
    assert said.stderr == ""  # nothing prints on import
    assert "oneDNN" in said.stdout  # tensorflow 2.21 (and tensorflow-cpu) on x86-64 say it
    assert loud.stderr.splitlines()[0] == said.stdout.splitlines()[0]  # absl's warning
    assert "Traceback (most recent call last)" in loud.stderr


def test_a_command_that_uses_the_device_prints_nothing_of_tensorflows(tmp_path):
    """With the `tensorflow` distribution, on a machine with CUDA's libraries and no GPU,
    the first use of a device logged "failed call to cuInit" at error level on every command
    that built a model (TF_CPP_MIN_LOG_LEVEL=2 does not hide errors); the device scan now
    happens inside the quiet import, and --debug shows it."""
    from importlib.resources import files

    model = str(files("deepae") / "pretrained" / "super_resolver_x2.deepae")
    env = {k: v for k, v in os.environ.items() if k not in ("DEEPAE_DEBUG",
                                                             "TF_CPP_MIN_LOG_LEVEL")}
    code = ("import sys; from deepae.cli.main import main; import keras; "
            "rc = main(sys.argv[1:]); keras.ops.convert_to_numpy(keras.ops.ones(2) + 1); "
            "sys.exit(rc)")
    done = subprocess.run([sys.executable, "-c", code, "info", model], capture_output=True,
                          text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""


@pytest.mark.parametrize("command, suffix", [("denoise", ".png"), ("upscale", ".png"),
                                             ("compress", ".dae"), ("decompress", ".png")])
def test_one_way_to_name_the_output(files, tmp_path, capsys, command, suffix):
    """Every command names its output with -o; the older INPUT OUTPUT of these four still
    works, with a note, and a third way is refused."""
    src = str(files / ("img.dae" if command == "decompress" else "img.png"))
    new, old = tmp_path / f"new{suffix}", tmp_path / f"old{suffix}"
    capsys.readouterr()
    assert main([command, src, "-o", str(new), "--quiet"] if command in (
        "compress", "decompress") else [command, src, "-o", str(new)]) == 0
    assert new.stat().st_size > 0 and "note" not in capsys.readouterr().err
    assert main([command, src, str(old)]) == 0 and old.stat().st_size > 0
    assert f"write `deepae {command} INPUT -o OUTPUT`" in capsys.readouterr().err
    assert main([command, src, str(old), "-o", str(new), "--overwrite"]) == 1
    assert "expected INPUT -o OUTPUT" in capsys.readouterr().err


def test_output_inside_the_input_folder_is_refused(tmp_path, capsys):
    """`upscale train imgs -o imgs/im0.png --overwrite` replaced a training image with the
    model; a shard of a streamed pattern likewise; and --tensorboard into the input folder."""
    from PIL import Image

    imgs = tmp_path / "imgs"
    imgs.mkdir()
    for i in range(2):
        Image.fromarray((np.arange(48 * 48).reshape(48, 48) % 251).astype(np.uint8)).save(
            imgs / f"im{i}.png")
    before = (imgs / "im0.png").read_bytes()
    assert main(["upscale", "train", str(imgs), "-o", str(imgs / "im0.png"), "--overwrite",
                 "--epochs", "1", "--patches", "8", "--patch-size", "16", "--quiet"]) == 1
    assert "is a file of the input folder" in capsys.readouterr().err
    assert (imgs / "im0.png").read_bytes() == before
    shards = tmp_path / "sh"
    shards.mkdir()
    np.save(shards / "p0.npy", np.random.default_rng(0).normal(size=(40, 4)).astype("f4"))
    kept = (shards / "p0.npy").read_bytes()
    assert main(["train", str(shards / "*.npy"), "--stream", "-o", str(shards / "p0.npy"),
                 "--overwrite", "--epochs", "1", "--hidden-units", "2", "--latent-dim",
                 "1", "--quiet"]) == 1
    assert (shards / "p0.npy").read_bytes() == kept
    capsys.readouterr()
    assert main(["upscale", "train", str(imgs), "-o", str(tmp_path / "m.deepae"),
                 "--tensorboard", str(imgs / "logs"), "--epochs", "1", "--patches", "8",
                 "--patch-size", "16", "--quiet"]) == 1
    assert "--tensorboard" in capsys.readouterr().err and not (imgs / "logs").exists()
