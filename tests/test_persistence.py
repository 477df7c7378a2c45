import io
import json
import tempfile
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
    # the scaling travels inside the Keras model, as the `scaling` layer's weights; no
    # scaler beside the model
    assert header["metadata"]["config"]["input_scaling"] is True
    assert "scaler" not in header["metadata"]


def test_atomic_write_leaves_no_temp_and_keeps_old_on_failure(trained, tmp_path, monkeypatch):
    ae, x, _ = trained
    path = tmp_path / "a.deepae"
    ae.save(path)
    before = path.read_bytes()
    import deepae.fileio

    def boom(*a, **k):  # the disk fills up while the new file is being written
        raise OSError("disk full")

    # fsync runs after the bytes are written and before the file takes the old one's place;
    # a save that wrote the file in place would have replaced its content by then
    monkeypatch.setattr(deepae.fileio.os, "fsync", boom)
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
    with pytest.raises(ArtifactError, match="format version 3; .* reads versions 1, 2"):
        deepae.load(bad)
    for forged in (True, 1.0, "1", 2.0):  # equal to 1 or 2 in Python, not the format's int
        _rewrite_header(trained[2], bad, format_version=forged)
        with pytest.raises(ArtifactError, match="reads versions 1, 2"):
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

    from deepae.fileio import atomic_write

    old = os.umask(0o022)
    try:
        atomic_write(tmp_path / "a.bin", b"x")
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
def test_model_names_never_become_paths(trained, tmp_path, name, monkeypatch):
    """Names in deepae.json were joined to a temporary folder and written there: a name
    like ../../x or an absolute path wrote the member outside it."""
    _, _, path = trained
    name = name.format(tmp=tmp_path)
    # the temporary folder deep inside tmp_path: a traversal would land where we look
    deep = tmp_path / "a" / "b" / "c"
    deep.mkdir(parents=True)
    monkeypatch.setattr(tempfile, "tempdir", str(deep))
    model_bytes = _members(path)["model.keras"]
    bad = _forge(path, tmp_path / "bad.deepae",
                 header=lambda h: h.update(models=[name]),
                 members={"model.keras": None, f"{name}.keras": model_bytes})
    with pytest.raises(ArtifactError):
        deepae.load(bad)
    assert not (tmp_path / "planted.keras").exists()
    assert sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*")) == [
        "a", "a/b", "a/b/c", "bad.deepae"]


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
    name = "forged.npy"  # any member is read with its header checked
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


def test_forged_artifacts_take_bounded_memory(trained, tiny_codec, tmp_path):
    """Each small forged file is refused with under 300 MB of extra memory (the wide config
    peaked at gigabytes, the header bomb at several times its size, deepae's own layers
    widened at 1.4 GB, a bzip2 header at 2 GB)."""
    import subprocess
    import sys

    _, _, path = trained

    def widen(cfg):
        cfg["config"]["hidden_units"] = [16000, 16000]

    files = [_forge(path, tmp_path / "wide.deepae", keras_edit=widen),
             _forge(tiny_codec, tmp_path / "wide_codec.deepae",
                    keras_edit=_widen_deepae_layers)]
    m = _members(path)
    (tmp_path / "bz2.deepae").write_bytes(
        _zip({**m, "deepae.json": m["deepae.json"] + b" " * (512 << 20)}, zipfile.ZIP_BZIP2))
    files.append(tmp_path / "bz2.deepae")
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


@pytest.mark.parametrize("method", ["bzip2", "lzma", "encrypted"])
def test_only_stored_or_deflated_unencrypted_members(trained, tmp_path, method):
    """zipfile inflates a whole bzip2 or LZMA chunk before cutting it to the declared size
    (6.7 KB of bzip2 took 2 GB); an encrypted member raised RuntimeError."""
    _, _, path = trained
    m = _members(path)
    bad = tmp_path / f"{method}.deepae"
    if method == "encrypted":
        data = bytearray(_zip(m))
        pos = data.find(b"PK\x01\x02")
        data[pos + 8] |= 1  # the central directory's "encrypted" flag of the first member
        bad.write_bytes(bytes(data))
    else:
        kind = {"bzip2": zipfile.ZIP_BZIP2, "lzma": zipfile.ZIP_LZMA}[method]
        bad.write_bytes(_zip(m, kind))
    with pytest.raises(ArtifactError, match="stored or deflated, unencrypted"):
        deepae.load(bad)


