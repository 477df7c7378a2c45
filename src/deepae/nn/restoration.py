"""Fully convolutional encoder-decoder networks for image restoration.

A restoration autoencoder maps a degraded image to its clean version, at any size: the
encoder narrows the image with stride-2 convolutions, the decoder widens it back with
stride-2 transposed convolutions, symmetric skip connections carry detail across (Mao et
al. 2016, "Image restoration using very deep convolutional encoder-decoder networks with
symmetric skip connections"), and the network predicts a residual added to its input
(Zhang et al. 2017, DnCNN), so that it only has to learn what the degradation changed.
Besides standard Keras layers, only this module's registered ones are used
(`BicubicUpsampling`, and `SplitChannels` / `MergeChannels` for a shared colour network):
the models save and load with `keras.saving` in safe mode.
"""

from __future__ import annotations

import keras
import numpy as np
from keras import layers

from deepae._validation import check_positive_int, check_units

__all__ = ["restoration_net", "receptive_radius", "multiple", "BicubicUpsampling",
           "SplitChannels", "MergeChannels", "shared_from_grayscale", "is_shared"]


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


@keras.saving.register_keras_serializable(package="deepae")
class SplitChannels(layers.Layer):
    """Each channel of a batch of images as an image of its own, with the whole image beside
    it: ``(n, h, w, k)`` to ``(n * k, h, w, 1 + k)``, image ``i``'s channel ``c`` at batch
    index ``i * k + c``. Further inputs (``[image, extra, ...]``, each ``(n, h, w, m)``)
    are repeated for each channel and appended. `MergeChannels` undoes the split."""

    def call(self, inputs):
        import tensorflow as tf

        x, *extra = inputs if isinstance(inputs, (list, tuple)) else [inputs]
        k = x.shape[-1]
        shape = tf.shape(x)
        h, w = shape[1], shape[2]
        own = tf.reshape(tf.transpose(x, (0, 3, 1, 2)), (-1, h, w, 1))
        # each image k times in a row (tile and reshape: what every runtime converts)
        whole = tf.concat([x, *extra], axis=-1)
        m = whole.shape[-1]
        whole = tf.reshape(tf.tile(whole[:, None], (1, k, 1, 1, 1)), (-1, h, w, m))
        return tf.concat([own, whole], axis=-1)

    def compute_output_shape(self, input_shape):
        shapes = input_shape if isinstance(input_shape, (list, tuple)) and isinstance(
            input_shape[0], (list, tuple)) else [input_shape]
        n, h, w, k = shapes[0]
        return (None if n is None else n * k, h, w, 1 + sum(s[-1] for s in shapes))


@keras.saving.register_keras_serializable(package="deepae")
class MergeChannels(layers.Layer):
    """``(n * k, h, w, 1)`` back to ``(n, h, w, k)``: the inverse of `SplitChannels`."""

    def __init__(self, channels: int, **kwargs):
        super().__init__(**kwargs)
        self.channels = check_positive_int(channels, "channels", owner="MergeChannels")

    def call(self, x):
        import tensorflow as tf

        shape = tf.shape(x)
        y = tf.reshape(x, (-1, self.channels, shape[1], shape[2]))
        return tf.transpose(y, (0, 2, 3, 1))

    def compute_output_shape(self, input_shape):
        n, h, w, _ = input_shape
        return (None if n is None else n // self.channels, h, w, self.channels)

    def get_config(self):
        return {**super().get_config(), "channels": self.channels}


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
                    shared: bool = False, name: str = "restoration_net") -> keras.Model:
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
    shared : bool
        For colour (``channels > 1``): restore each channel with one network whose weights
        the channels share, each channel seeing the whole image beside it (`SplitChannels`),
        instead of one network over all channels at once. ``channels`` times the work, and
        a grayscale network carries over exactly (`shared_from_grayscale`).

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
    split = bool(shared) and channels > 1
    if split:  # (n * channels, h, w, 1 + channels [+ 1]): a channel, the image, the level
        x = SplitChannels(name="split_channels")([base, level] if noise_level_input else base)
    elif noise_level_input:
        x = layers.Concatenate(name="with_noise_level")([base, level])
    x = _body(x, filters, convs_per_level, "body")
    residual = layers.Conv2D(1 if split else channels, 3, padding="same", name="residual")(x)
    if split:
        residual = MergeChannels(channels, name="merge_channels")(residual)
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


def is_shared(model: keras.Model) -> bool:
    """Whether `model` is a shared colour network (``restoration_net(k, shared=True)``: it
    splits the channels with `SplitChannels`)."""
    return any(isinstance(layer, SplitChannels) for layer in model.layers)


def shared_from_grayscale(model: keras.Model, gray: keras.Model) -> keras.Model:
    """Give `model`, a shared colour network (``restoration_net(k, shared=True)``), the
    weights of `gray`, a grayscale network of the same filters, scale and inputs: each
    channel is then restored exactly as `gray` restores it alone (the weights that read
    the rest of the image start at zero, for training to use). Returns `model`."""
    for name, net in (("model", model), ("gray", gray)):
        if not isinstance(net, keras.Model):
            raise TypeError(f"shared_from_grayscale takes two keras.Model networks; received "
                            f"{name}={type(net).__name__} (for a fitted estimator, pass its "
                            "model_).")
    if not is_shared(model):
        raise ValueError(f"shared_from_grayscale sets a shared colour network "
                         f"(restoration_net(3, shared=True)); received {model.name!r}, "
                         "which has no SplitChannels layer.")
    scales = [next((layer.scale for layer in net.layers
                    if isinstance(layer, BicubicUpsampling)), 1) for net in (model, gray)]
    if scales[0] != scales[1]:
        raise ValueError(f"shared_from_grayscale needs networks of the same scale; received "
                         f"{model.name!r} of scale {scales[0]} and {gray.name!r} of scale "
                         f"{scales[1]} (scale 1: a denoiser).")
    levels = [len(net.inputs) > 1 for net in (model, gray)]
    if levels[0] != levels[1]:
        raise ValueError(f"shared_from_grayscale needs networks that both take a noise level "
                         f"or neither; received {model.name!r} "
                         f"({'with' if levels[0] else 'without'} a noise level input) and "
                         f"{gray.name!r} ({'with' if levels[1] else 'without'}).")
    mine = {w.path: w for w in model.weights}
    theirs = {w.path: w for w in gray.weights}
    if sorted(mine) != sorted(theirs):
        raise ValueError(f"shared_from_grayscale needs networks of the same layers; "
                         f"received {model.name!r} with {len(mine)} weights and "
                         f"{gray.name!r} with {len(theirs)}.")
    k = model.input_shape[0][-1] if isinstance(model.input, list) else model.input_shape[-1]
    for path, w in mine.items():
        value = theirs[path].numpy()
        if tuple(w.shape) != value.shape and path.endswith("enc0_0/kernel") \
                and value.shape[2] + k == w.shape[2]:
            # the input convolution: the channel itself, then the k channels of the image
            # (zeros), then the noise level if any
            value = np.concatenate([value[:, :, :1], np.zeros(value.shape[:2] + (
                k,) + value.shape[3:], value.dtype), value[:, :, 1:]], axis=2)
        if tuple(w.shape) != value.shape:
            raise ValueError(f"shared_from_grayscale: {path} is {tuple(w.shape)} in "
                             f"{model.name!r} but {value.shape} in {gray.name!r}.")
        w.assign(value)
    return model
