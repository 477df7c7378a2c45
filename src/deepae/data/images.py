"""Images in, images out: one reader of image arguments for every image application.

Images are (h, w) or (h, w, c) arrays, uint8 (0-255) or float in [0, 1]; a batch is
(n, h, w, c), and a list may hold images of different sizes. `to_float_images` reads any of
these into float32 (h, w, c) arrays and remembers the layout; `from_float_images` gives
results back in the caller's layout and dtype.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

__all__ = ["to_float_images", "from_float_images", "random_patches", "pad_to_multiple"]


def _one_image(img, name, i=None, strict=True):
    where = f"{name}[{i}]" if i is not None else name
    img = np.asarray(img)
    if img.ndim >= 2 and 0 in img.shape[:2]:  # scikit-learn's words for an empty table
        what = "sample(s)" if img.shape[0] == 0 else "feature(s)"
        raise ValueError(f"Found array with 0 {what} (shape={img.shape}) while a minimum of "
                         f"1 is required: `{where}` is an image with no pixels.")
    if img.dtype == np.uint8:
        out = img.astype(np.float32) / 255.0
    elif img.dtype.kind == "f":
        out = img.astype(np.float32)
        if not np.isfinite(out).all():
            raise ValueError(f"Expected finite pixel values in `{where}`; received NaN or inf.")
        lo, hi = float(out.min()), float(out.max())
        if strict and (lo < -1e-3 or hi > 1 + 1e-3):
            raise ValueError(f"Expected float pixels in [0, 1] in `{where}`; received values in "
                             f"[{lo:.4g}, {hi:.4g}]. Divide 8-bit data by 255.")
    elif img.dtype.kind in "ui":
        raise TypeError(f"Expected `{where}` as uint8 (0-255) or float in [0, 1]; received "
                        f"{img.dtype} ({8 * img.dtype.itemsize}-bit) pixels. Convert 16-bit "
                        "images to float in [0, 1] (divide by 65535) or to uint8.")
    elif img.dtype.kind == "c":  # scikit-learn's wording and error type for complex data
        raise ValueError(f"Complex data not supported: expected `{where}` as an image array "
                         f"(uint8 or float); received dtype {img.dtype}.")
    else:
        raise TypeError(f"Expected `{where}` as an image array (uint8 or float); received "
                        f"dtype {img.dtype}.")
    if out.ndim == 2:
        out = out[..., None]
    if out.ndim != 3 or out.shape[-1] not in (1, 3):
        raise ValueError(f"Expected `{where}` of shape (h, w), (h, w, 1) or (h, w, 3); "
                         f"received {img.shape}.")
    return out


def to_float_images(images, name="images", *, batch_3d=False, strict=True):
    """Read `images` into a list of float32 (h, w, c) arrays in [0, 1], and its layout.

    Accepts one (h, w) or (h, w, c) image, a batch (n, h, w, c) or a list of images of any
    sizes; with `batch_3d`, a 3-D array whose last axis is not 1 or 3 is a grayscale batch
    (n, h, w) (as MNIST comes). Returns ``(images, layout)``; `from_float_images` turns
    results back into the caller's layout and dtype.
    """
    if isinstance(images, str | Path):
        from deepae.data.io import read_images

        images = read_images(images)
    if hasattr(images, "toarray") and hasattr(images, "nnz"):  # scipy.sparse
        raise TypeError(f"Sparse data is not supported: expected `{name}` as dense image "
                        f"arrays; received a {type(images).__name__}.")
    if isinstance(images, list | tuple):
        if not images:
            raise ValueError(f"Expected at least one image in `{name}`; received an empty list.")
        out = [_one_image(im, name, i, strict) for i, im in enumerate(images)]
        dtypes = {np.asarray(im).dtype for im in images}
        layout = {"kind": "list", "dtype": dtypes.pop() if len(dtypes) == 1 else np.float32,
                  "squeeze": [np.asarray(im).ndim == 2 for im in images]}
        return out, layout
    arr = np.asarray(images)
    if arr.ndim == 3 and batch_3d and arr.shape[-1] not in (1, 3):
        arr = arr[..., None]
        layout = {"kind": "batch3", "dtype": arr.dtype}
        return [_one_image(im, name, i, strict) for i, im in enumerate(arr)], layout
    if arr.ndim in (2, 3):
        return [_one_image(arr, name, None, strict)], {"kind": "single", "dtype": arr.dtype,
                                         "squeeze": arr.ndim == 2}
    if arr.ndim == 4:
        if len(arr) == 0:
            raise ValueError(f"Expected at least one image in `{name}`; received shape "
                             f"{arr.shape}.")
        return [_one_image(im, name, i, strict) for i, im in enumerate(arr)], {"kind": "batch",
                                                                     "dtype": arr.dtype}
    raise ValueError(f"Expected `{name}` as one (h, w) or (h, w, c) image or a batch "
                     f"(n, h, w, c); received an array of shape {arr.shape}.")


def _cast(img, dtype):
    img = np.clip(img, 0.0, 1.0)
    if np.dtype(dtype) == np.uint8:
        return np.round(img * 255.0).astype(np.uint8)
    return img.astype(dtype if np.dtype(dtype).kind == "f" else np.float32)


def from_float_images(results, layout):
    """The inverse of `to_float_images`: clip to [0, 1], cast back, restore the layout."""
    dtype = layout["dtype"]
    if layout["kind"] == "single":
        img = _cast(results[0], dtype)
        return img[..., 0] if layout["squeeze"] else img
    if layout["kind"] == "list":
        return [_cast(r, dtype)[..., 0] if sq else _cast(r, dtype)
                for r, sq in zip(results, layout["squeeze"], strict=True)]
    out = np.stack([_cast(r, dtype) for r in results])
    return out[..., 0] if layout["kind"] == "batch3" else out


# -- training patches -------------------------------------------------------------------------
def random_patches(images, size, n, rng, *, flips=True):
    """`n` random `size` x `size` crops of `images` (a list of (h, w, c) arrays), with random
    horizontal and vertical flips and 90-degree rotations when `flips`; shape (n, size, size, c).
    Images are drawn in proportion to their area."""
    areas = np.array([im.shape[0] * im.shape[1] for im in images], dtype=np.float64)
    which = rng.choice(len(images), size=n, p=areas / areas.sum())
    out = np.empty((n, size, size, images[0].shape[-1]), np.float32)
    for k, i in enumerate(which):
        im = images[i]
        y = rng.integers(0, im.shape[0] - size + 1)
        x = rng.integers(0, im.shape[1] - size + 1)
        p = im[y:y + size, x:x + size]
        if flips:
            if rng.random() < 0.5:
                p = p[:, ::-1]
            if rng.random() < 0.5:
                p = p[::-1]
            if rng.random() < 0.5:
                p = np.swapaxes(p, 0, 1)
        out[k] = p
    return out


def pad_to_multiple(img, mult):
    """Pad a (h, w, c) image (mirrored) at the bottom and right to sides that are multiples
    of `mult`."""
    h, w = img.shape[:2]
    ph, pw = (-h) % mult, (-w) % mult
    if ph or pw:
        img = np.pad(img, ((0, ph), (0, pw), (0, 0)), mode="symmetric")
    return img
