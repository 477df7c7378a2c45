"""Encoder-side latent refinement: spend more time encoding one image to get a better file
for the very same decoder.

The analysis transform predicts a latent in one pass, trained to do well on average; for a
given image a better latent usually exists. `LatentRefiner` searches for it by gradient
descent on that image's own rate-distortion loss, ``bits / pixels + lmbda * 255**2 * MSE``,
through the synthesis transform and the learned prior, with stochastic Gumbel annealing
(Yang, Bamler & Mandt 2020, "Improving inference for neural image compression"): each step
draws a soft choice between rounding each element down and up, with a temperature that falls
from 0.5 to 0.05, so that the search ends on integers that the range coder codes. Nothing
changes for the decoder or the file format.

The refined latent is only kept for a plane when its real cost (the frozen tables' bits plus
the decoded image's distortion) is lower than the one-pass latent's, so refinement never makes
a file worse by the measure it optimises. The random draws are seeded by the step number:
the same image gives the same bytes.

A latent larger than one tile is refined tile by tile, in row-major order (block coordinate
descent): each tile's core moves while the latents around it stay at their current integers
(refined for the tiles before, one-pass for those after), for the loss of the pixels that
the core reaches. Memory is then bounded by the tile, not the image; the result differs from
a whole-image search (which no longer fits in memory for large images), and the fallback
above still compares whole planes.
"""

from __future__ import annotations

import math

import numpy as np

from deepae.apps.compress import _tiles
from deepae.apps.compress.entropy import table_bits
from deepae.nn.compression import rate_distortion

__all__ = ["LatentRefiner", "REFINE_LEARNING_RATE"]

REFINE_LEARNING_RATE = 0.04  # Adam, cosine decay over the steps; scripts/refine_dev.py
_TAU_START, _TAU_END = 0.5, 0.05


