"""`deepae.Autoencoder`: the deep autoencoder in the user's own units.

The network is `deepae.nn.AutoencoderModel`, a plain Keras model; this subclass adds what a
user of the library expects: `fit(x)` on raw data (scaling fitted once by the training
engine and kept with the model), `encode` / `decode` / `reconstruct` in the user's units,
`save` to one deepae artifact and `deepae.load` back.

The scaling is part of the Keras model: a `deepae.nn.Scaling` layer (``model.scaling``)
whose statistics are weights, so `inference_model` gives a Keras model that takes and
returns data in the user's units, and a file keeps its scaling inside the model. Files saved
before the layer existed (scaling kept beside the model) are converted when loaded.
"""

from __future__ import annotations

import keras
import numpy as np
from keras import ops

from deepae._validation import as_array, check_in
from deepae.data.preprocessing import KINDS as SCALINGS
from deepae.data.preprocessing import Scaler, output_activation_for_range
from deepae.exceptions import ArtifactError
from deepae.nn.autoencoders import AutoencoderModel
from deepae.nn.runtime import compiled
from deepae.nn.scaling import Scaling, statistics_problem
from deepae.persistence import Artifact, register_loader, save_artifact

__all__ = ["Autoencoder", "autoencoder_state", "restore_autoencoder"]


