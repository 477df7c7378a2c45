"""One artifact format for every deepae estimator.

An artifact is a zip file holding

- ``deepae.json``: format name and version, library versions, the estimator kind and its
  JSON metadata (configuration, preprocessing, training summary, data fingerprint);
- ``<name>.keras``: each Keras model, loaded back with ``safe_mode=True``;
- ``arrays.npz``: NumPy arrays (scaler statistics, thresholds, ...), loaded with
  ``allow_pickle=False``.

Nothing is pickled. Writes go to a temporary file in the target folder, then `os.replace`,
so a crash never leaves a half-written file and an existing file is never half-overwritten.
A file from outside is hostile: `read_artifact` checks names, sizes (declared and inflated),
the kind's expected members, and each model's configuration against its weights before
anything is built; see docs/artifact.md.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import re
import tempfile
import warnings
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from deepae._version import __version__
from deepae.exceptions import ArtifactError
from deepae.fileio import atomic_write, check_output_path

__all__ = ["FORMAT_NAME", "FORMAT_VERSION", "Artifact", "save_artifact", "read_artifact", "load",
           "read_header", "register_loader", "artifact_kind", "restore", "check_architecture", "DEFAULT_MAX_BYTES",
           "HEADER_MAX_BYTES"]

FORMAT_NAME = "deepae-artifact"
FORMAT_VERSION = 2
# 2: an Autoencoder's scaling lives inside its Keras model (a `Scaling` layer); version 1
# files (a scaler beside the model) still load, converted
READABLE_VERSIONS = (1, 2)
_ZIP_MAGIC = b"PK\x03\x04"
# what a deepae artifact may hold, checked before anything is inflated or built:
# member names are never paths (a model's name is a short identifier, each kind says which)
_MODEL_NAME = re.compile(r"[a-z][a-z0-9_]{0,63}")
_MAX_MEMBERS = 256
# inflated sizes: the header is parsed into Python objects (several times its size), so it
# is capped low; the rest by a total the caller may raise (`max_bytes`)
HEADER_MAX_BYTES = 8 << 20
DEFAULT_MAX_BYTES = 1 << 30
# and, whatever max_bytes allows, a file may inflate to at most this many times its own size
# beyond a floor (deflate reaches ~1000:1 on zeros; trained weights and codes ~1:1 to 10:1):
# memory follows the bytes a file holds, not what it claims
MAX_RATIO, RATIO_FLOOR = 100, 64 << 20
# stored and deflate only: zipfile inflates a bzip2 or LZMA chunk whole before cutting it
# to the declared size (a few KB of bzip2 become gigabytes)
_METHODS = (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED)
# deepae's models have under 100 Keras objects (layers, initializers, dtype policies); a
# forged configuration of thousands of layers takes minutes and gigabytes to build
MAX_CONFIG_OBJECTS = 400
MAX_LIST = 128
# a Keras `.keras` member holds exactly these three files (deepae's models have no assets)
_KERAS_MEMBERS = {"config.json", "metadata.json", "model.weights.h5"}
_CHUNK = 1 << 20
_KINDS = {}


@dataclass
class Artifact:
    """The parts of a saved estimator, as read back from disk."""

    kind: str
    metadata: dict
    models: dict = field(default_factory=dict)
    arrays: dict = field(default_factory=dict)
    header: dict = field(default_factory=dict)


def register_loader(kind: str, *, models: str = "model", model_class: str = "Functional"):
    """Register ``fn(artifact) -> estimator`` as the loader for artifacts of `kind`.

    `models` is a regular expression that every name in the artifact's model list must match
    whole (default: one model called ``model``); names outside it are refused before any
    member is read. `model_class` is one that each Keras model's registered name (or class
    name) must match, checked before the model is built (e.g. ``"deepae>Autoencoder"``).
    """
    pattern, classes = re.compile(models), re.compile(model_class)

    def deco(fn):
        _KINDS[kind] = (fn, pattern, classes)
        return fn

    return deco


def artifact_kind(cls: type) -> str:
    """The registered kind a class saves as: its own, or that of the nearest deepae class it
    extends (a user's subclass of `AnomalyDetector` saves and loads as an AnomalyDetector)."""
    for klass in cls.__mro__:
        if klass.__name__ in _KINDS and klass.__module__.split(".")[0] == "deepae":
            return klass.__name__
    raise TypeError(f"{cls.__name__} extends no deepae estimator that can be saved "
                    f"(known: {sorted(_KINDS)}).")


def save_artifact(path, kind: str, metadata: dict, *, models=None, arrays=None,
                  overwrite: bool = True) -> Path:
    """Write an artifact atomically and return its path."""
    path = check_output_path(path, overwrite=overwrite)
    return atomic_write(path, artifact_bytes(kind, metadata, models=models, arrays=arrays),
                        overwrite=overwrite)


def artifact_bytes(kind: str, metadata: dict, *, models=None, arrays=None) -> bytes:
    """The bytes of an artifact (what `save_artifact` writes)."""
    import keras

    for name in models or {}:
        if not _MODEL_NAME.fullmatch(name):
            raise ValueError(f"Model names in an artifact must match {_MODEL_NAME.pattern}; "
                             f"received {name!r}.")
    header = {"format": FORMAT_NAME, "format_version": FORMAT_VERSION,
              "deepae_version": __version__, "keras_version": keras.__version__,
              "backend": keras.backend.backend(), "kind": kind,
              "models": sorted((models or {}).keys()), "metadata": metadata}
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("deepae.json", json.dumps(header, indent=1, default=_json_default))
        with tempfile.TemporaryDirectory() as tmp:
            for name, model in (models or {}).items():
                file = Path(tmp) / f"{name}.keras"
                keras.saving.save_model(model, file)  # Keras's writer, not model.save
                zf.write(file, f"{name}.keras")
        arr_buf = io.BytesIO()
        np.savez(arr_buf, **{k: np.asarray(v) for k, v in (arrays or {}).items()})
        zf.writestr("arrays.npz", arr_buf.getvalue())
    return buf.getvalue()


def _json_default(obj):
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, tuple):
        return list(obj)
    raise TypeError(f"Object of type {type(obj).__name__} is not JSON serialisable")


