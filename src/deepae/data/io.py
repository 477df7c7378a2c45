"""Reading data from files: IDX, .npy/.npz, CSV, Parquet and folders of images."""

from __future__ import annotations

import gzip
import math
import re
import struct
import threading
import warnings
from pathlib import Path

import numpy as np

from deepae._validation import as_array

__all__ = ["read_idx", "read_data", "read_data_bytes", "read_image_folder", "read_image",
           "read_images", "write_image", "image_bytes", "IMAGE_SUFFIXES"]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff")
_IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def _read_idx_bytes(f, path) -> bytes:
    """The header, then no more than the bytes it declares and one more (to see padding):
    memory follows the header's claim, checked, never a gzip bomb's inflated size."""
    head = f.read(4)
    if len(head) == 4 and head[0] == 0 and head[1] == 0 and head[2] in _IDX_DTYPES:
        head += f.read(4 * head[3])
        if len(head) == 4 + 4 * head[3]:
            dims = struct.unpack(f">{head[3]}I", head[4:])
            want = math.prod(dims) * np.dtype(_IDX_DTYPES[head[2]]).itemsize + 1
            chunks = [head]
            while want > 0:  # in pieces: a header's claim allocates nothing by itself
                chunk = f.read(min(want, 1 << 24))
                if not chunk:
                    break
                chunks.append(chunk)
                want -= len(chunk)
            return b"".join(chunks)
    return head


def read_idx(path) -> np.ndarray:
    """Read an IDX file (the MNIST format), gzipped or not.

    The header is two zero bytes, a dtype code, the number of dimensions, then each dimension
    as a big-endian uint32. Raises `ValueError` if the file is not IDX or is truncated.
    """
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            data = _read_idx_bytes(f, path)
    except (OSError, EOFError) as e:
        raise ValueError(f"Cannot read IDX file {str(path)!r}: {e}") from e
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in _IDX_DTYPES:
        raise ValueError(f"{str(path)!r} is not an IDX file: expected magic 00 00 <dtype> <ndim>, "
                         f"found {data[:4].hex(' ')}.")
    ndim = data[3]
    if len(data) < 4 + 4 * ndim:
        raise ValueError(f"{str(path)!r} is truncated: its header needs {4 + 4 * ndim} bytes.")
    dims = struct.unpack(f">{ndim}I", data[4: 4 + 4 * ndim])
    dtype = np.dtype(_IDX_DTYPES[data[2]])
    expected = int(np.prod(dims)) * dtype.itemsize
    body = data[4 + 4 * ndim:]
    if len(body) != expected:
        raise ValueError(f"{str(path)!r} is truncated or padded: header says {dims} "
                         f"({expected} bytes of data), found {len(body)}.")
    return np.frombuffer(body, dtype=dtype).reshape(dims).astype(dtype.newbyteorder("="))


# Pillow modes of 8-bit samples that deepae reads: grayscale ones give (h, w), the others
# (palette, colour, print separations) (h, w, 3)
_GRAY_MODES = ("1", "L", "LA", "La")
_COLOUR_MODES = ("P", "PA", "RGB", "RGBA", "RGBa", "RGBX", "CMYK", "YCbCr")
_ALPHA_MODES = ("LA", "La", "PA", "RGBA", "RGBa")
# Image.open reads only the header, where Pillow's decompression-bomb check runs; its warning
# is made an error there, under a lock (warning filters are global to the process and the
# streaming pipeline reads images in several threads)
_OPEN_LOCK = threading.Lock()


def _first_line(e) -> str:
    return (str(e).strip().splitlines() or [type(e).__name__])[0]


def _raw_mode(im) -> str:
    """How the file stores its samples (``"RGB;16B"``): Pillow opens 16-bit colour PNGs as
    8-bit mode "RGB" and would keep only the high bytes."""
    tile = getattr(im, "tile", None) or []
    args = tile[0][3] if tile else None
    raw = args[0] if isinstance(args, tuple) and args else args
    return raw if isinstance(raw, str) else ""


