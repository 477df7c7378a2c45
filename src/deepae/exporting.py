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
from deepae.fileio import atomic_write, check_output_folder, check_output_path

__all__ = ["FORMATS", "ONNX_OPSET", "ExportError", "export_graph", "input_names"]

FORMATS = ("saved_model", "onnx", "litert")
# the newest opset tf2onnx 1.17 writes; onnxruntime runs it
ONNX_OPSET = 18
# what every runtime keeps as an input name: TensorFlow turns a signature's names into
# Python-like parameters (others become arg_0, arg__x, ...) and compares them ignoring case
_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]*")


class ExportError(ValueError):
    """A model that a format cannot hold (an operator its converter does not know, a
    category it cannot tell from a missing value)."""


def input_names(columns) -> dict:
    """``{column: input name}``: the graph input name of each of a table's columns.

    A column keeps its name when it is a valid name (a letter, then letters, digits and
    ``_``; not a Python keyword) that no column before it took in another case; otherwise
    each other character becomes ``_``, ``c`` goes in front of a name that does not start
    with a letter, ``_`` after a keyword, and ``_1``, ``_2``, ... after a name already taken
    (ignoring case). Valid names are kept first, so a renamed column never takes another
    column's own name. The map is saved with the export (``deepae_inputs.json`` in a
    SavedModel folder, ``deepae.input_columns`` in an ONNX file's metadata).
    """
    import keyword

    columns = [str(c) for c in columns]
    names, taken = {}, set()
    for col in columns:  # the names that stand as they are, first come first
        if _NAME.fullmatch(col) and not keyword.iskeyword(col) and col.lower() not in taken:
            names[col] = col
            taken.add(col.lower())
    for col in columns:
        if col in names:
            continue
        base = re.sub(r"[^A-Za-z0-9_]", "_", col)
        base = base if re.match(r"[A-Za-z]", base) else "c" + base
        base = base + "_" if keyword.iskeyword(base) else base
        name, i = base, 1
        while name.lower() in taken:
            name, i = f"{base}_{i}", i + 1
        names[col] = name
        taken.add(name.lower())
    return {col: names[col] for col in columns}


def export_graph(path, module, function, *, format: str = "saved_model",
                 overwrite: bool = False, columns: dict | None = None) -> Path:
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
    columns : dict, optional
        ``{input name: column}`` of a table model, saved with the export (`input_names`).

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
        return _write_saved_model(path, module, function, overwrite, columns)
    check_output_path(path, overwrite=overwrite)  # before any work
    with tempfile.TemporaryDirectory(prefix="deepae-export-") as tmp:
        saved = Path(tmp) / "saved_model"
        _save(saved, module, function, None)
        data = (_onnx_bytes(saved, Path(tmp), columns) if format == "onnx"
                else _litert_bytes(saved))
    return atomic_write(path, data, overwrite=overwrite)


def _save(folder: Path, module, function, columns) -> None:
    import json

    import tensorflow as tf

    tf.saved_model.save(module, str(folder),
                        signatures={"serving_default": function.get_concrete_function()})
    if columns:
        (folder / "deepae_inputs.json").write_text(json.dumps(columns, indent=1))


# what tf.saved_model.save writes in its folder: deepae replaces a folder of these alone
SAVED_MODEL_ENTRIES = ("saved_model.pb", "variables", "assets", "fingerprint.pb",
                       "keras_metadata.pb", "deepae_inputs.json")


def _write_saved_model(path: Path, module, function, overwrite: bool, columns) -> Path:
    check_output_folder(path, overwrite=overwrite, entries=SAVED_MODEL_ENTRIES,
                        hint="overwrite=True (--overwrite on the command line)")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name[:40]}.{secrets.token_hex(6)}.tmp"
    old = path.parent / f".{path.name[:40]}.{secrets.token_hex(6)}.old"
    try:
        _save(tmp, module, function, columns)
        if path.exists():
            os.rename(path, old)
            try:
                os.rename(tmp, path)
            except OSError:
                os.rename(old, path)  # the previous export back in its place
                raise
        else:
            os.rename(tmp, path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(old, ignore_errors=True)
    return path


def _onnx_bytes(saved: Path, tmp: Path, columns) -> bytes:
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
    return _input_names_restored(out.read_bytes(), saved, columns)


def _input_names_restored(data: bytes, saved: Path, columns) -> bytes:
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
    if columns:
        import json

        model.metadata_props.add(key="deepae.input_columns", value=json.dumps(columns))
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