@keras.saving.register_keras_serializable(package="deepae")
class Autoencoder(AutoencoderModel):
    """A deep autoencoder: an `Encoder` to a latent code and a mirrored `Decoder` back.

    Calling the model reconstructs its input in the model's (scaled) space, as any Keras
    model; `fit`, `encode`, `decode` and `reconstruct` take data in the user's own units
    (uint8 images, raw table values) and apply the scaling fitted on the training data.

    Parameters
    ----------
    input_shape : tuple of int, optional
        Shape of one sample; inferred from the data in `fit` when None.
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
        "auto" picks sigmoid for training data in [0, 1], tanh for [-1, 1], linear otherwise
        (decided in `fit`, after scaling).
    preprocessing : {"auto", "none", "unit", "minmax", "standard"}
        Scaling fitted on the training data and saved with the model. "auto": uint8 / 255,
        data already in [0, 1] or [-1, 1] kept, other images min-max, tables standardised.
    input_noise : float, default=0.0
        Standard deviation of Gaussian noise added to the (scaled) inputs in training only:
        a denoising autoencoder, which generalises better when data is scarce.
    input_mask : float in [0, 1), default=0.0
        Share of input values zeroed in training only (masking noise).
    dropout : float in [0, 1), default=0.0
        Dropout after every hidden layer of the encoder and the decoder, in training only.
    tied_weights : bool, default=False
        Dense only: the decoder uses the transposes of the encoder's kernels (with its own
        biases); half the weights, which generalises better on small data.
    input_scaling : bool, default=True
        Carry the scaling as a Keras layer (`scaling`). Always True for a model made by this
        version; False only while a file saved by an older one is being converted.

    Attributes
    ----------
    scaling : deepae.nn.Scaling
        The scaling layer; its statistics are set by `fit`.
    scaler_ : Scaler or None
        The fitted scaling as a NumPy `Scaler` (a view of `scaling`), set by `fit`.
    training_summary_ : dict
        Epochs run, final losses, seconds, data fingerprint; set by `fit`.

    Examples
    --------
    >>> import numpy as np, deepae
    >>> x = np.random.default_rng(0).random((64, 20)).astype("float32")
    >>> ae = deepae.Autoencoder(hidden_units=(16,), latent_dim=4)
    >>> _ = ae.fit(x, epochs=1, verbose=0, random_state=0)
    >>> ae.encode(x).shape
    (64, 4)
    """

    def __init__(self, input_shape=None, *, kind="dense", hidden_units=(256, 128), latent_dim=32,
                 decoder_units=None, activation="relu", latent_activation="linear",
                 output_activation="auto", preprocessing="auto", input_noise=0.0,
                 input_mask=0.0, dropout=0.0, tied_weights=False, input_scaling=True,
                 **kwargs):
        super().__init__(input_shape, kind=kind, hidden_units=hidden_units,
                         latent_dim=latent_dim, decoder_units=decoder_units,
                         activation=activation, latent_activation=latent_activation,
                         output_activation=output_activation, input_noise=input_noise,
                         input_mask=input_mask, dropout=dropout, tied_weights=tied_weights,
                         **kwargs)
        self.preprocessing = preprocessing
        self.input_scaling = bool(input_scaling)
        self.scaling = None
        self._scaler = None  # the scaling chosen before the layer is built
        self.training_summary_ = {}
        self._fns = {}

    @property
    def scaler_(self):
        """The fitted scaling as a NumPy `Scaler`, read from the `scaling` layer; None
        before `fit`."""
        layer = self.scaling
        if layer is None or not layer.built or layer.kind is None:
            return self._scaler
        st = layer.statistics()
        return Scaler.from_state(
            {"kind": layer.kind, "data_min": st["data_min"], "data_max": st["data_max"]},
            {"scaler_offset": st["offset"], "scaler_scale": st["scale"]})

    @scaler_.setter
    def scaler_(self, scaler):
        self._set_scaler(scaler)

    def _set_scaler(self, scaler):
        # not through `self.scaler_ = ...` inside the class: Keras's attribute tracking skips
        # an assignment of the value the getter already returns
        self._scaler = scaler
        if self.scaling is None or not self.scaling.built:
            return
        if scaler is None:
            self.scaling.reset()
        else:
            self.scaling.set_statistics(scaler.kind, scaler.offset_, scaler.scale_,
                                        scaler.data_min_, scaler.data_max_)

    def resolve_output_activation(self) -> str:
        """"auto": sigmoid for scaled training data in [0, 1], tanh for [-1, 1], linear
        otherwise (standardised data is unbounded by construction)."""
        if self.output_activation != "auto":
            return self.output_activation
        if self.scaler_ is None or self.scaler_.kind == "standard":
            return "linear"
        return output_activation_for_range(self.scaler_.data_min_, self.scaler_.data_max_)

    def _make_layers(self):
        check_in(self.preprocessing, "preprocessing", ("auto", *SCALINGS),
                 owner=type(self).__name__)
        super()._make_layers()
        if self.input_scaling:
            self.scaling = Scaling(SCALINGS, name="scaling")

    def build(self, input_shape):
        super().build(input_shape)
        if self.scaling is not None:
            self.scaling.build(input_shape)
            self._set_scaler(self._scaler)  # the statistics chosen before the build

    def get_config(self):
        return {**super().get_config(), "preprocessing": self.preprocessing,
                "input_scaling": self.input_scaling}

    @classmethod
    def from_config(cls, config):
        # a config without the key comes from a file saved before the scaling layer: that
        # model is built without it, then converted by `restore_autoencoder`
        return super().from_config({"input_scaling": False, **config})

    # -- data in the user's units -------------------------------------------------------------
    def _check_fitted(self):
        if not self.built:
            from sklearn.exceptions import NotFittedError

            raise NotFittedError(f"This {type(self).__name__} is not fitted yet; call fit(x) "
                                 "first, or deepae.load(path) a trained one.")

    def to_model_space(self, x, name="x"):
        """`x` in the user's units, checked against the fitted sample shape, scaled into
        the model's space (float32); what the training engine feeds the network."""
        arr = self._user_array(x, name)
        scaler = self.scaler_
        return arr if scaler is None else scaler.transform(arr)

    def _user_array(self, x, name="x"):
        """`x` checked against the fitted sample shape, as float32 in the user's units."""
        self._check_fitted()
        arr = as_array(x, name, min_rank=1)
        if arr.shape == tuple(self.data_shape):
            arr = arr[None]  # one sample
        elif arr.ndim < 2:
            as_array(arr, name)  # raises the (n_samples, ...) error
        if tuple(arr.shape[1:]) != tuple(self.data_shape):
            n_got, n_exp = int(np.prod(arr.shape[1:])), int(np.prod(self.data_shape))
            what = (f"{n_got} features, but {type(self).__name__} is expecting {n_exp} "
                    f"features as input" if arr.ndim == 2 and len(self.data_shape) == 1
                    else f"samples of shape {tuple(arr.shape[1:])}, but "
                    f"{type(self).__name__} is expecting shape {tuple(self.data_shape)}")
            raise ValueError(f"`{name}` has {what}.")
        return arr.astype(np.float32, copy=False)

    def _scale(self, x, inverse=False):
        return x if self.scaling is None else self.scaling(x, inverse=inverse)

    def _batched(self, key, fn, z, batch_size):
        if key not in self._fns:
            self._fns[key] = compiled(fn, batch_shape=(None, *z.shape[1:]))
        f = self._fns[key]
        out = [keras.ops.convert_to_numpy(f(z[i: i + batch_size]))
               for i in range(0, len(z), batch_size)]
        return np.concatenate(out, axis=0)

    def encode(self, x, *, batch_size=4096):
        """Latent codes of `x` (user units), shape ``(n_samples, latent_dim)``."""
        x = self._user_array(x)
        return self._batched("encode", lambda b: self.encoder(self._scale(b)), x, batch_size)

    def decode(self, codes, *, batch_size=4096):
        """Reconstructions in the user's units from codes of shape ``(n, latent_dim)``."""
        self._check_fitted()
        codes = as_array(codes, "codes")
        if codes.ndim != 2 or codes.shape[1] != self.encoder.latent_dim:
            raise ValueError(f"Expected `codes` of shape (n_samples, {self.encoder.latent_dim}); "
                             f"received shape {codes.shape}.")
        return self._batched("decode", lambda c: self._scale(self.decoder(c), inverse=True),
                             codes.astype(np.float32), batch_size)

    def reconstruct(self, x, *, batch_size=4096):
        """Reconstructions of `x` in the user's units (float32)."""
        x = self._user_array(x)
        return self._batched("reconstruct",
                             lambda b: self._scale(self(self._scale(b)), inverse=True), x,
                             batch_size)

    def reconstruction_error(self, x, *, batch_size=4096):
        """Per-sample mean squared error in the model's (scaled) space, shape ``(n_samples,)``."""
        x = self._user_array(x)

        def err(batch):
            batch = self._scale(batch)
            d = self(batch) - batch
            return ops.mean(ops.reshape(d * d, (ops.shape(d)[0], -1)), axis=1)

        return self._batched("error", err, x, batch_size)

    def reconstruction_error_and_codes(self, x, *, batch_size=4096):
        """Per-sample mean squared error (model space) and the codes, in one pass.

        Returns ``(errors, codes)`` of shapes ``(n_samples,)`` and ``(n_samples, latent_dim)``.
        """
        x = self._user_array(x)

        def both(batch):
            batch = self._scale(batch)
            code = self.encoder(batch)
            d = self.decoder(code) - batch
            err = ops.mean(ops.reshape(d * d, (ops.shape(d)[0], -1)), axis=1, keepdims=True)
            return ops.concatenate([err, code], axis=1)  # (batch, 1 + latent_dim)

        out = self._batched("error_and_codes", both, x, batch_size)
        return out[:, 0], out[:, 1:]

    def inference_model(self) -> keras.Model:
        """A Keras model that takes and gives data in the user's units.

        Its input ``x`` has shape ``(n, *input_shape)`` (float32, the user's units); its
        outputs are ``{"codes": (n, latent_dim), "reconstruction": (n, *input_shape)}``. It
        shares this model's layers (scaling included); ``keras.saving.save_model`` writes it
        and ``keras.saving.load_model`` reads it back where deepae is installed (its layers
        are deepae's registered Keras classes), running on raw data.
        """
        self._check_fitted()
        x = keras.Input(shape=tuple(self.data_shape), name="x")
        codes = self.encoder(self._scale(x))
        rec = self._scale(self.decoder(codes), inverse=True)
        return keras.Model(x, {"codes": codes, "reconstruction": rec},
                           name=f"{self.name}_inference")

    def export(self, filepath, format="saved_model", *, overwrite=False, **kwargs):
        """Write the model's inference in the user's units, a model that runs without deepae:
        input ``x`` (n, \\*input_shape) float32, outputs ``codes`` and ``reconstruction``.

        Formats ``"saved_model"`` (a folder; Keras's name ``"tf_saved_model"`` is the same
        here), ``"onnx"`` and ``"litert"`` (files), as `AnomalyDetector.export` writes
        them. Keras's own `Model.export` writes the bare network, which takes scaled data;
        this one puts the scaling inside. Returns the path written.
        """
        from deepae.apps.export import autoencoder_graph
        from deepae.exporting import export_graph

        if kwargs:
            raise TypeError(f"Autoencoder.export takes path, format and overwrite; received "
                            f"{sorted(kwargs)} (Keras's export options do not apply).")
        self._check_fitted()
        module, function = autoencoder_graph(self)
        format = "saved_model" if format == "tf_saved_model" else format
        return export_graph(filepath, module, function, format=format, overwrite=overwrite)

    def describe(self) -> dict:
        """What the model is, as a JSON-able dict (what `deepae info` prints): architecture,
        activations, parameter count, scaling and the training summary."""
        self._check_fitted()
        enc, dec, sc = self.encoder, self.decoder, self.scaler_
        shape = "x".join(map(str, self.data_shape))
        return {
            "kind": self.kind, "input_shape": list(self.data_shape),
            "encoder": list(enc.hidden_units), "latent_dim": enc.latent_dim,
            "decoder": list(dec.hidden_units),
            "architecture": " -> ".join(map(str, [shape, *enc.hidden_units, enc.latent_dim,
                                                  *dec.hidden_units, shape])),
            "activation": self.activation, "latent_activation": self.latent_activation,
            "output_activation": self.output_activation_,
            "parameters": int(self.count_params()),
            "preprocessing": None if sc is None else sc.kind,
            "data_range_after_scaling": None if sc is None else [sc.data_min_, sc.data_max_],
            "training": self.training_summary_ or {},
        }

    # -- training and persistence -------------------------------------------------------------
    def fit(self, x=None, y=None, **kwargs):
        """Train on `x` (targets `y`, default `x`). See `deepae.training.fit_autoencoder`.

        Returns the Keras `History`; the model is trained in place.
        """
        from deepae.training import fit_autoencoder

        return fit_autoencoder(self, x, y, **kwargs)

    def save(self, filepath, overwrite=True, **kwargs):
        """Write the model, its scaling and metadata to one deepae artifact (atomically)."""
        meta, arrays = autoencoder_state(self)
        save_artifact(filepath, "Autoencoder", meta, models={"model": self}, arrays=arrays,
                      overwrite=overwrite)