def test_inflation_is_bounded_by_the_files_own_size(trained, tmp_path):
    """However large max_bytes, a file inflates to at most 100 times its size beyond 64 MiB:
    memory follows the bytes a file holds."""
    _, _, path = trained
    m = _members(path)
    arrays = _members(m["arrays.npz"])
    buf = io.BytesIO()
    np.save(buf, np.zeros(100 << 20, np.uint8))  # 100 MiB of zeros, ~100 KB deflated
    arrays["big.npy"] = buf.getvalue()
    m["arrays.npz"] = _zip(arrays)
    bad = tmp_path / "zeros.deepae"
    bad.write_bytes(_zip(m))
    assert bad.stat().st_size < 1 << 20
    with pytest.raises(ArtifactError, match="inflates to more than|at most"):
        deepae.load(bad, max_bytes=1 << 40)


def test_weights_are_counted_in_bytes(tiny_codec, tmp_path):
    """A config asking for float64 weights where the file stores float32 needs twice the
    memory the file holds (elements were counted, not bytes)."""
    path = tiny_codec

    def f64(cfg):
        for _, node in _nodes(cfg):
            if isinstance(node, dict) and node.get("class_name") == "DTypePolicy":
                node["config"]["name"] = "float64"

    bad = _forge(path, tmp_path / "f64.deepae", keras_edit=f64)
    with pytest.raises(ArtifactError, match="bytes of weights but the file holds"):
        deepae.load(bad)


def _nodes(obj, path=()):
    yield path, obj
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _nodes(v, (*path, k))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from _nodes(v, (*path, i))


def test_configurations_of_many_layers_are_refused(trained, tmp_path):
    """A 5 KB configuration of 900 layers took 258 s to build twice; a list of 200 hidden
    layers is refused before building too."""
    _, _, path = trained

    def deep(cfg):
        cfg["config"]["hidden_units"] = [2] * 200

    with pytest.raises(ArtifactError, match="more than 128 items"):
        deepae.load(_forge(path, tmp_path / "deep.deepae", keras_edit=deep))


def test_the_model_class_is_the_kinds(trained, tmp_path):
    """Any Keras model loaded as an Autoencoder (a Sequential ended in AttributeErrors in
    `deepae info` and `encode`)."""
    import keras

    _, _, path = trained
    seq = keras.Sequential([keras.Input((10,)), keras.layers.Dense(3)])
    buf = io.BytesIO()
    from keras.src.saving import saving_lib

    saving_lib.save_model(seq, buf)
    bad = _forge(path, tmp_path / "seq.deepae", members={"model.keras": buf.getvalue()})
    with pytest.raises(ArtifactError, match="expected 'deepae>Autoencoder'"):
        deepae.load(bad)


@pytest.fixture(scope="module")
def tiny_codec(tmp_path_factory):
    rng = np.random.default_rng(0)
    codec = deepae.ImageCodec(filters=4, latent_channels=3, levels=2, patch_size=8,
                              patches_per_epoch=16, epochs=1, batch_size=8, random_state=0,
                              verbose=0).fit(rng.random((4, 16, 16, 1)).astype(np.float32))
    path = tmp_path_factory.mktemp("codec") / "c.deepae"
    codec.save(path)
    return path


def _widen_deepae_layers(cfg):
    """deepae's own layers: the prior's density network 10^8 wide, GDN on 40,000 channels."""
    for _, node in _nodes(cfg):
        if isinstance(node, dict) and node.get("class_name") == "FactorizedPrior":
            node["config"]["filters"] = [100_000_000]
        if isinstance(node, dict) and node.get("class_name") == "GDN" and isinstance(
                node.get("build_config"), dict):
            node["build_config"]["input_shape"][-1] = 40_000  # built on 40,000 channels


def test_deepae_layers_allocate_nothing_before_the_check(tiny_codec, tmp_path):
    """GDN and FactorizedPrior made NumPy arrays of their full size in build(), which the
    stateless scope did not stop (+1.4 GB for a 5.5 KB file)."""
    bad = _forge(tiny_codec, tmp_path / "wide.deepae", keras_edit=_widen_deepae_layers)
    with pytest.raises(ArtifactError, match="member 'analysis.keras'"):
        deepae.load(bad)
    for name in ("prior", "synthesis"):  # each member on its own
        m = _members(bad)
        m.update({k: v for k, v in _members(tiny_codec).items() if not k.startswith(name)})
        (tmp_path / "one.deepae").write_bytes(_zip(m))
        with pytest.raises(ArtifactError, match="bytes of weights but the file holds|"
                                                "cannot be built"):
            deepae.load(tmp_path / "one.deepae")


