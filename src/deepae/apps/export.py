"""Each estimator's inference as one TensorFlow graph of raw inputs, for `est.export`.

The graph holds what the estimator does outside the network too (the scaling, the table's
preprocessing, the members' scores and the threshold, the bit packing, the image padding
and clipping), so that an exported model takes the data a user has, not pre-scaled
matrices. `deepae.exporting.export_graph` writes it.

Signatures (`serving_default`):

=====================  ================================================  =========================
estimator              inputs                                            outputs
=====================  ================================================  =========================
Autoencoder            ``x`` (n, \\*input_shape) float32                 ``codes``, ``reconstruction``
AutoencoderReducer     ``x`` (n, n_features) float32                     ``codes``
AnomalyDetector        a table: one (n,) input per column, float32        ``score`` float32,
                       (NaN: missing) or string (categories);            ``label`` int64
                       an array: ``x`` (n, n_features) float32
SemanticHasher         ``x`` (n, n_features) float32                     ``codes`` uint8 packed
Denoiser               ``x`` (n, h, w, c) float32 in [0, 1]              ``image``
                       (``sigma`` (n,) float32 in mode "given")
SuperResolver          ``x`` (n, h, w, c) float32 in [0, 1]              ``image``
=====================  ================================================  =========================
"""

from __future__ import annotations

import numpy as np
from sklearn.utils.validation import check_is_fitted

from deepae.exporting import FORMATS, ExportError, export_graph, input_names

__all__ = ["ExportMixin", "signature_inputs"]


class ExportMixin:
    """`export` for an estimator that defines ``_serving_graph() -> (module, function)``."""

    def export(self, path, format="saved_model", *, overwrite=False):
        """Write the fitted estimator's inference, raw inputs to named outputs, as a model
        that runs without deepae.

        Parameters
        ----------
        path : str or Path
            A folder for ``"saved_model"``; a file (``.onnx``, ``.tflite``) otherwise.
        format : {"saved_model", "onnx", "litert"}, default="saved_model"
            A TensorFlow SavedModel (signature ``serving_default``); ONNX through tf2onnx
            (onnxruntime runs it); LiteRT through TensorFlow's converter, built-in
            operators only (the ``ai-edge-litert`` interpreter runs it). ONNX and LiteRT
            need ``pip install "deepae[export]"``.
        overwrite : bool, default=False
            Replace an existing file or SavedModel folder.

        Returns
        -------
        Path
            What was written. The inputs and outputs are listed in ``docs/serving.md``
            (`signature_inputs` gives the inputs).

        Raises
        ------
        deepae.exporting.ExportError
            If `format` cannot hold an operator of the model (the error names it).
        """
        check_is_fitted(self, self._fitted_attr)
        module, function = self._serving_graph()
        columns = self._export_columns()
        return export_graph(path, module, function, format=format, overwrite=overwrite,
                            columns=None if columns is None else
                            {name: col for col, name in columns.items()})

    def _export_columns(self):
        """``{column: input name}`` of a table model, None for an array model."""
        return None


def signature_inputs(function) -> dict:
    """``{name: (shape, dtype name)}`` of a serving function's inputs."""
    return {spec.name: (tuple(spec.shape.as_list()), spec.dtype.name)
            for spec in function.input_signature}


def _module(models=(), tables=()):
    """A `tf.Module` that tracks the graph's state: the TensorFlow variables under the Keras
    `models` (tracked as variables: converters that freeze a SavedModel read Keras 3 layers'
    own tracking wrong, LiteRT gave garbage) and the lookup `tables`."""
    import tensorflow as tf

    module = tf.Module()
    module.weights = [w.value for m in models for w in m.weights]
    module.tables = list(tables)
    return module


# -- the autoencoder ---------------------------------------------------------------------------
def autoencoder_graph(ae, *, outputs=("codes", "reconstruction"), flat_features=None):
    """The graph of a fitted `deepae.Autoencoder`: ``x`` in the user's units to `outputs`.
    With `flat_features`, ``x`` is (n, flat_features), reshaped to the model's input."""
    import tensorflow as tf

    shape = (None, flat_features) if flat_features else (None, *ae.data_shape)
    scaling = ae.scaling

    @tf.function(input_signature=[tf.TensorSpec(shape, tf.float32, name="x")])
    def serve(x):
        z = tf.reshape(x, (-1, *ae.data_shape)) if flat_features else x
        if scaling is not None:
            z = scaling(z)
        codes = ae.encoder(z, training=False)
        out = {"codes": codes}
        if "reconstruction" in outputs:
            rec = ae.decoder(codes, training=False)
            out["reconstruction"] = rec if scaling is None else scaling(rec, inverse=True)
        return out

    return _module([ae]), serve


# -- the detector ------------------------------------------------------------------------------
def _lookup_tables(tf, categories):
    """One string -> index table per categorical column (unknown: -1)."""
    tables = []
    for cats in categories.values():
        keys = tf.constant([str(c) for c in cats], tf.string)
        init = tf.lookup.KeyValueTensorInitializer(keys, tf.range(len(cats), dtype=tf.int64))
        tables.append(tf.lookup.StaticHashTable(init, default_value=-1))
    return tables


