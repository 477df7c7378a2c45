"""Writing files safely: the one atomic-write helper every deepae file goes through.

A file is written to a temporary file in the target folder, flushed to disk, then moved over
the target with `os.replace`: a crash or an error leaves the old file whole (or no file),
never a half-written one. The temporary file is created with ``open()``'s usual mode (0666
less the process umask), so what deepae writes gets the user's usual permissions, without
reading or changing the process-wide umask (which would race with other threads).
"""

from __future__ import annotations

import errno
import os
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

__all__ = ["atomic_write", "check_output_folder", "check_output_path"]


# deepae's own files, the shipped models among them: never an output
_PACKAGE = Path(__file__).resolve().parent


def _expanded(inputs):
    """The input paths, a glob pattern (``shards/*.npy``) standing for the files it names."""
    import glob

    for src in inputs:
        if src is None:
            continue
        if any(c in str(src) for c in "*?["):
            yield from glob.glob(str(src))
        yield src


def check_output_path(path, *, overwrite: bool = False, inputs=(),
                      hint: str = "overwrite=True") -> Path:
    """Check that `path` may be written: not a folder, not one of `inputs`, and, unless
    `overwrite`, not an existing file. Returns it as a `Path`.

    Raises
    ------
    FileExistsError
        If the file exists and `overwrite` is false.
    IsADirectoryError
        If `path` is a folder.
    ValueError
        If `path` is one of the `inputs` (the same file, also through a link).

    `hint` is how the caller asks to overwrite, named in the error (the CLI: --overwrite).
    """
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(f"Expected an output file name; {str(path)!r} is a folder.")
    if path.resolve().is_relative_to(_PACKAGE):
        raise ValueError(f"The output {str(path)!r} is inside the deepae package ({_PACKAGE}), "
                         "whose files (the shipped models among them) are not outputs; write "
                         "the result to another folder.")
    if path.exists() and not path.is_file():
        raise ValueError(f"Expected an output file name; {str(path)!r} is not a regular file "
                         "(a device, a pipe or a socket).")
    for src in _expanded(inputs):
        src = Path(src)
        if src.is_dir() and path.exists() and path.resolve().is_relative_to(src.resolve()):
            raise ValueError(f"The output {str(path)!r} is a file of the input folder "
                             f"{str(src)!r}; write the result elsewhere.")
        same = src.resolve() == path.resolve()
        if not same and src.exists() and path.exists():
            try:
                same = os.path.samefile(src, path)
            except OSError:
                same = False
        if same:
            raise ValueError(f"The output {str(path)!r} is the input {str(src)!r}; write the "
                             "result to another file.")
    if path.exists() and not overwrite:
        raise FileExistsError(f"{str(path)!r} exists; pass {hint} to replace it.")
    if path.is_symlink() and not path.exists() and not overwrite:
        raise FileExistsError(f"{str(path)!r} is a link to a missing file; pass {hint} to "
                              "replace the link with the output.")
    return path


def check_output_folder(path, *, overwrite: bool = False, entries=(), inputs=(),
                        hint: str = "overwrite=True") -> Path:
    """Check that the folder `path` may be written whole (made, or replaced with
    `overwrite`): not inside the deepae package, not holding or being one of `inputs`, and
    an existing folder only when it is a real folder (not a link) that holds nothing but
    the `entries` its writer makes (or nothing). Returns it as a `Path`.

    Raises
    ------
    FileExistsError
        If it exists and `overwrite` is false.
    ValueError
        If it is a file, a link, inside the package, holds an input, or holds anything
        other than `entries` (named).
    """
    path = Path(path)
    if path.resolve().is_relative_to(_PACKAGE):
        raise ValueError(f"The output {str(path)!r} is inside the deepae package ({_PACKAGE}), "
                         "whose files (the shipped models among them) are not outputs; write "
                         "the result to another folder.")
    for src in _expanded(inputs):
        if Path(src).resolve().is_relative_to(path.resolve()):
            raise ValueError(f"The output folder {str(path)!r} holds the input {str(src)!r}; "
                             "write the result elsewhere.")
    if not (path.exists() or path.is_symlink()):
        return path
    if not overwrite:
        raise FileExistsError(f"{str(path)!r} exists; pass {hint} to replace it.")
    if path.is_symlink() or not path.is_dir():
        raise ValueError(f"Expected a folder for the output; {str(path)!r} is not one (a file "
                         "or a link): deepae does not replace it.")
    other = sorted(p.name for p in path.iterdir() if p.name not in set(entries))
    if other:
        raise ValueError(f"The folder {str(path)!r} holds {other[:5]}, which deepae did not "
                         f"write there (it writes only {sorted(entries)}); deepae replaces "
                         "only a folder of its own output. Choose another path.")
    return path


def atomic_write(path, data: bytes | Callable[[BinaryIO], object], *,
                 overwrite: bool = True) -> Path:
    """Write `data` (bytes, or a function writing to a binary file object) to `path`
    atomically; returns the path.

    Parameters
    ----------
    path : str or Path
        The file to write; its folder is created if missing.
    data : bytes or callable
        The file's content, or ``fn(f)`` that writes it to the open binary file `f`.
    overwrite : bool, default=True
        Replace an existing file. When false an existing file raises `FileExistsError`
        (checked again just before the move, so a file created meanwhile is not replaced).
    """
    path = check_output_path(path, overwrite=overwrite)
    if path.is_symlink() and path.exists():  # replace the file it points to, keep the link
        path = path.resolve()
        check_output_path(path, overwrite=overwrite)
    path.parent.mkdir(parents=True, exist_ok=True)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
    for _ in range(100):
        # beside the target, named after it (cut short: the name must stay a legal one)
        tmp = path.parent / f".{path.name[:40]}.{secrets.token_hex(6)}.tmp"
        try:
            fd = os.open(tmp, flags, 0o666)  # the umask applies, as for open()
            break
        except FileExistsError:
            continue
    else:  # pragma: no cover - 100 collisions of 48 random bits
        raise FileExistsError(errno.EEXIST, "cannot create a temporary file", str(path.parent))
    try:
        with os.fdopen(fd, "wb") as f:
            if callable(data):
                data(f)
            else:
                f.write(data)
            f.flush()
            os.fsync(f.fileno())
        if overwrite:
            os.replace(tmp, path)
        else:
            # link() fails if the target exists: no race between the check and the move
            try:
                os.link(tmp, path)
            except FileExistsError:
                raise FileExistsError(f"{str(path)!r} exists; pass overwrite=True (--overwrite "
                                      "on the command line) to replace it.") from None
            except OSError:  # a file system without hard links
                if path.exists():
                    raise FileExistsError(f"{str(path)!r} exists; pass overwrite=True "
                                          "(--overwrite on the command line) to replace it."
                                          ) from None
                os.replace(tmp, path)
            tmp.unlink(missing_ok=True)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path
