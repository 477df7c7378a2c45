"""Encoder, Decoder and the AutoencoderModel that joins them (dense and convolutional).

Math uses `keras.ops` only, so the model runs on any Keras 3 backend.
"""

from __future__ import annotations

import math

import keras
import numpy as np
from keras import layers, ops

from deepae._validation import (
    check_fraction,
    check_in,
    check_positive_int,
    check_units,
    warn_no_compression,
)
from deepae.nn.runtime import CollectiveLogsMixin

__all__ = ["Encoder", "Decoder", "AutoencoderModel", "KINDS", "ACTIVATIONS"]

KINDS = ("dense", "conv")
ACTIVATIONS = ("relu", "tanh", "sigmoid", "elu", "selu", "gelu", "silu", "swish",
               "leaky_relu", "softplus", "linear")


def _check_activation(value, name, owner):
    if callable(value):
        return value
    return check_in(value, name, ACTIVATIONS, owner=owner)


def _check_shape(shape, kind, owner):
    if shape is None or isinstance(shape, str | bytes) or not hasattr(shape, "__len__"):
        raise TypeError(f"The 'input_shape' parameter of {owner} must be a tuple of positive ints "
                        f"such as (784,) or (28, 28); got {shape!r}.")
    shape = check_units(tuple(shape), "input_shape", owner=owner, allow_empty=False)
    if kind == "conv" and len(shape) not in (2, 3):
        raise ValueError(f"The 'input_shape' parameter of {owner} must be (height, width) or "
                         f"(height, width, channels) for kind='conv'; got {shape}.")
    return shape


def _conv_grid(shape, n_down):
    """Spatial size after `n_down` stride-2 'same' convolutions: ceil(h / 2**n)."""
    h, w = shape[0], shape[1]
    for _ in range(n_down):
        h, w = math.ceil(h / 2), math.ceil(w / 2)
    return h, w


def _build_chain(chain, shape):
    for layer in chain:
        layer.build(shape)
        shape = layer.compute_output_shape(shape)
    return shape


@keras.saving.register_keras_serializable(package="deepae")
class DenseTransposed(layers.Layer):
    """A dense layer that uses the transpose of another `Dense` layer's kernel (tied weights).

    It owns only its bias. Input shape ``(batch, source.units)``; output shape
    ``(batch, units)``, where `units` is the source layer's input size. Tie it with
    `tie(source)` before it is called.
    """

    def __init__(self, units, activation=None, **kwargs):
        super().__init__(**kwargs)
        self.units = int(units)
        self.activation = keras.activations.get(activation)
        self._source = None  # a function returning the layer: keeps it out of Keras tracking

    def tie(self, source):
        self._source = lambda: source

    def build(self, input_shape):
        self.bias = self.add_weight(shape=(self.units,), initializer="zeros", name="bias")

    def call(self, inputs):
        if self._source is None:
            raise ValueError(f"{self.name} is not tied to an encoder layer; call tie(layer).")
        kernel = self._source().kernel  # (units, input_dim) of the source
        return self.activation(ops.matmul(inputs, ops.transpose(kernel)) + self.bias)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.units)

    def get_config(self):
        return {**super().get_config(), "units": self.units,
                "activation": keras.activations.serialize(self.activation)}


class _Dropped:
    def _dropped(self, x):
        return x if self.drop is None else self.drop(x)


