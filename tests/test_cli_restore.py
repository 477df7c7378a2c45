"""`deepae denoise` and `deepae upscale`: train, apply, evaluate, and clear errors."""

import numpy as np
import pytest
from PIL import Image

from deepae.cli.main import main
from deepae.data.io import read_image


def blocks(h, w, seed):
    r = np.random.default_rng(seed)
    img = np.full((h, w), 50, np.uint8)
    for _ in range(5):
        y, x = r.integers(0, h - 4), r.integers(0, w - 4)
        img[y:y + r.integers(3, h // 2), x:x + r.integers(3, w // 2)] = r.integers(80, 255)
    return img


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    d = tmp_path_factory.mktemp("photos")
    for i in range(4):
        Image.fromarray(blocks(40 + 8 * i, 48, i)).save(d / f"im{i}.png")
    return d


@pytest.mark.parametrize("which,extra", [("denoise", ["--sigma", "0.1"]),
                                         ("upscale", ["--scale", "2"])])
def test_train_apply_evaluate(tmp_path, folder, capsys, which, extra):
    model = tmp_path / f"{which}.deepae"
    rc = main([which, "train", str(folder), "-o", str(model), "--epochs", "1", "--patches",
               "64", "--patch-size", "32", "--quiet", *extra])
    assert rc == 0 and model.exists()
    out = tmp_path / "out.png"
    assert main([which, str(folder / "im1.png"), "-o", str(out), "--model", str(model)]) == 0
    src, res = read_image(folder / "im1.png"), read_image(out)
    factor = 2 if which == "upscale" else 1
    assert res.shape == (src.shape[0] * factor, src.shape[1] * factor) and res.dtype == np.uint8
    capsys.readouterr()
    assert main(["info", str(model)]) == 0
    shown = capsys.readouterr().out
    assert ("noise_model" in shown) == (which == "denoise") and "receptive_radius" in shown
    assert main([which, "evaluate", str(folder), "--model", str(model), *extra]) == 0
    table = capsys.readouterr().out
    assert "deepae" in table and ("noisy input" in table or "bicubic" in table)
    if which == "denoise":  # the classic baselines beside it (both in the dev extra)
        scores = {ln[:14].strip(): float(ln[14:].split()[0]) for ln in table.splitlines()
                  if ln[:14].strip() in ("noisy input", "NL-means", "BM3D", "deepae")}
        assert scores["BM3D"] > scores["noisy input"] and scores["NL-means"] > scores[
            "noisy input"] and "pip install" not in table, table


def test_errors_are_one_line(tmp_path, folder, capsys):
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "notes.png").write_text("not an image")
    Image.fromarray(np.zeros((8, 8), np.uint16)).save(tmp_path / "deep.png")
    cases = [
        (["denoise", str(tmp_path / "missing.png"), "-o", "b.png"], "missing.png"),
        (["denoise", str(bad / "notes.png"), "-o", "b.png"], "not an image file"),
        (["denoise", str(folder / "im1.png"), "-o", "b.png", "--model", "x.deepae"],
         "No deepae model"),
        (["upscale", "train", str(tmp_path / "empty")], "-o/--output"),
        (["upscale", "train"], "got arguments ['train']"),
        (["denoise", "train", str(bad), "-o", str(tmp_path / "m.deepae")],
         "not an image file"),
    ]
    for argv, msg in cases:
        assert main(argv) == 1
        err = capsys.readouterr().err
        assert msg in err and err.count("\n") == 1, err
    with pytest.raises(ValueError, match="16-bit"):
        read_image(tmp_path / "deep.png")


def test_pretrained_models_without_model_option(tmp_path, capsys):
    """Without --model the CLI uses the models that ship inside the package."""
    from skimage import data

    coins = data.coins()[:64, :96]
    rgb = np.stack([coins, coins[::-1], coins[:, ::-1]], axis=-1)
    Image.fromarray(rgb).save(tmp_path / "in.png")
    assert main(["denoise", str(tmp_path / "in.png"), "-o", str(tmp_path / "d.png")]) == 0
    assert read_image(tmp_path / "d.png").shape == (64, 96, 3)
    assert main(["upscale", str(tmp_path / "in.png"), "-o", str(tmp_path / "u.png"), "--scale",
                 "4", "--ensemble"]) == 0
    assert read_image(tmp_path / "u.png").shape == (256, 384, 3)


def test_clipped_training_and_colour_evaluation(tmp_path, capsys, monkeypatch):
    """`--clipped` and `--loss` reach the Denoiser (and its model card); evaluate on colour images
    runs CBM3D as the BM3D row, on noisy images that are 8-bit like a saved photo."""
    import json

    import deepae

    colour = tmp_path / "colour"
    colour.mkdir()
    for i in range(2):
        rgb = np.stack([blocks(32, 40, 10 * i + c) for c in range(3)], axis=-1)
        Image.fromarray(rgb).save(colour / f"c{i}.png")
    model = tmp_path / "d.deepae"
    assert main(["denoise", "train", str(colour), "-o", str(model), "--epochs", "1",
                 "--patches", "32", "--patch-size", "32", "--quiet", "--clipped", "0.5",
                 "--loss", "psnr", "--colour-network", "shared"]) == 0
    assert deepae.load(model).describe()["noise_model"]["clipped"] == 0.5
    assert deepae.load(model).loss == "psnr"
    assert deepae.load(model).describe()["design"] == "shared"
    capsys.readouterr()
    seen = []

    def cbm3d(image, sigma):  # the real one, recording what it was given
        seen.append(image.copy())
        return real(image, sigma)

    from deepae import baselines

    real = baselines.cbm3d
    monkeypatch.setattr(baselines, "cbm3d", cbm3d)
    assert main(["denoise", "evaluate", str(colour), "--model", str(model), "--sigma", "0.1",
                 "--json"]) == 0
    methods = json.loads(capsys.readouterr().out)["methods"]
    assert methods["BM3D"]["psnr"] > methods["noisy input"]["psnr"] + 3, methods
    assert len(seen) == 2 and all(im.shape == (32, 40, 3) for im in seen)
    for im in seen:  # noisy images as a file holds them
        assert im.min() >= 0 and im.max() <= 1
        np.testing.assert_allclose(im * 255, np.round(im * 255), atol=1e-3)
    assert main(["denoise", "train", str(colour), "-o", str(tmp_path / "e.deepae"),
                 "--clipped", "2"]) == 1
    assert "'clipped' parameter" in capsys.readouterr().err


def test_export_channels_of_a_pair(tmp_path, capsys):
    """`deepae export --channels` picks one network of a grayscale + colour restorer."""
    import deepae

    pytest.importorskip("ai_edge_litert")
    kw = dict(filters=(8, 16), epochs=1, patches_per_epoch=16, patch_size=16, random_state=0)
    gray = deepae.Denoiser(**kw).fit(np.random.default_rng(0).random((4, 16, 16)))
    colour = deepae.Denoiser(**kw).fit(np.random.default_rng(1).random((4, 16, 16, 3)))
    path = gray.with_colour(colour).save(tmp_path / "pair.deepae")
    capsys.readouterr()
    assert main(["export", str(path), str(tmp_path / "a.tflite"), "--format", "litert"]) == 1
    assert "channels=1 or channels=3" in capsys.readouterr().err
    assert main(["export", str(path), str(tmp_path / "b.tflite"), "--format", "litert",
                 "--channels", "3"]) == 0
    assert (tmp_path / "b.tflite").stat().st_size > 0
