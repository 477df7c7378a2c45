"""Options and rules shared by several commands."""

from __future__ import annotations

import contextlib
import io
import sys
from pathlib import Path

__all__ = ["add_patch_training_options", "add_common_options", "add_run_options",
           "output_path", "units", "run_parameters", "save_trained", "named_dataset",
           "input_and_output", "status", "result", "results_stream", "results_to",
           "UserError", "add_json_option", "result_json", "result_json_rows", "json_text", "STDIO", "is_stdio",
           "not_stdio", "read_stdin", "stdin_file", "stdin_stream", "STDIN_MAX_BYTES",
           "binary_stdout", "result_bytes", "result_text"]


class UserError(Exception):
    """A mistake in how the command was called, reported in one line."""


def add_patch_training_options(p, *, patch_size):
    """The options of the commands that train on random image patches (``train FOLDER``)."""
    p.add_argument("--epochs", type=int, default=20, help="train: epochs (default 20)")
    p.add_argument("--patch-size", type=int, default=patch_size,
                   help=f"train: patch side in pixels (default {patch_size})")
    p.add_argument("--patches", type=int, default=4096,
                   help="train: patches per epoch (default 4096)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    add_run_options(p)


def add_common_options(p, *, output: bool = True):
    """``--overwrite`` (for a command that writes files) and ``--debug``, on every command."""
    if output:
        p.add_argument("--overwrite", action="store_true",
                       help="replace output files that exist (default: refuse)")
    p.add_argument("--debug", action="store_true",
                   help="on an error, show the full traceback instead of one line")


def output_path(args, path, *inputs, stdout: bool = False) -> Path | None:
    """The one output rule of every command: `path` may not be a folder, a device or one of
    the command's `inputs`, and an existing file is refused unless ``--overwrite``. For a
    command that can write to standard output (`stdout`), ``None`` or ``-`` pass through as
    None. Every write is then atomic (`deepae.fileio.atomic_write`)."""
    from deepae.fileio import check_output_path

    if path is None or str(path) == "-":
        if stdout:
            return None
        raise ValueError("this command writes a file: expected an output file name; "
                         f"received {'none' if path is None else repr(str(path))}")
    return check_output_path(path, overwrite=bool(getattr(args, "overwrite", False)),
                             inputs=[i for i in inputs if i is not None], hint="--overwrite")


def units(text):
    """Layer widths from the command line: ``"256,128"`` -> ``(256, 128)``."""
    if text is None or isinstance(text, list | tuple):
        return text
    try:
        return tuple(int(t) for t in str(text).replace(" ", "").split(",") if t)
    except ValueError as e:
        raise UserError(f"expected comma-separated ints such as 256,128; received {text!r}") from e


def add_run_options(p):
    """``--checkpoint-dir``, ``--resume`` and ``--tensorboard``, on every training command."""
    p.add_argument("--checkpoint-dir", help="folder where the run is saved after every epoch "
                   "and kept until the model file is written (default OUTPUT.ckpt)")
    p.add_argument("--resume", action="store_true",
                   help="continue an interrupted run (the same command) from its checkpoint")
    p.add_argument("--tensorboard", metavar="DIR",
                   help="write TensorBoard logs to DIR (needs the tensorboard package: "
                        'pip install "deepae[tensorboard]")')


def checkpoint_folder(args):
    """The checkpoint folder a training command's `args` name (``--checkpoint-dir``, else
    OUTPUT.ckpt), or None when it has no output file."""
    if getattr(args, "checkpoint_dir", None):
        return Path(args.checkpoint_dir)
    for name in ("output", "out", "model"):  # the -o of train, index build, detect fit
        value = getattr(args, name, None)
        if isinstance(value, str) and value and value != STDIO:
            return Path(value).with_name(Path(value).name + ".ckpt")
    return None


def run_parameters(args, output, *inputs, checkpoint_dir=None) -> dict:
    """The estimator parameters of a training command's run: its checkpoint folder (never
    the output or an input) and its callbacks."""
    out = Path(output)
    given = checkpoint_dir or getattr(args, "checkpoint_dir", None)
    ckpt = Path(given) if given else out.with_name(out.name + ".ckpt")
    for other in (out, *inputs):
        if other is not None and ckpt.resolve() == Path(other).resolve():
            raise UserError(f"the checkpoint folder {str(ckpt)!r} is {str(other)!r}; choose "
                            "another --checkpoint-dir")
    callbacks = []
    board = getattr(args, "tensorboard", None)
    if board:
        for other in (out, *inputs):  # TensorBoard writes a folder of its own
            if other is not None and (Path(board).resolve() == Path(other).resolve() or (
                    Path(other).is_dir() and Path(board).resolve().is_relative_to(
                        Path(other).resolve()))):
                raise UserError(f"--tensorboard {board!r} is (or is inside) {str(other)!r}; "
                                "choose another folder for the logs")
    if board:
        from importlib.util import find_spec

        if find_spec("tensorboard") is None:
            raise UserError('--tensorboard needs the tensorboard package: pip install '
                            '"deepae[tensorboard]"')
        import keras

        callbacks.append(keras.callbacks.TensorBoard(board))
    return {"checkpoint_dir": ckpt, "resume": bool(getattr(args, "resume", False)),
            "callbacks": callbacks or None}


def save_trained(est, args, output, checkpoint_dir) -> None:
    """Save a model trained with ``fit(..., keep_checkpoint=True)``, then (only then) remove
    its checkpoint; a failed save says how to save the trained weights without training
    again."""
    from deepae.training import remove_checkpoint

    try:
        est.save(output, overwrite=bool(getattr(args, "overwrite", False)))
    except (OSError, ValueError) as e:
        raise UserError(f"training finished but {str(output)!r} could not be written "
                        f"({' '.join(str(e).split())}); the trained weights are kept in "
                        f"{str(checkpoint_dir)!r}: run the same command with --resume (and "
                        "another output, or --overwrite) to save them without training "
                        "again") from e
    remove_checkpoint(checkpoint_dir)


def named_dataset(source):
    """``((x_train, y_train), (x_test, y_test))`` when `source` names a data set (mnist,
    fashion-mnist, digits) and no file of that name exists; None for a file."""
    from deepae.data.datasets import DATASETS, load_dataset

    if str(source).lower().replace("-", "_") in DATASETS and not Path(source).exists():
        return load_dataset(source)
    return None


def input_and_output(args, command: str, usage: str) -> tuple[str, str]:
    """``INPUT -o OUTPUT``, every command's one way to name its output. The older
    ``INPUT OUTPUT`` still works for now, with a note on standard error."""
    import sys

    given = list(args.args)
    if len(given) == 1 and args.output:
        return given[0], args.output
    if len(given) == 2 and not args.output:
        print(f"deepae: note: `deepae {command} INPUT OUTPUT` will be removed; write "
              f"`deepae {command} INPUT -o OUTPUT`", file=sys.stderr)
        return given[0], given[1]
    raise UserError(f"expected INPUT -o OUTPUT; got argument(s) {given}"
                    + (f" and -o {args.output}" if args.output else "") + f"; usage: {usage}")


def status(*parts, **kwargs) -> None:
    """A line about what a command did (wrote, saved, trained): on standard error, so that
    standard output holds only results (tables, JSON, CSV) and can be piped."""
    import sys

    print(*parts, file=sys.stderr, **kwargs)


# Where results go: the process's standard output. While a command runs, everything else that
# would print there (Keras's progress bar, a library's notes) goes to standard error instead,
# so that `deepae ... > out.csv` holds the result and nothing else (see cli.main.main).
_RESULTS = []


def results_stream():
    """The stream that `result` writes to (the real standard output)."""
    import sys

    return _RESULTS[-1] if _RESULTS else sys.stdout


_PIECE = 1 << 16  # bytes or characters per write of a result


def _write_through(out, data) -> None:
    """`data` (text or bytes) to `out` in pieces, each flushed: a reader who left (`| head`)
    stops the command with BrokenPipeError before it reports what it wrote. (One large
    write that the reader leaves part-way can end short without an error: CPython 3.11's
    buffered writer.)"""
    for start in range(0, len(data), _PIECE):
        out.write(data[start:start + _PIECE])
        out.flush()
    out.flush()


def result(*parts, **kwargs) -> None:
    """A command's result (a table, JSON, CSV rows): on standard output, written through
    (`_write_through`)."""
    text = io.StringIO()
    print(*parts, file=text, **kwargs)
    _write_through(results_stream(), text.getvalue())


def result_text(text: str) -> None:
    """`text` (CSV rows) as a command's result on standard output, written through."""
    _write_through(results_stream(), text)


def add_json_option(p, what: str = "the result") -> None:
    """``--json``: print the command's result as one JSON document on standard output."""
    p.add_argument("--json", action="store_true",
                   help=f"print {what} as one JSON document on standard output (and nothing "
                        "else there)")


def _plain(value):
    """`value` in JSON's types: NumPy numbers and arrays as Python's, tuples as lists, NaN
    and infinities as null (JSON has neither)."""
    import math
    import numbers

    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if value is None or isinstance(value, str | bool):
        return value
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "tolist"):  # NumPy scalars and arrays
        return _plain(value.tolist())
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        return float(value) if math.isfinite(value) else None
    raise TypeError(f"Expected a result of JSON types (numbers, text, lists, tables); "
                    f"received a {type(value).__name__}: {value!r}")