def autoencoder_state(model) -> tuple[dict, dict]:
    """JSON metadata and arrays that, with its `.keras` member, restore an `Autoencoder`
    (the scaling travels inside the Keras model, as its `scaling` layer's weights)."""
    model._check_fitted()
    meta = {"config": model.get_config(), "training": model.training_summary_,
            "history": getattr(model, "history_", {})}
    return meta, {}


def restore_autoencoder(model, meta: dict, arrays: dict):
    """Attach the training summary and history saved by `autoencoder_state`; a model saved
    before the scaling layer existed (its scaler beside it) is converted to one with it."""
    if not isinstance(model, Autoencoder):
        raise ArtifactError(f"Expected a deepae Autoencoder model in the file; it holds a "
                            f"{type(model).__name__}.")
    if model.scaling is None:
        try:
            scaler = Scaler.from_state(meta["scaler"], arrays) if meta.get("scaler") else None
        except (ValueError, KeyError, TypeError) as err:
            raise ArtifactError(f"The file's scaler is malformed: {err}") from None
        model = _with_scaling_layer(model, scaler)
    elif meta.get("scaler"):
        raise ArtifactError(f"The file holds a scaler (metadata 'scaler': {meta['scaler']!r:.80}) "
                            "beside a model that carries its own scaling layer; expected one "
                            "of the two.")
    else:
        _check_scaling(model.scaling)
    summary = meta.get("training") or {}
    final = summary.get("final", {}) if isinstance(summary, dict) else None
    if not isinstance(final, dict) or not all(
            isinstance(v, int | float) and not isinstance(v, bool) for v in final.values()):
        raise ArtifactError("The saved training summary is malformed (expected an object "
                            "whose 'final' maps metric names to numbers).")
    model.training_summary_ = summary
    model.history_ = meta.get("history") or {}
    return model