@keras.saving.register_keras_serializable(package="deepae")
class Encoder(_Dropped, layers.Layer):
    """Maps inputs to latent codes, narrowing layer by layer.

    Parameters
    ----------
    input_shape : tuple of int
        Shape of one sample, e.g. ``(784,)`` or ``(28, 28)`` or ``(32, 32, 3)``.
    kind : {"dense", "conv"}
        ``"dense"``: Flatten then Dense layers. ``"conv"``: stride-2 Conv2D layers (3x3,
        "same" padding), then Flatten and a Dense code layer.
    hidden_units : tuple of int
        Units (dense) or filters (conv) of each hidden layer, widest first.
    latent_dim : int
        Size of the code z.
    activation, latent_activation : str
        Hidden-layer and code-layer activations.
    dropout : float in [0, 1), default=0.0
        Dropout after each hidden layer, in training only.

    Notes
    -----
    Input shape ``(batch, *input_shape)``; output shape ``(batch, latent_dim)``.
    """

    def __init__(self, input_shape, *, kind="dense", hidden_units=(256, 128), latent_dim=32,
                 activation="relu", latent_activation="linear", dropout=0.0, **kwargs):
        super().__init__(**kwargs)
        owner = type(self).__name__
        self.dropout = check_fraction(dropout, "dropout", owner=owner)
        self.drop = layers.Dropout(self.dropout, name="dropout") if self.dropout else None
        self.kind = check_in(kind, "kind", KINDS, owner=owner)
        self.data_shape = _check_shape(input_shape, kind, owner)
        self.hidden_units = check_units(hidden_units, "hidden_units", owner=owner,
                                        allow_empty=kind == "dense")
        self.latent_dim = check_positive_int(latent_dim, "latent_dim", owner=owner)
        self.activation = _check_activation(activation, "activation", owner)
        self.latent_activation = _check_activation(latent_activation, "latent_activation", owner)
        if self.kind == "dense":
            self.hidden = [layers.Dense(u, activation=self.activation, name=f"dense_{i}")
                           for i, u in enumerate(self.hidden_units)]
        else:
            self.hidden = [layers.Conv2D(f, 3, strides=2, padding="same",
                                         activation=self.activation, name=f"conv_{i}")
                           for i, f in enumerate(self.hidden_units)]
        self.code = layers.Dense(self.latent_dim, activation=self.latent_activation, name="code")

    def build(self, input_shape):
        shape = tuple(input_shape)
        if self.kind == "conv":
            if len(self.data_shape) == 2:
                shape = shape + (1,)
            shape = _build_chain(self.hidden, shape)
            shape = (shape[0], int(np.prod(shape[1:])))
        else:
            shape = _build_chain(self.hidden, (shape[0], int(np.prod(self.data_shape))))
        self.code.build(shape)

    def call(self, inputs):
        x = inputs
        if self.kind == "conv":
            if len(self.data_shape) == 2:
                x = ops.expand_dims(x, -1)  # (batch, h, w, 1)
            for layer in self.hidden:
                x = self._dropped(layer(x))
        else:
            x = ops.reshape(x, (-1, int(np.prod(self.data_shape))))
            for layer in self.hidden:
                x = self._dropped(layer(x))
        x = ops.reshape(x, (-1, int(np.prod(x.shape[1:]))))
        return self.code(x)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.latent_dim)

    def get_config(self):
        return {**super().get_config(), "input_shape": list(self.data_shape), "kind": self.kind,
                "hidden_units": list(self.hidden_units), "latent_dim": self.latent_dim,
                "activation": self.activation, "latent_activation": self.latent_activation,
                "dropout": self.dropout}