class _Budget:
    """The bytes an artifact may still inflate to; every read is charged against it."""

    def __init__(self, total: int, where: str):
        self.left, self.total, self.where = int(total), int(total), where

    def charge(self, n: int, what: str):
        if n > self.left:
            raise ArtifactError(
                f"{self.where} inflates to more than max_bytes={self.total} bytes (reached "
                f"while reading {what}); refused as a possible decompression bomb. Pass a "
                "larger max_bytes to deepae.load if you trust this file.")
        self.left -= n


def _read_member(zf: zipfile.ZipFile, name: str, limit: int, budget: _Budget) -> bytes:
    """A member's bytes, inflated in chunks and stopped at `limit` (or the budget) whatever
    its header says; zipfile checks the CRC at the end."""
    info = zf.getinfo(name)
    if info.file_size > limit:
        hint = "" if limit == HEADER_MAX_BYTES else (
            f" (max_bytes={budget.total} for the whole file: pass a larger max_bytes to "
            "deepae.load if you trust it)")
        raise ArtifactError(f"{budget.where}: member {name!r} declares {info.file_size} bytes; "
                            f"at most {limit} are allowed{hint}.")
    budget.charge(info.file_size, name)  # the directory's claim, checked before inflating
    out, n = [], 0
    with zf.open(info) as f:
        while chunk := f.read(_CHUNK):
            n += len(chunk)
            if n > info.file_size or n > limit:
                raise ArtifactError(f"{budget.where}: member {name!r} inflates beyond the "
                                    f"{info.file_size} bytes its header declares.")
            out.append(chunk)
    return b"".join(out)


def _check_directory(zf: zipfile.ZipFile, allowed, where: str):
    infos = zf.infolist()
    if len(infos) > _MAX_MEMBERS:
        raise ArtifactError(f"{where} has {len(infos)} members; at most {_MAX_MEMBERS} "
                            "are allowed.")
    for i in infos:
        if i.compress_type not in _METHODS or i.flag_bits & 0x1:
            raise ArtifactError(f"{where}: member {i.filename!r} is "
                                f"{'encrypted' if i.flag_bits & 0x1 else 'compressed'} with "
                                f"method {i.compress_type}; deepae reads stored or deflated, "
                                "unencrypted members only.")
    names = [i.filename for i in infos]
    if len(set(names)) != len(names):
        raise ArtifactError(f"{where} lists a member twice; refused.")
    unknown = sorted(n for n in names if not allowed(n))
    if unknown:
        raise ArtifactError(f"{where} holds unexpected members {unknown[:5]}.")
    return set(names)


