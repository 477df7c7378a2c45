"""One artifact format for every deepae estimator.

An artifact is a zip file holding

- ``deepae.json``: format name and version, library versions, the estimator kind and its
  JSON metadata (configuration, preprocessing, training summary, data fingerprint);
- ``<name>.keras``: each Keras model, loaded back with ``safe_mode=True``;
- ``arrays.npz``: NumPy arrays (scaler statistics, thresholds, ...), loaded with
  ``allow_pickle=False``.

Nothing is pickled. Writes go to a temporary file in the target folder, then `os.replace`,
so a crash never leaves a half-written file and an existing file is never half-overwritten.
"""

from __future__ import annotations

import io
import json
import os
import tempfile
import warnings
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from deepae._version import __version__
from deepae.exceptions import ArtifactError

__all__ = ["FORMAT_NAME", "FORMAT_VERSION", "Artifact", "save_artifact", "read_artifact", "load",
           "read_header", "register_loader", "atomic_write_bytes"]

FORMAT_NAME = "deepae-artifact"
FORMAT_VERSION = 1
_ZIP_MAGIC = b"PK\x03\x04"
_LOADERS = {}


@dataclass
class Artifact:
    """The parts of a saved estimator, as read back from disk."""

    kind: str
    metadata: dict
    models: dict = field(default_factory=dict)
    arrays: dict = field(default_factory=dict)
    header: dict = field(default_factory=dict)


def register_loader(kind: str):
    """Register ``fn(artifact) -> estimator`` as the loader for artifacts of `kind`."""

    def deco(fn):
        _LOADERS[kind] = fn
        return fn

    return deco


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write `data` to `path` through a temporary file in the same folder and `os.replace`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        # mkstemp makes the file owner-only; give it the permissions open() would (umask)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save_artifact(path, kind: str, metadata: dict, *, models=None, arrays=None,
                  overwrite: bool = True) -> Path:
    """Write an artifact atomically and return its path."""
    path = Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(f"`path` {str(path)!r} exists; pass overwrite=True to replace it.")
    if path.is_dir():
        raise IsADirectoryError(f"Expected `path` to be a file name; {str(path)!r} is a folder.")
    atomic_write_bytes(path, artifact_bytes(kind, metadata, models=models, arrays=arrays))
    return path


def artifact_bytes(kind: str, metadata: dict, *, models=None, arrays=None) -> bytes:
    """The bytes of an artifact (what `save_artifact` writes)."""
    import keras

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


def read_artifact(path) -> Artifact:
    """Read and check an artifact (a path, or its bytes); raise `ArtifactError` if invalid."""
    import keras

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
    if head != _ZIP_MAGIC:
        raise ArtifactError(f"{str(path)!r} is not a deepae model: expected a zip archive "
                            f"starting with {_ZIP_MAGIC!r}, found {head!r}.")
    try:
        with zipfile.ZipFile(source) as zf:
            bad = zf.testzip()
            if bad is not None:
                raise ArtifactError(f"{str(path)!r} is corrupted: member {bad!r} fails its CRC "
                                    "check.")
            names = set(zf.namelist())
            if "deepae.json" not in names:
                raise ArtifactError(f"{str(path)!r} is a zip archive but not a deepae model "
                                    "(no deepae.json inside).")
            header = json.loads(zf.read("deepae.json"))
            _check_header(header, path)
            missing = [f"{m}.keras" for m in header["models"] if f"{m}.keras" not in names]
            if missing or "arrays.npz" not in names:
                raise ArtifactError(f"{str(path)!r} is incomplete: missing "
                                    f"{missing + ([] if 'arrays.npz' in names else ['arrays.npz'])}.")
            with np.load(io.BytesIO(zf.read("arrays.npz")), allow_pickle=False) as npz:
                arrays = {k: npz[k] for k in npz.files}
            models = {}
            with tempfile.TemporaryDirectory() as tmp:
                for name in header["models"]:
                    file = Path(tmp) / f"{name}.keras"
                    file.write_bytes(zf.read(f"{name}.keras"))
                    models[name] = keras.saving.load_model(file, compile=False, safe_mode=True)
    except ArtifactError:
        raise
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError, KeyError, ValueError,
            TypeError) as e:
        raise ArtifactError(f"{str(path)!r} is truncated or corrupted and cannot be read as a "
                            f"deepae model: {type(e).__name__}: {e}") from e
    return Artifact(kind=header["kind"], metadata=header.get("metadata", {}), models=models,
                    arrays=arrays, header=header)