@keras.saving.register_keras_serializable(package="deepae")
class Decoder(_Dropped, layers.Layer):
    """Maps latent codes back to the input space, widening layer by layer.

    Parameters
    ----------
    output_shape : tuple of int
        Shape of one reconstructed sample (the encoder's ``input_shape``).
    kind : {"dense", "conv"}
        ``"conv"``: a Dense layer to the bottleneck grid, then stride-2 Conv2DTranspose layers
        up to the output, cropped to ``output_shape``.
    hidden_units : tuple of int
        Units (dense) or filters (conv) of each hidden layer, narrowest first (the mirror of
        the encoder's). For conv, the first entry is the bottleneck grid's depth.
    activation, output_activation : str
        Hidden-layer and output-layer activations.
    dropout : float in [0, 1), default=0.0
        Dropout after each hidden layer, in training only.
    tied : bool, default=False
        Dense only: the layers use the transposed kernels of an encoder's layers (see
        `tie`), with their own biases; half the weights, and less overfitting.

    Notes
    -----
    Input shape ``(batch, latent_dim)``; output shape ``(batch, *output_shape)``.
    """

    def __init__(self, output_shape, *, kind="dense", hidden_units=(128, 256),
                 activation="relu", output_activation="linear", dropout=0.0, tied=False,
                 **kwargs):
        super().__init__(**kwargs)
        owner = type(self).__name__
        self.dropout = check_fraction(dropout, "dropout", owner=owner)
        self.drop = layers.Dropout(self.dropout, name="dropout") if self.dropout else None
        self.kind = check_in(kind, "kind", KINDS, owner=owner)
        self.data_shape = _check_shape(output_shape, kind, owner)
        self.hidden_units = check_units(hidden_units, "hidden_units", owner=owner,
                                        allow_empty=kind == "dense")
        self.activation = _check_activation(activation, "activation", owner)
        self.output_activation = _check_activation(output_activation, "output_activation", owner)
        self.tied = bool(tied)
        if self.tied and self.kind != "dense":
            raise ValueError(f"tied=True needs kind='dense' in {owner}; got kind={kind!r}.")
        if self.tied:
            self.hidden = [DenseTransposed(u, activation=self.activation, name=f"dense_{i}")
                           for i, u in enumerate(self.hidden_units)]
            self.out = DenseTransposed(int(np.prod(self.data_shape)),
                                       activation=self.output_activation, name="output")
        elif self.kind == "dense":
            self.hidden = [layers.Dense(u, activation=self.activation, name=f"dense_{i}")
                           for i, u in enumerate(self.hidden_units)]
            self.out = layers.Dense(int(np.prod(self.data_shape)),
                                    activation=self.output_activation, name="output")
        else:
            self._grid = _conv_grid(self.data_shape, len(self.hidden_units))
            depth = self.hidden_units[0]
            self.hidden = [layers.Dense(self._grid[0] * self._grid[1] * depth,
                                        activation=self.activation, name="dense_grid")]
            self.hidden += [layers.Conv2DTranspose(f, 3, strides=2, padding="same",
                                                   activation=self.activation, name=f"deconv_{i}")
                            for i, f in enumerate(self.hidden_units[1:])]
            channels = self.data_shape[2] if len(self.data_shape) == 3 else 1
            self.out = layers.Conv2DTranspose(channels, 3, strides=2, padding="same",
                                              activation=self.output_activation, name="output")

    def build(self, input_shape):
        shape = tuple(input_shape)
        if self.kind == "dense":
            shape = _build_chain(self.hidden, shape)
        else:
            shape = _build_chain(self.hidden[:1], shape)
            shape = (shape[0], *self._grid, self.hidden_units[0])
            shape = _build_chain(self.hidden[1:], shape)
        self.out.build(shape)

    def call(self, inputs):
        x = inputs
        if self.kind == "dense":
            for layer in self.hidden:
                x = self._dropped(layer(x))
            return ops.reshape(self.out(x), (-1, *self.data_shape))
        x = self._dropped(self.hidden[0](x))
        x = ops.reshape(x, (-1, *self._grid, self.hidden_units[0]))  # (batch, h/2^k, w/2^k, c)
        for layer in self.hidden[1:]:
            x = self._dropped(layer(x))
        x = self.out(x)[:, : self.data_shape[0], : self.data_shape[1], :]  # crop to (h, w)
        if len(self.data_shape) == 2:
            x = ops.squeeze(x, -1)
        return x

    def compute_output_shape(self, input_shape):
        return (input_shape[0], *self.data_shape)

    def get_config(self):
        return {**super().get_config(), "output_shape": list(self.data_shape), "kind": self.kind,
                "hidden_units": list(self.hidden_units), "activation": self.activation,
                "output_activation": self.output_activation, "dropout": self.dropout,
                "tied": self.tied}

    def tie(self, encoder):
        """Use the transposed kernels of `encoder`'s layers (code layer first)."""
        sources = [encoder.code, *reversed(encoder.hidden)]
        targets = [*self.hidden, self.out]
        if not self.tied or len(sources) != len(targets) or tuple(
                reversed(encoder.hidden_units)) != tuple(self.hidden_units):
            raise ValueError("A tied decoder needs the encoder's hidden_units mirrored; got "
                             f"encoder {encoder.hidden_units}, decoder {self.hidden_units}.")
        for target, source in zip(targets, sources, strict=True):
            target.tie(source)