def read_artifact(path, *, kind: str | None = None,
                  max_bytes: int = DEFAULT_MAX_BYTES) -> Artifact:
    """Read and check an artifact (a path, or its bytes); raise `ArtifactError` if invalid.

    Parameters
    ----------
    path : str, Path or bytes
    kind : str, optional
        The estimator kind expected; another kind is refused before any model is built.
    max_bytes : int, default=1 GiB
        The most bytes the artifact may inflate to, all members together; checked from the
        zip directory and again while inflating, so a lying header does not help.

    Returns
    -------
    Artifact
        The kind, the metadata, the Keras models and the arrays.

    Notes
    -----
    Nothing is written to disk: members are read into memory (at most `max_bytes`), names
    inside the file never become paths, every Keras model's configuration is checked against
    the weights it ships before any layer is built, and arrays are read without pickle.
    """
    if isinstance(path, bytes | bytearray):
        source, head, path = io.BytesIO(path), bytes(path[:4]), "<bytes>"
    else:
        path = Path(path)
        if not path.exists():
            raise FileNotFoundError(f"No deepae model at `path` {str(path)!r}.")
        if path.is_dir():
            raise ArtifactError(f"Expected a deepae model file; `path` {str(path)!r} is a "
                                "folder.")
        with open(path, "rb") as f:
            head = f.read(4)
        source = path
    where = repr(str(path))
    if head != _ZIP_MAGIC:
        raise ArtifactError(f"{where} is not a deepae model: expected a zip archive "
                            f"starting with {_ZIP_MAGIC!r}, found {head!r}.")
    size = len(source.getbuffer()) if isinstance(source, io.BytesIO) else source.stat().st_size
    budget = _Budget(min(int(max_bytes), max(RATIO_FLOOR, MAX_RATIO * size)), where)
    try:
        with zipfile.ZipFile(source) as zf:
            if "deepae.json" not in zf.namelist():
                raise ArtifactError(f"{where} is a zip archive but not a deepae model "
                                    "(no deepae.json inside).")
            names = _check_directory(
                zf, lambda n: n in ("deepae.json", "arrays.npz") or (
                    n.endswith(".keras") and _MODEL_NAME.fullmatch(n[:-6]) is not None), where)
            header = json.loads(_read_member(zf, "deepae.json", HEADER_MAX_BYTES, budget))
            _check_header(header, path, kind)
            expected = {f"{m}.keras" for m in header["models"]} | {"arrays.npz"}
            missing, extra = sorted(expected - names), sorted(names - expected - {"deepae.json"})
            if missing or extra:
                raise ArtifactError(f"{where} does not hold the members its header lists: "
                                    f"missing {missing}, unexpected {extra}.")
            arrays = _read_npz(_read_member(zf, "arrays.npz", max_bytes, budget), where, budget)
            models = {name: _load_keras(_read_member(zf, f"{name}.keras", max_bytes, budget),
                                        f"{where} member {name + '.keras'!r}", budget,
                                        _KINDS[header["kind"]][2])
                      for name in header["models"]}
    except ArtifactError:
        raise
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError, KeyError, ValueError,
            TypeError, IndexError, AttributeError, RecursionError, OverflowError, RuntimeError,
            NotImplementedError, UnicodeDecodeError) as e:
        raise ArtifactError(f"{where} is truncated or corrupted and cannot be read as a "
                            f"deepae model: {type(e).__name__}: {_short(e)}") from e
    return Artifact(kind=header["kind"], metadata=header["metadata"], models=models,
                    arrays=arrays, header=header)


def _short(e) -> str:
    text = " ".join(str(e).split())
    return text if len(text) <= 300 else text[:300] + " ..."


