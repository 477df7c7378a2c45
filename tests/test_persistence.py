import json
import zipfile

import numpy as np
import pytest

import deepae
from conftest import small_model
from deepae.exceptions import ArtifactError
from deepae.persistence import FORMAT_VERSION


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    rng = np.random.default_rng(1)
    x = (rng.normal(size=(120, 10)) * 3 + 5).astype(np.float32)
    ae = small_model()
    ae.fit(x, epochs=2, random_state=0, verbose=0)
    path = tmp_path_factory.mktemp("m") / "model.deepae"
    ae.save(path)
    return ae, x, path


def test_save_load_identical_outputs(trained):
    ae, x, path = trained
    loaded = deepae.load(path)
    assert isinstance(loaded, deepae.Autoencoder)
    np.testing.assert_array_equal(loaded.reconstruct(x), ae.reconstruct(x))
    np.testing.assert_array_equal(loaded.encode(x), ae.encode(x))
    assert loaded.get_config() == ae.get_config()
    assert loaded.scaler_.kind == "standard"
    assert loaded.training_summary_["data_fingerprint"] == ae.training_summary_["data_fingerprint"]
    assert loaded.history_ == ae.history_


@pytest.mark.parametrize("kind", ["conv", "dense"])
def test_save_load_images(images, tmp_path, kind):
    ae = small_model(kind=kind, hidden_units=(4, 8))
    ae.fit(images, epochs=1, verbose=0)
    ae.save(tmp_path / "i.deepae")
    loaded = deepae.load(tmp_path / "i.deepae")
    np.testing.assert_array_equal(loaded.reconstruct(images), ae.reconstruct(images))


def test_artifact_contents_no_pickle(trained):
    _, _, path = trained
    with zipfile.ZipFile(path) as zf:
        names = set(zf.namelist())
        header = json.loads(zf.read("deepae.json"))
    assert names == {"deepae.json", "model.keras", "arrays.npz"}
    assert header["format"] == "deepae-artifact" and header["format_version"] == FORMAT_VERSION
    assert header["deepae_version"] == deepae.__version__
    assert header["metadata"]["scaler"]["kind"] == "standard"


def test_atomic_write_leaves_no_temp_and_keeps_old_on_failure(trained, tmp_path, monkeypatch):
    ae, x, _ = trained
    path = tmp_path / "a.deepae"
    ae.save(path)
    before = path.read_bytes()
    import deepae.persistence as p

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(p.np, "savez", boom)
    with pytest.raises(OSError, match="disk full"):
        ae.save(path)
    assert path.read_bytes() == before
    assert [f.name for f in tmp_path.iterdir()] == ["a.deepae"]


def test_overwrite_false(trained, tmp_path):
    ae, _, _ = trained
    ae.save(tmp_path / "b.deepae")
    with pytest.raises(FileExistsError, match="overwrite=True"):
        ae.save(tmp_path / "b.deepae", overwrite=False)


def test_truncated(trained, tmp_path):
    data = trained[2].read_bytes()
    for cut in (10, len(data) // 2, len(data) - 30):
        bad = tmp_path / f"t{cut}.deepae"
        bad.write_bytes(data[:cut])
        with pytest.raises(ArtifactError, match="truncated or corrupted"):
            deepae.load(bad)


def test_corrupted_member(trained, tmp_path):
    data = bytearray(trained[2].read_bytes())
    with zipfile.ZipFile(trained[2]) as zf:
        info = zf.getinfo("model.keras")
    pos = info.header_offset + 30 + len(info.filename) + 40  # inside model.keras's data
    data[pos] ^= 0xFF
    bad = tmp_path / "c.deepae"
    bad.write_bytes(bytes(data))
    with pytest.raises(ArtifactError, match="corrupted"):
        deepae.load(bad)


def test_foreign_files(tmp_path):
    png = tmp_path / "x.deepae"
    png.write_bytes(b"\x89PNG\r\n\x1a\n" + b"0" * 100)
    with pytest.raises(ArtifactError, match="not a deepae model: expected a zip"):
        deepae.load(png)
    other = tmp_path / "o.deepae"
    with zipfile.ZipFile(other, "w") as zf:
        zf.writestr("hello.txt", "hi")
    with pytest.raises(ArtifactError, match="no deepae.json"):
        deepae.load(other)
    with pytest.raises(FileNotFoundError, match="No deepae model"):
        deepae.load(tmp_path / "missing.deepae")


def _rewrite_header(src, dst, **changes):
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for item in zin.namelist():
            data = zin.read(item)
            if item == "deepae.json":
                header = json.loads(data)
                header.update(changes)
                data = json.dumps(header)
            zout.writestr(item, data)


def test_unknown_format_version(trained, tmp_path):
    bad = tmp_path / "v.deepae"
    _rewrite_header(trained[2], bad, format_version=FORMAT_VERSION + 1)
    with pytest.raises(ArtifactError, match="format version 2; .* reads version 1 only"):
        deepae.load(bad)


def test_other_library_version_warns(trained, tmp_path):
    old = tmp_path / "old.deepae"
    _rewrite_header(trained[2], old, deepae_version="0.0.1")
    with pytest.warns(UserWarning, match="written by deepae 0.0.1"):
        deepae.load(old)


def test_unknown_kind(trained, tmp_path):
    bad = tmp_path / "k.deepae"
    _rewrite_header(trained[2], bad, kind="Teleporter")
    with pytest.raises(ArtifactError, match="holds a 'Teleporter'"):
        deepae.load(bad)


def test_unsaved_model_refuses():
    from sklearn.exceptions import NotFittedError

    with pytest.raises(NotFittedError):
        small_model().save("never.deepae")


def test_atomic_write_gives_the_usual_permissions(tmp_path):
    """Files written atomically get open()'s permissions under the umask, not mkstemp's
    owner-only 0600 (a compressed image or a model is for others to read too)."""
    import os

    from deepae.persistence import atomic_write_bytes

    old = os.umask(0o022)
    try:
        atomic_write_bytes(tmp_path / "a.bin", b"x")
    finally:
        os.umask(old)
    assert (tmp_path / "a.bin").stat().st_mode & 0o777 == 0o644
