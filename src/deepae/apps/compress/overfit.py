"""Overfitted image coding (``effort="best"``): one small codec per image, optimised at
encode time and written in the file (COOL-CHIC, Ladune et al. ICCV 2023; Leguay et al. 2023;
C3, Kim et al. CVPR 2024).

No training data: for each image plane the encoder optimises

- ``levels`` latent grids, of the plane's size divided by ``1, 2, 4, ... 2**(levels-1)``,
  each upsampled to full size (bilinear, half-pixel centres, edges clamped) and stacked into
  ``levels`` features per pixel;
- a synthesis network from those features to the pixel: ``linear(levels -> width), ReLU,
  linear(width -> 2)``, a residual 3x3 convolution (2 -> 2) with ReLU, and a 3x3
  convolution (2 -> 1) added to the first channel (edges replicated): about ``levels * width + 3 * width + 60``
  multiply-adds per pixel (140 with the defaults), and 80 per latent for the context model;
- an auto-regressive context model (ARM): for each latent, a small residual MLP reads the
  ``context`` already-decoded neighbours of the same grid and predicts a Laplace mean and
  log-scale, so that the latent costs ``-log2 P`` bits;

by minimising ``bits per pixel + lmbda * 255**2 * MSE`` (the same trade-off as the trained
codecs) for a number of Adam steps: first with soft rounding and uniform noise standing in
for quantisation (temperature and noise annealed), then with the latents rounded and the
networks alone tuned to them. The networks' weights are then rounded to the power-of-two
step that costs least (bits of the weights + rate + lambda * distortion, searched per
network) and coded with exp-Golomb codes; the latents are coded with rANS under the context
model run in integer arithmetic, and the integer Laplace tables of
`deepae.apps.compress.laplace` (`deepae.apps.compress._overfit_kernels`). The file format is
``docs/format.md``, version 2.

Decoding needs no TensorFlow: numba for the latents, NumPy for the synthesis, in tiles
(memory: the latents and one tile, beyond the output image).
"""

from __future__ import annotations

import math
import struct
import time
import zlib
from dataclasses import dataclass

import numpy as np

from deepae.apps.compress import _overfit_kernels as kernels
from deepae.apps.compress.laplace import PAYLOAD_BITS_PER_SYMBOL, TABLES_SHA256, tables
from deepae.exceptions import BitstreamError

__all__ = ["VERSION", "ENCODER_REVISION", "Architecture", "DEFAULT_ARCHITECTURE", "BEST_ITERATIONS", "encode_planes",
           "decode", "read_header", "OverfitHeader", "GAIN"]

VERSION = 2
# bumped whenever the encoder's output for the same input and seed changes (benchmark caches
# key on it)
ENCODER_REVISION = 1
BEST_ITERATIONS = 2000
GAIN = 16.0  # latents are optimised as y and coded as round(GAIN * y): a faster effective step
# causal neighbours (row, column offsets) of the context model
CONTEXTS = {
    8: ((-3, 0), (-2, 0), (-1, -1), (-1, 0), (-1, 1), (0, -3), (0, -2), (0, -1)),
    16: ((-3, 0), (-3, 1), (-2, -2), (-2, -1), (-2, 0), (-2, 1), (-2, 2), (-1, -3), (-1, -2),
         (-1, -1), (-1, 0), (-1, 1), (-1, 2), (0, -3), (0, -2), (0, -1)),
}
_BAND = 64  # rows of output synthesised at once when decoding, at most
_BAND_BYTES = 32 << 20  # and about this much memory for a tile's synthesis