def json_text(doc, *, indent: int | None = 1) -> str:
    """`doc` as strict JSON text (NaN and infinities as null)."""
    import json

    return json.dumps(_plain(doc), indent=indent, allow_nan=False)


def result_json(doc) -> None:
    """A command's result as one JSON document on standard output (``--json``)."""
    result(json_text(doc))


_NONE = object()  # no first record


def result_json_rows(head: dict, records, tail=None) -> None:
    """One JSON document on standard output, written a record at a time (memory stays
    flat): the items of `head`, then ``"rows"``, the `records` (dicts) one per line, then the
    items of ``tail()`` (counts known only once the records are written)."""
    import json

    def item(key, value):
        return f"{json.dumps(str(key))}: {json_text(value, indent=None)}"

    out, records = results_stream(), iter(records)
    # the opening waits for the first record: a command that fails before it (a bad column
    # in the first chunk) leaves standard output empty, not half a document
    first = next(records, _NONE)
    out.write("{\n" + "".join(f" {item(k, v)},\n" for k, v in head.items()) + ' "rows": [')
    if first is not _NONE:
        out.write("\n  " + json_text(first, indent=None))
    for record in records:
        out.write(",\n  " + json_text(record, indent=None))
    out.write("\n ]" + "".join(f",\n {item(k, v)}" for k, v in (tail() if tail else {}).items())
              + "\n}\n")
    out.flush()


