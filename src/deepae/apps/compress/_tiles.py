"""The codec's transforms in tiles: memory bounded by the tile, results those of the whole
image.

The latent grid (``lh`` x ``lw`` positions, each a ``stride`` x ``stride`` block of pixels) is
cut into cores of ``tile`` x ``tile`` positions; each core is computed from a window that adds
``halo`` positions of context on every side (`deepae.nn.compression.receptive_halo`, the
transforms' reach) and only the core is kept. Windows start on multiples of the stride and
their borders that are not the image's lie beyond the reach of every kept value, so each
kept value is computed from exactly the inputs it has in the whole image: the tiled result
is the untiled one up to float rounding (the convolutions may sum in another order on
another shape).
"""

from __future__ import annotations

import numpy as np

__all__ = ["grid", "reflect", "analyse", "synthesise"]


def grid(lh: int, lw: int, tile: int, halo: int):
    """Yield ``(core, window)`` for each tile of a ``lh`` x ``lw`` latent grid, in row-major
    order: ``(i0, i1, j0, j1)`` rows ``i0:i1`` and columns ``j0:j1`` of latent positions, the
    window being the core widened by `halo` on each side (within the grid)."""
    for i0 in range(0, lh, tile):
        i1 = min(i0 + tile, lh)
        for j0 in range(0, lw, tile):
            j1 = min(j0 + tile, lw)
            yield (i0, i1, j0, j1), (max(0, i0 - halo), min(lh, i1 + halo),
                                     max(0, j0 - halo), min(lw, j1 + halo))


def reflect(idx: np.ndarray, n: int) -> np.ndarray:
    """Indices into a side of `n` pixels for positions ``idx >= 0``, those past the end
    mirrored as ``np.pad(mode="symmetric")`` pads (with period ``2 n``, for pads longer than
    the side)."""
    m = idx % (2 * n)
    return np.where(m < n, m, 2 * n - 1 - m)


def analyse(fn, region, lh: int, lw: int, stride: int, tile: int, halo: int, *,
            rounded: bool = False) -> np.ndarray:
    """The latent of every plane, tile by tile.

    `region(r0, r1, c0, c1)` gives rows ``r0:r1`` and columns ``c0:c1`` of the planes padded
    to ``lh * stride`` x ``lw * stride``: (p, r1 - r0, c1 - c0, m) float32. `fn` is the
    analysis transform, (1, rows, cols, m) -> (1, rows / stride, cols / stride, M); it runs
    on one plane at a time. Returns (p, lh, lw, M) float32, or with `rounded` int32 (rounded
    tile by tile: no float copy of the whole latent).
    """
    s, y = stride, None
    for (i0, i1, j0, j1), (a0, a1, b0, b1) in grid(lh, lw, tile, halo):
        x = region(s * a0, s * a1, s * b0, s * b1)
        for k in range(len(x)):
            part = np.asarray(fn(x[k:k + 1]))[0]  # (a1 - a0, b1 - b0, M)
            if y is None:
                y = np.empty((len(x), lh, lw, part.shape[-1]),
                             np.int32 if rounded else np.float32)
            core = part[i0 - a0:i1 - a0, j0 - b0:j1 - b0]
            y[k, i0:i1, j0:j1] = np.rint(core) if rounded else core
    return y


def synthesise(fn, latents, h: int, w: int, stride: int, tile: int, halo: int):
    """Decode `latents` tile by tile: yield ``((r0, r1, c0, c1), planes)``, the decoded
    planes (p, r1 - r0, c1 - c0, m) float32 of image rows ``r0:r1`` and columns ``c0:c1``
    (the tiles cover the `h` x `w` image once).

    `latents` is a (p, lh, lw, M) array or a list of p (lh, lw, M) arrays (any numeric
    dtype); `fn` is the synthesis transform, (1, rows, cols, M) -> (1, rows * stride,
    cols * stride, m), run on one plane at a time.
    """
    s = stride
    lh, lw = latents[0].shape[:2]
    for (i0, i1, j0, j1), (a0, a1, b0, b1) in grid(lh, lw, tile, halo):
        r0, r1, c0, c1 = s * i0, min(h, s * i1), s * j0, min(w, s * j1)
        parts = []
        for y in latents:
            z = np.ascontiguousarray(y[a0:a1, b0:b1], np.float32)[None]
            out = np.asarray(fn(z))[0]  # (s * (a1 - a0), s * (b1 - b0), m)
            parts.append(out[r0 - s * a0:r1 - s * a0, c0 - s * b0:c1 - s * b0])
        yield (r0, r1, c0, c1), np.stack(parts)