def _read_npz(data: bytes, where: str, budget: _Budget) -> dict:
    """The arrays of an ``.npz`` (itself a zip), each member capped by the budget and its
    ``.npy`` header checked against the bytes present before anything is allocated."""
    arrays = {}
    with zipfile.ZipFile(io.BytesIO(data)) as npz:
        _check_directory(npz, lambda n: n.endswith(".npy"), f"{where} arrays.npz")
        for info in npz.infolist():
            raw = _read_member(npz, info.filename, budget.left, budget)
            f = io.BytesIO(raw)
            version = np.lib.format.read_magic(f)
            if version not in ((1, 0), (2, 0)):
                raise ArtifactError(f"{where}: array {info.filename!r} has .npy version "
                                    f"{version}; expected 1.0 or 2.0.")
            read = np.lib.format.read_array_header_1_0 if version == (1, 0) \
                else np.lib.format.read_array_header_2_0
            try:  # NumPy parses the header with ast and tokenize: any error means forged
                shape, fortran, dtype = read(f)
            except Exception as e:
                raise ArtifactError(f"{where}: array {info.filename!r} has a malformed .npy "
                                    f"header: {type(e).__name__}: {_short(e)}") from e
            if dtype.hasobject:
                raise ArtifactError(f"{where}: array {info.filename!r} holds Python objects; "
                                    "refused (no pickle).")
            count = math.prod(shape)
            if count * dtype.itemsize != len(raw) - f.tell():
                raise ArtifactError(f"{where}: array {info.filename!r} declares shape "
                                    f"{shape} of {dtype} ({count * dtype.itemsize} bytes) but "
                                    f"holds {len(raw) - f.tell()} bytes.")
            arr = np.frombuffer(raw, dtype=dtype, count=count, offset=f.tell())
            arr = arr.reshape(shape[::-1]).T if fortran else arr.reshape(shape)
            arrays[info.filename[:-4]] = arr.copy()
    return arrays


def _load_keras(data: bytes, where: str, budget: _Budget, classes=None):
    """A Keras model from the bytes of its ``.keras`` file, in memory, in safe mode, after
    checking that its configuration builds no more weights than the file holds."""
    import keras

    with zipfile.ZipFile(io.BytesIO(data)) as inner:
        names = _check_directory(inner, lambda n: n in _KERAS_MEMBERS, where)
        if names != _KERAS_MEMBERS:
            raise ArtifactError(f"{where} is not a complete Keras model: missing "
                                f"{sorted(_KERAS_MEMBERS - names)}.")
        config = json.loads(_read_member(inner, "config.json", HEADER_MAX_BYTES, budget))
        weights = _read_member(inner, "model.weights.h5", budget.left, budget)
    found = config.get("registered_name") or config.get("class_name") \
        if isinstance(config, dict) else None
    if classes is not None and not (isinstance(found, str) and classes.fullmatch(found)):
        raise ArtifactError(f"{where} holds a Keras {found!r}; expected {classes.pattern!r}.")
    present = _weights_present(weights, where)
    declared = _weights_declared(config, where)
    if declared > present:
        raise ArtifactError(f"{where}: its configuration builds {declared} bytes of weights "
                            f"but the file holds {present}; refused before building it.")
    from keras.src.saving import saving_lib

    model = saving_lib.load_model(io.BytesIO(data), compile=False, safe_mode=True)
    if not isinstance(model, keras.Model):
        raise ArtifactError(f"{where} holds a {type(model).__name__}, not a Keras model.")
    if not model.built or not model.weights:
        raise ArtifactError(f"{where}: its configuration does not build the model whose "
                            "weights it ships (no build configuration or no weights).")
    return model


def _weights_present(data: bytes, where: str) -> int:
    """How many bytes of numbers the HDF5 weights file really stores (datasets with no data behind
    their declared shape, compressed or non-numeric ones are refused)."""
    import h5py

    total = 0
    try:
        with h5py.File(io.BytesIO(data), "r") as h5:
            items = []
            h5.visititems(lambda name, obj: items.append((name, obj)))
            for name, obj in items:
                if not isinstance(obj, h5py.Dataset):
                    continue
                if obj.dtype.kind not in "fiub" or obj.compression is not None \
                        or obj.dtype.itemsize > 8:
                    raise ArtifactError(f"{where}: weight {name!r} is {obj.dtype}, "
                                        f"compression {obj.compression!r}; expected plain "
                                        "numbers as Keras writes them.")
                if obj.id.get_storage_size() < obj.size * obj.dtype.itemsize:
                    raise ArtifactError(f"{where}: weight {name!r} declares shape {obj.shape} "
                                        "but stores less data than that.")
                total += int(obj.size) * obj.dtype.itemsize
    except ArtifactError:
        raise
    except Exception as e:  # h5py raises OSError, KeyError, ValueError, RuntimeError, ...
        raise ArtifactError(f"{where}: its weights file cannot be read: {type(e).__name__}: "
                            f"{_short(e)}") from e
    return total