def _check_scaling(layer):
    """A scaling layer from a file: its statistics must be what `set_statistics` sets."""
    st = layer.statistics()
    offset, scale, i = st["offset"], st["scale"], st["kind_index"]
    problem = statistics_problem(offset, scale)
    if problem:
        raise ArtifactError(f"The model's scaling layer: {problem}.")
    if tuple(layer.kinds) != tuple(SCALINGS) or not -1 <= i < len(SCALINGS):
        raise ArtifactError(f"The model's scaling layer has kind {i} of {list(layer.kinds)}; "
                            f"expected one of {list(SCALINGS)} (or -1, not fitted).")
    identity = not np.any(offset) and np.all(scale == 1)
    if i in (-1, SCALINGS.index("none")) and not identity:
        raise ArtifactError(
            "The model's scaling layer has statistics but no scaling: expected the identity "
            f"(offset 0, scale 1) with kind {layer.kind!r}; received offsets in "
            f"[{offset.min():.4g}, {offset.max():.4g}], scales in "
            f"[{scale.min():.4g}, {scale.max():.4g}].")
    if not (np.isfinite(st["data_min"]) and np.isfinite(st["data_max"])):
        raise ArtifactError("The model's scaling layer has a malformed data range: expected "
                            f"finite numbers; received [{st['data_min']}, {st['data_max']}].")


def _with_scaling_layer(old, scaler):
    """The same network as `old` (a model from a file saved before the scaling layer
    existed), with its `scaler` moved into a `Scaling` layer."""
    try:
        new = type(old).from_config({**old.get_config(), "input_scaling": True})
        new.scaler_ = scaler
        new.build((None, *old.data_shape))
        new.encoder.set_weights(old.encoder.get_weights())
        new.decoder.set_weights(old.decoder.get_weights())
    except ValueError as err:
        raise ArtifactError(f"The file's scaler does not fit its model: {err}") from None
    _check_scaling(new.scaling)
    return new


@register_loader("Autoencoder", model_class="deepae>Autoencoder")
def _load_autoencoder(art: Artifact):
    return restore_autoencoder(art.models["model"], art.metadata, art.arrays)
