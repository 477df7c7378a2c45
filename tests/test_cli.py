import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

import deepae
from deepae.cli.main import main


@pytest.fixture
def data_file(tmp_path, table):
    path = tmp_path / "x.npy"
    np.save(path, table)
    return path


def _train(tmp_path, data_file, *extra):
    out = tmp_path / "m.deepae"
    rc = main(["train", str(data_file), "-o", str(out), "--epochs", "2", "--hidden-units", "8",
               "--latent-dim", "3", "--seed", "0", "--quiet", *extra])
    return rc, out


def test_train_info_encode_reconstruct(tmp_path, data_file, table, capsys):
    rc, out = _train(tmp_path, data_file, "--curves", str(tmp_path / "curves.png"))
    assert rc == 0 and out.exists() and (tmp_path / "curves.png").stat().st_size > 1000
    said = capsys.readouterr()
    assert "saved" in said.err and said.out == ""  # status on stderr; stdout for results
    assert main(["info", str(out)]) == 0
    text = capsys.readouterr().out
    assert "12 -> 8 -> 3 -> 8 -> 12" in text and "standard" in text and "epochs_run 2" in text
    assert main(["info", str(out), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["latent_dim"] == 3 and info["training"]["epochs_run"] == 2
    assert main(["encode", str(out), str(data_file), "-o", str(tmp_path / "z.npy")]) == 0
    codes = np.load(tmp_path / "z.npy")
    np.testing.assert_allclose(codes, deepae.load(out).encode(table), rtol=1e-5, atol=1e-6)
    assert main(["encode", str(out), str(data_file), "-o", str(tmp_path / "z.csv")]) == 0
    z = pd.read_csv(tmp_path / "z.csv")  # a header row, then every code
    assert list(z.columns) == ["code_0", "code_1", "code_2"] and z.shape == (200, 3)
    assert main(["reconstruct", str(out), str(data_file), "-o", str(tmp_path / "r.npy")]) == 0
    assert np.load(tmp_path / "r.npy").shape == table.shape


def test_reconstruct_picture(tmp_path, images):
    np.save(tmp_path / "img.npy", images)
    out = tmp_path / "img.deepae"
    assert main(["train", str(tmp_path / "img.npy"), "-o", str(out), "--kind", "conv",
                 "--hidden-units", "4,8", "--latent-dim", "6", "--epochs", "1", "--quiet"]) == 0
    assert main(["reconstruct", str(out), str(tmp_path / "img.npy"), "-o",
                 str(tmp_path / "r.png"), "-n", "5"]) == 0
    from PIL import Image

    assert Image.open(tmp_path / "r.png").size[0] > 200


@pytest.mark.parametrize("fmt", ["toml", "yaml"])
def test_config_file_and_overrides(tmp_path, data_file, fmt):
    cfg = tmp_path / f"c.{fmt}"
    if fmt == "toml":
        cfg.write_text('hidden_units = "10,6"\nlatent-dim = 2\nepochs = 1\nactivation = "tanh"\n')
    else:
        cfg.write_text("hidden_units: [10, 6]\nlatent_dim: 2\nepochs: 1\nactivation: tanh\n")
    out = tmp_path / "c.deepae"
    rc = main(["train", str(data_file), "-o", str(out), "--config", str(cfg),
               "--latent-dim", "4", "--quiet"])
    assert rc == 0
    m = deepae.load(out)
    assert m.encoder.hidden_units == (10, 6) and m.activation == "tanh"
    assert m.encoder.latent_dim == 4  # the command line wins


def _one_line_error(capsys, argv, match):
    rc = main(argv)
    err = capsys.readouterr().err
    assert rc == 1
    assert err.startswith("deepae: error: ") and err.count("\n") == 1, err
    assert match in err, err
    assert "Traceback" not in err


def test_user_errors_are_one_line(tmp_path, data_file, capsys):
    _one_line_error(capsys, ["train", str(tmp_path / "none.npy"), "-o", str(tmp_path / "a")],
                    "No data at")
    _one_line_error(capsys, ["train", str(data_file), "-o", str(tmp_path / "a"),
                             "--latent-dim", "0"], "'latent_dim' parameter")
    _one_line_error(capsys, ["train", str(data_file), "-o", str(tmp_path / "a"),
                             "--hidden-units", "8,x"], "comma-separated ints")
    bad_cfg = tmp_path / "bad.toml"
    bad_cfg.write_text("epochz = 3\n")
    _one_line_error(capsys, ["train", str(data_file), "-o", str(tmp_path / "a"), "--config",
                             str(bad_cfg)], "unknown option(s) ['epochz']")
    foreign = tmp_path / "foreign.deepae"
    foreign.write_bytes(b"hello world")
    _one_line_error(capsys, ["info", str(foreign)], "not a deepae model")
    rc, out = _train(tmp_path, data_file)
    capsys.readouterr()
    _one_line_error(capsys, ["train", str(data_file), "-o", str(out)], "pass --overwrite")
    _one_line_error(capsys, ["encode", str(out), str(data_file), "-o", str(tmp_path / "z.txt")],
                    "must end in .npy or .csv")
    np.save(tmp_path / "five.npy", np.zeros((3, 5), np.float32))
    _one_line_error(capsys, ["encode", str(out), str(tmp_path / "five.npy"), "-o",
                             str(tmp_path / "z.npy")], "5 features, but Autoencoder is expecting 12")


def test_console_script_error_without_traceback(tmp_path):
    res = subprocess.run([sys.executable, "-m", "deepae.cli.main", "info",
                          str(tmp_path / "missing.deepae")], capture_output=True, text=True)
    assert res.returncode == 1
    assert res.stderr.strip().splitlines()[-1].startswith("deepae: error: No deepae model")
    assert "Traceback" not in res.stderr


# -- each option does what it says (argparse alone puts them all in --help) -----------------
def test_train_options_take_effect(tmp_path, table):
    """Every model and training option of `deepae train` reaches the saved model."""
    np.savez(tmp_path / "d.npz", other=np.zeros((5, 12)), rows=table)  # two arrays: --key
    options = ["--key", "rows", "--hidden-units", "16", "--decoder-units", "10,14",
               "--latent-dim", "3", "--activation", "tanh", "--latent-activation", "sigmoid",
               "--output-activation", "linear", "--preprocessing", "minmax", "--loss", "mae",
               "--optimizer", "sgd", "--learning-rate", "0.05", "--validation-split", "0.25",
               "--batch-size", "16", "--epochs", "2", "--seed", "7", "--quiet"]
    for momentum in ("0.5", "0"):
        assert main(["train", str(tmp_path / "d.npz"), "-o", str(tmp_path / f"{momentum}.deepae"),
                     "--momentum", momentum, *options]) == 0
    m = deepae.load(tmp_path / "0.5.deepae")
    assert (tuple(m.hidden_units), tuple(m.decoder_units), m.latent_dim) == ((16,), (10, 14),
                                                                             3)
    assert (m.activation, m.latent_activation, m.output_activation) == ("tanh", "sigmoid",
                                                                        "linear")
    assert m.preprocessing == "minmax" and m.scaler_.kind == "minmax"
    s = m.training_summary_
    assert (s["loss"], s["optimizer"], s["learning_rate"]) == ("mae", "sgd", 0.05)
    assert (s["batch_size"], s["epochs_run"], s["random_state"]) == (16, 2, 7)
    assert (s["n_samples"], s["n_validation"]) == (150, 50) and "val_loss" in m.history_
    # the same seeded run without momentum takes other steps
    plain = deepae.load(tmp_path / "0.deepae")
    assert not np.allclose(plain.encode(table), m.encode(table))


def test_stopping_plateau_and_split_take_effect(tmp_path, capsys):
    """--early-stopping and --reduce-lr-on-plateau act when the loss stops improving (a
    learning rate too small to move the weights); --split picks a named data set's
    part, for train, encode and reconstruct; --key picks an array of a .npz."""
    from deepae.datasets import load_digits

    (x, _), (xt, _) = load_digits()
    out = tmp_path / "d.deepae"
    assert main(["train", "digits", "--split", "test", "-o", str(out), "--hidden-units", "8",
                 "--latent-dim", "2", "--learning-rate", "1e-12", "--epochs", "20",
                 "--early-stopping", "2", "--reduce-lr-on-plateau", "1", "--quiet"]) == 0
    m = deepae.load(out)
    s, loss, lr = m.training_summary_, m.history_["loss"], m.history_["learning_rate"]
    assert s["n_samples"] == len(xt) and s["stopped_early"] and len(loss) == s["epochs_run"]
    assert s["epochs_run"] == int(np.argmin(loss)) + 1 + 2  # the best epoch, then patience
    assert lr[-1] < lr[0] and np.all(np.diff(lr) <= 0)
    for split, rows in (([], xt), (["--split", "train"], x)):
        assert main(["encode", str(out), "digits", *split, "-o", str(tmp_path / "z.npy"),
                     "--overwrite"]) == 0
        np.testing.assert_allclose(np.load(tmp_path / "z.npy"), m.encode(rows), rtol=1e-5,
                                   atol=1e-6)
    np.savez(tmp_path / "two.npz", a=x[:7], b=xt[:9])
    assert main(["reconstruct", str(out), str(tmp_path / "two.npz"), "--key", "b", "-o",
                 str(tmp_path / "r.npy")]) == 0
    np.testing.assert_allclose(np.load(tmp_path / "r.npy"), m.reconstruct(xt[:9]), rtol=1e-5,
                               atol=1e-4)


def test_demo_options_take_effect(tmp_path, monkeypatch, capsys):
    """`deepae demo` on a tiny MNIST (DEEPAE_DATA): --epochs, --latent-dim and --out shape
    the run, and --seed makes it repeatable (the same seed, the same errors; another seed,
    others)."""
    from conftest import write_idx

    rng = np.random.default_rng(0)
    folder = tmp_path / "data" / "mnist"
    folder.mkdir(parents=True)
    for name, n in (("train", 64), ("t10k", 16)):
        write_idx(folder / f"{name}-images-idx3-ubyte.gz", rng.integers(0, 256, (n, 28, 28)))
        write_idx(folder / f"{name}-labels-idx1-ubyte.gz", rng.integers(0, 10, n))
    monkeypatch.setenv("DEEPAE_DATA", str(tmp_path / "data"))
    errors = []
    for seed in ("3", "3", "4"):
        assert main(["demo", "--epochs", "2", "--latent-dim", "5", "--seed", seed, "--out",
                     str(tmp_path / f"p{seed}.png"), "--overwrite", "--quiet"]) == 0
        said = capsys.readouterr()
        out = said.out  # the result; the progress went to stderr
        assert "Epoch 2/2" in said.err and "Epoch 3/" not in said.err
        assert "784-256-5-256-784" in out and "Epoch" not in out
        row = next(ln for ln in out.splitlines() if ln.startswith("deep autoencoder"))
        errors.append(row.split()[-4:-1])  # code size, MSE/pixel, SE/image (not seconds)
        assert (tmp_path / f"p{seed}.png").stat().st_size > 5000
    assert errors[0] == errors[1] != errors[2]


def test_reduce_options_take_effect(tmp_path, table, capsys):
    """`deepae reduce`: --n-components (-k), --batch-size and --seed reach the reducer;
    without --quiet each epoch is logged."""
    np.save(tmp_path / "x.npy", table)
    out = tmp_path / "r.deepae"
    assert main(["reduce", str(tmp_path / "x.npy"), "--n-components", "3", "--hidden-units",
                 "8", "--epochs", "2", "--batch-size", "20", "--seed", "5", "-o", str(out)]) == 0
    assert "Epoch 2/2" in capsys.readouterr().err  # progress: stderr
    red = deepae.load(out)
    s = red.autoencoder_.training_summary_
    assert red.n_components == 3 and (s["batch_size"], s["random_state"]) == (20, 5)
