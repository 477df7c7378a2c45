"""Writing a TensorFlow graph of raw inputs to a SavedModel, ONNX or LiteRT file.

The estimators build their inference graph (`deepae.apps.export`); this module only writes
it, in one of `FORMATS`:

- ``"saved_model"``: a TensorFlow SavedModel folder whose ``serving_default`` signature is
  the graph (TF Serving, KServe's TensorFlow predictor, ``tf.saved_model.load``);
- ``"onnx"``: one ``.onnx`` file, converted from that SavedModel by tf2onnx (onnxruntime);
- ``"litert"``: one ``.tflite`` flat buffer, converted by TensorFlow's converter with the
  built-in operators only (the ``ai-edge-litert`` interpreter).

A converter that cannot take an operator raises `ExportError` naming it. Every write is
atomic: a file is written beside its target and moved, a SavedModel folder is written beside
its target and renamed; with ``overwrite`` deepae replaces only a file or a SavedModel folder
(an empty folder too), never a folder of other files.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from deepae._validation import check_in
from deepae.fileio import atomic_write, check_output_path

__all__ = ["FORMATS", "ONNX_OPSET", "ExportError", "export_graph", "input_name"]

FORMATS = ("saved_model", "onnx", "litert")
# the newest opset tf2onnx 1.17 writes; onnxruntime runs it
ONNX_OPSET = 18
_NAME = re.compile(r"[A-Za-z0-9.][A-Za-z0-9_.\-/]*")


class ExportError(ValueError):
    """A model that a format cannot hold (an operator its converter does not know)."""


def input_name(column: str, taken: set) -> str:
    """The graph input name of a column: the column's own name when TensorFlow takes it as
    one (letters, digits, ``_ . - /``, not starting with ``_ - /``), else the name with
    each other character replaced by ``_`` (and ``c`` in front where needed), made unique
    against `taken` (which it joins)."""
    name = str(column)
    if not _NAME.fullmatch(name):
        name = re.sub(r"[^A-Za-z0-9_.\-/]", "_", name)
        if not re.match(r"[A-Za-z0-9.]", name):
            name = "c" + name
    base, i = name, 1
    while name in taken:
        name, i = f"{base}_{i}", i + 1
    taken.add(name)
    return name


def export_graph(path, module, function, *, format: str = "saved_model",
                 overwrite: bool = False) -> Path:
    """Write `function` (a `tf.function` with an input signature whose specs are named,
    returning a dict of named outputs) and the variables and tables `module` tracks.

    Parameters
    ----------
    path : str or Path
        A folder for ``"saved_model"``, a file for ``"onnx"`` and ``"litert"``.
    module : tf.Module
        Holds (tracks) everything the function uses.
    function : tf.function
    format : {"saved_model", "onnx", "litert"}
    overwrite : bool, default=False

    Returns
    -------
    Path
        What was written.

    Raises
    ------
    ExportError
        If the converter of `format` cannot take an operator of the graph (named).
    FileExistsError
        If `path` exists and `overwrite` is false.
    """
    check_in(format, "format", FORMATS, owner="export")
    path = Path(path)
    if format == "saved_model":
        return _write_saved_model(path, module, function, overwrite)
    check_output_path(path, overwrite=overwrite)  # before any work
    with tempfile.TemporaryDirectory(prefix="deepae-export-") as tmp:
        saved = Path(tmp) / "saved_model"
        _save(saved, module, function)
        data = _onnx_bytes(saved, Path(tmp)) if format == "onnx" else _litert_bytes(saved)
    return atomic_write(path, data, overwrite=overwrite)


def _save(folder: Path, module, function) -> None:
    import tensorflow as tf

    tf.saved_model.save(module, str(folder),
                        signatures={"serving_default": function.get_concrete_function()})


def _write_saved_model(path: Path, module, function, overwrite: bool) -> Path:
    if path.exists() or path.is_symlink():
        if not overwrite:
            raise FileExistsError(f"{str(path)!r} exists; pass overwrite=True (--overwrite on "
                                  "the command line) to replace it.")
        if path.is_symlink() or not path.is_dir():
            raise ValueError(f"Expected a folder for the SavedModel; {str(path)!r} is not one "
                             "(a file or a link): deepae does not replace it.")
        if any(path.iterdir()) and not (path / "saved_model.pb").is_file():
            raise ValueError(f"{str(path)!r} is a folder of other files, not a SavedModel; "
                             "deepae replaces only a SavedModel folder (or an empty one). "
                             "Choose another path.")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name[:40]}.{secrets.token_hex(6)}.tmp"
    try:
        _save(tmp, module, function)
        if path.exists():
            old = path.parent / f".{path.name[:40]}.{secrets.token_hex(6)}.old"
            os.rename(path, old)
            os.rename(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.rename(tmp, path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return path


def _onnx_bytes(saved: Path, tmp: Path) -> bytes:
    """tf2onnx's SavedModel path (its command line): the one that converts lookup tables."""
    try:
        import onnx  # noqa: F401
        import tf2onnx  # noqa: F401
    except ImportError as e:
        raise ImportError('ONNX export needs tf2onnx: pip install "deepae[export]"') from e
    out = tmp / "model.onnx"
    cmd = [sys.executable, "-m", "tf2onnx.convert", "--saved-model", str(saved),
           "--signature_def", "serving_default", "--opset", str(ONNX_OPSET),
           "--output", str(out)]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONWARNINGS": "ignore"}
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    if done.returncode != 0 or not out.is_file():
        said = done.stderr + done.stdout
        ops = sorted(set(re.findall(r"Unsupported ops: Counter\(\{([^}]*)\}", said)
                         + re.findall(r"op \[?name: ([A-Za-z0-9_]+)\]? is not supported", said)
                         + re.findall(r"Tensorflow op \[[^\]]*: ([A-Za-z0-9_]+)\] is not "
                                      r"supported", said)))
        if ops:
            raise ExportError(f"ONNX (tf2onnx, opset {ONNX_OPSET}) cannot convert the "
                              f"operator(s) {', '.join(ops)} of this model.")
        tail = "\n".join(said.strip().splitlines()[-5:])
        raise ExportError(f"tf2onnx failed to convert the model (exit {done.returncode}):\n"
                          f"{tail}")
    return _input_names_restored(out.read_bytes(), saved)