def _weights_declared(config, where: str) -> int:
    """How many bytes of weights the model `config` builds, counted without allocating any:
    the model is built in a Keras stateless scope, where variables keep their shape but no
    value (deepae's own layers make their initial values only with the variable)."""
    from keras.src.saving.serialization_lib import ObjectSharingScope, deserialize_keras_object

    if not isinstance(config, dict):
        raise ArtifactError(f"{where}: config.json is not a Keras model configuration.")
    nodes = list(_walk(config, where))
    if any(isinstance(node, list) and len(node) > MAX_LIST for node in nodes):
        raise ArtifactError(f"{where}: its configuration has a list of more than {MAX_LIST} "
                            "items (layers, units, ...); refused.")
    n_layers = sum(1 for node in nodes if isinstance(node, dict) and "class_name" in node)
    if n_layers > MAX_CONFIG_OBJECTS:
        raise ArtifactError(f"{where}: its configuration has {n_layers} objects; at most "
                            f"{MAX_CONFIG_OBJECTS} are allowed.")
    config = dict(config, compile_config=None)
    try:
        with _shapes_only(), ObjectSharingScope():
            model = deserialize_keras_object(config, safe_mode=True)
            return int(sum(math.prod(v.shape) * np.dtype(v.dtype).itemsize
                           for v in getattr(model, "weights", [])))
    except ArtifactError:
        raise
    except Exception as e:  # whatever a forged configuration makes Keras raise
        raise ArtifactError(f"{where}: its model configuration cannot be built: "
                            f"{type(e).__name__}: {_short(e)}") from e


@contextlib.contextmanager
def _shapes_only():
    """Build Keras models whose variables have shapes but no values (nothing allocated)."""
    import keras
    from keras.src.backend.common import global_state

    key = "uninitialized_variables"
    before = list(global_state.get_global_attribute(key, []) or [])
    try:
        with keras.StatelessScope(initialize_variables=False), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        # the variables made in the scope are registered for a later initialisation: drop
        # them, or the next stateless scope would allocate them after all
        global_state.set_global_attribute(key, before)


def _structure(config):
    """A Keras model's configuration without what differs between two builds of the same
    network (the ids of shared objects)."""
    if isinstance(config, dict):
        return {k: _structure(v) for k, v in config.items() if k != "shared_object_id"}
    if isinstance(config, list | tuple):
        return [_structure(v) for v in config]
    return config


def check_architecture(model, *builds, where: str) -> None:
    """Refuse a loaded Keras `model` unless it is the network that one of `builds()` makes
    from the estimator's own (checked) parameters: same layers, settings and wiring.

    The weights were counted before the model was built, but a forged file could still
    insert layers that have none (a 256-fold upsampling, a pooling) and make the model take
    gigabytes when it runs. `build()` runs with shapes only, so a forged parameter that would
    make a huge network allocates nothing either.
    """
    got = _structure(json.loads(json.dumps(model.get_config(), default=str)))
    for build in builds:
        try:
            with _shapes_only():
                expected = build()
            want = _structure(json.loads(json.dumps(expected.get_config(), default=str)))
        except Exception as e:
            raise ArtifactError(f"{where}: its parameters do not describe a network: "
                                f"{type(e).__name__}: {_short(e)}") from e
        if got == want:
            return
    names = [layer.get("name") for layer in got.get("layers", [])] if isinstance(
        got, dict) else []
    raise ArtifactError(f"{where}: the network {getattr(model, 'name', '?')!r} is not the one "
                        "its parameters build (layers or their settings differ"
                        + (f"; it has layers {names[:12]}" if names else "") + "); refused.")


def _walk(node, where: str = "the file"):
    """Every dict and list of a JSON tree (iteratively: a deep one is refused, not a crash)."""
    stack = [(node, 0)]
    while stack:
        node, depth = stack.pop()
        if depth > 64:
            raise ArtifactError(f"{where} holds JSON nested deeper than 64 levels; refused.")
        yield node
        children = node.values() if isinstance(node, dict) else node \
            if isinstance(node, list) else ()
        stack.extend((c, depth + 1) for c in children if isinstance(c, dict | list))


