"""The binary code layer of semantic hashing (Salakhutdinov & Hinton 2009).

`BinaryCode` is a sigmoid code layer with Gaussian noise added to its input in training only:
to carry information through the noise the network learns to drive the pre-activations far
from zero, so that the sigmoid's outputs become nearly 0 or 1, and thresholding them at 1/2
at inference loses little. It also adds two regularisers on the batch's codes: bit balance
(each bit on for half the items) and decorrelation (bits independent of each other), the
conditions under which short codes use their addresses well.
"""

from __future__ import annotations

import keras
from keras import layers, ops

from deepae.nn.runtime import CollectiveLogsMixin

__all__ = ["BinaryCode", "HashingAutoencoder", "hashing_autoencoder"]


@keras.saving.register_keras_serializable(package="deepae")
class BinaryCode(layers.Layer):
    """Noisy sigmoid code layer with bit-balance and decorrelation penalties.

    Input and output shape: (batch, n_bits). Output in (0, 1); threshold at 1/2 for bits.

    Parameters
    ----------
    noise_stddev : float
        Standard deviation of the Gaussian noise added to the pre-activations in training.
    balance : float
        Weight of ``mean_j (mean_batch(b_j) - 1/2) ** 2``.
    decorrelation : float
        Weight of the mean squared off-diagonal covariance of the bits over the batch.
    """

    def __init__(self, noise_stddev=3.0, balance=0.1, decorrelation=0.1, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.noise_stddev = float(noise_stddev)
        self.balance = float(balance)
        self.decorrelation = float(decorrelation)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, logits, training=False):
        if training and self.noise_stddev > 0:
            logits = logits + keras.random.normal(ops.shape(logits), stddev=self.noise_stddev,
                                                  seed=self.seed_generator, dtype=logits.dtype)
        b = ops.sigmoid(logits)
        if training and (self.balance or self.decorrelation):
            mean = ops.mean(b, axis=0)
            penalty = self.balance * ops.mean(ops.square(mean - 0.5))
            if self.decorrelation:
                c = b - mean
                n = ops.cast(ops.shape(b)[0], b.dtype)
                cov = ops.matmul(ops.transpose(c), c) / ops.maximum(n - 1.0, 1.0)
                k = ops.shape(b)[1]
                off = cov * (1.0 - ops.eye(k, dtype=b.dtype))
                kf = ops.cast(k, b.dtype)
                penalty = penalty + self.decorrelation * ops.sum(ops.square(off)) / (
                    kf * ops.maximum(kf - 1.0, 1.0))
            self.add_loss(penalty)
        return b

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "noise_stddev": self.noise_stddev,
                "balance": self.balance, "decorrelation": self.decorrelation,
                "seed": self.seed}


@keras.saving.register_keras_serializable(package="deepae")
class HashingAutoencoder(CollectiveLogsMixin, keras.Model):
    """The functional model `hashing_autoencoder` builds, trainable under a multi-worker
    strategy: its logs reduce across workers (`CollectiveLogsMixin`), and besides the usual
    ``(x, y)`` batches it takes one tensor per batch, the features followed (with the
    second output) by the target bits: under the collective strategy Keras 3 cannot reduce
    a nested batch (keras-team/keras#20329)."""

    def _unpack(self, data):
        if isinstance(data, tuple | list):
            return data
        n = self.inputs[0].shape[-1]
        x = data[:, :n]  # (batch, n_features), then (batch, n_bits) targets if any
        return (x, x) if len(self.outputs) == 1 else (x, (x, data[:, n:]))

    def train_step(self, data):
        return super().train_step(self._unpack(data))

    def test_step(self, data):
        return super().test_step(self._unpack(data))


def hashing_autoencoder(n_features: int, n_bits: int, hidden_units=(512, 256), *,
                        activation="relu", output_activation="sigmoid", noise_stddev=3.0,
                        balance=0.1, decorrelation=0.1, seed=None,
                        with_logits=False) -> keras.Model:
    """A dense autoencoder whose code is `n_bits` nearly binary units (`BinaryCode`); the
    decoder mirrors `hidden_units`. Returns the model; its layer ``"code"`` gives the codes.
    With `with_logits`, the model has a second output, the code layer's input (its logits,
    before the training noise), for a loss that sets target bits."""
    x = inputs = keras.Input((n_features,), name="features")
    for i, u in enumerate(hidden_units):
        x = layers.Dense(u, activation=activation, name=f"enc{i}")(x)
    logits = layers.Dense(n_bits, name="logits")(x)
    x = BinaryCode(noise_stddev, balance, decorrelation, seed=seed, name="code")(logits)
    for i, u in enumerate(reversed(hidden_units)):
        x = layers.Dense(u, activation=activation, name=f"dec{i}")(x)
    out = layers.Dense(n_features, activation=output_activation, name="reconstruction")(x)
    outputs = [out, logits] if with_logits else out
    return HashingAutoencoder(inputs, outputs, name="hashing_autoencoder")