def _depth_error(path, mode, raw):
    """The error for a file whose samples are not 8-bit, or None."""
    if mode.startswith("I;16") or re.search(r";16[BLN]$", raw):
        depth = "16-bit"
    elif mode == "F" or mode.startswith("F;"):
        depth = "32-bit float"
    elif mode == "I" or mode.startswith("I;32"):
        depth = "32-bit integer"
    elif mode not in _GRAY_MODES + _COLOUR_MODES:
        depth = "unsupported"
    else:
        return None
    stored = f", stored as {raw!r}" if raw and depth == "16-bit" and raw != mode else ""
    return ValueError(
        f"{str(path)!r} holds {depth} pixels (Pillow mode {mode!r}{stored}); expected 8-bit "
        f"grayscale or colour (modes {', '.join(_GRAY_MODES + _COLOUR_MODES)}). deepae "
        "neither clips nor rescales them: convert the file to 8 bits, or from Python pass a "
        "float array in [0, 1] (16-bit values divided by 65535).")


def _load_image(path) -> tuple[np.ndarray, bool]:
    """The pixels of one 8-bit image file, and whether a transparency it had was dropped.

    Every image reader goes through here, so they share one rule: (h, w) uint8 for grayscale,
    (h, w, 3) for colour; 16-bit, 32-bit and float files refused (never clipped); alpha
    dropped (the caller warns; an opaque alpha loses nothing and is not reported); a
    decompression bomb, a truncated file or one that is no image refused with a one-line
    `ValueError` that names it.
    """
    from PIL import Image, UnidentifiedImageError

    if hasattr(path, "read"):  # a binary file object (the command line's standard input)
        source, path = path, getattr(path, "name", "<stream>")
    else:
        source = path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"No image file at {str(path)!r}.")
    try:
        with _OPEN_LOCK, warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            im = Image.open(source)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        found = re.search(r"\((\d+) pixels\)", str(e))
        size = f"an image of {int(found.group(1)):,} pixels" if found else "too large an image"
        raise ValueError(
            f"{str(path)!r} is {size}, more than the limit of {Image.MAX_IMAGE_PIXELS:,} "
            "(PIL.Image.MAX_IMAGE_PIXELS, Pillow's guard against decompression bombs); refused "
            "before decoding. Raise that limit only for a file you trust.") from e
    except UnidentifiedImageError as e:
        raise ValueError(f"{str(path)!r} is not an image file that Pillow can read; expected "
                         f"one of {', '.join(IMAGE_SUFFIXES)}.") from e
    except Exception as e:  # a hostile header can fail anywhere in a format's parser
        raise ValueError(f"Cannot read the image file {str(path)!r}: {_first_line(e)}.") from e
    with im:
        mode = im.mode
        error = _depth_error(path, mode, _raw_mode(im))
        if error is not None:
            raise error
        try:
            im.load()
        except Exception as e:  # truncated or corrupt pixel data
            raise ValueError(f"{str(path)!r} is truncated or corrupt: {_first_line(e)}.") from e
        gray = mode in _GRAY_MODES
        if mode in _ALPHA_MODES or "transparency" in im.info:
            pixels = np.asarray(im.convert("LA" if gray else "RGBA"))
            dropped = bool(pixels[..., -1].min() < 255)
            pixels = pixels[..., 0] if gray else pixels[..., :3]
        else:
            pixels, dropped = np.asarray(im.convert("L" if gray else "RGB")), False
    return np.ascontiguousarray(pixels), dropped


def _warn_alpha(paths, folder=None, *, stacklevel=3, note=""):
    """One warning for the images whose transparency was dropped."""
    if not paths:
        return
    names = ", ".join(Path(p).name for p in paths[:3]) + (", ..." if len(paths) > 3 else "")
    where = (f"{len(paths)} image(s) in {str(folder)!r} ({names}{note})" if folder is not None
             else repr(str(paths[0])))
    warnings.warn(f"Dropped the alpha channel of {where}: deepae reads grayscale or RGB "
                  "images, and transparent pixels keep the colour values stored under them.",
                  UserWarning, stacklevel=stacklevel)


def _as_mode(image, mode) -> np.ndarray:
    """A (h, w) or (h, w, 3) uint8 image as grayscale ("L", Pillow's luma) or "RGB"."""
    from PIL import Image

    if mode == "L" and image.ndim == 3:
        return np.asarray(Image.fromarray(image).convert("L"))
    if mode == "RGB" and image.ndim == 2:
        return np.repeat(image[..., None], 3, axis=-1)
    return image


def _image_files(folder) -> list[Path]:
    folder = Path(folder)
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise ValueError(f"Expected image files ({', '.join(IMAGE_SUFFIXES)}) in folder "
                         f"{str(folder)!r}; found none.")
    return files


