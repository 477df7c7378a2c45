"""Image restoration by convolutional autoencoders: `Denoiser`, `SuperResolver`, and what
they share: image batches in any layout, random training patches, tiling without seams.

Images are (h, w) or (h, w, c) arrays, uint8 (0-255) or float in [0, 1]; a batch is
(n, h, w, c). Every method gives back the layout and dtype it was given.
"""

from __future__ import annotations

import math
import numbers

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_is_fitted

from deepae._validation import (
    BOOLEAN,
    NONEMPTY_UNITS,
    POSITIVE_FLOAT,
    POSITIVE_INT,
    RUN_CONSTRAINTS,
    Constraint,
    Interval,
    Options,
    check_in,
)
from deepae.apps._base import MAX_TILE, ArtifactEstimatorMixin
from deepae.apps.export import ExportMixin, restorer_graph
from deepae.data.images import from_float_images, pad_to_multiple, random_patches, to_float_images
from deepae.exceptions import ArtifactError
from deepae.nn.restoration import is_shared, multiple, receptive_radius, restoration_net
from deepae.persistence import Artifact, check_architecture, register_loader
from deepae.training import (
    RUN_PARAMS_DOC,
    cosine_adam,
    images_fingerprint,
    replica_share,
    run_seed,
    step_seed,
    train_on_patches,
)

__all__ = ["Denoiser", "SuperResolver", "apply_tiled", "box_downscale", "random_patches",
           "to_float_images", "from_float_images", "NOISES"]

NOISES = ("gaussian", "salt_pepper", "mask")
MODES = ("blind", "given")
# a noise range to train on: (low, high), checked further by _sigma_range
SIGMA_PAIR = Constraint("a (low, high) pair of floats in [0, 1]", lambda v: isinstance(
    v, list | tuple) and len(v) == 2 and all(
    isinstance(s, numbers.Real) and not isinstance(s, bool) for s in v))
SCALES = (2, 4)
COLOUR_NETWORKS = ("joint", "shared")  # `restoration_net(shared=False | True)`
PSNR_LOSS_EPS = 1e-5  # loss="psnr" caps a patch at 50 dB: a near-perfect one does not dominate