def test_deeply_nested_metadata_is_refused(trained, tmp_path, capsys):
    """Metadata nested 200 levels deep escaped as a RecursionError from `deepae info`
    (found by scripts/fuzz_artifact.py)."""
    from deepae.cli.main import main

    _, _, path = trained
    deep = []
    for _ in range(200):
        deep = [deep]
    bad = _forge(path, tmp_path / "deep.deepae",
                 header=lambda h: h["metadata"]["training"].update(extra=deep))
    with pytest.raises(ArtifactError, match="nested deeper than 64"):
        deepae.load(bad)
    assert main(["info", str(bad)]) == 1
    assert capsys.readouterr().err.count("\n") == 1


class _MyReducer(deepae.AutoencoderReducer):
    """A user's subclass: saves, loads and pickles as the deepae estimator it extends."""


def test_user_subclass_saves_loads_and_pickles(tmp_path):
    import pickle

    x = np.random.default_rng(0).normal(size=(64, 5)).astype(np.float32)
    red = _MyReducer(n_components=2, hidden_units=(4,), epochs=1, random_state=0).fit(x)
    path = red.save(tmp_path / "r.deepae")
    assert deepae.persistence.read_header(path)["kind"] == "AutoencoderReducer"
    for back in (_MyReducer.load(path), deepae.AutoencoderReducer.load(path), deepae.load(path),
                 pickle.loads(pickle.dumps(red))):
        np.testing.assert_array_equal(back.transform(x), red.transform(x))
    assert type(_MyReducer.load(path)) is _MyReducer
    assert type(pickle.loads(pickle.dumps(red))) is _MyReducer


LEGACY = __import__("pathlib").Path(__file__).parent / "data" / "legacy"


def _insert_after_input(layers_to_add):
    """A `keras_edit` that puts `layers_to_add` (class name, config) between a functional
    model's first input and the layers that read it."""
    def edit(cfg):
        layers = cfg["config"]["layers"]
        first, shape = layers[0]["name"], layers[0]["config"]["batch_shape"]
        prev, new = first, []
        for i, (cls, conf) in enumerate(layers_to_add):
            name = f"planted{i}"
            history = {"class_name": "__keras_tensor__",
                       "config": {"shape": shape, "dtype": "float32",
                                  "keras_history": [prev, 0, 0]}}
            new.append({"module": "keras.layers", "class_name": cls, "registered_name": None,
                        "name": name, "config": {**conf, "name": name, "trainable": True,
                                                 "dtype": "float32"},
                        "inbound_nodes": [{"args": [history], "kwargs": {}}]})
            prev = name
        rest = json.loads(json.dumps(layers[1:]).replace(
            f'"keras_history": ["{first}", 0, 0]', f'"keras_history": ["{prev}", 0, 0]'))
        cfg["config"]["layers"] = [layers[0], *new, *rest]
    return edit


@pytest.mark.parametrize("kind, planted", [
    # no weights, so no weight count sees them: 256-fold up then down took 17 GB on 256^2
    ("Denoiser", [("UpSampling2D", {"size": [256, 256]}),
                  ("AveragePooling2D", {"pool_size": [256, 256], "strides": [256, 256]})]),
    ("SuperResolver", [("Activation", {"activation": "linear"})]),
    ("SemanticHasher", [("Dropout", {"rate": 0.0})]),
])
def test_networks_other_than_the_kinds_own_are_refused(tmp_path, kind, planted):
    bad = _forge(LEGACY / f"{kind}.deepae", tmp_path / "bad.deepae",
                 keras_edit=_insert_after_input(planted))
    with pytest.raises(ArtifactError, match="not the one its parameters build"):
        deepae.load(bad)


def test_codec_networks_must_match_its_parameters(tmp_path):
    def unpadded(cfg):  # the same weights, another network: no weight count sees it
        for layer in cfg["config"]["layers"]:
            if layer["class_name"] == "Conv2D":
                layer["config"]["padding"] = "valid"

    bad = _forge(LEGACY / "ImageCodec.deepae", tmp_path / "codec.deepae", keras_edit=unpadded)
    with pytest.raises(ArtifactError, match="not the one its parameters build"):
        deepae.load(bad)
    bad = _forge(LEGACY / "ImageCodec.deepae", tmp_path / "arch.deepae",
                 header=lambda h: h["metadata"]["architecture"].update(filters=4096))
    with pytest.raises(ArtifactError, match="not the one its parameters describe"):
        deepae.load(bad)