def read_image(path) -> np.ndarray:
    """Read one 8-bit image file: (h, w) uint8 for grayscale, (h, w, 3) for colour.

    `path` is a file name, or a binary file object (``io.BytesIO``) whose ``name``, if it
    has one, names it in errors.

    The rule of every image reader of deepae: 16-bit, 32-bit and floating-point files are
    refused with a `ValueError` that says so (convert them to 8 bits first, or pass a float
    array in [0, 1] to the Python API instead), never clipped; an alpha channel is dropped
    with a `UserWarning` (unless it is fully opaque); a file larger than Pillow's
    decompression-bomb limit, a truncated file or one that is no image gives a one-line
    `ValueError` that names it.
    """
    image, dropped = _load_image(path)
    _warn_alpha([path] if dropped else [])
    return image


def read_images(source) -> list[np.ndarray]:
    """Read an image file, or every image file of a folder (sorted by name), into a list of
    uint8 arrays of any sizes (the rule of `read_image`; one warning for the folder)."""
    source = Path(source)
    if not source.is_dir():
        return [read_image(source)]
    images, dropped = [], []
    for p in _image_files(source):
        image, lost = _load_image(p)
        images.append(image)
        if lost:
            dropped.append(p)
    _warn_alpha(dropped, source)
    return images


def write_image(path, image, *, overwrite: bool = True) -> Path:
    """Write a uint8 (h, w) or (h, w, 3) image; the format follows the suffix (PNG, JPEG,
    ...). The file is written atomically: an existing file is replaced whole or not at all."""
    from deepae.fileio import atomic_write

    path = Path(path)
    return atomic_write(path, image_bytes(image, path.suffix, name=str(path)),
                        overwrite=overwrite)


def image_bytes(image, suffix: str = ".png", *, name: str | None = None) -> bytes:
    """The bytes of the image file that `write_image` writes, in the format of `suffix`
    (``".png"``, ``".jpg"``, ...); `name` names the file in errors."""
    import io as _io

    from PIL import Image

    image = np.asarray(image)
    if image.dtype != np.uint8 or image.ndim not in (2, 3):
        raise ValueError(f"Expected a uint8 (h, w) or (h, w, 3) image to write; received "
                         f"{image.dtype} {image.shape}.")
    if image.ndim == 3 and image.shape[-1] == 1:
        image = image[..., 0]
    fmt = Image.registered_extensions().get(str(suffix).lower())
    if fmt is None:
        raise ValueError(f"Cannot tell the image format of {name or 'the output'!r} from its "
                         f"suffix {suffix!r}; use one of {', '.join(IMAGE_SUFFIXES)}.")
    buf = _io.BytesIO()
    Image.fromarray(image).save(buf, format=fmt)
    return buf.getvalue()


def read_image_folder(folder, *, grayscale: bool | None = None) -> np.ndarray:
    """Read every image in `folder` (sorted by name) into a uint8 array (n, h, w[, c]).

    All images must have one size, and follow the rule of `read_image` (8-bit only; one
    warning for the images whose alpha channel is dropped). Grayscale give (n, h, w), colour
    (n, h, w, 3); by default the first image decides, and the others are converted to it.
    """
    folder = Path(folder)
    files = _image_files(folder)
    images, dropped = [], []
    for p in files:
        image, lost = _load_image(p)
        if grayscale is None:
            grayscale = image.ndim == 2
        images.append(_as_mode(image, "L" if grayscale else "RGB"))
        if lost:
            dropped.append(p)
    _warn_alpha(dropped, folder)
    sizes = {im.shape[:2] for im in images}
    if len(sizes) > 1:
        first = images[0].shape[:2]
        odd = next(p for p, im in zip(files, images, strict=True) if im.shape[:2] != first)
        raise ValueError(f"Expected images of one size in {str(folder)!r}; {files[0].name} is "
                         f"{first[1]}x{first[0]} but {odd.name} is "
                         f"{images[files.index(odd)].shape[1]}x{images[files.index(odd)].shape[0]} "
                         f"({len(sizes)} sizes in all). Resize or crop them first.")
    return np.stack(images)