# -- tiling -----------------------------------------------------------------------------------
def apply_tiled(fn, image, *, tile=512, halo=32, mult=1, scale=1):
    """Apply a fully convolutional `fn` ((1, h, w, c) -> (1, h * scale, w * scale, c')) to a
    (h, w, c) image in overlapping tiles, keeping only each tile's centre.

    The image is padded (mirrored) to a multiple of `mult`, cut into `tile` x `tile` cores,
    each run with `halo` pixels of context on every side, and the cores are put together
    (`tile`, `halo` and `mult` count input pixels). When `halo` is at least the network's
    receptive radius the result is the untiled one (up to float rounding): no seams, and
    memory bounded by the tile, not the image.
    """
    h, w = image.shape[:2]
    padded = pad_to_multiple(image, mult)
    H, W = padded.shape[:2]
    halo = -(-halo // mult) * mult
    tile = max(mult, tile // mult * mult)
    s = int(scale)
    if H <= tile + 2 * halo and W <= tile + 2 * halo:
        return np.asarray(fn(padded[None]))[0][:h * s, :w * s]
    out = None
    for y0 in range(0, H, tile):
        for x0 in range(0, W, tile):
            y1, x1 = min(y0 + tile, H), min(x0 + tile, W)
            a, b = max(0, y0 - halo), max(0, x0 - halo)
            c, d = min(H, y1 + halo), min(W, x1 + halo)
            res = np.asarray(fn(padded[None, a:c, b:d]))[0]
            if out is None:
                out = np.empty((H * s, W * s, res.shape[-1]), np.float32)
            out[y0 * s:y1 * s, x0 * s:x1 * s] = res[(y0 - a) * s:(y1 - a) * s,
                                                    (x0 - b) * s:(x1 - b) * s]
    return out[:h * s, :w * s]


def box_downscale(images, scale):
    """Average `scale` x `scale` blocks (area downscaling) of a (n, h, w, c) batch, cropping
    the sides down to multiples of `scale`: the degradation super-resolution trains on."""
    n, h, w, c = images.shape
    h, w = h // scale * scale, w // scale * scale
    return images[:, :h, :w].reshape(n, h // scale, scale, w // scale, scale, c).mean(axis=(2, 4))


# -- the estimators ---------------------------------------------------------------------------
def _corrupt(tf, clean, noise, low, high, seed, clipped=0.0):
    """Corrupt a batch in TensorFlow with stateless draws from `seed` (shape (2,)); returns
    (noisy, per-image level). A share `clipped` of the images (drawn per image) is then
    clipped to [0, 1] and rounded to 8 bits, as a noisy photograph saved to a file is."""
    n = tf.shape(clean)[0]
    s_level, s_noise = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
    level = replica_share(lambda sh: tf.random.stateless_uniform(sh, s_level, low, high),
                          tf.stack([n, 1, 1, 1]))
    if noise == "gaussian":
        noisy = clean + level * replica_share(
            lambda sh: tf.random.stateless_normal(sh, s_noise), tf.shape(clean))
    elif noise == "salt_pepper":
        u = replica_share(lambda sh: tf.random.stateless_uniform(sh, s_noise),
                          tf.shape(clean)[:3])[..., None]
        salt = tf.cast(u < level / 2, clean.dtype)
        pepper = tf.cast((u >= level / 2) & (u < level), clean.dtype)
        noisy = clean * (1 - salt - pepper) + salt
    else:  # mask
        u = replica_share(lambda sh: tf.random.stateless_uniform(sh, s_noise),
                          tf.shape(clean)[:3])[..., None]
        noisy = clean * tf.cast(u >= level, clean.dtype)
    if clipped > 0:
        s_clip = tf.random.experimental.stateless_fold_in(seed, 1)
        pick = replica_share(lambda sh: tf.random.stateless_uniform(sh, s_clip),
                             tf.stack([n, 1, 1, 1])) < clipped
        noisy = tf.where(pick, tf.round(tf.clip_by_value(noisy, 0.0, 1.0) * 255.0) / 255.0,
                         noisy)
    return noisy, level


def patch_loss(tf, restored, target, loss):
    """The training objective of a batch: the mean squared error (``loss="mse"``), or the
    mean over the patches of each patch's ``10 log10(MSE + PSNR_LOSS_EPS)``, the negative of
    its PSNR (``loss="psnr"``)."""
    err = tf.square(restored - target)
    if loss == "mse":
        return tf.reduce_mean(err)
    per_patch = tf.reduce_mean(err, axis=tf.range(1, tf.rank(err))) + PSNR_LOSS_EPS
    return tf.reduce_mean(tf.math.log(per_patch)) * (10 / math.log(10))


def _objectives(previous, before, total, loss):
    """`history_["objective"]`: each epoch's loss, "mse" or "psnr" (a warm start may change
    it): the `before` epochs of an earlier fit as `previous` recorded them (a record without
    them: "mse", the only loss there was), then `loss` up to `total`."""
    kept = list(previous or [])[:before]
    return kept + ["mse"] * (before - len(kept)) + [loss] * (total - before)


def _design(model):
    """The `colour_network` that builds `model`: "shared" or "joint"."""
    return COLOUR_NETWORKS[is_shared(model)]


class _Restorer(ExportMixin, ArtifactEstimatorMixin, BaseEstimator):
    """What the restoration estimators share: the network's parameters, training on random
    patches of clean images with pairs made on the fly, tiled inference, persistence."""

    _fitted_attr = "model_"
    _scale = 1
    _parameter_constraints = {
        "filters": [NONEMPTY_UNITS], "convs_per_level": [POSITIVE_INT],
        "patch_size": [POSITIVE_INT], "patches_per_epoch": [POSITIVE_INT],
        "epochs": [POSITIVE_INT], "batch_size": [POSITIVE_INT],
        "learning_rate": [POSITIVE_FLOAT], "loss": [Options(str, {"mse", "psnr"})],
        "tile": [Interval(numbers.Integral, 1, MAX_TILE)],
        "per_channel": [BOOLEAN], "colour_network": [Options(str, set(COLOUR_NETWORKS))],
        "warm_start": [BOOLEAN], **RUN_CONSTRAINTS,
    }

    def _set_common(self, filters, convs_per_level, patch_size, patches_per_epoch, epochs,
                    batch_size, learning_rate, loss, tile, per_channel, colour_network,
                    warm_start, callbacks, checkpoint_dir, resume, strategy, random_state,
                    verbose):
        """Store the shared parameters as given (scikit-learn's rule: no checks in init)."""
        self.colour_network = colour_network
        self.loss = loss
        self.warm_start = warm_start
        self.callbacks = callbacks
        self.checkpoint_dir = checkpoint_dir
        self.resume = resume
        self.strategy = strategy
        self.per_channel = per_channel
        self.filters = filters
        self.convs_per_level = convs_per_level
        self.patch_size = patch_size
        self.patches_per_epoch = patches_per_epoch
        self.epochs = epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.tile = tile
        self.random_state = random_state
        self.verbose = verbose

    @property
    def _mult(self):
        """Input sides must be multiples of this (the network runs at `_scale` times them)."""
        m = multiple(self.filters)
        return max(1, m // math.gcd(m, self._scale))

    @property
    def receptive_radius_(self):
        """Input pixels of context each output pixel depends on (the tiles' overlap)."""
        r = receptive_radius(self.filters, int(self.convs_per_level))
        return -(-r // self._scale) + (2 if self._scale > 1 else 0)  # + bicubic support

    def _patch_size(self, imgs):
        step = self._mult * self._scale  # patches are cut at full resolution
        smallest = min(min(im.shape[:2]) for im in imgs)
        size = min(int(self.patch_size), smallest) // step * step
        if size < step:
            extra = f", scale={self._scale}" if self._scale > 1 else ""
            raise ValueError(f"Training images must be at least {step} pixels on each side "
                             f"for {type(self).__name__}(filters={tuple(self.filters)}{extra}); "
                             f"the smallest is {smallest}.")
        return size

    def _fit(self, images, make_pair, build, keep_checkpoint=False):
        """Train ``build(channels)`` on pairs ``make_pair(clean_batch, seed) -> (inputs,
        target)``, `seed` the step's (`deepae.training.step_seed`)."""
        import keras
        import tensorflow as tf

        from deepae.distribute import resolve_strategy, strategy_scope

        dist = resolve_strategy(self.strategy)
        imgs, _ = to_float_images(images, "images", batch_3d=True)
        channels = {im.shape[-1] for im in imgs}
        if len(channels) > 1:
            raise ValueError("Expected training images that are all grayscale or all colour; "
                             f"received channel counts {sorted(channels)}.")
        size = self._patch_size(imgs)
        channels = channels.pop()
        # the fitted state changes only once training has succeeded: a refused or failed
        # fit leaves the estimator as it was (a warm start's network included)
        history = None
        previous = getattr(self, "model_", None) if self.warm_start else None
        if previous is not None:
            if channels != self.n_channels_:
                hint = (" (to start a colour network from a grayscale one, see "
                        "deepae.nn.restoration.shared_from_grayscale)"
                        if self.n_channels_ == 1 else "")
                raise ValueError(f"warm_start=True continues a {type(self).__name__} of "
                                 f"{self.n_channels_}-channel images; received {channels}-"
                                 f"channel images{hint}.")
            try:
                check_architecture(previous, lambda: build(channels), where="warm_start")
            except ArtifactError:
                raise ValueError(
                    f"warm_start=True continues the fitted network ({previous.name}, "
                    f"{previous.count_params()} parameters); the parameters now make a "
                    "different one: keep filters, convs_per_level, scale, mode and "
                    f"colour_network as they were fitted (the fitted network is "
                    f"{_design(previous)}).") from None
            history = {k: list(v) for k, v in self.history_.items()}
        # each epoch's loss, set beside the metrics after training (not a metric of the loop)
        objective = (history or {}).pop("objective", None)
        rng = np.random.default_rng(self.random_state)
        if self.random_state is not None:
            keras.utils.set_random_seed(int(self.random_state))
        bs = int(self.batch_size)
        steps_per_epoch = max(1, int(self.patches_per_epoch) // bs)
        with strategy_scope(dist):  # the weights, on every replica
            model = build(channels)
            if previous is not None:  # warm_start: the fitted weights
                model.set_weights(previous.get_weights())
        opt = cosine_adam(self.learning_rate, steps_per_epoch * int(self.epochs),
                          model.trainable_variables, strategy=dist)
        base = run_seed(self.random_state)
        kind = str(self.loss)
        before = len((history or {}).get("loss", []))

        # compiled by train_on_patches (one tf.function around the replicas)
        def step(clean, scale):
            inputs, target = make_pair(clean, step_seed(opt, base))
            with tf.GradientTape() as tape:
                loss = patch_loss(tf, model(inputs, training=True), target, kind)
                scaled = loss * scale  # this replica's share of the global batch's mean
            grads = tape.gradient(scaled, model.trainable_variables)
            opt.apply_gradients(zip(grads, model.trainable_variables, strict=True))
            return {"loss": loss}

        history = train_on_patches(
            step, imgs, size, epochs=int(self.epochs), steps_per_epoch=steps_per_epoch,
            batch_size=bs, rng=rng, verbose=self.verbose, strategy=dist, networks=[model],
            optimizer=opt, callbacks=self.callbacks, checkpoint_dir=self.checkpoint_dir,
            resume=self.resume, keep_checkpoint=keep_checkpoint, history=history,
            run=self._run_description(images_fingerprint(imgs), n_channels=channels,
                                      patch_size=size, warm_start_epochs=len(
                                          (history or {}).get("loss", []))))
        history["objective"] = _objectives(objective, before,
                                           len(history.get("loss", [])), kind)
        self.model_, self.n_channels_, self.patch_size_, self.history_ = (
            model, channels, size, history)
        for attr in ("colour_model_", "colour_training_"):  # a companion of other weights
            self.__dict__.pop(attr, None)
        self._build_predict()
        return self

    def _run_description(self, data_fingerprint, **extra):
        run = super()._run_description(data_fingerprint, **extra)
        if run["params"].get("loss") == "mse":  # recorded as before there was a choice, so
            del run["params"]["loss"]           # that those checkpoints still resume
        if run["params"].get("colour_network") == "joint" or extra.get("n_channels") == 1:
            run["params"].pop("colour_network", None)  # the same (grayscale ignores it)
        return run

    def _build_predict(self):
        import tensorflow as tf

        def compiled(model):
            return tf.function(lambda x: model(x, training=False), reduce_retracing=True)

        self._predict = compiled(self.model_)
        colour = getattr(self, "colour_model_", None)
        self._predict_colour = None if colour is None else compiled(colour)

    def with_colour(self, colour):
        """Give this grayscale restorer the network of `colour`, the same kind of restorer
        fitted on colour images with the same architecture: colour images then go through
        that network, grayscale ones through this one's (the pretrained models are such
        pairs). Both are saved in one file; fitting again drops the colour network.
        Returns self.
        """
        check_is_fitted(self, "model_")
        name = type(self).__name__
        if type(colour) is not type(self):
            raise TypeError(f"with_colour takes a fitted {name}; received "
                            f"{type(colour).__name__}.")
        check_is_fitted(colour, "model_")
        if self.n_channels_ != 1 or colour.n_channels_ != 3:
            raise ValueError(f"with_colour pairs a grayscale {name} with a colour one; "
                             f"received {self.n_channels_} and {colour.n_channels_} "
                             "channel(s).")
        keys = ("filters", "convs_per_level", "scale", "noise", "mode")
        mine = {k: v for k, v in self.get_params().items() if k in keys}
        theirs = {k: v for k, v in colour.get_params().items() if k in keys}
        if {k: tuple(v) if isinstance(v, list) else v for k, v in mine.items()} != {
                k: tuple(v) if isinstance(v, list) else v for k, v in theirs.items()}:
            raise ValueError(f"with_colour needs the same architecture and task; received "
                             f"{mine} and {theirs}.")
        self.colour_model_ = colour.model_
        self.colour_training_ = {"patch_size": int(colour.patch_size_),
                                 "history": colour.history_, **colour._model_card()}
        self._build_predict()
        return self

    def _apply(self, images, extra=None, strict=True, ensemble=False):
        """Run the model over `images` in tiles; `extra(x)` gives more inputs for a tile.
        With `ensemble`, average the 8 flips and quarter turns of each image (each undone
        after the model: the geometric self-ensemble of Lim et al. 2017)."""
        check_is_fitted(self, "model_")
        imgs, layout = to_float_images(images, "images", strict=strict)
        mult, name = self._mult, type(self).__name__
        low = max(mult, 2 if self._scale > 1 else 1)
        out = []
        colour = getattr(self, "colour_model_", None) is not None
        for i, im in enumerate(imgs):
            # a colour image through the colour network when there is one; otherwise, with
            # per_channel, each of its channels through the grayscale one
            joint = colour and im.shape[-1] == 3
            split = self.n_channels_ == 1 and bool(self.per_channel) and not joint
            predict = self._predict_colour if joint else self._predict
            if im.shape[-1] != self.n_channels_ and not split and not joint:
                hint = (" (or set per_channel=True to apply it to each channel)"
                        if self.n_channels_ == 1 else "")
                raise ValueError(f"This {name} takes {self.n_channels_}-channel images "
                                 f"({'grayscale' if self.n_channels_ == 1 else 'colour'}"
                                 f"{hint}); image {i} has {im.shape[-1]} channel(s), shape "
                                 f"{im.shape}.")
            if min(im.shape[:2]) < low:
                raise ValueError(f"Image {i} is {im.shape[1]}x{im.shape[0]}: this {name} needs "
                                 f"at least {low} pixels on each side.")

            def fn(x, predict=predict):
                x = x.astype(np.float32)
                return predict(x if extra is None else [x, extra(x)])

            def run(x, split=split, fn=fn):
                # a grayscale model with per_channel: each channel of a colour image in turn
                parts = [x[..., c:c + 1] for c in range(x.shape[-1])] if split else [x]
                return np.concatenate(
                    [apply_tiled(fn, p, tile=int(self.tile), halo=self.receptive_radius_,
                                 mult=mult, scale=self._scale) for p in parts], axis=-1)

            if not ensemble:
                out.append(run(im))
                continue
            acc = 0.0
            for k in range(4):
                for flip in (False, True):
                    x = np.rot90(im[:, ::-1] if flip else im, k)
                    y = np.rot90(run(np.ascontiguousarray(x)), -k)
                    acc = acc + (y[:, ::-1] if flip else y)
            out.append(acc / 8.0)
        return from_float_images(out, layout)

    def export(self, path, format="saved_model", *, overwrite=False, channels=None):
        """Write the fitted restorer's inference as a model that runs without deepae (see
        `deepae.apps.export.ExportMixin.export` for `path`, `format` and `overwrite`).

        channels : None, 1 or 3, default=None
            For a restorer with a colour network (`with_colour`, as the pretrained ones):
            None writes a graph that takes both grayscale and colour images (a SavedModel
            only: ONNX and LiteRT need one network per file), 1 the grayscale network, 3
            the colour one. Other restorers take None or their own channel count.
        """
        from deepae.exporting import FORMATS, ExportError, export_graph

        check_is_fitted(self, "model_")
        paired = getattr(self, "colour_model_", None) is not None
        takes = (1, 3) if paired else (int(self.n_channels_),)
        if channels is not None and (isinstance(channels, bool) or channels not in takes):
            raise ValueError(f"This {type(self).__name__} exports channels in {takes} (or "
                             f"None); received channels={channels!r}.")
        if paired and channels is None and format in FORMATS and format != "saved_model":
            raise ExportError(f"A {type(self).__name__} with a grayscale and a colour network "
                              f"exports to {format!r} one network per file: pass channels=1 "
                              "or channels=3 (a SavedModel takes both).")
        module, function = restorer_graph(self, self._mult, self._scale, channels)
        return export_graph(path, module, function, format=format, overwrite=overwrite)

    def _serving_graph(self):
        return restorer_graph(self, self._mult, self._scale)

    def __sklearn_tags__(self):
        from sklearn.utils import TransformerTags

        tags = super().__sklearn_tags__()
        tags.target_tags.required = False
        tags.non_deterministic = True
        # `transform` maps images to images (a 2-D array is one grey image); float32 and
        # float64 images come back in their own dtype
        tags.transformer_tags = TransformerTags(preserves_dtype=["float64", "float32"])
        tags.input_tags.three_d_array = True
        return tags

    def describe(self) -> dict:
        """What the fitted network is, as a JSON-able dict (what `deepae info` prints): size,
        receptive radius, the degradation it was trained on, training summary."""
        check_is_fitted(self, "model_")

        def training(h, patch_size):
            return {"epochs": len(h.get("loss", [])), "patch_size": patch_size,
                    "final_loss": h["loss"][-1] if h.get("loss") else None,
                    # the last epoch's loss: "mse", or "psnr" (final_loss in dB)
                    "objective": (h.get("objective") or ["mse"])[-1],
                    "seconds": h["seconds"][-1] if h.get("seconds") else None}

        out = {"estimator": repr(self), "network": self.model_.name,
               "parameters": int(self.model_.count_params()), "channels": self.n_channels_,
               **({"design": _design(self.model_)} if self.n_channels_ == 3 else {}),
               "receptive_radius": self.receptive_radius_, **self._model_card(),
               "training": training(self.history_, self.patch_size_)}
        if getattr(self, "colour_model_", None) is not None:
            info = self.colour_training_
            out["colour_network"] = {
                "parameters": int(self.colour_model_.count_params()), "channels": 3,
                "design": _design(self.colour_model_),
                **{k: v for k, v in info.items() if k not in ("history", "patch_size")},
                "training": training(info["history"], info["patch_size"])}
        return out

    # -- persistence ---------------------------------------------------------------------------
    def _model_card(self) -> dict:
        return {}

    def _artifact_parts(self):
        info = {"n_channels": int(self.n_channels_), "patch_size": int(self.patch_size_),
                "history": self.history_, **self._model_card()}
        models = {"model": self.model_}
        if getattr(self, "colour_model_", None) is not None:
            info["colour"] = self.colour_training_
            models["colour_model"] = self.colour_model_
        return info, models, {}

    def _restore(self, art: Artifact) -> None:
        meta = art.metadata
        if "model" not in art.models:
            raise ArtifactError(f"The file holds no network called 'model' (it lists "
                                f"{sorted(art.models)}); a {type(self).__name__} needs one.")
        self.model_ = art.models["model"]
        self.n_channels_ = int(meta["n_channels"])
        if self.n_channels_ not in (1, 3):
            raise ArtifactError(f"The file's network takes {self.n_channels_} channels; a "
                                f"{type(self).__name__} takes 1 (grayscale) or 3 (colour).")
        check_architecture(self.model_, lambda: self._network(self.n_channels_),
                           where="the file")
        self.patch_size_ = int(meta["patch_size"])
        self.history_ = meta["history"]
        colour = art.models.get("colour_model")
        if colour is not None:
            if self.n_channels_ != 1:
                raise ArtifactError(f"The file's {type(self).__name__} takes "
                                    f"{self.n_channels_} channels and holds a colour network "
                                    "too; only a grayscale one may.")
            # either design of colour network (`colour_network`), whatever this one's
            check_architecture(colour, *(
                lambda d=d: type(self)(**{**self.get_params(deep=False),
                                          "colour_network": d})._network(3)
                for d in COLOUR_NETWORKS), where="the file's colour network")
            info = meta.get("colour")  # its history was checked by persistence.restore
            if not isinstance(info, dict) or not isinstance(info.get("history"), dict):
                raise ArtifactError("The file holds a colour network without its training "
                                    "record: expected metadata 'colour' with 'history' and "
                                    f"'patch_size'; received {type(info).__name__}.")
            self.colour_model_ = colour
            self.colour_training_ = {**info, "patch_size": int(info["patch_size"])}
        self._build_predict()


_COMMON_DOC = """    filters : tuple of int, default=(32, 64, 64)
        Filters per level of the encoder-decoder (`deepae.nn.restoration.restoration_net`).
    convs_per_level : int, default=2
    patch_size : int, default=48
        Side of the training patches at full resolution (capped by the smallest training
        image and rounded down to what the network takes).
    patches_per_epoch : int, default=4096
    epochs : int, default=20
    batch_size : int, default=32
    learning_rate : float, default=1e-3
        Adam, with a cosine decay over the training steps.
    loss : {"mse", "psnr"}, default="mse"
        What training minimises: the mean squared error over the batch, or, with "psnr",
        the mean over the patches of each patch's ``10 log10(MSE + 1e-5)``, that is the
        negative of its PSNR (capped at 50 dB). A benchmark averages PSNR per image, and
        under "mse" the strongest degradations dominate the loss (a blind denoiser's error
        grows with sigma squared); "psnr" weighs each patch by the inverse of its error,
        trading some dB at the strongest noise for more at the weakest.
    tile : int, default=512
        Images larger than this (input pixels) are processed in overlapping tiles, so that
        memory stays bounded; the tiles overlap by the network's receptive radius, which
        makes the result the same as untiled.
    per_channel : bool, default=False
        With a model trained on grayscale images, restore colour images one channel at a
        time; otherwise a colour image is an error. A colour network joined by
        `with_colour` takes colour images either way.
    colour_network : {"joint", "shared"}, default="joint"
        The network a colour training makes: ``"joint"``, one network over the three
        channels at once; ``"shared"``, one network applied to each channel in turn, its
        weights shared by the channels, each channel seeing the whole image beside it
        (`deepae.nn.restoration.restoration_net` with ``shared=True``). Shared is three
        times the work; it can start from a grayscale network exactly
        (`deepae.nn.restoration.shared_from_grayscale`). Grayscale training ignores it.
    warm_start : bool, default=False
        Continue training from the fitted network (same architecture and channels), its
        history appended, instead of starting from new weights.
{run}    strategy : None, "single", "mirrored", "multi-worker" or tf.distribute.Strategy
        Where training runs (`deepae.distribute`); `batch_size` is the global batch, split
        between the replicas. A strategy instance is not saved with the model (its name is).
    random_state : int, optional
    verbose : int, default=0

    Attributes
    ----------
    model_ : keras.Model
    n_channels_ : int
        1 (grayscale) or 3 (colour), from the training images.
    patch_size_ : int
    history_ : dict
        ``loss`` per epoch (the training objective on the patches: mean squared error, or
        the mean of ``10 log10(MSE + 1e-5)`` in dB with ``loss="psnr"``), ``objective``
        (which of the two each epoch used: a warm start may change it) and ``seconds``.
"""


class Denoiser(_Restorer):
    """A denoising convolutional autoencoder: trained on clean images, applied to noisy
    images of any size.

    Training pairs are made on the fly: random patches of the clean images, corrupted by
    the noise model below (a new draw at every step). The noise model is saved with the
    denoiser.

    Parameters
    ----------
    noise : {"gaussian", "salt_pepper", "mask"}, default="gaussian"
        Additive Gaussian noise of standard deviation `sigma`; salt-and-pepper with a share
        `sigma` of the pixels set to 0 or 1; or masking, a share `sigma` set to 0.
    sigma : float or (low, high), default=(0.0, 0.3)
        The noise level in [0, 1] units, fixed or drawn uniformly per patch from a range.
    clipped : float in [0, 1], default=0.0
        The share of noisy training images (drawn per image) clipped to [0, 1] and rounded
        to 8 bits, as a noisy photograph saved to a file is; the others keep unclipped
        noise. The pretrained denoisers use 0.75: one network for both.
    mode : {"blind", "given"}, default="blind"
        ``"blind"``: the network works out the noise level itself. ``"given"``: the noise
        level is a second input (`transform(..., sigma=)`), as in FFDNet.
{common}    """

    def __init__(self, *, noise="gaussian", sigma=(0.0, 0.3), mode="blind", filters=(32, 64, 64),
                 convs_per_level=2, patch_size=48, patches_per_epoch=4096, epochs=20,
                 batch_size=32, learning_rate=1e-3, loss="mse", tile=512, per_channel=False,
                 colour_network="joint", warm_start=False, clipped=0.0, callbacks=None,
                 checkpoint_dir=None, resume=False, strategy=None, random_state=None,
                 verbose=0):
        self.noise = noise
        self.sigma = sigma
        self.mode = mode
        self.clipped = clipped
        self._set_common(filters, convs_per_level, patch_size, patches_per_epoch, epochs,
                         batch_size, learning_rate, loss, tile, per_channel, colour_network,
                         warm_start, callbacks, checkpoint_dir, resume, strategy, random_state,
                         verbose)

    @classmethod
    def pretrained(cls):
        """The general-purpose blind Gaussian denoiser that ships with deepae.

        Two networks in one file (`with_colour`): grayscale images go through one trained
        on grayscale patches, colour images through one trained on colour patches
        (``colour_network="shared"``: each channel restored with the whole image beside it,
        so the channels inform each other, as in CBM3D). Trained by
        ``scripts/train_pretrained.py`` on scikit-image's photographs
        `deepae.datasets.TRAIN_PHOTOS` and the wallpaper photographs
        `deepae.datasets.TRAIN_WALLPAPERS`, noise sigma drawn from [0, 0.35],
        three quarters of the noisy patches clipped to [0, 1] and rounded to 8 bits as a
        saved photograph is (``clipped=0.75``). No noise level is needed. Its training is
        in `deepae info` and the benchmark in the README.
        """
        return cls._pretrained("denoiser.deepae")

    def _network(self, channels):
        return restoration_net(channels, filters=tuple(self.filters),
                               convs_per_level=int(self.convs_per_level),
                               noise_level_input=self.mode == "given",
                               shared=self.colour_network == "shared", name="denoiser")

    _parameter_constraints = {**_Restorer._parameter_constraints,
                              "noise": [Options(str, NOISES)], "mode": [Options(str, MODES)],
                              "clipped": [Interval(numbers.Real, 0, 1)],
                              "sigma": [Interval(numbers.Real, 0, 1), SIGMA_PAIR]}

    def _check_params(self):
        self._sigma_range()

    def _sigma_range(self):
        name = type(self).__name__
        s = self.sigma
        pair = (s, s) if isinstance(s, numbers.Real) and not isinstance(s, bool) else s
        try:
            lo, hi = (float(v) for v in pair)
        except (TypeError, ValueError):
            raise ValueError(f"The 'sigma' parameter of {name} must be a float or a (low, high) "
                             f"pair in [0, 1]. Got {s!r} instead.") from None
        if not 0 <= lo <= hi <= 1:
            raise ValueError(f"The 'sigma' parameter of {name} must be a float or a (low, high) "
                             f"pair with 0 <= low <= high <= 1. Got {s!r} instead.")
        return lo, hi

    def fit(self, images, y=None, *, keep_checkpoint=False):
        """Train on clean `images` (a batch, a list of images of any sizes, or a folder of
        PNG/JPEG files); returns self. With `keep_checkpoint`, a `checkpoint_dir` stays after
        training (until `deepae.training.remove_checkpoint`, once the model is saved)."""
        import tensorflow as tf

        self._validate_params()
        lo, hi = self._sigma_range()
        given, noise = self.mode == "given", self.noise

        clipped = float(self.clipped)

        def make_pair(clean, seed):
            noisy, level = _corrupt(tf, clean, noise, lo, hi, seed, clipped)
            return ([noisy, tf.ones_like(clean[..., :1]) * level] if given else noisy), clean

        return self._fit(images, make_pair, self._network, keep_checkpoint)

    def transform(self, images, sigma=None, *, ensemble=False):
        """Denoise `images` (one image, a batch or a list); same layout and dtype back.

        `sigma` (the noise's standard deviation in [0, 1] units) is required in
        ``mode="given"`` and ignored in blind mode. Float images may stray outside [0, 1] (the
        model trains on unclipped noise); the result is clipped to [0, 1]. `ensemble=True`
        averages the results for the 8 flips and quarter turns of each image: 8 times the
        work, a little more accuracy.
        """
        check_is_fitted(self, "model_")
        if self.mode != "given":
            return self._apply(images, strict=False, ensemble=ensemble)
        if sigma is None or isinstance(sigma, bool) or not isinstance(sigma, numbers.Real) \
                or not 0 <= sigma <= 1:
            raise ValueError("This Denoiser was trained with mode='given': pass the noise "
                             f"level as transform(images, sigma=...) in [0, 1]; received "
                             f"sigma={sigma!r}.")
        return self._apply(images, lambda x: np.full(x.shape[:3] + (1,), sigma, np.float32),
                           strict=False, ensemble=ensemble)

    def _model_card(self):
        return {"noise_model": {"noise": self.noise, "sigma": list(self._sigma_range()),
                                "mode": self.mode, "clipped": float(self.clipped)}}


class SuperResolver(_Restorer):
    """A super-resolution convolutional autoencoder: trained on high-resolution images, it
    upscales images of any size by `scale`.

    Training pairs are made on the fly: random patches of the images, box-averaged down by
    `scale` (area downscaling, as the benchmark does) as the input and the patch itself as
    the target. The model upsamples bicubically and learns the residual over bicubic.

    Parameters
    ----------
    scale : {2, 4}, default=2
{common}    """

    def __init__(self, *, scale=2, filters=(32, 64, 64), convs_per_level=2, patch_size=48,
                 patches_per_epoch=4096, epochs=20, batch_size=32, learning_rate=1e-3,
                 loss="mse", tile=512, per_channel=False, colour_network="joint",
                 warm_start=False, callbacks=None, checkpoint_dir=None, resume=False,
                 strategy=None, random_state=None, verbose=0):
        self.scale = scale
        self._set_common(filters, convs_per_level, patch_size, patches_per_epoch, epochs,
                         batch_size, learning_rate, loss, tile, per_channel, colour_network,
                         warm_start, callbacks, checkpoint_dir, resume, strategy, random_state,
                         verbose)

    def _network(self, channels):
        return restoration_net(channels, filters=tuple(self.filters),
                               convs_per_level=int(self.convs_per_level), scale=int(self.scale),
                               shared=self.colour_network == "shared", name="super_resolver")

    _parameter_constraints = {**_Restorer._parameter_constraints,
                              "scale": [Options(numbers.Integral, SCALES)]}

    @property
    def _scale(self):
        return int(self.scale)

    @classmethod
    def pretrained(cls, scale=2):
        """The general-purpose x2 or x4 upscaler that ships with deepae.

        Two networks in one file (`with_colour`): one for grayscale images, one for colour
        images (``colour_network="shared"``). Trained by ``scripts/train_pretrained.py``
        on box-downscaled patches of scikit-image's photographs
        `deepae.datasets.TRAIN_PHOTOS` and the wallpaper photographs
        `deepae.datasets.TRAIN_WALLPAPERS`.
        """
        check_in(scale, "scale", SCALES, owner="SuperResolver.pretrained")
        return cls._pretrained(f"super_resolver_x{int(scale)}.deepae")

    def fit(self, images, y=None, *, keep_checkpoint=False):
        """Train on high-resolution `images` (a batch, a list of images of any sizes, or a
        folder of PNG/JPEG files); returns self. With `keep_checkpoint`, a `checkpoint_dir`
        stays after training (until `deepae.training.remove_checkpoint`)."""
        import tensorflow as tf

        self._validate_params()
        s = int(self.scale)

        def make_pair(clean, seed):  # deterministic: no draws
            sh = tf.shape(clean)
            small = tf.reshape(clean, (sh[0], sh[1] // s, s, sh[2] // s, s, sh[3]))
            return tf.reduce_mean(small, axis=(2, 4)), clean

        return self._fit(images, make_pair, self._network, keep_checkpoint)

    def transform(self, images, *, ensemble=False):
        """Upscale `images` (one image, a batch or a list) by `scale`; the same layout and
        dtype back, each side `scale` times longer. `ensemble=True` averages the results for
        the 8 flips and quarter turns of each image (8 times the work)."""
        return self._apply(images, ensemble=ensemble)

    def _model_card(self):
        return {"degradation": {"downscale": "box average", "scale": int(self.scale)}}


_COMMON_DOC = _COMMON_DOC.replace("{run}", RUN_PARAMS_DOC)
Denoiser.__doc__ = Denoiser.__doc__.replace("{common}", _COMMON_DOC)
SuperResolver.__doc__ = SuperResolver.__doc__.replace("{common}", _COMMON_DOC)
# a grayscale network, and its colour companion when the file holds one (`with_colour`)
register_loader("Denoiser", models="model|colour_model")(Denoiser._from_artifact)
register_loader("SuperResolver", models="model|colour_model")(SuperResolver._from_artifact)