@dataclass(frozen=True)
class Architecture:
    """The per-image codec's shape, recorded in each version-2 file."""

    levels: int = 7
    context: int = 8
    arm_layers: int = 1
    width: int = 8

    def check(self, error=ValueError) -> None:
        if not (1 <= self.levels <= 12 and self.context in CONTEXTS
                and 0 <= self.arm_layers <= 3 and 1 <= self.width <= 64):
            raise error(f"Expected an overfitted codec of 1 to 12 levels, a context of "
                        f"{sorted(CONTEXTS)} latents, 0 to 3 ARM layers and a synthesis width "
                        f"of 1 to 64; received {self}.")

    def grid_shapes(self, h: int, w: int) -> np.ndarray:
        """(levels, 2) int64: the latent grids' sizes, finest first."""
        return np.array([(-(-h // 2 ** lv), -(-w // 2 ** lv)) for lv in range(self.levels)],
                        np.int64)

    def n_latents(self, h: int, w: int) -> int:
        return int(self.grid_shapes(h, w).prod(axis=1).sum())

    def shapes(self) -> dict:
        """The networks' parameter shapes, in coding order: ARM, then synthesis."""
        c, s, n = self.context, self.width, self.levels
        arm = [(f"arm_w{i}", (c, c)) for i in range(self.arm_layers)]
        arm += [(f"arm_b{i}", (c,)) for i in range(self.arm_layers)]
        arm += [("arm_wo", (c, 2)), ("arm_bo", (2,))]
        syn = [("syn_w1", (n, s)), ("syn_w2", (s, 2)), ("conv1", (3, 3, 2, 2)),
               ("conv2", (3, 3, 2, 1)), ("syn_b1", (s,)), ("syn_b2", (2,)),
               ("conv1_b", (2,)), ("conv2_b", (1,))]
        return {"arm": arm, "synthesis": syn}


DEFAULT_ARCHITECTURE = Architecture()


# -- upsampling and synthesis (NumPy: the decoder) ----------------------------------------------
def _taps(n_out: int, n_in: int, factor: int, rows=None):
    """Bilinear interpolation, half-pixel centres, edges clamped: for output positions `rows`
    (default all), the two input indices and the weight of the second."""
    i = np.arange(n_out) if rows is None else np.asarray(rows)
    p = (i + 0.5) / factor - 0.5
    f = np.floor(p)
    i0 = np.clip(f, 0, n_in - 1).astype(np.int64)
    i1 = np.clip(f + 1, 0, n_in - 1).astype(np.int64)
    return i0, i1, (p - f).astype(np.float32)


def _features(grids, h, w, rows, cols):
    """(len(rows), len(cols), levels) float32: every grid upsampled to the plane's size, at
    `rows` x `cols` only."""
    out = np.empty((len(rows), len(cols), len(grids)), np.float32)
    for lv, g in enumerate(grids):
        g = g.astype(np.float32)
        if lv == 0:
            out[..., 0] = g[np.ix_(rows, cols)]
            continue
        r0, r1, rw = _taps(h, g.shape[0], 2 ** lv, rows)
        c0, c1, cw = _taps(w, g.shape[1], 2 ** lv, cols)
        t = g[r0] * (1 - rw)[:, None] + g[r1] * rw[:, None]
        out[..., lv] = t[:, c0] * (1 - cw) + t[:, c1] * cw
    return out


def _conv3x3(x, kernel, bias):
    """'valid' 3x3 convolution of (h, w, ci) with (3, 3, ci, co): (h - 2, w - 2, co)."""
    h, w = x.shape[:2]
    out = np.broadcast_to(bias, (h - 2, w - 2, kernel.shape[-1])).astype(np.float32)
    for dr in range(3):
        for dc in range(3):
            out = out + x[dr:dr + h - 2, dc:dc + w - 2] @ kernel[dr, dc]
    return out


def tiles(h: int, w: int, arch: Architecture):
    """The (r0, r1, c0, c1) tiles in which the decoder synthesises a plane: bands of up to
    `_BAND` rows, cut into as many columns as keep a tile's float32 intermediates
    (features, hidden units, convolutions and their padded copies: about
    ``4 * (3 * levels + 3 * width + 24)`` bytes per pixel, with 2 pixels of context on each
    side) within about `_BAND_BYTES`."""
    per_pixel = 4 * (3 * arch.levels + 3 * arch.width + 24)
    rows = min(h, _BAND)
    cols = int(max(16, _BAND_BYTES // ((rows + 4) * per_pixel) - 4))
    for r0 in range(0, h, rows):
        for c0 in range(0, w, cols):
            yield r0, min(h, r0 + rows), c0, min(w, c0 + cols)


def synthesise(grids, params, h, w, arch: Architecture = None):
    """The decoded plane (h, w) float32 (unclipped) from the integer latent grids and the
    synthesis parameters, tile by tile (`tiles`, `synthesise_tile`; one tile for the whole
    plane without `arch`)."""
    out = np.empty((h, w), np.float32)
    for r0, r1, c0, c1 in (tiles(h, w, arch) if arch else [(0, h, 0, w)]):
        out[r0:r1, c0:c1] = synthesise_tile(grids, params, h, w, r0, r1, c0, c1)
    return out


def synthesise_tile(grids, params, h, w, r0, r1, c0, c1):
    """Rows r0:r1, columns c0:c1 of the decoded plane, float32 (unclipped), computed with the
    2 pixels of context the two 3x3 convolutions need on each side (edges replicated at the
    plane's borders, as in training): the same values as the whole plane's."""
    def span(a0, a1, n):  # what the first convolution reads, and its edge padding
        return np.arange(max(0, a0 - 2), min(n, a1 + 2)), (int(a0 <= 1), int(a1 >= n - 1))

    rows, pad_r = span(r0, r1, h)
    cols, pad_c = span(c0, c1, w)
    x = _features(grids, h, w, rows, cols) @ params["syn_w1"]
    x += params["syn_b1"]
    x = np.maximum(x, 0, out=x) @ params["syn_w2"] + params["syn_b2"]
    # (rows max(0, r0 - 1) .. min(h, r1 + 1), the same for columns, 2)
    xp = np.pad(x, (pad_r, pad_c, (0, 0)), mode="edge")
    x = np.maximum(xp[1:-1, 1:-1] + _conv3x3(xp, params["conv1"], params["conv1_b"]), 0)
    xp = np.pad(x, ((int(r0 == 0), int(r1 == h)), (int(c0 == 0), int(c1 == w)), (0, 0)),
                mode="edge")
    return xp[1:-1, 1:-1, 0] + _conv3x3(xp, params["conv2"], params["conv2_b"])[..., 0]


# -- the encoder: optimisation (TensorFlow) ------------------------------------------------------
def _tf_taps(h, w, shapes):
    """The upsampling taps of grids 1 .. n-1 as constants (`_taps`)."""
    import tensorflow as tf

    taps = []
    for lv in range(1, len(shapes)):
        r0, r1, rw = _taps(h, int(shapes[lv, 0]), 2 ** lv)
        c0, c1, cw = _taps(w, int(shapes[lv, 1]), 2 ** lv)
        taps.append(tuple(tf.constant(t) for t in (r0, r1, rw[:, None], c0, c1, cw)))
    return taps


def _tf_synthesis(qs, p, taps, h, w):
    """The synthesis in TensorFlow (what the encoder optimises; `synthesise_tile` is the
    decoder's): the grids `qs` (float, each (h_k, w_k)) -> (1, h, w, 1)."""
    import tensorflow as tf

    def edge(x):  # one pixel of padding, the edge replicated
        return tf.pad(x, [[0, 0], [1, 1], [1, 1], [0, 0]], "SYMMETRIC")

    feats = [qs[0]]
    for q, (r0, r1, rw, c0, c1, cw) in zip(qs[1:], taps, strict=True):
        t_ = tf.gather(q, r0) * (1.0 - rw) + tf.gather(q, r1) * rw
        feats.append(tf.gather(t_, c0, axis=1) * (1.0 - cw) + tf.gather(t_, c1, axis=1) * cw)
    f = tf.reshape(tf.stack(feats, -1), (-1, len(qs)))
    x = tf.nn.relu(f @ p["syn_w1"] + p["syn_b1"]) @ p["syn_w2"] + p["syn_b2"]
    x = tf.reshape(x, (1, h, w, 2))
    x = tf.nn.relu(x + tf.nn.conv2d(edge(x), p["conv1"], 1, "VALID") + p["conv1_b"])
    return x[..., :1] + tf.nn.conv2d(edge(x), p["conv2"], 1, "VALID") + p["conv2_b"]


def _fit_plane(plane, lmbda, iterations, arch, seed, verbose, log):
    """Optimise one plane's latents and networks; returns (integer grids, float params)."""
    import tensorflow as tf

    h, w = plane.shape
    shapes = arch.grid_shapes(h, w)
    c, n_lv = arch.context, arch.levels
    offsets = CONTEXTS[c]
    kernel = np.zeros((7, 7, 1, c), np.float32)
    for i, (dr, dc) in enumerate(offsets):
        kernel[3 + dr, 3 + dc, 0, i] = 1.0
    kernel = tf.constant(kernel)
    rng = np.random.default_rng(seed)
    gen = tf.random.Generator.from_seed(int(rng.integers(2 ** 31)))
    taps = _tf_taps(h, w, shapes)

    def var(shape, scale=0.0, value=0.0):
        init = rng.normal(0.0, scale, shape) if scale else np.full(shape, value)
        return tf.Variable(init.astype(np.float32))

    latents = [var((int(a), int(b))) for a, b in shapes]
    p = {name: var(shape) for name, shape in arch.shapes()["arm"]}
    p["arm_wo"].assign(rng.normal(0.0, 0.01, (c, 2)).astype(np.float32))
    s = arch.width
    p.update(syn_w1=var((n_lv, s), math.sqrt(2.0 / n_lv)), syn_w2=var((s, 2), 0.01),
             conv1=var((3, 3, 2, 2), 0.01), conv2=var((3, 3, 2, 1), 0.01),
             syn_b1=var((s,)), syn_b2=var((2,), value=0.0), conv1_b=var((2,)),
             conv2_b=var((1,)))
    p["syn_b2"].assign([0.5, 0.0])
    nets = list(p.values())
    target = tf.constant(plane[None, :, :, None], tf.float32)
    n_pix = float(h * w)
    lam = float(lmbda) * 255.0 ** 2

    def soft_round(v, t):
        f = tf.floor(v)
        return f + 0.5 + 0.5 * tf.tanh((v - f - 0.5) / t) / tf.tanh(0.5 / t)

    def forward(hard, t, noise):
        qs = []
        for y in latents:
            y = y * GAIN
            if hard:  # rounded, straight-through
                q = y + tf.stop_gradient(tf.round(y) - y)
            else:
                u = gen.uniform(tf.shape(y), -1.0, 1.0) * noise
                q = soft_round(soft_round(y, t) + u, t)
            qs.append(q)
        ctx = tf.concat([tf.reshape(tf.nn.conv2d(q[None, :, :, None], kernel, 1, "SAME"),
                                    (-1, c)) for q in qs], 0)
        x = ctx
        for i in range(arch.arm_layers):
            x = tf.nn.relu(x @ p[f"arm_w{i}"] + p[f"arm_b{i}"] + x)
        out = x @ p["arm_wo"] + p["arm_bo"]
        mu, scale = out[:, 0], tf.exp(tf.clip_by_value(out[:, 1], -4.6, 4.0))
        flat = tf.concat([tf.reshape(q, (-1,)) for q in qs], 0)

        def cdf(v):
            z = (v - mu) / scale
            return 0.5 + 0.5 * tf.sign(z) * (1.0 - tf.exp(-tf.abs(z)))

        prob = tf.maximum(cdf(flat + 0.5) - cdf(flat - 0.5), 2.0 ** -16)
        bpp = -tf.reduce_sum(tf.math.log(prob)) / (math.log(2.0) * n_pix)
        mse = tf.reduce_mean(tf.square(_tf_synthesis(qs, p, taps, h, w) - target))
        return bpp, mse

    n1 = max(1, int(0.9 * iterations))
    sched = tf.keras.optimizers.schedules.CosineDecay(1e-2, n1, alpha=1e-3)
    opt1 = tf.keras.optimizers.Adam(sched)
    opt2 = tf.keras.optimizers.Adam(1e-4)
    every = latents + nets

    @tf.function(autograph=False)  # no Python control flow on tensors inside
    def noisy_step(t, noise):
        with tf.GradientTape() as tape:
            bpp, mse = forward(False, t, noise)
            loss = bpp + lam * mse
        opt1.apply_gradients(zip(tape.gradient(loss, every), every, strict=True))
        return bpp, mse

    @tf.function(autograph=False)
    def hard_step():
        with tf.GradientTape() as tape:
            bpp, mse = forward(True, 0.1, 0.0)
            loss = bpp + lam * mse
        opt2.apply_gradients(zip(tape.gradient(loss, nets), nets, strict=True))
        return bpp, mse

    start = time.perf_counter()
    for i in range(int(iterations)):
        if i < n1:
            frac = i / n1
            bpp, mse = noisy_step(tf.constant(0.3 - 0.2 * frac), tf.constant(0.5 - 0.3 * frac))
        else:
            bpp, mse = hard_step()
        if verbose and (i % 500 == 0 or i == iterations - 1):
            log(f"step {i:5d}: {float(bpp):.4f} bpp (estimate), "
                f"{10 * math.log10(1 / max(float(mse), 1e-12)):.2f} dB, "
                f"{time.perf_counter() - start:.0f} s")
    values = [y.numpy() * GAIN for y in latents]
    params = {k: v.numpy() for k, v in p.items()}
    if not all(np.isfinite(v).all() for v in [*values, *params.values()]) \
            or max(float(np.abs(v).max()) for v in values) > kernels.MAX_LATENT:
        raise ValueError(f"The optimisation diverged (non-finite or out-of-range values) "
                         f"with lmbda={lmbda!r}; expected a finite lmbda > 0 such as the "
                         "shipped codecs' (0.0018 to 0.18).")
    return [np.round(v).astype(np.int64) for v in values], params


# -- quantising and coding the networks ----------------------------------------------------------
def _eg_length(n: np.ndarray, k: int) -> int:
    """Bits of exp-Golomb order-k codes of the magnitudes `n` plus a sign bit per non-zero."""
    m = n + (1 << k)
    bitlen = np.floor(np.log2(m)).astype(np.int64) + 1
    return int((2 * bitlen - 1 - k).sum() + (n != 0).sum())


def _best_order(values: np.ndarray) -> tuple[int, int]:
    """(order, bits) of the cheapest exp-Golomb order (0 to 15) for the integers `values`."""
    n = np.abs(values.astype(np.int64))
    return min(((k, _eg_length(n, k)) for k in range(16)), key=lambda t: t[1])


class _BitWriter:
    def __init__(self):
        self.bits: list[str] = []

    def uint(self, value: int, n: int) -> None:
        self.bits.append(format(int(value), f"0{n}b") if n else "")

    def eg(self, values: np.ndarray, k: int) -> None:
        for v in values.astype(np.int64).ravel():
            m = abs(int(v)) + (1 << k)
            self.bits.append("0" * (m.bit_length() - 1 - k) + format(m, "b"))
            if v:
                self.bits.append("1" if v < 0 else "0")

    def to_bytes(self) -> bytes:
        s = "".join(self.bits)
        s += "0" * (-len(s) % 8)
        return int(s, 2).to_bytes(len(s) // 8, "big") if s else b""


class _BitReader:
    def __init__(self, data: bytes):
        self.s = "".join(format(b, "08b") for b in data)
        self.pos = 0

    def take(self, n: int) -> str:
        if self.pos + n > len(self.s):
            raise BitstreamError("Corrupted .dae file: the networks' weights end before the "
                                 "values their architecture needs.")
        out = self.s[self.pos:self.pos + n]
        self.pos += n
        return out

    def uint(self, n: int) -> int:
        return int(self.take(n), 2)

    def eg(self, count: int, k: int) -> np.ndarray:
        out = np.empty(count, np.int64)
        for i in range(count):
            zeros = 0
            while self.take(1) == "0":
                zeros += 1
                if zeros > 40:
                    raise BitstreamError("Corrupted .dae file: a weight's exp-Golomb code is "
                                         "longer than any the encoder writes.")
            m = int("1" + self.take(zeros + k), 2)
            n = m - (1 << k)
            out[i] = -n if n and self.take(1) == "1" else n
        return out

    def finish(self) -> None:
        rest = self.s[self.pos:]
        if len(rest) >= 8 or "1" in rest:
            raise BitstreamError(f"Corrupted .dae file: {len(rest)} bits left after the "
                                 "networks' weights.")


# the step exponents searched per network: weights step 2**-e, biases 2**-eb
_ARM_STEPS = [(e, min(16, e + d)) for e in range(3, 9) for d in (4, 8)]
_SYN_STEPS = [(e, e + d) for e in range(4, 15) for d in (0, 4)]
_MAX_EXP = {"arm": (8, 16), "synthesis": (16, 24)}
_MAX_INT = 1 << 31  # no coded weight integer is larger (the decoder refuses it)
# and, once on its fixed point or grid, no parameter is larger: the context model's integer
# sums stay below 2**51 (inputs below 2**30 with 8 fractional bits, 16 of them, times
# weights below 2**16, plus biases below 2**32 and the residual), and the synthesis stays
# finite in float32 (latents below 2**20, parameters below 2**16)
_ARM_WEIGHT_MAX, _ARM_BIAS_MAX, _SYN_MAX = 1 << 16, 1 << 32, 2.0 ** 16


def _arm_in_range(arm) -> bool:
    wh, bh, wo, bo = arm
    return (max(int(np.abs(wh).max()), int(np.abs(wo).max())) < _ARM_WEIGHT_MAX
            and max(int(np.abs(bh).max()), int(np.abs(bo).max())) < _ARM_BIAS_MAX)


def _syn_in_range(values) -> bool:
    return all(float(np.abs(v).max()) < _SYN_MAX for v in values.values())


def _groups(arch, module):
    names = [n for n, _ in arch.shapes()[module]]
    weights = [n for n in names if "_b" not in n]
    return weights, [n for n in names if n not in weights]


def _quantise(params, arch, module, e, eb):
    """{name: int64 array} of a network's parameters on the steps 2**-e and 2**-eb."""
    weights, biases = _groups(arch, module)
    scaled = {n: np.round(params[n].astype(np.float64) * 2.0 ** (e if n in weights else eb))
              for n in weights + biases}
    if max(float(np.abs(v).max()) for v in scaled.values()) >= _MAX_INT:
        return None  # beyond what the format codes (and what int64 holds): not a candidate
    return {n: v.astype(np.int64) for n, v in scaled.items()}


def _module_bits(ints, arch, module) -> int:
    weights, biases = _groups(arch, module)
    return 32 + sum(_best_order(np.concatenate([ints[n].ravel() for n in group]))[1]
                    for group in (weights, biases))


def _int_arm(ints, arch, e, eb):
    """The ARM's integers in the kernels' fixed point: weights with 8 fractional bits,
    biases with 16."""
    c, n = arch.context, arch.arm_layers
    wh = np.zeros((max(n, 1), c, c), np.int64)
    bh = np.zeros((max(n, 1), c), np.int64)
    for i in range(n):
        wh[i] = ints[f"arm_w{i}"] << (8 - e)
        bh[i] = ints[f"arm_b{i}"] << (16 - eb)
    return wh, bh, ints["arm_wo"] << (8 - e), ints["arm_bo"] << (16 - eb)


def _latent_bins(flat, shapes, arch, arm):
    wh, bh, wo, bo = arm
    offsets = np.asarray(CONTEXTS[arch.context], np.int64)
    return kernels.arm_tables(flat, shapes, offsets, wh, bh, wo, bo, arch.arm_layers)


def _code_plane(plane, grids, params, lmbda, arch) -> tuple[bytes, bytes, dict]:
    """Quantise the networks (the cheapest steps) and code one plane: (weights bytes, latent
    bytes, stats)."""
    h, w = plane.shape
    t = tables()
    shapes = arch.grid_shapes(h, w)
    flat = np.concatenate([g.ravel() for g in grids])
    lam = float(lmbda) * 255.0 ** 2 * h * w  # bits per unit of MSE over the plane

    def arm_cost(ints, e, eb):  # the latents' exact code length
        arm = _int_arm(ints, arch, e, eb)
        if not _arm_in_range(arm):
            return None
        bins = _latent_bins(flat, shapes, arch, arm)
        return kernels.code_length(flat, bins, t["freqs"], t["lengths"]), bins

    def syn_cost(ints, e, eb):  # lambda times the decoded (clipped) plane's squared error
        values = _dequantise(ints, arch, "synthesis", e, eb)
        if not _syn_in_range(values):
            return None
        decoded = np.clip(synthesise(grids, values, h, w, arch), 0.0, 1.0)
        mse = float(np.mean((decoded - plane) ** 2))
        return lam * mse, mse

    arm_e, arm_eb, arm_ints, bins = _cheapest(params, arch, "arm", _ARM_STEPS, arm_cost, lmbda)
    syn_e, syn_eb, syn_ints, mse = _cheapest(params, arch, "synthesis", _SYN_STEPS, syn_cost,
                                             lmbda)
    out = _BitWriter()
    for module, e, eb, ints in (("arm", arm_e, arm_eb, arm_ints),
                                ("synthesis", syn_e, syn_eb, syn_ints)):
        weights, biases = _groups(arch, module)
        wv = np.concatenate([ints[n].ravel() for n in weights])
        bv = np.concatenate([ints[n].ravel() for n in biases])
        kw, kb = _best_order(wv)[0], _best_order(bv)[0]
        for v in (e, eb, kw, kb):
            out.uint(v, 8)
        out.eg(wv, kw)
        out.eg(bv, kb)
    weight_bytes = out.to_bytes()
    latent_bytes = kernels.encode(flat, bins, t["freqs"], t["cums"], t["lengths"]).tobytes()
    return weight_bytes, latent_bytes, {"mse": mse, "weight_bytes": len(weight_bytes),
                                        "latent_bytes": len(latent_bytes)}


def _cheapest(params, arch, module, steps, cost, lmbda):
    """The step exponents (e, eb) of `steps` that code the network `module` most cheaply:
    its bits plus ``cost(ints, e, eb)`` (None for steps the format cannot carry), which
    returns (bits, extra); returns (e, eb, ints, extra)."""
    best = None
    for e, eb in steps:
        ints = _quantise(params, arch, module, e, eb)
        found = None if ints is None else cost(ints, e, eb)
        if found is None:
            continue
        total = found[0] + _module_bits(ints, arch, module)
        if best is None or total < best[0]:
            best = (total, e, eb, ints, found[1])
    if best is None:
        name = "context model's" if module == "arm" else "synthesis"
        raise ValueError(f"The {name} weights are out of the format's range at every step "
                         f"(lmbda={lmbda!r}): the optimisation diverged.")
    return best[1:]


def _dequantise(ints, arch, module, e, eb):
    weights, _ = _groups(arch, module)
    return {n: (v.astype(np.float64) * 2.0 ** -(e if n in weights else eb)).astype(np.float32)
            for n, v in ints.items()}


def _read_networks(data: bytes, arch):
    """(ARM fixed-point integers, synthesis float parameters) from a plane's weight bytes."""
    r = _BitReader(data)
    found = {}
    for module in ("arm", "synthesis"):
        e, eb, kw, kb = (r.uint(8) for _ in range(4))
        max_e, max_eb = _MAX_EXP[module]
        if e > max_e or eb > max_eb or kw > 15 or kb > 15:
            raise BitstreamError(f"Corrupted .dae file: the {module} network's steps 2**-{e}, "
                                 f"2**-{eb} or exp-Golomb orders {kw}, {kb} are out of range "
                                 f"(steps up to 2**-{max_e} and 2**-{max_eb}, orders up to "
                                 "15).")
        shapes = dict(arch.shapes()[module])
        weights, biases = _groups(arch, module)
        ints = {}
        for group, k in ((weights, kw), (biases, kb)):
            values = r.eg(sum(int(np.prod(shapes[n])) for n in group), k)
            if values.size and int(np.abs(values).max()) >= _MAX_INT:
                raise BitstreamError("Corrupted .dae file: a network weight is out of range.")
            i = 0
            for n in group:
                size = int(np.prod(shapes[n]))
                ints[n] = values[i:i + size].reshape(shapes[n])
                i += size
        found[module] = (ints, e, eb)
    r.finish()
    ints, e, eb = found["arm"]
    arm = _int_arm(ints, arch, e, eb)
    ints, e, eb = found["synthesis"]
    syn = _dequantise(ints, arch, "synthesis", e, eb)
    if not (_arm_in_range(arm) and _syn_in_range(syn)):
        raise BitstreamError("Corrupted .dae file: a network parameter is out of range "
                             "(context model: weights below 2**16 and biases below 2**32 on "
                             "their fixed point; synthesis: below 2**16).")
    return arm, syn


# -- the file -----------------------------------------------------------------------------------
_HEAD = struct.Struct(">3sB4sHHBBBBB")
HEADER_BYTES = _HEAD.size  # 17
FINGERPRINT = bytes.fromhex(TABLES_SHA256[:8])


@dataclass(frozen=True)
class OverfitHeader:
    """A version-2 file's header and its planes' sections."""

    height: int
    width: int
    channels: int
    arch: Architecture
    planes: tuple  # ((weight bytes, latent bytes), ...)


def encode_planes(planes, channels: int, lmbda: float, *, iterations: int = BEST_ITERATIONS,
                  arch: Architecture = DEFAULT_ARCHITECTURE, seed=None, verbose: int = 0,
                  log=print) -> tuple[bytes, dict]:
    """The bytes of a version-2 ``.dae`` file for the float planes (p, h, w) in [0, 1] (one
    for a grayscale image, Y Cb Cr for colour), and stats (per plane: MSE, weight and latent
    bytes; seconds)."""
    from deepae.apps.compress.bitstream import MAGIC

    start = time.perf_counter()
    _, h, w = planes.shape
    body = bytearray(_HEAD.pack(MAGIC, VERSION, FINGERPRINT, h, w, channels, arch.levels,
                                arch.context, arch.arm_layers, arch.width))
    stats = []
    rng = np.random.default_rng(seed)
    for plane in planes:
        grids, params = _fit_plane(plane, lmbda, iterations, arch,
                                   int(rng.integers(2 ** 31)), verbose, log)
        weights, latents, st = _code_plane(plane, grids, params, lmbda, arch)
        _check_decodes(weights, latents, grids, arch)
        if len(weights) > 0xFFFF or len(latents) > 0xFFFFFFFF:
            raise ValueError("The image is too large for one .dae file's sections.")
        body += struct.pack(">H", len(weights)) + weights
        body += struct.pack(">I", len(latents)) + latents
        stats.append(st)
    body += struct.pack(">I", zlib.crc32(bytes(body)))
    return bytes(body), {"planes": stats, "seconds": time.perf_counter() - start}


def _check_decodes(weights, latents, grids, arch) -> None:
    """The encoder reads back what it wrote: the networks' bytes parse and the latents decode
    to the grids (a disagreement is a bug in deepae, never the user's)."""
    t = tables()
    h, w = grids[0].shape
    (wh, bh, wo, bo), _ = _read_networks(weights, arch)
    flat, status = kernels.decode(np.frombuffer(latents, np.uint8), arch.grid_shapes(h, w),
                                  np.asarray(CONTEXTS[arch.context], np.int64), wh, bh, wo, bo,
                                  arch.arm_layers, t["freqs"], t["cums"], t["lengths"])
    if status != kernels.OK or not np.array_equal(flat, np.concatenate([g.ravel()
                                                                       for g in grids])):
        raise RuntimeError("deepae's overfitted encoder wrote latents its decoder reads "
                           f"differently (status {status}); please report this bug.")


def read_header(data: bytes, max_pixels: int) -> OverfitHeader:
    """Parse and check a version-2 file (magic and version already checked); every length
    against the bytes left, the checksum, the fields' ranges, the pixel budget and, before
    anything is allocated, each latent section against the fewest bytes its latents take."""
    if len(data) < HEADER_BYTES + 4:
        raise BitstreamError(f"Truncated .dae file: {len(data)} bytes, fewer than the "
                             f"{HEADER_BYTES + 4} of a version-2 header and checksum.")
    crc = struct.unpack_from(">I", data, len(data) - 4)[0]
    if zlib.crc32(data[:-4]) != crc:
        raise BitstreamError("Corrupted .dae file: the CRC-32 checksum does not match the "
                             "contents (or the file is truncated).")
    _, _, fp, h, w, c, levels, context, arm_layers, width = _HEAD.unpack_from(data)
    if fp != FINGERPRINT:
        raise BitstreamError(f"This .dae file was coded with the Laplace tables {fp.hex()}; "
                             f"this deepae has {FINGERPRINT.hex()}.")
    arch = Architecture(levels, context, arm_layers, width)
    if h < 1 or w < 1 or c not in (1, 3):
        raise BitstreamError(f"Corrupted .dae file: invalid image shape {h}x{w}x{c}.")
    try:
        arch.check()
    except ValueError as e:
        raise BitstreamError(f"Corrupted .dae file: {e}") from e
    n_planes = 3 if c == 3 else 1
    if h * w * n_planes > max_pixels:
        raise BitstreamError(f"The .dae file announces a {w}x{h} image coded as {n_planes} "
                             f"plane(s), {h * w * n_planes:,} pixels in all, more than "
                             f"max_pixels={max_pixels:,}; pass a larger max_pixels if it is "
                             "expected.")
    least = max(0, math.floor(arch.n_latents(h, w) * PAYLOAD_BITS_PER_SYMBOL / 8) - 8)
    pos, end, planes = HEADER_BYTES, len(data) - 4, []
    for i in range(n_planes):
        sections = []
        for size_fmt, what in ((">H", "weights"), (">I", "latents")):
            size = struct.calcsize(size_fmt)
            if pos + size > end:
                raise BitstreamError(f"Truncated .dae file: plane {i}'s {what} length runs "
                                     "past the end.")
            n = struct.unpack_from(size_fmt, data, pos)[0]
            pos += size
            if pos + n > end:
                raise BitstreamError(f"Truncated .dae file: plane {i} announces {n:,} bytes of "
                                     f"{what}, {end - pos:,} are left.")
            if what == "latents" and n < least:
                raise BitstreamError(f"Corrupted .dae file: a {w}x{h} plane has "
                                     f"{arch.n_latents(h, w):,} latents, which take at least "
                                     f"{least:,} bytes; plane {i} has {n:,}.")
            sections.append(data[pos:pos + n])
            pos += n
        planes.append(tuple(sections))
    if pos != end:
        raise BitstreamError(f"Corrupted .dae file: {end - pos} bytes after the last plane.")
    return OverfitHeader(h, w, c, arch, tuple(planes))


_STATUS = {kernels.TRUNCATED: "the latents' stream ends before its latents",
           kernels.BAD_STATE: "the latents' stream does not end in the coder's initial state",
           kernels.OUT_OF_RANGE: f"a latent beyond +-{kernels.MAX_LATENT}",
           kernels.TRAILING: "bytes after the latents"}


def decode(data: bytes, max_pixels: int, to_image) -> np.ndarray:
    """Decode a version-2 file: `to_image` maps a band of decoded planes (p, rows, w) float32
    (unclipped) to its uint8 rows of the image ((rows, w) or (rows, w, 3)).

    Memory: every plane's latents (4 bytes each, 4/3 per pixel and plane), the uint8 image,
    and one tile of the synthesis (`tiles`: about `_BAND_BYTES`); nothing before the checks
    of `read_header`."""
    head = read_header(bytes(data), max_pixels)
    h, w, arch = head.height, head.width, head.arch
    t = tables()
    shapes = arch.grid_shapes(h, w)
    offsets = np.asarray(CONTEXTS[arch.context], np.int64)
    decoded = []
    for i, (weights, latents) in enumerate(head.planes):
        (wh, bh, wo, bo), syn = _read_networks(weights, arch)
        flat, status = kernels.decode(np.frombuffer(latents, np.uint8), shapes, offsets, wh, bh,
                                      wo, bo, arch.arm_layers, t["freqs"], t["cums"],
                                      t["lengths"])
        if status != kernels.OK:
            raise BitstreamError(f"Corrupted .dae file: plane {i}: {_STATUS[status]}.")
        grids, k = [], 0
        for a, b in shapes:
            grids.append(flat[k:k + a * b].reshape(a, b))
            k += a * b
        decoded.append((grids, syn))
    out = np.empty((h, w) if head.channels == 1 else (h, w, 3), np.uint8)
    with np.errstate(all="ignore"):  # parameters are bounded; this is belt and braces
        for r0, r1, c0, c1 in tiles(h, w, arch):
            planes = np.stack([synthesise_tile(g, syn, h, w, r0, r1, c0, c1)
                               for g, syn in decoded])
            out[r0:r1, c0:c1] = to_image(np.nan_to_num(planes, nan=0.0, posinf=1.0,
                                                       neginf=0.0))
    return out