def read_data(source, *, key: str | None = None) -> np.ndarray:
    """Load training data from an array, a file or a folder.

    Parameters
    ----------
    source : array-like, DataFrame, or path
        ``.npy``; ``.npz`` (the array named `key`, or ``x``/``x_train``, or the only one);
        ``.csv`` and ``.parquet`` (numeric columns only); a folder of PNG/JPEG images;
        ``.idx``/``-ubyte``(``.gz``) IDX files.
    """
    if not isinstance(source, str | Path):
        return as_array(source, "x")
    path = Path(source)
    if not path.exists():
        raise FileNotFoundError(f"No data at {str(path)!r}.")
    if path.is_dir():
        return read_image_folder(path)
    name = path.name.lower()
    if name.endswith(".npy"):
        return as_array(np.load(path, allow_pickle=False), str(path))
    if name.endswith(".npz"):
        with np.load(path, allow_pickle=False) as npz:
            return _npz_array(npz, key, str(path), path.name)
    if name.endswith((".csv", ".csv.gz", ".parquet", ".pq")):
        return as_array(_read_frame(path, name.endswith((".parquet", ".pq"))), path.name)
    if "ubyte" in name or name.endswith((".idx", ".idx.gz")):
        return read_idx(path)
    raise ValueError(f"Expected data as .npy, .npz, .csv, .parquet, IDX or a folder of images; "
                     f"received {str(path)!r}.")


def _npz_array(npz, key, where, short) -> np.ndarray:
    """The array named `key` of an open .npz, or ``x``/``x_train``/``X``/``data``, or its
    only one."""
    keys = list(npz.files)
    pick = key or next((k for k in ("x", "x_train", "X", "data") if k in keys), None)
    if pick is None and len(keys) == 1:
        pick = keys[0]
    if pick not in keys:
        raise ValueError(f"Expected an array named {key or 'x'!r} in {where!r}; "
                         f"found {keys}. Choose one with key=... (CLI: --key).")
    return as_array(npz[pick], f"{short}[{pick!r}]")


def _read_frame(source, parquet: bool):
    """A CSV (its first row the header) or Parquet file, or file object, as a DataFrame."""
    try:
        import pandas as pd
    except ImportError as e:
        raise ImportError('Reading CSV/Parquet needs pandas: pip install "deepae[tables]"') \
            from e
    return pd.read_parquet(source) if parquet else pd.read_csv(source)


_NPY_MAGIC, _ZIP_MAGIC, _PARQUET_MAGIC = b"\x93NUMPY", b"PK\x03\x04", b"PAR1"


def read_data_bytes(data: bytes, *, key: str | None = None,
                    name: str = "standard input") -> np.ndarray:
    """Load an array from the bytes of a ``.npy``, ``.npz``, Parquet or CSV file.

    The format is told by the first bytes: NumPy's magic (``.npy``), a zip archive
    (``.npz``: the array named `key`, as `read_data`), Parquet's ``PAR1``; anything else is
    read as CSV text whose first row is the header, as `read_data` reads a ``.csv`` file;
    gzip-compressed or other bytes that are not UTF-8 text are refused with a `ValueError`
    that says so. `name` names the source in errors.
    """
    import io as _io

    data = bytes(data)
    buf = _io.BytesIO(data)
    if data.startswith(_NPY_MAGIC):
        return as_array(np.load(buf, allow_pickle=False), name)
    if data.startswith(_ZIP_MAGIC):
        with np.load(buf, allow_pickle=False) as npz:
            return _npz_array(npz, key, name, name)
    if data.startswith(_PARQUET_MAGIC):
        return as_array(_read_frame(buf, True), name)
    expected = f"Expected .npy, .npz or Parquet bytes, or CSV text, on {name}"
    if data.startswith(GZIP_MAGIC) or b"\0" in data[:4096]:
        raise ValueError(f"{expected}; received {bytes_kind(data)} (starting "
                         f"{data[:8].hex(' ')}).")
    try:
        return as_array(_read_frame(buf, False), name)
    except UnicodeDecodeError as e:
        raise ValueError(f"{expected}; received {bytes_kind(data)} (byte "
                         f"0x{e.object[e.start]:02x} at position {e.start:,}).") from e


GZIP_MAGIC = b"\x1f\x8b"


def bytes_kind(head: bytes) -> str:
    """What bytes that were expected as CSV text are, for an error message: gzip-compressed
    (they start with 1f 8b), else not UTF-8 text."""
    if bytes(head).startswith(GZIP_MAGIC):
        return "gzip-compressed bytes (decompress them first, e.g. with zcat)"
    return "bytes that are not UTF-8 text"
