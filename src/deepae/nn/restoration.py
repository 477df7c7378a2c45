"""Fully convolutional encoder-decoder networks for image restoration.

A restoration autoencoder maps a degraded image to its clean version, at any size: the
encoder narrows the image with stride-2 convolutions, the decoder widens it back with
stride-2 transposed convolutions, symmetric skip connections carry detail across (Mao et
al. 2016, "Image restoration using very deep convolutional encoder-decoder networks with
symmetric skip connections"), and the network predicts a residual added to its input
(Zhang et al. 2017, DnCNN), so that it only has to learn what the degradation changed.
Only standard Keras layers are used: the models save and load with `keras.saving`.
"""

from __future__ import annotations

import keras
from keras import layers

from deepae._validation import check_positive_int, check_units

__all__ = ["restoration_net", "receptive_radius", "multiple", "BicubicUpsampling"]


@keras.saving.register_keras_serializable(package="deepae")
class BicubicUpsampling(layers.Layer):
    """Bicubic upsampling by an integer `scale`, for inputs of any (dynamic) size.

    Keras's ``UpSampling2D(interpolation="bicubic")`` needs static sizes; this layer resizes
    with TensorFlow's ``tf.image.resize`` (half-pixel centres, no antialiasing), so one
    traced function serves images of every size.
    """

    def __init__(self, scale: int, **kwargs):
        super().__init__(**kwargs)
        self.scale = check_positive_int(scale, "scale", owner="BicubicUpsampling")

    def call(self, x):
        import tensorflow as tf

        shape = tf.shape(x)
        return tf.image.resize(x, (shape[1] * self.scale, shape[2] * self.scale),
                               method="bicubic")

    def compute_output_shape(self, input_shape):
        n, h, w, c = input_shape
        return (n, None if h is None else h * self.scale,
                None if w is None else w * self.scale, c)

    def get_config(self):
        return {**super().get_config(), "scale": self.scale}


def _body(x, filters, convs_per_level, name):
    """Encoder-decoder with skip connections; returns the last decoder feature map."""
    skips = []
    for i, f in enumerate(filters):
        stride = 1 if i == 0 else 2
        x = layers.Conv2D(f, 3, strides=stride, padding="same", activation="relu",
                          name=f"{name}_enc{i}_0")(x)
        for j in range(1, convs_per_level):
            x = layers.Conv2D(f, 3, padding="same", activation="relu",
                              name=f"{name}_enc{i}_{j}")(x)
        skips.append(x)
    for i in range(len(filters) - 2, -1, -1):
        f = filters[i]
        x = layers.Conv2DTranspose(f, 3, strides=2, padding="same", activation="relu",
                                   name=f"{name}_up{i}")(x)
        x = layers.Add(name=f"{name}_skip{i}")([x, skips[i]])
        for j in range(convs_per_level - 1):
            x = layers.Conv2D(f, 3, padding="same", activation="relu",
                              name=f"{name}_dec{i}_{j}")(x)
    return x


def restoration_net(channels: int, *, filters=(32, 64, 64), convs_per_level: int = 2,
                    noise_level_input: bool = False, scale: int = 1,
                    name: str = "restoration_net") -> keras.Model:
    """A fully convolutional restoration autoencoder for images with `channels` channels.

    Parameters
    ----------
    channels : int
        1 (grayscale) or 3 (colour).
    filters : tuple of int
        Filters per level, finest first; each level after the first halves the resolution.
        The sides the body sees must be multiples of ``2 ** (len(filters) - 1)``
        (`multiple`).
    convs_per_level : int
        3x3 convolutions per level on each side.
    noise_level_input : bool
        Add a second input, a (h, w, 1) map of the noise's standard deviation (the
        given-sigma mode of FFDNet, Zhang et al. 2018); otherwise the network is blind.
    scale : int
        1 for denoising. 2 or 4 for super-resolution: the low-resolution input is first
        upsampled bicubically inside the model, and the network predicts the residual over
        that (VDSR, Kim et al. 2016), so it learns only the detail bicubic misses.

    Returns
    -------
    keras.Model
        Inputs ``image`` (and ``noise_level``), output the restored image, float32 in the
        input's units (no clipping: callers clip to the data range).
    """
    channels = check_positive_int(channels, "channels", owner="restoration_net")
    filters = check_units(filters, "filters", owner="restoration_net")
    convs_per_level = check_positive_int(convs_per_level, "convs_per_level",
                                         owner="restoration_net")
    scale = check_positive_int(scale, "scale", owner="restoration_net")
    image = keras.Input((None, None, channels), name="image")
    inputs = [image]
    base = image
    if scale > 1:
        base = BicubicUpsampling(scale, name="bicubic")(image)
    x = base
    if noise_level_input:
        level = keras.Input((None, None, 1), name="noise_level")
        inputs.append(level)
        x = layers.Concatenate(name="with_noise_level")([base, level])
    x = _body(x, filters, convs_per_level, "body")
    residual = layers.Conv2D(channels, 3, padding="same", name="residual")(x)
    out = layers.Add(name="restored")([base, residual])
    return keras.Model(inputs if noise_level_input else image, out,
                       name=f"{name}_x{scale}" if scale > 1 else name)


def multiple(filters) -> int:
    """The factor every input side must be a multiple of."""
    return 2 ** (len(filters) - 1)


def receptive_radius(filters, convs_per_level: int = 2) -> int:
    """How many input pixels on each side can influence one output pixel (an upper bound).

    A 3x3 convolution at a level whose pixels are ``2 ** i`` input pixels wide reaches
    ``2 ** i`` pixels further; a stride-2 convolution or transposed convolution into or
    out of level ``i`` reaches ``2 ** i`` more. Tiles that overlap by this much reproduce
    the untiled result exactly (`deepae.apps.restore.apply_tiled`).
    """
    r = 0
    for i in range(len(filters)):
        r += convs_per_level * (2 ** i)  # encoder convs (the first one strided into level i)
        if i < len(filters) - 1:
            r += 2 ** (i + 1) + (convs_per_level - 1) * (2 ** i)  # up into i, decoder convs
    return r + 1  # the output convolution
