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
"""

from __future__ import annotations

import math

import numpy as np

from deepae.apps.compress.entropy import table_bits

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

        def step(x, y, m, v, t, n_steps, lmbda, h, w):
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
                yq = floor + soft[..., 1]
                x_hat = gs(yq, training=False)[:, :h, :w]
                pixels = tf.cast(tf.shape(x)[0] * h * w, tf.float32)
                bits = tf.reduce_sum(-tf.math.log(prior(yq, training=False))) / math.log(2.0)
                loss = bits / pixels + lmbda * tf.reduce_mean(tf.square(x_hat - x[:, :h, :w]))
            g = tape.gradient(loss, y)
            m = 0.9 * m + 0.1 * g
            v = 0.999 * v + 0.001 * tf.square(g)
            k = t + 1.0
            y = y - lr * (m / (1.0 - 0.9 ** k)) / (tf.sqrt(v / (1.0 - 0.999 ** k)) + 1e-8)
            return y, m, v

        spec = tf.TensorSpec((None, None, None, None), tf.float32)
        scalar = tf.TensorSpec((), tf.float32)
        size = tf.TensorSpec((), tf.int32)
        return tf.function(step, input_signature=[spec, spec, spec, spec, scalar, scalar,
                                                  scalar, size, size])

    def _costs(self, x, latents, h, w, lmbda):
        """Each plane's real cost: frozen-table bits / pixels + lmbda * MSE of 8-bit pixels."""
        x_hat = np.asarray(self.synthesis(latents.astype(np.float32), training=False))
        x_hat = np.round(np.clip(x_hat[:, :h, :w], 0.0, 1.0) * 255.0)
        ref = np.round(x[:, :h, :w] * 255.0)
        mse = np.mean((x_hat - ref) ** 2, axis=(1, 2, 3)) / 255.0 ** 2
        bits = np.array([table_bits([y], self.tables) for y in latents])
        return bits / (h * w) + lmbda * mse

    def __call__(self, x, y0, steps, h, w, lmbda):
        """Refine `y0` (p, h', w', M floats, the analysis transform of the padded planes `x`,
        (p, H, W, c)) for `steps` steps, measuring distortion on the top-left `h` x `w`
        pixels, for the trade-off `lmbda` (the codec's: for MSE of pixels in [0, 1], times
        255**2); returns the (p, h', w', M) int32 latents to code."""
        import tensorflow as tf

        lmbda = float(lmbda) * 255.0 ** 2
        if self._step is None:
            self._step = self._compiled_step()
        xt = tf.constant(x, tf.float32)
        y = tf.constant(y0, tf.float32)
        m = tf.zeros_like(y)
        v = tf.zeros_like(y)
        for t in range(int(steps)):
            y, m, v = self._step(xt, y, m, v, tf.constant(float(t)), tf.constant(float(steps)),
                                 tf.constant(lmbda), tf.constant(h), tf.constant(w))
        one_pass = np.round(y0).astype(np.int32)
        refined = np.round(y.numpy()).astype(np.int32)
        better = self._costs(x, refined, h, w, lmbda) < self._costs(x, one_pass, h, w, lmbda)
        return np.where(better[:, None, None, None], refined, one_pass)
