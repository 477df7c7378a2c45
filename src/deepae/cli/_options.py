"""Options and rules shared by several commands."""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path

__all__ = ["add_patch_training_options", "add_common_options", "add_run_options",
           "output_path", "units", "run_parameters", "save_trained", "named_dataset",
           "input_and_output", "status", "result", "results_stream", "results_to",
           "UserError"]


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


def result(*parts, **kwargs) -> None:
    """A command's result (a table, JSON, CSV rows): on standard output."""
    print(*parts, file=results_stream(), **kwargs)


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