def read_header(path) -> dict:
    """The checked ``deepae.json`` header of an artifact, without loading its models."""
    where = repr(str(path))
    try:
        with zipfile.ZipFile(path) as zf:
            _check_directory(zf, lambda n: True, where)
            header = json.loads(_read_member(zf, "deepae.json", HEADER_MAX_BYTES,
                                             _Budget(HEADER_MAX_BYTES, where)))
    except ArtifactError:
        raise
    except (zipfile.BadZipFile, zlib.error, EOFError, KeyError, OSError, ValueError,
            RecursionError) as e:
        raise ArtifactError(f"{where} is not a readable deepae model: "
                            f"{type(e).__name__}: {_short(e)}") from e
    _check_header(header, path)
    return header


def _check_header(header, path, kind=None):
    where = repr(str(path))
    if not isinstance(header, dict) or header.get("format") != FORMAT_NAME:
        raise ArtifactError(f"{where} is not a deepae model: its deepae.json names format "
                            f"{header.get('format') if isinstance(header, dict) else header!r}.")
    version = header.get("format_version")
    if type(version) is not int or version not in READABLE_VERSIONS:  # not true, not 1.0
        raise ArtifactError(
            f"{where} has format version {version!r}; this deepae {__version__} reads "
            f"versions {', '.join(map(str, READABLE_VERSIONS))}. Upgrade deepae to read newer "
            "files.")
    for _ in _walk(header, where):  # deeper than 64 levels: refused, not a RecursionError
        pass
    found, models = header.get("kind"), header.get("models")
    if not isinstance(found, str) or not isinstance(models, list) \
            or not isinstance(header.get("metadata"), dict):
        raise ArtifactError(f"{where} has a malformed deepae.json header (expected a string "
                            "'kind', a list 'models' and an object 'metadata').")
    if found not in _KINDS:
        raise ArtifactError(f"{where} holds a {found!r}, which this deepae {__version__} "
                            f"cannot load (known: {sorted(_KINDS)}).")
    if kind is not None and found != kind:
        raise ArtifactError(f"{where} holds a {found}, not a {kind}; load it with "
                            "deepae.load.")
    pattern = _KINDS[found][1]
    bad = [m for m in models if not isinstance(m, str) or not _MODEL_NAME.fullmatch(m)
           or not pattern.fullmatch(m)]
    if bad or len(set(models)) != len(models):
        raise ArtifactError(f"{where}: a {found} holds models named like {pattern.pattern!r}; "
                            f"its header lists {models[:8]!r}.")
    if header.get("deepae_version") != __version__:
        warnings.warn(f"{where} was written by deepae {header.get('deepae_version')}; "
                      f"this is deepae {__version__}.", UserWarning, stacklevel=4)


def restore(art: Artifact, restore_fn, where: str = "the artifact"):
    """Run a kind's `restore_fn(art)`; a missing or ill-typed part of forged metadata becomes
    an `ArtifactError` that names it."""
    parts = [art.metadata, *(v for v in art.metadata.values() if isinstance(v, dict))]
    for meta in parts:
        history = meta.get("history", {}) if isinstance(meta, dict) else {}
        if not isinstance(history, dict) or not all(
                isinstance(k, str) and isinstance(v, list) for k, v in history.items()):
            raise ArtifactError(f"{where} holds a {art.kind} whose training history is "
                                "malformed (expected an object of lists).")
    try:
        return restore_fn(art)
    except ArtifactError:
        raise
    except (KeyError, IndexError, TypeError, ValueError, AttributeError, OverflowError) as e:
        raise ArtifactError(f"{where} holds a {art.kind} whose saved state is malformed: "
                            f"{type(e).__name__}: {_short(e)}") from e


def load(path, *, max_bytes: int = DEFAULT_MAX_BYTES):
    """Load any deepae artifact written by ``save``; the estimator kind is read from the file.

    Parameters
    ----------
    path : str or Path
    max_bytes : int, default=1 GiB
        The most bytes the file may inflate to (see `read_artifact`).

    Raises
    ------
    ArtifactError
        If the file is corrupted, truncated, forged, foreign or of an unknown format version.
    """
    # Loaders register themselves when their modules are imported; importing this module
    # imports the `deepae` package first, which imports every estimator module.
    art = read_artifact(path, max_bytes=max_bytes)
    return restore(art, _KINDS[art.kind][0], repr(str(path)))
