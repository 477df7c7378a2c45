"""Compiled inference functions for hot paths (encode, decode, scoring).

`Model.predict` runs a general loop with callbacks; calling a compiled function on batches
directly is about twice as fast on the CPU. With the TensorFlow backend the function is a
`tf.function`; on other backends it is returned as is.
"""

from __future__ import annotations

import keras

__all__ = ["compiled"]


def compiled(fn):
    """Return `fn` compiled for the active backend (`tf.function` on TensorFlow)."""
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf  # the point here: graph compilation of the hot path

        return tf.function(fn, reduce_retracing=True)
    return fn
