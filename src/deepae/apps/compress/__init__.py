"""Learned image compression: `ImageCodec` (the model and its training), the entropy model's
frozen tables and range coder (`entropy`), and the ``.dae`` file format (`bitstream`)."""

from deepae.apps.compress.codec import MAX_PIXELS, QUALITY_LAMBDAS, ImageCodec

__all__ = ["ImageCodec", "QUALITY_LAMBDAS", "MAX_PIXELS"]