# `-` names standard input (for an input) or standard output (for an output)
STDIO = "-"
# the most standard input a command reads: deepae.load's default max_bytes for a model file
STDIN_MAX_BYTES = 1 << 30


def is_stdio(path) -> bool:
    """Whether `path` is ``-`` (standard input or output)."""
    return path is not None and str(path) == STDIO


def not_stdio(path, what: str, why: str = "name a file") -> None:
    """Refuse ``-`` where a command needs a named file (a model, a folder)."""
    if is_stdio(path):
        raise UserError(f"{what} cannot be `-` (standard input): {why}; received '-'")


class _CappedInput(io.RawIOBase):
    """Standard input, read in the caller's pieces (memory follows what the caller keeps)
    and refused past `limit` bytes (None: no limit, for a reader that streams)."""

    name = "standard input"

    def __init__(self, raw, limit: int, what: str):
        self._raw, self._limit, self._what = raw, limit, what
        self._n = self._pos = 0  # bytes read from `raw`; bytes given to the caller
        self._head = b""

    def readable(self) -> bool:
        return True

    def _read_raw(self, b) -> int:
        n = self._raw.readinto(b) or 0
        self._n += n
        if self._limit is not None and self._n > self._limit:
            raise UserError(f"expected {self._what} of at most {self._limit:,} bytes on "
                            f"standard input; received more (pass a file name instead)")
        return n

    def head(self, n: int) -> bytes:
        """The first `n` bytes (fewer at the end of the input), given again by `read`."""
        while len(self._head) < n:
            buf = bytearray(n - len(self._head))
            got = self._read_raw(buf)
            if not got:
                break
            self._head += bytes(buf[:got])
        return self._head[:n]

    def readinto(self, b) -> int:
        if self._head:
            n = min(len(b), len(self._head))
            b[:n], self._head = self._head[:n], self._head[n:]
        else:
            n = self._read_raw(b)
        self._pos += n
        return n

    def tell(self) -> int:
        return self._pos


def stdin_stream(what: str, *, streamed: bool = False):
    """Standard input as a binary file object that refuses more than `STDIN_MAX_BYTES`;
    `what` (``"a CSV table"``) says in errors what was expected there. A `streamed` input,
    read a chunk at a time and never kept whole (``detect score -``), has no limit."""
    raw = getattr(sys.stdin, "buffer", None)
    if raw is None:
        raise UserError(f"expected {what} on standard input; standard input is closed")
    if sys.stdin.isatty():
        raise UserError(f"expected {what} on standard input (a pipe, or `< FILE`); received "
                        "a terminal")
    return _CappedInput(raw, None if streamed else STDIN_MAX_BYTES, what)


def read_stdin(what: str) -> bytes:
    """All of standard input (at most `STDIN_MAX_BYTES`); nothing at all is an error."""
    stream, chunks = stdin_stream(what), []
    while chunk := stream.read(1 << 20):
        chunks.append(chunk)
    if not chunks:
        raise UserError(f"expected {what} on standard input; received nothing (0 bytes)")
    return b"".join(chunks)


def stdin_file(what: str) -> io.BytesIO:
    """Standard input as an in-memory binary file named "standard input" (for readers that
    seek, such as Pillow's)."""
    f = io.BytesIO(read_stdin(what))
    f.name = "standard input"
    return f


def binary_stdout(what: str):
    """The real standard output's binary stream, checked before a command's work: bytes
    (`what`, a .dae file or a PNG) are never written to a terminal."""
    stream = results_stream()
    binary = getattr(stream, "buffer", None)
    if binary is None:
        raise UserError(f"expected a standard output that takes bytes for {what}; it takes "
                        "only text here")
    if stream.isatty():
        raise UserError(f"refusing to write {what} to a terminal; redirect standard output "
                        "(`-o - > FILE` or `-o - | ...`), or name a file with -o FILE")
    return binary


def result_bytes(data: bytes, what: str) -> None:
    """Bytes as a command's result (``-o -``), on the real standard output."""
    binary = binary_stdout(what)
    results_stream().flush()
    _write_through(binary, memoryview(data))


@contextlib.contextmanager
def results_to(stream):
    """Run a command with its results going to `stream` and everything else that would
    print to standard output going to standard error."""
    _RESULTS.append(stream)
    try:
        with contextlib.redirect_stdout(sys.stderr):
            yield
    finally:
        _RESULTS.pop()