class LatentRefiner:
    """Refines the latents of one image's planes for a codec's synthesis transform and prior.

    Parameters
    ----------
    synthesis : keras.Model
        Latent (p, h', w', M) -> planes (p, h, w, c).
    prior : keras.Model
        Latent -> each element's likelihood under the learned prior.
    tables : dict
        The frozen integer tables, to measure the real bits of a candidate.
    learning_rate : float, default=REFINE_LEARNING_RATE
        Adam's initial step, decayed to 0 over the steps (cosine).
    """

    def __init__(self, synthesis, prior, tables, learning_rate=REFINE_LEARNING_RATE):
        self.synthesis = synthesis
        self.prior = prior
        self.tables = tables
        self.learning_rate = float(learning_rate)
        self._step = None

    def _compiled_step(self):
        import tensorflow as tf  # the point here: a gradient loop over the latent

        gs, prior, lr0 = self.synthesis, self.prior, self.learning_rate

        def step(x, y, m, v, mask, t, n_steps, lmbda, r0, r1, c0, c1):
            # temperature 0.5 -> 0.05 geometrically; learning rate cosine to 0 (Adam)
            frac = t / n_steps
            tau = _TAU_START * tf.exp(frac * math.log(_TAU_END / _TAU_START))
            lr = lr0 * 0.5 * (1.0 + tf.cos(math.pi * frac))
            seed = tf.stack([tf.constant(20200, tf.int32), tf.cast(t, tf.int32)])
            with tf.GradientTape() as tape:
                tape.watch(y)
                floor = tf.stop_gradient(tf.floor(y))
                d = tf.clip_by_value(y - floor, 1e-5, 1.0 - 1e-5)
                # log-odds of rounding down / up: nearer integer more likely, sharper as
                # the temperature falls
                logits = tf.stack([-tf.atanh(d), -tf.atanh(1.0 - d)], -1) / tau
                u = tf.random.stateless_uniform(tf.shape(logits), seed, 1e-9, 1.0)
                gumbel = -tf.math.log(-tf.math.log(u))
                soft = tf.nn.softmax((tf.nn.log_softmax(logits) + gumbel) / tau, -1)
                # the tile's core moves (mask 1); the context around it stays as it is
                yq = mask * (floor + soft[..., 1]) + (1.0 - mask) * y
                x_hat = gs(yq, training=False)[:, r0:r1, c0:c1]
                pixels = tf.cast(tf.shape(x)[0] * (r1 - r0) * (c1 - c0), tf.float32)
                loss, _, _ = rate_distortion(prior(yq, training=False), x[:, r0:r1, c0:c1],
                                             x_hat, lmbda, pixels, weights=mask)
            g = tape.gradient(loss, y) * mask
            m = 0.9 * m + 0.1 * g
            v = 0.999 * v + 0.001 * tf.square(g)
            k = t + 1.0
            y = y - lr * (m / (1.0 - 0.9 ** k)) / (tf.sqrt(v / (1.0 - 0.999 ** k)) + 1e-8)
            return y, m, v

        spec = tf.TensorSpec((None, None, None, None), tf.float32)
        scalar = tf.TensorSpec((), tf.float32)
        size = tf.TensorSpec((), tf.int32)
        return tf.function(step, input_signature=[spec, spec, spec, spec, spec, scalar, scalar,
                                                  scalar, size, size, size, size])

    def _costs(self, region, latents, h, w, lmbda, stride, tile, halo):
        """Each plane's real cost: frozen-table bits / pixels + lmbda * MSE of 8-bit pixels,
        the decoded image computed tile by tile."""
        sq, n = np.zeros(len(latents)), 0
        decode = lambda z: self.synthesis(z, training=False)  # noqa: E731
        for (r0, r1, c0, c1), x_hat in _tiles.synthesise(decode, latents, h, w, stride,
                                                         tile, halo):
            x_hat = np.round(np.clip(x_hat, 0.0, 1.0) * 255.0)
            ref = np.round(region(r0, r1, c0, c1) * 255.0)
            sq += np.sum((x_hat - ref) ** 2, axis=(1, 2, 3), dtype=np.float64)
            n += x_hat[0].size
        mse = sq / n / 255.0 ** 2
        bits = np.array([table_bits([y], self.tables) for y in latents])
        return bits / (h * w) + lmbda * mse

    def __call__(self, x, y0, steps, h, w, lmbda, *, stride=None, tile=None, halo=0):
        """Refine `y0` (p, h', w', M floats, the analysis transform of the padded planes `x`)
        for `steps` steps, measuring distortion on the top-left `h` x `w` pixels, for the
        trade-off `lmbda` (the codec's: for MSE of pixels in [0, 1], times 255**2); returns
        the (p, h', w', M) int32 latents to code.

        `x` is the (p, H, W, c) array of the padded planes, or a function ``x(r0, r1, c0,
        c1)`` giving rows r0:r1 and columns c0:c1 of it (then `stride`, the image pixels per
        latent position, is needed). With `tile`, the search runs in tiles of that many
        latent positions with `halo` (`deepae.nn.compression.receptive_halo`) positions of
        context; without, on the whole latent at once.
        """
        import tensorflow as tf

        if callable(x):
            region = x
        else:
            region = lambda r0, r1, c0, c1: x[:, r0:r1, c0:c1]  # noqa: E731
            stride = x.shape[1] // y0.shape[1]
        s = int(stride)
        lmbda = float(lmbda) * 255.0 ** 2
        if self._step is None:
            self._step = self._compiled_step()
        p, lh, lw, _ = y0.shape
        tile = max(lh, lw) if tile is None else int(tile)
        g = int(halo)
        one_pass = np.rint(y0).astype(np.int32)
        y = np.array(y0, np.float32)  # refined cores are written back as they are done
        for (i0, i1, j0, j1), _ in _tiles.grid(lh, lw, tile, 0):
            # the core reaches the pixels of the blocks within `g` of it; those depend on
            # the latents within `g` of them
            a0, a1, b0, b1 = max(0, i0 - 2 * g), min(lh, i1 + 2 * g), \
                max(0, j0 - 2 * g), min(lw, j1 + 2 * g)
            r0, r1 = s * max(0, i0 - g), min(h, s * min(lh, i1 + g))
            c0, c1 = s * max(0, j0 - g), min(w, s * min(lw, j1 + g))
            mask = np.zeros((p, a1 - a0, b1 - b0, y.shape[-1]), np.float32)
            mask[:, i0 - a0:i1 - a0, j0 - b0:j1 - b0] = 1.0
            win = np.where(mask > 0, y[:, a0:a1, b0:b1], np.round(y[:, a0:a1, b0:b1]))
            xt = tf.constant(region(s * a0, s * a1, s * b0, s * b1), tf.float32)
            yt, mt = tf.constant(win, tf.float32), tf.constant(mask)
            m = tf.zeros_like(yt)
            v = tf.zeros_like(yt)
            for t in range(int(steps)):
                yt, m, v = self._step(xt, yt, m, v, mt, tf.constant(float(t)),
                                      tf.constant(float(steps)), tf.constant(lmbda),
                                      tf.constant(r0 - s * a0), tf.constant(r1 - s * a0),
                                      tf.constant(c0 - s * b0), tf.constant(c1 - s * b0))
            y[:, i0:i1, j0:j1] = yt.numpy()[:, i0 - a0:i1 - a0, j0 - b0:j1 - b0]
        refined = np.rint(y).astype(np.int32)
        del y
        cost = lambda lat: self._costs(region, lat, h, w, lmbda, s, tile, g)  # noqa: E731
        better = cost(refined) < cost(one_pass)
        one_pass[better] = refined[better]  # the planes whose refined latent costs less
        return one_pass
