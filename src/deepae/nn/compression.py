"""Building blocks of learned image compression (Ballé, Laparra & Simoncelli 2017; Ballé et
al. 2018): GDN/IGDN normalisation, convolutional analysis and synthesis transforms, and the
learned factorised prior ("entropy bottleneck") that gives the rate term of the loss.

The analysis transform maps an image (n, h, w, c) to a latent (n, h/2**L, w/2**L, M); the
latent is quantised (additive uniform noise in training, rounding at inference), and the
synthesis transform maps it back. The prior is one non-parametric density per latent channel,
learned jointly, whose cumulative is evaluated at y +- 1/2 to give each quantised value's
probability. Only Keras layers registered under the ``deepae`` package are used, so the
transforms save and load with ``keras.saving`` in safe mode.
"""

from __future__ import annotations

import math

import keras
import numpy as np
from keras import layers, ops

from deepae._validation import check_positive_int

__all__ = ["GDN", "FactorizedPrior", "analysis_transform", "synthesis_transform", "rate_distortion",
           "receptive_halo", "LIKELIHOOD_BOUND", "KERNEL"]

LIKELIHOOD_BOUND = 1e-9
KERNEL = 5  # the side of every convolution of both transforms


@keras.saving.register_keras_serializable(package="deepae")
class GDN(layers.Layer):
    """Generalised divisive normalisation (Ballé et al. 2016) and its inverse.

    ``y_i = x_i / sqrt(beta_i + sum_j gamma_ij x_j ** 2)``, or ``x_i * sqrt(...)`` when
    ``inverse=True`` (IGDN, used in the synthesis transform). `beta` and `gamma` are kept
    non-negative by a square parametrisation. Input and output shape: (..., channels).
    """

    def __init__(self, inverse: bool = False, **kwargs):
        super().__init__(**kwargs)
        self.inverse = bool(inverse)

    def build(self, input_shape):
        c = int(input_shape[-1])

        def g0(shape, dtype=None):
            # gamma = g ** 2 starts at 0.1 I; off-diagonal entries start small but non-zero
            # so that their gradient (2 g) is not zero. A function, not an array: values are
            # made only when the variable is (never, in a stateless scope: see
            # deepae.persistence, which counts a forged file's weights that way)
            eye = np.eye(shape[0], dtype="float32")
            return np.sqrt(0.1 * eye + 1e-4 * (1 - eye)).astype("float32")

        self.g = self.add_weight(shape=(c, c), initializer=g0, name="g")
        self.b = self.add_weight(shape=(c,), initializer="ones", name="b")

    def call(self, x):
        gamma = ops.square(self.g)
        beta = ops.square(self.b) + 1e-6
        norm = ops.sqrt(ops.matmul(ops.square(x), gamma) + beta)
        return x * norm if self.inverse else x / norm

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "inverse": self.inverse}


@keras.saving.register_keras_serializable(package="deepae")
class FactorizedPrior(layers.Layer):
    """A learned density per latent channel (Ballé et al. 2018, appendix 6.1).

    Each channel's cumulative distribution is a small monotonic network
    ``R -> R`` (widths 1-3-3-3-1), so the density can take any unimodal or multimodal shape.
    ``call(y)`` returns the likelihood of each element of `y` under the density convolved
    with a unit-width box: ``P(y) = cdf(y + 1/2) - cdf(y - 1/2)``, bounded below by
    `LIKELIHOOD_BOUND`. For integer `y` (rounded latents) that is the probability of the
    quantised value, which `deepae.apps.compress` freezes into integer tables.

    Input and output shape: (n, h, w, channels).
    """

    def __init__(self, filters=(3, 3, 3), init_scale: float = 10.0, **kwargs):
        super().__init__(**kwargs)
        self.filters = tuple(int(f) for f in filters)
        self.init_scale = float(init_scale)

    def build(self, input_shape):
        c = int(input_shape[-1])
        self.channels = c
        widths = (1, *self.filters, 1)
        scale = self.init_scale ** (1 / (len(widths) - 1))
        self._matrices, self._biases, self._factors = [], [], []
        rng = np.random.default_rng(0)

        def uniform(shape, dtype=None):  # drawn when the variable is made (in order)
            return rng.uniform(-0.5, 0.5, tuple(shape)).astype("float32")

        for i in range(len(widths) - 1):
            init = np.log(np.expm1(1 / scale / widths[i + 1]))
            self._matrices.append(self.add_weight(
                shape=(c, widths[i + 1], widths[i]), name=f"matrix{i}",
                initializer=keras.initializers.Constant(init)))
            self._biases.append(self.add_weight(
                shape=(c, widths[i + 1], 1), name=f"bias{i}", initializer=uniform))
            if i < len(widths) - 2:
                self._factors.append(self.add_weight(
                    shape=(c, widths[i + 1], 1), name=f"factor{i}", initializer="zeros"))

    def logits_cumulative(self, x):
        """The logit of each channel's cumulative at `x`; `x` is (channels, 1, n)."""
        logits = x
        for i, (m, b) in enumerate(zip(self._matrices, self._biases, strict=True)):
            logits = ops.matmul(ops.softplus(m), logits) + b
            if i < len(self._factors):
                logits = logits + ops.tanh(self._factors[i]) * ops.tanh(logits)
        return logits

    def call(self, y):
        shape = ops.shape(y)
        # (n, h, w, c) -> (c, 1, n * h * w): each channel through its own density
        flat = ops.expand_dims(ops.transpose(ops.reshape(y, (-1, self.channels))), 1)
        lower = self.logits_cumulative(flat - 0.5)
        upper = self.logits_cumulative(flat + 0.5)
        # the difference of sigmoids on the side of the median where they are small, for
        # precision in the tails
        sign = ops.stop_gradient(-ops.sign(lower + upper))
        lik = ops.abs(ops.sigmoid(sign * upper) - ops.sigmoid(sign * lower))
        lik = ops.maximum(lik, LIKELIHOOD_BOUND)
        return ops.reshape(ops.transpose(ops.squeeze(lik, 1)), shape)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "filters": self.filters,
                "init_scale": self.init_scale}