def _input_names_restored(data: bytes, saved: Path) -> bytes:
    """The ONNX model with the signature's input names: a loaded SavedModel's signature
    names its placeholders in lower case (``Amount`` -> ``amount``), and tf2onnx takes those."""
    import onnx
    import tensorflow as tf

    signature = tf.saved_model.load(str(saved)).signatures["serving_default"]
    names = {spec.name: key for key, spec in signature.structured_input_signature[1].items()}
    model = onnx.load_from_string(data)
    graph = model.graph
    rename = {i.name: names[i.name] for i in graph.input
              if i.name in names and names[i.name] != i.name}
    if not rename:
        return data
    for tensor in graph.input:
        tensor.name = rename.get(tensor.name, tensor.name)
    for node in graph.node:
        node.input[:] = [rename.get(n, n) for n in node.input]
    return model.SerializeToString()


def _litert_bytes(saved: Path) -> bytes:
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_saved_model(str(saved))
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    try:
        return converter.convert()
    except Exception as e:  # the converter's ConverterError, an opaque class
        said = str(e)
        listed = re.search(r"TF Select ops: ([^\n]+)", said)
        ops = sorted({op.strip() for op in listed.group(1).split(",")} if listed else
                     set(re.findall(r"'tf\.([A-Za-z0-9_]+)' op", said)))
        if ops:
            raise ExportError(f"LiteRT's built-in operators do not include {', '.join(ops)}, "
                              "which this model uses; export it as a SavedModel or ONNX "
                              "instead.") from e
        raise ExportError(f"The LiteRT converter failed: {said.strip().splitlines()[0]}") from e