@keras.saving.register_keras_serializable(package="deepae")
class AutoencoderModel(CollectiveLogsMixin, keras.Model):
    """A deep autoencoder network: an `Encoder` to a latent code and a mirrored `Decoder` back.

    A plain Keras model: ``model(x)`` reconstructs `x`, and Keras's own ``compile``, ``fit``
    and ``save`` work as for any model, on data already in the model's space. The estimator
    that takes data in the user's own units (scaling fitted on the training data, saved with
    the model) is `deepae.Autoencoder`, a subclass.

    Parameters
    ----------
    input_shape : tuple of int, optional
        Shape of one sample; taken from the first input in `build` when None.
    kind : {"dense", "conv"}
        Fully connected layers, or stride-2 convolutions for images.
    hidden_units : tuple of int
        Encoder hidden layers, widest first (filters for conv).
    latent_dim : int
        Size of the code.
    decoder_units : tuple of int, optional
        Decoder hidden layers; the mirror of `hidden_units` when None.
    activation : str
        Hidden activation: "relu", "tanh", "sigmoid", "elu", ...
    latent_activation : str
        Code-layer activation, linear by default.
    output_activation : str
        Output activation; "auto" is linear here (`deepae.Autoencoder` picks it from the
        range of its scaled training data).
    input_noise : float, default=0.0
        Standard deviation of Gaussian noise added to the inputs in training only.
    input_mask : float in [0, 1), default=0.0
        Share of input values zeroed in training only (masking noise).
    dropout : float in [0, 1), default=0.0
        Dropout after every hidden layer of the encoder and the decoder, in training only.
    tied_weights : bool, default=False
        Dense only: the decoder uses the transposes of the encoder's kernels (with its own
        biases).

    Notes
    -----
    Input shape ``(batch, *input_shape)``; output shape the same.
    """

    def __init__(self, input_shape=None, *, kind="dense", hidden_units=(256, 128), latent_dim=32,
                 decoder_units=None, activation="relu", latent_activation="linear",
                 output_activation="auto", input_noise=0.0, input_mask=0.0, dropout=0.0,
                 tied_weights=False, **kwargs):
        kwargs.setdefault("name", "autoencoder")
        super().__init__(**kwargs)
        self.data_shape = None if input_shape is None else tuple(input_shape)
        self.kind = kind
        self.hidden_units = tuple(hidden_units) if isinstance(hidden_units, list) else hidden_units
        self.latent_dim = latent_dim
        self.decoder_units = decoder_units
        self.activation = activation
        self.latent_activation = latent_activation
        self.output_activation = output_activation
        self.input_noise = input_noise
        self.input_mask = input_mask
        self.dropout = dropout
        self.tied_weights = tied_weights
        self.corruption = None
        self.encoder = None
        self.decoder = None

    # -- construction --------------------------------------------------------------------
    def resolve_output_activation(self) -> str:
        """The output activation the layers are built with ("auto" is linear here)."""
        return "linear" if self.output_activation == "auto" else self.output_activation

    def _make_layers(self):
        owner = type(self).__name__
        if self.data_shape is None:
            raise ValueError(f"{owner} has no 'input_shape': pass input_shape=... or call fit(x) "
                             "so that it is taken from the data.")
        kind = check_in(self.kind, "kind", KINDS, owner=owner)
        shape = _check_shape(self.data_shape, kind, owner)
        units = check_units(self.hidden_units, "hidden_units", owner=owner,
                            allow_empty=kind == "dense")
        latent = check_positive_int(self.latent_dim, "latent_dim", owner=owner)
        dec = tuple(reversed(units)) if self.decoder_units is None else check_units(
            self.decoder_units, "decoder_units", owner=owner, allow_empty=kind == "dense")
        if kind == "conv" and len(dec) != len(units):
            raise ValueError(f"The 'decoder_units' parameter of {owner} must have as many "
                             f"entries as hidden_units={units} for kind='conv' (one upsampling "
                             f"per downsampling); got {dec}.")
        warn_no_compression(latent, int(np.prod(shape)))
        out_act = self.resolve_output_activation()
        self.output_activation_ = out_act
        self.encoder = Encoder(shape, kind=kind, hidden_units=units, latent_dim=latent,
                               activation=self.activation,
                               latent_activation=self.latent_activation,
                               dropout=self.dropout, name="encoder")
        self.decoder = Decoder(shape, kind=kind, hidden_units=dec, activation=self.activation,
                               output_activation=out_act, dropout=self.dropout,
                               tied=bool(self.tied_weights), name="decoder")
        if self.tied_weights:
            if kind != "dense" or dec != tuple(reversed(units)):
                raise ValueError(f"tied_weights=True in {owner} needs kind='dense' and the "
                                 f"decoder mirroring hidden_units={units}; got kind={kind!r}, "
                                 f"decoder_units={dec}.")
            self.decoder.tie(self.encoder)
        if self.input_noise or self.input_mask:
            from deepae.nn.corruption import InputCorruption

            for value, name in ((self.input_noise, "input_noise"), (self.input_mask, "input_mask")):
                if isinstance(value, bool) or not isinstance(value, int | float) or value < 0 or (
                        name == "input_mask" and value >= 1):
                    raise ValueError(f"The '{name}' parameter of {owner} must be a float in "
                                     f"{'[0, 1)' if name == 'input_mask' else '[0, inf)'}. Got "
                                     f"{value!r} instead.")
            self.corruption = InputCorruption(self.input_noise, self.input_mask,
                                              name="corruption")

    def build(self, input_shape):
        if self.data_shape is None:
            self.data_shape = tuple(int(d) for d in input_shape[1:])
        if self.encoder is None:
            self._make_layers()
        self.encoder.build(input_shape)
        self.decoder.build((input_shape[0], self.encoder.latent_dim))
        self.built = True

    def call(self, inputs, training=False):
        if self.corruption is not None:
            inputs = self.corruption(inputs, training=training)
        return self.decoder(self.encoder(inputs))

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        base = super().get_config()
        return {**base, "input_shape": None if self.data_shape is None else list(self.data_shape),
                "kind": self.kind, "hidden_units": list(self.hidden_units),
                "latent_dim": self.latent_dim,
                "decoder_units": None if self.decoder_units is None else list(self.decoder_units),
                "activation": self.activation, "latent_activation": self.latent_activation,
                "output_activation": (self.output_activation_ if self.built
                                      else self.output_activation),
                "input_noise": self.input_noise, "input_mask": self.input_mask,
                "dropout": self.dropout, "tied_weights": bool(self.tied_weights)}

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        for key in ("trainable", "dtype"):
            config.pop(key, None)
        return cls(**config)
