"""Input scaling as a Keras layer, so that a model carries the units of its data."""

from __future__ import annotations

import keras
import numpy as np

__all__ = ["Scaling", "statistics_problem"]


def statistics_problem(offset, scale) -> str | None:
    """What is wrong with scaling statistics, said with the values received (None if they
    are usable: finite offsets, positive and finite scales)."""
    offset, scale = np.asarray(offset), np.asarray(scale)
    bad_offset = int(np.size(offset) - np.count_nonzero(np.isfinite(offset)))
    bad_scale = int(np.size(scale) - np.count_nonzero(np.isfinite(scale) & (scale > 0)))
    if not (bad_offset or bad_scale):
        return None
    low = float(np.nanmin(scale)) if np.size(scale) and not np.all(np.isnan(scale)) else None
    return (f"expected finite offsets and positive, finite scales; received "
            f"{bad_offset} non-finite offset(s) and {bad_scale} scale(s) that are not "
            f"positive and finite (smallest scale {low})")


@keras.saving.register_keras_serializable(package="deepae")
class Scaling(keras.layers.Layer):
    """Affine scaling ``z = (x - offset) / scale`` of each value of a sample, and its inverse.

    Everything fitted is a non-trainable weight: the offsets and scales (one sample's shape),
    which of `kinds` they come from, and the range of the scaled training data. So a model
    that holds this layer takes data in the user's own units, saves and restores its scaling
    with its other weights, and a copy made from its configuration alone (a clone, fresh
    weights) has none. Until `set_statistics` the layer is the identity and `kind` is None.

    Parameters
    ----------
    kinds : sequence of str
        The names of the scalings `set_statistics` may be told (saved by index).

    Notes
    -----
    ``layer(x)`` scales; ``layer(z, inverse=True)`` maps back to the data's units. Input and
    output shapes are ``(batch, *sample_shape)``.
    """

    def __init__(self, kinds=(), **kwargs):
        super().__init__(**kwargs)
        self.kinds = tuple(kinds)

    def build(self, input_shape):
        shape = tuple(int(d) for d in input_shape[1:])
        self.offset = self.add_weight(shape=shape, initializer="zeros", trainable=False,
                                      name="offset")
        self.scale = self.add_weight(shape=shape, initializer="ones", trainable=False,
                                     name="scale")
        self.kind_index = self.add_weight(shape=(), initializer=keras.initializers.Constant(-1),
                                          dtype="int32", trainable=False, name="kind_index")
        self.data_range = self.add_weight(shape=(2,), initializer="zeros", trainable=False,
                                          name="data_range")
        self.built = True

    def set_statistics(self, kind, offset, scale, data_min, data_max):
        """Set the scaling: `kind` one of `kinds`, `offset` and `scale` broadcastable to one
        sample's shape, the scaled training data's range."""
        if kind not in self.kinds:
            raise ValueError(f"Expected a scaling kind among {list(self.kinds)}; received "
                             f"{kind!r}.")
        shape = tuple(self.offset.shape)
        offset = np.broadcast_to(np.asarray(offset, np.float32), shape)
        scale = np.broadcast_to(np.asarray(scale, np.float32), shape)
        problem = statistics_problem(offset, scale)
        if problem:
            raise ValueError(f"Scaling.set_statistics: {problem}.")
        self.offset.assign(offset)
        self.scale.assign(scale)
        self.kind_index.assign(self.kinds.index(kind))
        self.data_range.assign(np.asarray([data_min, data_max], np.float32))

    def reset(self):
        """Back to the identity, not fitted."""
        self.offset.assign(np.zeros(self.offset.shape, np.float32))
        self.scale.assign(np.ones(self.scale.shape, np.float32))
        self.kind_index.assign(-1)
        self.data_range.assign(np.zeros(2, np.float32))

    @property
    def kind(self):
        """The fitted scaling's name, None while not fitted (or for an index outside
        `kinds`, which only a forged file holds: see `statistics`)."""
        i = int(keras.ops.convert_to_numpy(self.kind_index))
        return self.kinds[i] if 0 <= i < len(self.kinds) else None

    def statistics(self) -> dict:
        """Everything fitted, as NumPy: ``kind_index``, ``offset``, ``scale`` (float32, one
        sample's shape), ``data_min`` and ``data_max``."""
        lo, hi = (float(v) for v in keras.ops.convert_to_numpy(self.data_range))
        return {"kind_index": int(keras.ops.convert_to_numpy(self.kind_index)),
                "offset": keras.ops.convert_to_numpy(self.offset),
                "scale": keras.ops.convert_to_numpy(self.scale),
                "data_min": lo, "data_max": hi}

    def call(self, inputs, inverse=False):
        if inverse:
            return inputs * self.scale + self.offset
        return (inputs - self.offset) / self.scale

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "kinds": list(self.kinds)}