def read_header(path) -> dict:
    """The checked ``deepae.json`` header of an artifact, without loading its models."""
    try:
        with zipfile.ZipFile(path) as zf:
            header = json.loads(zf.read("deepae.json"))
    except (zipfile.BadZipFile, KeyError, OSError, ValueError) as e:
        raise ArtifactError(f"{str(path)!r} is not a readable deepae model: "
                            f"{type(e).__name__}: {e}") from e
    _check_header(header, path)
    return header


def _check_header(header, path):
    if not isinstance(header, dict) or header.get("format") != FORMAT_NAME:
        raise ArtifactError(f"{str(path)!r} is not a deepae model: its deepae.json names format "
                            f"{header.get('format') if isinstance(header, dict) else header!r}.")
    version = header.get("format_version")
    if version != FORMAT_VERSION:
        raise ArtifactError(
            f"{str(path)!r} has format version {version!r}; this deepae {__version__} reads "
            f"version {FORMAT_VERSION} only. Upgrade deepae to read newer files.")
    if not isinstance(header.get("kind"), str) or not isinstance(header.get("models"), list):
        raise ArtifactError(f"{str(path)!r} has a malformed deepae.json header.")
    if header.get("deepae_version") != __version__:
        warnings.warn(f"{str(path)!r} was written by deepae {header.get('deepae_version')}; "
                      f"this is deepae {__version__}.", UserWarning, stacklevel=4)


def load(path):
    """Load any deepae artifact written by ``save``; the estimator kind is read from the file.

    Raises
    ------
    ArtifactError
        If the file is corrupted, truncated, foreign or of an unknown format version.
    """
    # Loaders register themselves when their modules are imported; importing this module
    # imports the `deepae` package first, which imports every estimator module.
    art = read_artifact(path)
    loader = _LOADERS.get(art.kind)
    if loader is None:
        raise ArtifactError(f"{str(path)!r} holds a {art.kind!r}, which this deepae "
                            f"{__version__} cannot load (known: {sorted(_LOADERS)}).")
    return loader(art)


# -- the core model -------------------------------------------------------------------------
def autoencoder_state(model) -> tuple[dict, dict]:
    """JSON metadata and arrays that, with its `.keras` member, restore an `Autoencoder`."""
    model._check_fitted()
    meta = {"config": model.get_config(), "training": model.training_summary_,
            "history": getattr(model, "history_", {}), "scaler": None}
    arrays = {}
    if model.scaler_ is not None:
        meta["scaler"], arrays = model.scaler_.get_state()
    return meta, arrays


def restore_autoencoder(model, meta: dict, arrays: dict):
    """Attach the scaler, training summary and history saved by `autoencoder_state`."""
    from deepae.data.preprocessing import Scaler

    if meta.get("scaler"):
        model.scaler_ = Scaler.from_state(meta["scaler"], arrays)
    model.training_summary_ = meta.get("training", {})
    model.history_ = meta.get("history", {})
    return model


def save_autoencoder(model, path, *, overwrite=True) -> Path:
    """Write an `Autoencoder` with its scaling, training summary and history."""
    meta, arrays = autoencoder_state(model)
    return save_artifact(path, "Autoencoder", meta, models={"model": model}, arrays=arrays,
                         overwrite=overwrite)


@register_loader("Autoencoder")
def _load_autoencoder(art: Artifact):
    return restore_autoencoder(art.models["model"], art.metadata, art.arrays)
