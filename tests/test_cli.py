import json
import subprocess
import sys

import numpy as np
import pytest

import deepae
from deepae.cli.main import build_parser, main


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
    assert "saved" in capsys.readouterr().out
    assert main(["info", str(out)]) == 0
    text = capsys.readouterr().out
    assert "12 -> 8 -> 3 -> 8 -> 12" in text and "standard" in text and "2 epochs" in text
    assert main(["info", str(out), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["latent_dim"] == 3 and info["training"]["epochs_run"] == 2
    assert main(["encode", str(out), str(data_file), "-o", str(tmp_path / "z.npy")]) == 0
    codes = np.load(tmp_path / "z.npy")
    np.testing.assert_allclose(codes, deepae.load(out).encode(table), rtol=1e-5, atol=1e-6)
    assert main(["encode", str(out), str(data_file), "-o", str(tmp_path / "z.csv")]) == 0
    assert np.loadtxt(tmp_path / "z.csv", delimiter=",").shape == (200, 3)
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


@pytest.mark.parametrize("command", ["demo", "train", "encode", "reconstruct", "info", "reduce"])
def test_help_is_complete(command, capsys):
    with pytest.raises(SystemExit) as e:
        main([command, "--help"])
    assert e.value.code == 0
    text = capsys.readouterr().out
    sub = next(a for a in build_parser()._subparsers._group_actions[0].choices.items()
               if a[0] == command)[1]
    for action in sub._actions:
        for opt in action.option_strings:
            assert opt in text
        if action.help and action.help != "==SUPPRESS==":
            assert action.help.split()[0] in text