def _unscorable(tf, pre, numeric):
    """(n,) bool: the rows the library refuses, an infinite number anywhere, or a missing
    one under ``missing="reject"``. Their score is NaN and their label 1: a row that cannot
    be scored is flagged, never passed as normal."""
    bad = tf.math.is_inf(numeric)
    if pre.missing == "reject":
        bad = bad | tf.math.is_nan(numeric)
    return tf.reduce_any(bad, axis=1)


def _table_matrix(tf, pre, numeric, strings, tables):
    """The preprocessor's matrix (n, n_features_out) from numeric columns (n, k) float32
    and the categorical columns' strings, in the graph (`TabularPreprocessor.transform`)."""
    parts = []
    missing = tf.math.is_nan(numeric)
    if pre.numeric_:
        num = numeric
        if pre.missing != "reject":  # "reject": those rows are unscorable (`_unscorable`)
            num = tf.where(missing, tf.constant(pre.median_, tf.float32)[None], num)
        parts.append((num - tf.constant(pre.mean_, tf.float32)) / tf.constant(pre.scale_,
                                                                               tf.float32))
    for s, table, cats in zip(strings, tables, pre.categories_.values(), strict=True):
        index = table.lookup(s)  # -1 for unknown or missing: all zeros, as in the library
        hot = tf.equal(index[:, None], tf.range(len(cats), dtype=tf.int64)[None])
        parts.append(tf.cast(hot, tf.float32))
    if pre.indicators_:
        where = [pre.numeric_.index(c) for c in pre.indicators_]
        parts.append(tf.cast(tf.gather(missing, where, axis=1), tf.float32))
    return tf.concat(parts, axis=1) if len(parts) > 1 else parts[0]


def _member_score(tf, ae, latent, z, anomaly_score):
    batch = z if ae.scaling is None else ae.scaling(z)
    code = ae.encoder(batch, training=False)
    d = ae.decoder(code, training=False) - batch
    err = tf.reduce_mean(tf.reshape(d * d, (tf.shape(d)[0], -1)), axis=1)
    if anomaly_score == "reconstruction":
        return err
    err_scale, mean, precision = latent
    dc = code - tf.constant(mean, tf.float32)[None]
    maha = tf.reduce_sum(tf.matmul(dc, tf.constant(precision, tf.float32)) * dc, axis=1)
    return err / float(err_scale) + maha / float(code.shape[-1])


def detector_specs(det) -> tuple[list, bool]:
    """(input specs, whether they are a table's columns): a detector fitted on a DataFrame,
    or with categorical columns, takes one input per column (named by `input_names`);
    one fitted on a numeric array takes ``x`` (n, n_columns)."""
    import tensorflow as tf

    pre = det.preprocessor_
    if not (hasattr(det, "feature_names_in_") or pre.categories_):
        return [tf.TensorSpec((None, len(pre.columns_)), tf.float32, name="x")], False
    for col, cats in pre.categories_.items():
        if "" in cats:
            raise ExportError(f"Column {col!r} has the empty string among its categories; an "
                              "export takes the empty string for a missing category, so it "
                              "could not tell them apart. Replace the empty category by a "
                              "name (and refit) to export this detector.")
    names = input_names(pre.columns_)
    return [tf.TensorSpec((None,), tf.string if col in pre.categories_ else tf.float32,
                          name=names[col]) for col in pre.columns_], True


def detector_graph(det):
    """The graph of a fitted `AnomalyDetector`: raw columns to ``score`` and ``label``."""
    import tensorflow as tf

    pre = det.preprocessor_
    specs, table = detector_specs(det)
    tables = _lookup_tables(tf, pre.categories_)
    position = {c: i for i, c in enumerate(pre.columns_)}
    members = list(zip(det.autoencoders_, det._latent, strict=True))

    @tf.function(input_signature=specs)
    def serve(*inputs):
        if table:
            numeric = tf.stack([inputs[position[c]] for c in pre.numeric_], axis=1) \
                if pre.numeric_ else tf.zeros((tf.shape(inputs[0])[0], 0), tf.float32)
            strings = [inputs[position[c]] for c in pre.categories_]
        else:
            numeric, strings = inputs[0], []
        z = _table_matrix(tf, pre, numeric, strings, tables)
        score = tf.add_n([_member_score(tf, ae, latent, z, det.anomaly_score_)
                          for ae, latent in members]) / float(len(members))
        score = tf.where(_unscorable(tf, pre, numeric), tf.constant(np.nan, tf.float32), score)
        flagged = (score > float(det.threshold_)) | tf.math.is_nan(score)
        return {"score": score, "label": tf.cast(flagged, tf.int64)}

    return _module([ae for ae, _ in members], tables), serve


