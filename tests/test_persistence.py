import io
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


# -- hostile files -------------------------------------------------------------------------
def _members(path_or_bytes) -> dict:
    src = path_or_bytes if not isinstance(path_or_bytes, bytes) else io.BytesIO(path_or_bytes)
    with zipfile.ZipFile(src) as zf:
        return {n: zf.read(n) for n in zf.namelist()}


def _zip(members: dict, compression=zipfile.ZIP_DEFLATED) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=compression) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


def _forge(path, out, *, header=None, members=None, keras_edit=None):
    """A copy of the artifact at `path` with its header edited by `header(h)`, members
    replaced or added from `members` (None removes one), and each model's config.json
    edited by `keras_edit(config)`."""
    m = _members(path)
    h = json.loads(m["deepae.json"])
    if header is not None:
        header(h)
    m["deepae.json"] = json.dumps(h).encode()
    if keras_edit is not None:
        for name in [n for n in m if n.endswith(".keras")]:
            inner = _members(m[name])
            cfg = json.loads(inner["config.json"])
            keras_edit(cfg)
            inner["config.json"] = json.dumps(cfg).encode()
            m[name] = _zip(inner, zipfile.ZIP_STORED)
    for name, data in (members or {}).items():
        if data is None:
            m.pop(name, None)
        else:
            m[name] = data
    out.write_bytes(_zip(m))
    return out


@pytest.mark.parametrize("name", ["../../planted", "{tmp}/planted", "sub/planted", "Model",
                                  "model.x", ""])
def test_model_names_never_become_paths(trained, tmp_path, name):
    """Names in deepae.json were joined to a temporary folder and written there: a name
    like ../../x or an absolute path wrote the member outside it."""
    _, _, path = trained
    name = name.format(tmp=tmp_path)
    model_bytes = _members(path)["model.keras"]
    bad = _forge(path, tmp_path / "bad.deepae",
                 header=lambda h: h.update(models=[name]),
                 members={"model.keras": None, f"{name}.keras": model_bytes})
    with pytest.raises(ArtifactError):
        deepae.load(bad)
    assert not (tmp_path / "planted.keras").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.deepae"]


def test_models_outside_the_kinds_set_are_refused(trained, tmp_path):
    _, _, path = trained
    model_bytes = _members(path)["model.keras"]
    bad = _forge(path, tmp_path / "bad.deepae", header=lambda h: h.update(models=["model", "extra"]),
                 members={"extra.keras": model_bytes})
    with pytest.raises(ArtifactError, match="models named like"):
        deepae.load(bad)
    extra = _forge(path, tmp_path / "extra.deepae", members={"notes.txt": b"hi"})
    with pytest.raises(ArtifactError, match="unexpected members"):
        deepae.load(extra)


def test_header_bomb_is_refused_before_parsing(trained, tmp_path):
    """A 64 MiB deepae.json (64 KB in the file) used to be inflated and parsed whole."""
    _, _, path = trained
    m = _members(path)
    m["deepae.json"] = m["deepae.json"] + b" " * (64 << 20)
    bad = tmp_path / "bomb.deepae"
    bad.write_bytes(_zip(m))
    assert bad.stat().st_size < 1 << 20
    with pytest.raises(ArtifactError, match="at most"):
        deepae.load(bad)


def test_total_size_cap(trained, tmp_path):
    _, x, path = trained
    with pytest.raises(ArtifactError, match="max_bytes"):
        deepae.load(path, max_bytes=10_000)
    np.testing.assert_array_equal(deepae.load(path, max_bytes=1 << 24).encode(x[:3]),
                                  trained[0].encode(x[:3]))


def test_lying_directory_size_does_not_help(trained, tmp_path):
    """A central directory that declares fewer bytes than a member inflates to: reading
    stops at the declared size and the file is refused."""
    _, _, path = trained
    data = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as zf:
        info = zf.getinfo("arrays.npz")
    cd = data.rfind(b"PK\x01\x02" + data[data.find(b"PK\x01\x02") + 4:][:0])
    # the central directory entry of arrays.npz: patch its uncompressed size to 10 bytes
    pos = data.find(b"PK\x01\x02")
    while pos >= 0:
        n = int.from_bytes(data[pos + 28:pos + 30], "little")
        if data[pos + 46:pos + 46 + n] == b"arrays.npz":
            break
        pos = data.find(b"PK\x01\x02", pos + 4)
    assert pos >= 0 and cd >= 0 and info.file_size > 10
    data[pos + 24:pos + 28] = (10).to_bytes(4, "little")
    bad = tmp_path / "lying.deepae"
    bad.write_bytes(bytes(data))
    with pytest.raises(ArtifactError):
        deepae.load(bad)