def test_lambda_code_never_runs(tmp_path):
    """A Lambda layer whose marshalled code writes a file: refused by Keras's safe mode while
    the weights are counted (with safe_mode=False this test writes the marker)."""
    import base64
    import marshal

    marker = tmp_path / "PWNED"
    fn = eval(f"lambda x: __import__('pathlib').Path({str(marker)!r}).touch() or x")
    code = base64.b64encode(marshal.dumps(fn.__code__)).decode()
    lam = ("Lambda", {"function": {"class_name": "__lambda__",
                                   "config": {"code": code, "defaults": None, "closure": None}},
                      "output_shape": None, "arguments": {}})
    bad = _forge(LEGACY / "Denoiser.deepae", tmp_path / "lambda.deepae",
                 keras_edit=_insert_after_input([lam]))
    with pytest.raises(ArtifactError):
        deepae.load(bad)
    assert not marker.exists()


@pytest.mark.parametrize("kind, params", [
    ("Denoiser", {"tile": 10 ** 7}),          # memory grew with the tile: 1.6 GB, and more
    ("Denoiser", {"sigma": None}),
    ("Denoiser", {"mode": None}),
    ("SuperResolver", {"filters": "abc"}),
    ("ImageCodec", {"tile": 10 ** 7}),
    ("SemanticHasher", {"n_bits": 0}),
    ("AnomalyDetector", {"epochs": -1}),
    ("AutoencoderReducer", {"n_components": "two"}),
])
def test_forged_parameters_are_checked_as_a_users(tmp_path, kind, params):
    bad = _forge(LEGACY / f"{kind}.deepae", tmp_path / "bad.deepae",
                 header=lambda h: h["metadata"]["params"].update(params))
    with pytest.raises(ArtifactError, match="parameter"):
        deepae.load(bad)


@pytest.mark.parametrize("kind", ["Denoiser", "SuperResolver", "ImageCodec", "SemanticHasher"])
def test_describe_survives_an_empty_history(tmp_path, kind, capsys):
    from deepae.cli.main import main

    bad = _forge(LEGACY / f"{kind}.deepae", tmp_path / "h.deepae",
                 header=lambda h: h["metadata"].update(history={}))
    assert deepae.load(bad).describe()["training"]["epochs"] == 0
    assert main(["info", str(bad)]) == 0


@pytest.mark.parametrize("edit", [
    # found by the 10,000-case fuzz run: the file loaded, then `deepae info` failed
    lambda md: md.update(threshold_info=1000000000),
    lambda md: md.update(threshold_info={"target": 0.01}),
    lambda md: md.update(anomaly_score="bogus"),
    lambda md: md.update(n_features_in="three"),
])
def test_forged_detector_metadata_is_refused_at_load(tmp_path, edit, capsys):
    from deepae.cli.main import main

    bad = _forge(LEGACY / "AnomalyDetector.deepae", tmp_path / "bad.deepae",
                 header=lambda h: edit(h["metadata"]))
    with pytest.raises(ArtifactError):
        deepae.load(bad)
    capsys.readouterr()
    assert main(["info", str(bad)]) == 1
    assert capsys.readouterr().err.count("\n") == 1


@pytest.mark.parametrize("channels", [0, -3, 10 ** 9, "three", None, 1, 3])
def test_forged_shared_colour_networks_are_refused(tmp_path, channels):
    """A colour network of colour_network='shared' whose MergeChannels is edited: refused
    with an ArtifactError, whatever the value, before it runs."""
    from conftest import smooth_images

    kw = dict(filters=(4, 8), patch_size=16, patches_per_epoch=32, epochs=1, batch_size=16,
              random_state=0)
    gray = deepae.SuperResolver(**kw).fit(smooth_images(4, 24, 24))
    colour = deepae.SuperResolver(**kw, colour_network="shared").fit(
        smooth_images(4, 24, 24, c=3))
    good = gray.with_colour(colour).save(tmp_path / "pair.deepae")
    assert deepae.load(good).describe()["colour_network"]["design"] == "shared"

    def edit(cfg):
        found = [layer for layer in cfg["config"]["layers"]
                 if layer["class_name"].endswith("MergeChannels")]
        for layer in found:
            layer["config"]["channels"] = channels
        return bool(found)

    bad = _forge(good, tmp_path / "bad.deepae", keras_edit=edit)
    if channels == 3:  # the edit itself changes nothing else: the check is not vacuous
        deepae.load(bad)
        return
    with pytest.raises(ArtifactError):
        deepae.load(bad)
