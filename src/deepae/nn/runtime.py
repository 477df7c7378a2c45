"""What the models need at run time beside their layers: compiled inference functions for
the hot paths (encode, decode, scoring), and the logs fix for multi-worker training.

`Model.predict` runs a general loop with callbacks; calling a compiled function on batches
directly is about twice as fast on the CPU. With the TensorFlow backend the function is a
`tf.function`; on other backends it is returned as is.
"""

from __future__ import annotations

import keras
from keras import ops

__all__ = ["compiled", "CollectiveLogsMixin"]


def compiled(fn, batch_shape=None):
    """Return `fn` compiled for the active backend (`tf.function` on TensorFlow).

    With `batch_shape` (such as ``(None, 30)``), `fn` takes one float32 tensor of that
    shape and is traced once, whatever the batch sizes it is called with (several models,
    each called on full batches and a remainder, would otherwise retrace and make
    TensorFlow warn about it)."""
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf  # the point here: graph compilation of the hot path

        signature = None if batch_shape is None else [tf.TensorSpec(batch_shape, tf.float32)]
        return tf.function(fn, reduce_retracing=True, input_signature=signature)
    return fn


def _per_replica_logs(logs):
    """Under MultiWorkerMirroredStrategy, Keras 3 reduces each step's logs across workers
    with ``strategy.reduce("MEAN", value, axis=0)``, which fails on scalars ("Invalid
    reduction dimension 0 for input with 0 dimensions", tensorflow/tensorflow#72388). Giving
    each log the shape (1,) there lets that reduction work: the mean over the workers (and
    over that one element) is the same scalar. Elsewhere the logs are returned as they are."""
    if keras.backend.backend() != "tensorflow":
        return logs
    import tensorflow as tf  # the point here: tf.distribute's collective strategy

    strategy = tf.distribute.get_strategy()
    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return logs
    return {k: ops.reshape(v, (1,)) if len(ops.shape(v)) == 0 else v for k, v in logs.items()}


class CollectiveLogsMixin:
    """For a `keras.Model` subclass trained by `Model.fit`: makes its step logs reducible
    across the workers of a multi-worker strategy (see `_per_replica_logs`). Put it before
    `keras.Model` in the bases."""

    def train_step(self, data):
        return _per_replica_logs(super().train_step(data))

    def test_step(self, data):
        return _per_replica_logs(super().test_step(data))
