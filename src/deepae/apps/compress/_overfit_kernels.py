"""Compiled kernels of the overfitted ``.dae`` format (numba): the integer context model and
the rANS coder of the latents.

Everything here that decides a decoded bit is integer arithmetic (int64), so encoder and
decoder agree on every machine:

- the context model (ARM) of a latent reads the ``C`` already-coded latents at `offsets` of
  the same grid (0 outside it), in fixed point with ``ARM_BITS`` fractional bits: an input
  ``x`` enters as ``x << 8``; a hidden layer computes ``acc = b + sum(x * W) + (x << 8)``
  (weights with 8 fractional bits, biases with 16), then ``max(acc, 0)`` and
  ``(acc + 128) >> 8``, clamped to ``+-2**30``; the output layer gives ``mu`` and the log
  scale ``s`` with 8 fractional bits;
- the table: scale bin ``j = clip((10 s + 46 * 256 + 128) >> 8, 0, N_SCALES - 1)`` (bins
  of 0.1 from -4.6), mean ``r = (mu + 128) >> 8`` and mean bin
  ``m = (mu - 256 r + 136) >> 4`` (bins of 1/16);
- rANS (Duda 2013; the byte-wise variant of Giesen's ryg_rans): 32-bit state, 16-bit
  frequencies, bytes out. The encoder codes the symbols in reverse, the decoder reads them
  forward; the decoder checks every byte it reads against the end of the payload and that
  its final state is the encoder's initial one.

Latents: the grids of one plane, finest first, concatenated row-major (``shapes`` gives each
grid's (h, w)). A value outside its table's range is coded as the escape symbol, then as its
32-bit two's complement in two uniform 16-bit halves.
"""

from __future__ import annotations

import numpy as np
from numba import njit

__all__ = ["RANS_L", "MAX_LATENT", "arm_tables", "code_length", "encode", "decode",
           "OK", "TRUNCATED", "BAD_STATE", "OUT_OF_RANGE", "TRAILING"]

RANS_L = 1 << 23
_SCALE = 16
_MASK = (1 << _SCALE) - 1
_CLAMP = 1 << 30
MAX_LATENT = 1 << 20
N_SCALES, N_MEANS = 87, 17  # deepae.apps.compress.laplace's
OK, TRUNCATED, BAD_STATE, OUT_OF_RANGE, TRAILING = 0, 1, 2, 3, 4


@njit(cache=True, inline="always")
def _arm(ctx, wh, bh, wo, bo, hidden):
    """Fixed-point ARM of one context vector (C,) int64 -> (mu, s), 8 fractional bits."""
    c = ctx.shape[0]
    x = np.empty(c, np.int64)
    for i in range(c):
        x[i] = ctx[i] << 8
    h = np.empty(c, np.int64)
    for layer in range(hidden):
        for j in range(c):
            acc = bh[layer, j] + (x[j] << 8)
            for i in range(c):
                acc += x[i] * wh[layer, i, j]
            if acc < 0:
                acc = 0
            v = (acc + 128) >> 8
            h[j] = v if v < _CLAMP else _CLAMP
        for j in range(c):
            x[j] = h[j]
    out0, out1 = bo[0], bo[1]
    for i in range(c):
        out0 += x[i] * wo[i, 0]
        out1 += x[i] * wo[i, 1]
    mu = (out0 + 128) >> 8
    s = (out1 + 128) >> 8
    mu = min(max(mu, -_CLAMP), _CLAMP)
    s = min(max(s, -_CLAMP), _CLAMP)
    return mu, s


@njit(cache=True, inline="always")
def _bins(mu, s):
    j = (10 * s + 46 * 256 + 128) >> 8
    j = min(max(j, 0), N_SCALES - 1)
    r = (mu + 128) >> 8
    m = (mu - (r << 8) + 136) >> 4
    m = min(max(m, 0), N_MEANS - 1)
    return j, m, r


@njit(cache=True, inline="always")
def _context(y, base, h, w, row, col, offsets, ctx):
    for k in range(offsets.shape[0]):
        rr, cc = row + offsets[k, 0], col + offsets[k, 1]
        ctx[k] = np.int64(y[base + rr * w + cc]) if 0 <= rr < h and 0 <= cc < w else 0


@njit(cache=True, inline="always")
def _table(y, base, h, w, row, col, offsets, ctx, wh, bh, wo, bo, hidden):
    """The (scale bin, mean bin, rounded mean) of the latent at (row, col) of the grid at
    `base`, from its already-known neighbours."""
    _context(y, base, h, w, row, col, offsets, ctx)
    mu, s = _arm(ctx, wh, bh, wo, bo, hidden)
    return _bins(mu, s)


@njit(cache=True)
def arm_tables(y, shapes, offsets, wh, bh, wo, bo, hidden):
    """(n, 3) int64: each latent's scale bin, mean bin and rounded mean (the encoder's view:
    every latent known)."""
    out = np.empty((y.shape[0], 3), np.int64)
    ctx = np.empty(offsets.shape[0], np.int64)
    base = 0
    for g in range(shapes.shape[0]):
        h, w = shapes[g, 0], shapes[g, 1]
        for row in range(h):
            for col in range(w):
                j, m, r = _table(y, base, h, w, row, col, offsets, ctx, wh, bh, wo, bo,
                                 hidden)
                i = base + row * w + col
                out[i, 0], out[i, 1], out[i, 2] = j, m, r
        base += h * w
    return out