# -- the hasher --------------------------------------------------------------------------------
def hasher_graph(hasher):
    """The graph of a fitted `SemanticHasher`: ``x`` to packed ``codes`` (uint8, the bytes of
    `numpy.packbits`)."""
    import keras
    import tensorflow as tf

    encoder = keras.Model(hasher.model_.input, hasher.model_.get_layer("code").output)
    sc = hasher.scaler_
    n_bits = int(hasher.n_bits)
    width = -(-n_bits // 8)
    weights = tf.constant(2 ** np.arange(7, -1, -1), tf.int32)

    @tf.function(input_signature=[tf.TensorSpec((None, int(hasher.n_features_in_)),
                                                tf.float32, name="x")])
    def serve(x):
        if sc.kind != "none":
            x = (x - tf.constant(sc.offset_, tf.float32)) / tf.constant(sc.scale_, tf.float32)
        bits = tf.cast(encoder(x, training=False) > 0.5, tf.int32)
        bits = tf.pad(bits, [[0, 0], [0, 8 * width - n_bits]])
        packed = tf.reduce_sum(tf.reshape(bits, (-1, width, 8)) * weights, axis=2)
        return {"codes": tf.cast(packed, tf.uint8)}

    return _module([encoder]), serve


# -- the restorers -----------------------------------------------------------------------------
def _mirror_pad(tf, x, size, mult, axis):
    """`x` padded at the end of `axis` to a multiple of `mult` by its own mirror image
    (NumPy's "symmetric"), by concatenation: the converters keep the static channel count
    that a `tf.pad` with computed paddings loses, which LiteRT's convolutions need."""
    extra = (mult - size % mult) % mult  # sides are positive: every runtime's modulo agrees
    tail = tf.reverse(x, [axis])
    tail = tail[:, :extra] if axis == 1 else tail[:, :, :extra]
    return tf.concat([x, tail], axis=axis)


def restorer_graph(est, mult: int, scale: int, channels=None):
    """The graph of a fitted `Denoiser` or `SuperResolver`: images (n, h, w, c) in [0, 1] to
    the restored ``image`` (n, h * scale, w * scale, c), clipped to [0, 1]. Sides are padded
    (mirrored) to multiples of `mult` and the result cropped, as `transform` does; the whole
    image runs at once (no tiles: split a very large image yourself). A restorer with a
    colour network (`with_colour`) gives a graph that chooses the network by the channel
    count, or with `channels` (1 or 3) the graph of one of its networks."""
    import tensorflow as tf

    model, c = est.model_, int(est.n_channels_)
    colour = getattr(est, "colour_model_", None)  # colour images through it, when there is one
    if colour is not None and channels == 3:  # the colour network alone
        model, c, colour = colour, 3, None
    elif channels == 1:
        colour = None
    split = c == 1 and bool(est.per_channel)  # each channel through the grey model in turn
    given = getattr(est, "mode", None) == "given"
    specs = [tf.TensorSpec((None, None, None, None if split or colour is not None else c),
                           tf.float32, name="x")]
    if given:
        specs.append(tf.TensorSpec((None,), tf.float32, name="sigma"))

    def restore(net, x, sigma, h, w):
        padded = _mirror_pad(tf, _mirror_pad(tf, x, h, mult, axis=1), w, mult, axis=2)
        if sigma is None:
            y = net(padded, training=False)
        else:
            level = tf.ones_like(padded[..., :1]) * sigma[:, None, None, None]
            y = net([padded, level], training=False)
        return tf.clip_by_value(y[:, :h * scale, :w * scale], 0.0, 1.0)

    def per_channel(x, sigma, n, h, w, k):  # (n, h, w, k) -> (n * k, h, w, 1) and back
        x = tf.expand_dims(tf.reshape(tf.transpose(x, (0, 3, 1, 2)), (-1, h, w)), -1)
        y = restore(model, x, None if sigma is None else tf.repeat(sigma, k), h, w)
        return tf.transpose(tf.reshape(y, (n, k, h * scale, w * scale)), (0, 2, 3, 1))

    def run(x, sigma):
        shape = tf.shape(x)
        n, h, w, k = shape[0], shape[1], shape[2], shape[3]
        if colour is not None:  # static channel counts in each branch (converters need them)
            def grey():
                if split:
                    return per_channel(x, sigma, n, h, w, k)
                check = tf.debugging.assert_equal(
                    k, 1, message="expected images of 1 or 3 channels")
                with tf.control_dependencies([check]):
                    return restore(model, tf.reshape(x, tf.stack([n, h, w, 1])), sigma, h, w)

            y = tf.cond(tf.equal(k, 3), lambda: restore(
                colour, tf.reshape(x, tf.stack([n, h, w, 3])), sigma, h, w), grey)
        elif split:
            y = per_channel(x, sigma, n, h, w, k)
        else:
            y = restore(model, x, sigma, h, w)
        return {"image": y}

    if given:
        @tf.function(input_signature=specs)
        def serve(x, sigma):
            return run(x, sigma)
    else:
        @tf.function(input_signature=specs)
        def serve(x):
            return run(x, None)
    return _module([model] if colour is None else [model, colour]), serve


__all__ += ["FORMATS", "autoencoder_graph", "detector_graph", "detector_specs", "hasher_graph",
            "restorer_graph"]
