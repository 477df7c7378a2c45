"""Keras building blocks. Nothing here knows about files or the command line."""

from deepae.nn.autoencoders import AutoencoderModel, Decoder, Encoder
from deepae.nn.scaling import Scaling

__all__ = ["Encoder", "Decoder", "AutoencoderModel", "Scaling"]