@njit(cache=True)
def _symbol(v, radius):
    if -radius <= v <= radius:
        return v + radius, False
    return 2 * radius + 1, True


@njit(cache=True)
def code_length(y, bins, freqs, lengths):
    """The exact code length in bits of the latents `y` with their table `bins` (what the
    rANS stream costs, up to its last 4 bytes)."""
    bits = 0.0
    for i in range(y.shape[0]):
        j, m, r = bins[i, 0], bins[i, 1], bins[i, 2]
        radius = (lengths[j] - 2) // 2
        sym, esc = _symbol(y[i] - r, radius)
        bits += 16.0 - np.log2(freqs[j, m, sym])
        if esc:
            bits += 32.0
    return bits


@njit(cache=True)
def encode(y, bins, freqs, cums, lengths):
    """The rANS payload (uint8 array) of the latents `y` with their table `bins`."""
    n = y.shape[0]
    # (start, freq) of every coded symbol, in decoding order: a latent, then its escape
    starts = np.empty(3 * n, np.int64)
    fs = np.empty(3 * n, np.int64)
    k = 0
    for i in range(n):
        j, m, r = bins[i, 0], bins[i, 1], bins[i, 2]
        radius = (lengths[j] - 2) // 2
        v = y[i] - r
        sym, esc = _symbol(v, radius)
        starts[k], fs[k] = cums[j, m, sym], freqs[j, m, sym]
        k += 1
        if esc:
            u = v & 0xFFFFFFFF
            starts[k], fs[k] = u >> 16, 1
            starts[k + 1], fs[k + 1] = u & _MASK, 1
            k += 2
    out = np.empty(2 * k + 8, np.uint8)
    pos = out.shape[0]
    x = RANS_L
    for t in range(k - 1, -1, -1):
        f = fs[t]
        x_max = ((RANS_L >> _SCALE) << 8) * f
        while x >= x_max:
            pos -= 1
            out[pos] = x & 0xFF
            x >>= 8
        x = ((x // f) << _SCALE) + (x % f) + starts[t]
    for _ in range(4):  # the final state, read first by the decoder (big-endian)
        pos -= 1
        out[pos] = x & 0xFF
        x >>= 8
    return out[pos:].copy()


@njit(cache=True)
def decode(data, shapes, offsets, wh, bh, wo, bo, hidden, freqs, cums, lengths):
    """Decode the latents of the grids `shapes` from the payload `data` (uint8).

    Returns (y int32 of the total latent count, status): status `OK`, or `TRUNCATED` (the
    payload ends before the latents), `BAD_STATE` (the final state is not the encoder's
    initial one: corrupted), `OUT_OF_RANGE` (an escaped value beyond ``MAX_LATENT``) or
    `TRAILING` (bytes left after the latents)."""
    total = 0
    for g in range(shapes.shape[0]):
        total += shapes[g, 0] * shapes[g, 1]
    y = np.zeros(total, np.int32)
    n = data.shape[0]
    if n < 4:
        return y, TRUNCATED
    x = 0
    for b in range(4):
        x = (x << 8) | np.int64(data[b])
    pos = 4
    if x < RANS_L:
        return y, BAD_STATE
    ctx = np.empty(offsets.shape[0], np.int64)
    base = 0
    for g in range(shapes.shape[0]):
        h, w = shapes[g, 0], shapes[g, 1]
        for row in range(h):
            for col in range(w):
                j, m, r = _table(y, base, h, w, row, col, offsets, ctx, wh, bh, wo, bo,
                                 hidden)
                length = lengths[j]
                slot = x & _MASK
                lo, hi = 0, length  # the symbol: cums[sym] <= slot < cums[sym + 1]
                while hi - lo > 1:
                    mid = (lo + hi) >> 1
                    if cums[j, m, mid] <= slot:
                        lo = mid
                    else:
                        hi = mid
                sym = lo
                x = freqs[j, m, sym] * (x >> _SCALE) + slot - cums[j, m, sym]
                while x < RANS_L:
                    if pos >= n:
                        return y, TRUNCATED
                    x = (x << 8) | np.int64(data[pos])
                    pos += 1
                radius = (length - 2) // 2
                if sym == length - 1:  # escape: two uniform 16-bit halves
                    u = 0
                    for _ in range(2):
                        u = (u << 16) | (x & _MASK)
                        x >>= _SCALE
                        while x < RANS_L:
                            if pos >= n:
                                return y, TRUNCATED
                            x = (x << 8) | np.int64(data[pos])
                            pos += 1
                    v = u - (1 << 32) if u >= (1 << 31) else u
                else:
                    v = sym - radius
                value = r + v
                if value > MAX_LATENT or value < -MAX_LATENT:
                    return y, OUT_OF_RANGE
                y[base + row * w + col] = value
        base += h * w
    if x != RANS_L:
        return y, BAD_STATE
    if pos != n:
        return y, TRAILING
    return y, OK