def analysis_transform(channels: int, *, filters: int = 96, latent_channels: int = 128,
                       levels: int = 4, name: str = "analysis") -> keras.Model:
    """Image (n, h, w, `channels`) -> latent (n, h / 2**levels, w / 2**levels,
    `latent_channels`): `levels` 5x5 stride-2 convolutions with GDN between them."""
    levels = check_positive_int(levels, "levels", owner="analysis_transform")
    x = inputs = keras.Input((None, None, channels), name="image")
    for i in range(levels):
        last = i == levels - 1
        x = layers.Conv2D(latent_channels if last else filters, KERNEL, strides=2,
                          padding="same",
                          name=f"conv{i}")(x)
        if not last:
            x = GDN(name=f"gdn{i}")(x)
    return keras.Model(inputs, x, name=name)


def synthesis_transform(channels: int, *, filters: int = 96, latent_channels: int = 128,
                        levels: int = 4, name: str = "synthesis") -> keras.Model:
    """Latent (n, h', w', `latent_channels`) -> image (n, h' * 2**levels, w' * 2**levels,
    `channels`): `levels` 5x5 stride-2 transposed convolutions with IGDN between them."""
    levels = check_positive_int(levels, "levels", owner="synthesis_transform")
    x = inputs = keras.Input((None, None, latent_channels), name="latent")
    for i in range(levels):
        last = i == levels - 1
        x = layers.Conv2DTranspose(channels if last else filters, KERNEL, strides=2,
                                   padding="same", name=f"deconv{i}")(x)
        if not last:
            x = GDN(inverse=True, name=f"igdn{i}")(x)
    return keras.Model(inputs, x, name=name)


def receptive_halo(levels: int, kernel: int = KERNEL) -> int:
    """Latent positions of context, on each side of a tile, that make both transforms' output
    on the tile's core what it is on the whole image.

    Each stage is a stride-2 "same" convolution (or transposed convolution) of side `kernel`
    on an even-sized input, zero-padded ``(kernel - 2) // 2`` before (TensorFlow's rule). The
    analysis transform's latent ``i`` reads pixels ``[s i - (s - 1), s i + 3 (s - 1)]`` (``s =
    2**levels``, for the kernel of 5); a synthesised pixel in block ``j`` reads latents
    ``j - 2 .. j + 1``. The halo is the larger reach, in latents, rounded up: 2 for
    ``levels >= 2``, 1 for ``levels = 1``. Tiles must start on multiples of ``s`` pixels.
    """
    levels = check_positive_int(levels, "levels", owner="receptive_halo")
    s, before = 2 ** levels, (kernel - 2) // 2
    j = 4 * kernel  # any block far from the borders
    # analysis: the pixels that latent j reads, stage by stage from the latent down
    lo = hi = j
    for _ in range(levels):
        lo, hi = 2 * lo - before, 2 * hi - before + kernel - 1
    reach = max(s * j - lo, hi - (s * j + s - 1))
    halo = -(-reach // s)
    # synthesis: the latents that the pixels of block j read, stage by stage up
    lo, hi = s * j, s * j + s - 1
    for _ in range(levels):
        lo, hi = -(-(lo + before - kernel + 1) // 2), (hi + before) // 2
    return max(halo, j - lo, hi - j)


def rate_distortion(likelihoods, x, x_hat, lmbda, pixels, weights=None):
    """The codec's loss, ``bits / pixels + lmbda * MSE``, with its two terms.

    `likelihoods` are the prior's probabilities of the latents (bits = the sum of their
    -log2, each weighted by `weights` when given: the refined tile's core only); `x` and
    `x_hat` are the image and its reconstruction in [0, 1]; `lmbda` weighs the mean squared
    error. Returns ``(loss, bits per pixel, mse)``.
    """
    nll = -ops.log(likelihoods)
    bpp = ops.sum(nll if weights is None else weights * nll) / (math.log(2.0) * pixels)
    mse = ops.mean(ops.square(x_hat - x))
    return bpp + lmbda * mse, bpp, mse
