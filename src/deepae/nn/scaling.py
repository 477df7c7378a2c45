"""Input scaling as a Keras layer, so that a model carries the units of its data."""

from __future__ import annotations

import keras
import numpy as np

__all__ = ["Scaling"]


@keras.saving.register_keras_serializable(package="deepae")
class Scaling(keras.layers.Layer):
    """Affine scaling ``z = (x - offset) / scale`` of each value of a sample, and its inverse.

    The statistics are non-trainable weights of shape one sample's shape, so they are saved
    and restored with the model's other weights and a model that holds this layer takes data
    in the user's own units. Until `set_statistics` is called the layer is the identity
    (offset 0, scale 1) and `kind` is None.

    Parameters
    ----------
    kind : str, optional
        Name of the scaling the statistics come from ("unit", "minmax", "standard", "none");
        None while not fitted.
    data_min, data_max : float, optional
        Range of the training data after scaling (what picks an output activation).

    Notes
    -----
    ``layer(x)`` scales; ``layer(z, inverse=True)`` maps back to the data's units. Input and
    output shapes are ``(batch, *sample_shape)``.
    """

    def __init__(self, kind=None, data_min=None, data_max=None, **kwargs):
        super().__init__(**kwargs)
        self.kind = kind
        self.data_min = data_min
        self.data_max = data_max

    def build(self, input_shape):
        shape = tuple(int(d) for d in input_shape[1:])
        self.offset = self.add_weight(shape=shape, initializer="zeros", trainable=False,
                                      name="offset")
        self.scale = self.add_weight(shape=shape, initializer="ones", trainable=False,
                                     name="scale")
        self.built = True

    def set_statistics(self, kind, offset, scale, data_min, data_max):
        """Set the scaling: `offset` and `scale` broadcastable to one sample's shape."""
        shape = tuple(self.offset.shape)
        offset = np.broadcast_to(np.asarray(offset, np.float32), shape)
        scale = np.broadcast_to(np.asarray(scale, np.float32), shape)
        if not (np.all(np.isfinite(offset)) and np.all(np.isfinite(scale))
                and np.all(scale > 0)):
            raise ValueError("Scaling needs finite offsets and positive, finite scales.")
        self.offset.assign(offset)
        self.scale.assign(scale)
        self.kind, self.data_min, self.data_max = kind, data_min, data_max

    def statistics(self):
        """``(offset, scale)`` as float32 NumPy arrays of one sample's shape."""
        return (keras.ops.convert_to_numpy(self.offset),
                keras.ops.convert_to_numpy(self.scale))

    def call(self, inputs, inverse=False):
        if inverse:
            return inputs * self.scale + self.offset
        return (inputs - self.offset) / self.scale

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "kind": self.kind, "data_min": self.data_min,
                "data_max": self.data_max}