def test_config_is_checked_against_the_weights_before_building(trained, tmp_path):
    """A 6 KB file whose config asks for hidden_units=[16000] built a model of gigabytes
    before Keras noticed the weights were missing."""
    _, _, path = trained

    def widen(cfg):
        cfg["config"]["hidden_units"] = [16000, 16000]

    bad = _forge(path, tmp_path / "wide.deepae", keras_edit=widen)
    with pytest.raises(ArtifactError, match="builds .* weights but the file holds"):
        deepae.load(bad)


def test_sparse_hdf5_weights_are_refused(trained, tmp_path):
    """An HDF5 dataset may declare a shape with no data stored behind it."""
    import h5py

    _, _, path = trained
    m = _members(path)
    inner = _members(m["model.keras"])
    buf = io.BytesIO()
    with h5py.File(buf, "w") as h5:
        h5.create_dataset("layers/dense/vars/0", shape=(50_000_000,), dtype="f4")
    inner["model.weights.h5"] = buf.getvalue()
    assert len(buf.getvalue()) < 10_000
    m["model.keras"] = _zip(inner, zipfile.ZIP_STORED)
    bad = tmp_path / "sparse.deepae"
    bad.write_bytes(_zip(m))
    with pytest.raises(ArtifactError, match="stores less data"):
        deepae.load(bad)


def test_npy_header_is_checked_against_its_bytes(trained, tmp_path):
    _, _, path = trained
    m = _members(path)
    arrays = _members(m["arrays.npz"])
    name = sorted(arrays)[0]
    head = io.BytesIO()
    np.lib.format.write_array_header_1_0(head, {"descr": "<f8", "fortran_order": False,
                                                "shape": (10**9,)})
    arrays[name] = head.getvalue() + b"\0" * 8
    m["arrays.npz"] = _zip(arrays)
    bad = tmp_path / "npy.deepae"
    bad.write_bytes(_zip(m))
    with pytest.raises(ArtifactError, match="declares shape"):
        deepae.load(bad)


def test_forged_metadata_is_an_artifact_error(tmp_path, capsys):
    """A known kind with missing or ill-typed metadata reached a KeyError traceback."""
    from deepae.cli.main import main

    path = tmp_path / "den.deepae"
    src = deepae.Denoiser.pretrained()
    src.save(path)
    for edit in (lambda md: md.pop("params"),
                 lambda md: md.update(n_channels="three"),
                 lambda md: md.update(params=[]),
                 lambda md: md.update(history=[1, 2]),
                 lambda md: md.pop("n_channels")):
        bad = _forge(path, tmp_path / "bad.deepae",
                     header=lambda h, edit=edit: edit(h["metadata"]))
        capsys.readouterr()
        rc = main(["info", str(bad)])
        err = capsys.readouterr().err
        assert rc == 1 and err.startswith("deepae: error:") and err.count("\n") == 1, err
        with pytest.raises(ArtifactError):
            deepae.load(bad)


MEMORY_SCRIPT = """
import io, json, resource, sys, zipfile
import deepae
from deepae.exceptions import ArtifactError
deepae.Denoiser.pretrained()  # warm: TensorFlow's own allocations
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
for path in sys.argv[1:]:
    try:
        deepae.load(path)
        print("loaded", path)
    except ArtifactError:
        pass
print(json.dumps({"extra_mb": (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base)
                  / 1024}))
"""


def test_forged_artifacts_take_bounded_memory(trained, tmp_path):
    """Each small forged file is refused with under 300 MB of extra memory (the wide config
    peaked at gigabytes, the header bomb at several times its size)."""
    import subprocess
    import sys

    _, _, path = trained

    def widen(cfg):
        cfg["config"]["hidden_units"] = [16000, 16000]

    files = [_forge(path, tmp_path / "wide.deepae", keras_edit=widen)]
    m = _members(path)
    m["deepae.json"] = m["deepae.json"] + b" " * (200 << 20)
    (tmp_path / "bomb.deepae").write_bytes(_zip(m))
    files.append(tmp_path / "bomb.deepae")
    assert all(f.stat().st_size < 1 << 20 for f in files)
    r = subprocess.run([sys.executable, "-c", MEMORY_SCRIPT, *map(str, files)],
                       capture_output=True, text=True, timeout=300,
                       env={**__import__("os").environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert r.returncode == 0, r.stderr[-2000:]
    assert "loaded" not in r.stdout
    extra = json.loads(r.stdout.strip().splitlines()[-1])["extra_mb"]
    assert extra < 300, extra
