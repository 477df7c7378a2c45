"""`deepae compress` and `deepae decompress`: train, compress, decompress, clear errors."""

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from deepae import ImageCodec
from deepae.cli.main import main
from deepae.data.io import read_image
from deepae.metrics import psnr

SHIPPED = Path(__file__).resolve().parents[1] / "src" / "deepae" / "pretrained"


def waves(h, w, seed):
    r = np.random.default_rng(seed)
    yy, xx = np.mgrid[:h, :w]
    img = 128 + 60 * np.sin(xx / r.uniform(2, 6)) * np.cos(yy / r.uniform(2, 6))
    return np.clip(img + r.normal(0, 5, img.shape), 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    d = tmp_path_factory.mktemp("photos")
    for i in range(3):
        Image.fromarray(waves(40 + 8 * i, 48, i)).save(d / f"im{i}.png")
    return d


def test_train_compress_decompress_info(tmp_path, folder, capsys):
    model = tmp_path / "codec.deepae"
    rc = main(["compress", "train", str(folder), "-o", str(model), "--lambda", "0.05",
               "--epochs", "1", "--patches", "64", "--patch-size", "16", "--filters", "8",
               "--latent-channels", "4", "--levels", "2", "--quiet"])
    assert rc == 0 and model.exists()
    dae, out = tmp_path / "im1.dae", tmp_path / "out.png"
    capsys.readouterr()
    assert main(["compress", str(folder / "im1.png"), "-o", str(dae), "--model", str(model)]) == 0
    shown = capsys.readouterr().err  # what it did: on stderr
    size = dae.stat().st_size
    assert f"{size:,} bytes" in shown and "from the file size" in shown
    assert "entropy model estimated" in shown and "PSNR" in shown
    assert dae.read_bytes()[:3] == b"DAE"
    assert main(["decompress", str(dae), "-o", str(out), "--model", str(model)]) == 0
    assert read_image(out).shape == read_image(folder / "im1.png").shape
    # the PSNR shown (summed over bands of rows) is deepae.metrics.psnr's
    expected = psnr(read_image(folder / "im1.png"), read_image(out), data_range=255)
    assert f"PSNR: {expected:.2f} dB" in shown
    # more encoder effort: another file for the same decoder
    refined = tmp_path / "im1_refined.dae"
    assert main(["compress", str(folder / "im1.png"), "-o", str(refined), "--model", str(model),
                 "--refine", "40", "--quiet"]) == 0
    codec = ImageCodec.load(model)
    assert refined.read_bytes() == codec.compress(read_image(folder / "im1.png"),
                                                  refine_steps=40)
    assert refined.read_bytes() != dae.read_bytes()
    assert main(["decompress", str(refined), "-o", str(tmp_path / "r.png"), "--model",
                 str(model), "--quiet"]) == 0
    # nothing is overwritten without --overwrite
    before = out.read_bytes()
    assert main(["decompress", str(dae), "-o", str(out), "--model", str(model)]) == 1
    assert "exists; pass --overwrite" in capsys.readouterr().err
    assert out.read_bytes() == before
    assert main(["info", str(model)]) == 0
    info = capsys.readouterr().out
    assert "fingerprint" in info and "table_sizes" in info


def test_effort_best_from_the_shell(tmp_path, folder, capsys):
    """--effort best writes a version-2 file that decompress restores (with the codec it
    names or, without --model, any shipped one); flags that do not apply are refused by
    their names, nothing written."""
    import json

    model = tmp_path / "codec.deepae"
    assert main(["compress", "train", str(folder), "-o", str(model), "--lambda", "0.05",
                 "--epochs", "1", "--patch-size", "16", "--patches", "16",
                 "--filters", "4", "--latent-channels", "2", "--levels", "2",
                 "--quiet"]) == 0
    dae, out = tmp_path / "best.dae", tmp_path / "best.png"
    assert main(["compress", str(folder / "im1.png"), "-o", str(dae), "--model", str(model),
                 "--effort", "best", "--iterations", "30", "--json"]) == 0
    figures = json.loads(capsys.readouterr().out)
    assert figures["effort"] == "best" and figures["bytes"] == dae.stat().st_size
    assert dae.read_bytes()[:4] == b"DAE\x02"
    assert main(["decompress", str(dae), "-o", str(out), "--model", str(model)]) == 0
    assert read_image(out).shape == read_image(folder / "im1.png").shape
    for flags, message in ((["--iterations", "5"], "--iterations applies to --effort best"),
                           (["--effort", "best", "--refine", "9"],
                            "--refine applies to --effort refine")):
        bad = tmp_path / "bad.dae"
        assert main(["compress", str(folder / "im1.png"), "-o", str(bad), "--model",
                     str(model), *flags]) == 1
        assert message in capsys.readouterr().err and not bad.exists()


def test_forged_file_is_refused_in_one_line(tmp_path, folder, capsys):
    """A 27-byte file announcing a 4096x4096 colour image: one line naming the bytes the
    announced latent needs and the bytes the file has; nothing written."""
    from deepae.apps.compress.bitstream import Header, pack

    model = tmp_path / "codec.deepae"
    assert main(["compress", "train", str(folder), "-o", str(model), "--epochs", "1",
                 "--patches", "32", "--patch-size", "16", "--filters", "8",
                 "--latent-channels", "4", "--levels", "2", "--quiet"]) == 0
    codec = ImageCodec.load(model)
    forged = tmp_path / "bomb.dae"
    forged.write_bytes(pack(Header(bytes.fromhex(codec.fingerprint_[:8]), 4096, 4096, 3,
                                   (1024, 1024, 4)), b""))
    assert forged.stat().st_size == 27
    capsys.readouterr()
    assert main(["decompress", str(forged), "-o", str(tmp_path / "o.png"), "--model",
                 str(model)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "3 plane(s) of 1024x1024 latent positions" in err
    assert "payload bytes with this codec's tables; the file has 0." in err
    assert not (tmp_path / "o.png").exists()


def test_errors_are_one_line(tmp_path, folder, capsys):
    bad = tmp_path / "bad.dae"
    bad.write_bytes(b"GIF89a" + b"\0" * 40)
    assert main(["decompress", str(bad), "-o", str(tmp_path / "o.png")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("deepae: error: Not a deepae compressed image") and \
        err.count("\n") == 1
    assert main(["compress", str(folder / "im0.png")]) == 1
    assert "expected INPUT -o OUTPUT" in capsys.readouterr().err
    # compressed bytes never replace a picture: the output is a .dae
    (tmp_path / "photo.png").write_bytes(b"precious")
    assert main(["compress", str(folder / "im0.png"), "-o", str(tmp_path / "photo.png"),
                 "--overwrite"]) == 1
    assert "ending in .dae" in capsys.readouterr().err
    assert (tmp_path / "photo.png").read_bytes() == b"precious"
    assert main(["compress", "train", str(folder), "--quiet"]) == 1
    assert "needs -o/--output" in capsys.readouterr().err
    assert main(["decompress", str(tmp_path / "missing.dae"), "-o", str(tmp_path / "o.png")]) == 1
    assert "No .dae file" in capsys.readouterr().err


@pytest.mark.skipif(not (SHIPPED / "codec_q4.deepae").exists(),
                    reason="pretrained codecs not trained yet (scripts/train_codecs.py)")
def test_pretrained_codec_by_default(tmp_path, folder, capsys):
    """`deepae compress` uses the shipped codec of --quality; `decompress` finds it by the
    file's fingerprint, with no --model."""
    src, dae, out = folder / "im2.png", tmp_path / "a.dae", tmp_path / "a.png"
    assert main(["compress", str(src), "-o", str(dae), "--quality", "6", "--quiet"]) == 0
    assert main(["decompress", str(dae), "-o", str(out), "--quiet"]) == 0
    a, b = read_image(src).astype(float), read_image(out).astype(float)
    assert 10 * np.log10(255 ** 2 / np.mean((a - b) ** 2)) > 25
