"""Reading data from files: IDX, .npy/.npz, CSV, Parquet and folders of images."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np

from deepae._validation import as_array

__all__ = ["read_idx", "read_data", "read_image_folder", "read_image", "read_images",
           "write_image", "IMAGE_SUFFIXES"]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff")
_IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path) -> np.ndarray:
    """Read an IDX file (the MNIST format), gzipped or not.

    The header is two zero bytes, a dtype code, the number of dimensions, then each dimension
    as a big-endian uint32. Raises `ValueError` if the file is not IDX or is truncated.
    """
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            data = f.read()
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


def read_image(path) -> np.ndarray:
    """Read one 8-bit image file: (h, w) uint8 for grayscale, (h, w, 3) for colour.

    16-bit and floating-point files are refused with an error that says so (convert them to
    8-bit first, or pass a float array in [0, 1] to the Python API instead).
    """
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"No image file at {str(path)!r}.")
    try:
        with Image.open(path) as im:
            mode = im.mode
            if mode in ("I;16", "I;16B", "I;16L", "I", "F"):
                raise ValueError(f"{str(path)!r} is a {'16-bit' if mode.startswith('I;16') else mode + '-mode'} "
                                 "image; expected 8-bit grayscale or colour. Convert it to 8 bits "
                                 "(or pass a float array in [0, 1] from Python).")
            if mode in ("L", "1"):
                return np.asarray(im.convert("L"))
            return np.asarray(im.convert("RGB"))
    except UnidentifiedImageError:
        raise ValueError(f"{str(path)!r} is not an image file that Pillow can read; expected "
                         f"one of {', '.join(IMAGE_SUFFIXES)}.") from None


def read_images(source) -> list[np.ndarray]:
    """Read an image file, or every image file of a folder (sorted by name), into a list of
    uint8 arrays of any sizes."""
    source = Path(source)
    if source.is_dir():
        files = sorted(p for p in source.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise ValueError(f"Expected image files ({', '.join(IMAGE_SUFFIXES)}) in folder "
                             f"{str(source)!r}; found none.")
        return [read_image(p) for p in files]
    return [read_image(source)]


def write_image(path, image) -> Path:
    """Write a uint8 (h, w) or (h, w, 3) image; the format follows the suffix (PNG, JPEG,
    ...). The file is written atomically: an existing file is replaced whole or not at all."""
    import io as _io

    from PIL import Image

    from deepae.persistence import atomic_write_bytes

    path = Path(path)
    image = np.asarray(image)
    if image.dtype != np.uint8 or image.ndim not in (2, 3):
        raise ValueError(f"Expected a uint8 (h, w) or (h, w, 3) image to write; received "
                         f"{image.dtype} {image.shape}.")
    if image.ndim == 3 and image.shape[-1] == 1:
        image = image[..., 0]
    fmt = Image.registered_extensions().get(path.suffix.lower())
    if fmt is None:
        raise ValueError(f"Cannot tell the image format of {str(path)!r} from its suffix; "
                         f"use one of {', '.join(IMAGE_SUFFIXES)}.")
    buf = _io.BytesIO()
    Image.fromarray(image).save(buf, format=fmt)
    atomic_write_bytes(path, buf.getvalue())
    return path


def read_image_folder(folder, *, grayscale: bool | None = None) -> np.ndarray:
    """Read every image in `folder` (sorted by name) into a uint8 array (n, h, w[, c]).

    All images must have one size. Grayscale files give (n, h, w); colour ones (n, h, w, 3).
    """
    from PIL import Image

    folder = Path(folder)
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise ValueError(f"Expected image files ({', '.join(IMAGE_SUFFIXES)}) in folder "
                         f"{str(folder)!r}; found none.")
    images = []
    for p in files:
        with Image.open(p) as im:
            if grayscale is None:
                grayscale = im.mode in ("L", "1", "I;16", "I", "LA")
            images.append(np.asarray(im.convert("L" if grayscale else "RGB")))
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
            keys = list(npz.files)
            pick = key or next((k for k in ("x", "x_train", "X", "data") if k in keys), None)
            if pick is None and len(keys) == 1:
                pick = keys[0]
            if pick not in keys:
                raise ValueError(f"Expected an array named {key or 'x'!r} in {str(path)!r}; "
                                 f"found {keys}. Choose one with key=... (CLI: --key).")
            return as_array(npz[pick], f"{path.name}[{pick!r}]")
    if name.endswith((".csv", ".csv.gz", ".parquet", ".pq")):
        try:
            import pandas as pd
        except ImportError as e:
            raise ImportError('Reading CSV/Parquet needs pandas: pip install "deepae[tables]"') \
                from e
        df = pd.read_parquet(path) if name.endswith((".parquet", ".pq")) else pd.read_csv(path)
        return as_array(df, path.name)
    if "ubyte" in name or name.endswith((".idx", ".idx.gz")):
        return read_idx(path)
    raise ValueError(f"Expected data as .npy, .npz, .csv, .parquet, IDX or a folder of images; "
                     f"received {str(path)!r}.")
