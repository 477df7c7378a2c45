"""Input corruption applied in training only: the denoising autoencoder's regulariser."""

from __future__ import annotations

import keras
from keras import ops

__all__ = ["InputCorruption"]


@keras.saving.register_keras_serializable(package="deepae")
class InputCorruption(keras.layers.Layer):
    """Corrupt inputs during training; the identity at inference.

    Input and output shape: any, ``(batch, ...)``.

    Parameters
    ----------
    noise_stddev : float, default=0.0
        Standard deviation of additive Gaussian noise (in the model's scaled units).
    mask_rate : float in [0, 1), default=0.0
        Share of input values set to zero ("masking noise"), without rescaling the rest.
    seed : int, optional
    """

    def __init__(self, noise_stddev=0.0, mask_rate=0.0, seed=None, **kwargs):
        super().__init__(**kwargs)
        if not 0.0 <= float(noise_stddev):
            raise ValueError(f"Expected `noise_stddev` >= 0; received {noise_stddev!r}.")
        if not 0.0 <= float(mask_rate) < 1.0:
            raise ValueError(f"Expected `mask_rate` in [0, 1); received {mask_rate!r}.")
        self.noise_stddev = float(noise_stddev)
        self.mask_rate = float(mask_rate)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)
        self.supports_masking = True

    def call(self, inputs, training=False):
        if not training:
            return inputs
        x = inputs
        if self.mask_rate > 0:
            keep = keras.random.uniform(ops.shape(x), seed=self.seed_generator) >= self.mask_rate
            x = x * ops.cast(keep, x.dtype)
        if self.noise_stddev > 0:
            x = x + keras.random.normal(ops.shape(x), stddev=self.noise_stddev,
                                        seed=self.seed_generator, dtype=x.dtype)
        return x

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "noise_stddev": self.noise_stddev,
                "mask_rate": self.mask_rate, "seed": self.seed}
