"""Image restoration by convolutional autoencoders: `Denoiser`, `SuperResolver`, and what
they share: image batches in any layout, random training patches, tiling without seams.

Images are (h, w) or (h, w, c) arrays, uint8 (0-255) or float in [0, 1]; a batch is
(n, h, w, c). Every method gives back the layout and dtype it was given.
"""

from __future__ import annotations

import math
import numbers
import sys
import time
from pathlib import Path

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_is_fitted

from deepae._validation import check_in, check_positive_float, check_positive_int, check_units
from deepae.apps._base import ArtifactEstimatorMixin
from deepae.nn.restoration import multiple, receptive_radius, restoration_net
from deepae.persistence import Artifact, register_loader

__all__ = ["Denoiser", "SuperResolver", "apply_tiled", "box_downscale", "random_patches", "to_float_images", "from_float_images",
           "NOISES"]

NOISES = ("gaussian", "salt_pepper", "mask")
MODES = ("blind", "given")
SCALES = (2, 4)


# -- images in, images out ---------------------------------------------------------------------
def _one_image(img, name, i=None, strict=True):
    where = f"{name}[{i}]" if i is not None else name
    img = np.asarray(img)
    if img.dtype == np.uint8:
        out = img.astype(np.float32) / 255.0
    elif img.dtype.kind == "f":
        out = img.astype(np.float32)
        if not np.isfinite(out).all():
            raise ValueError(f"Expected finite pixel values in `{where}`; received NaN or inf.")
        lo, hi = float(out.min()), float(out.max())
        if strict and (lo < -1e-3 or hi > 1 + 1e-3):
            raise ValueError(f"Expected float pixels in [0, 1] in `{where}`; received values in "
                             f"[{lo:.4g}, {hi:.4g}]. Divide 8-bit data by 255.")
    elif img.dtype.kind in "ui":
        raise TypeError(f"Expected `{where}` as uint8 (0-255) or float in [0, 1]; received "
                        f"{img.dtype} ({8 * img.dtype.itemsize}-bit) pixels. Convert 16-bit "
                        "images to float in [0, 1] (divide by 65535) or to uint8.")
    else:
        raise TypeError(f"Expected `{where}` as an image array (uint8 or float); received "
                        f"dtype {img.dtype}.")
    if out.ndim == 2:
        out = out[..., None]
    if out.ndim != 3 or out.shape[-1] not in (1, 3):
        raise ValueError(f"Expected `{where}` of shape (h, w), (h, w, 1) or (h, w, 3); "
                         f"received {img.shape}.")
    return out


def to_float_images(images, name="images", *, batch_3d=False, strict=True):
    """Read `images` into a list of float32 (h, w, c) arrays in [0, 1], and its layout.

    Accepts one (h, w) or (h, w, c) image, a batch (n, h, w, c) or a list of images of any
    sizes; with `batch_3d`, a 3-D array whose last axis is not 1 or 3 is a grayscale batch
    (n, h, w) (as MNIST comes). Returns ``(images, layout)``; `from_float_images` turns
    results back into the caller's layout and dtype.
    """
    if isinstance(images, str | Path):
        from deepae.data.io import read_images

        images = read_images(images)
    if isinstance(images, list | tuple):
        if not images:
            raise ValueError(f"Expected at least one image in `{name}`; received an empty list.")
        out = [_one_image(im, name, i, strict) for i, im in enumerate(images)]
        dtypes = {np.asarray(im).dtype for im in images}
        layout = {"kind": "list", "dtype": dtypes.pop() if len(dtypes) == 1 else np.float32,
                  "squeeze": [np.asarray(im).ndim == 2 for im in images]}
        return out, layout
    arr = np.asarray(images)
    if arr.ndim == 3 and batch_3d and arr.shape[-1] not in (1, 3):
        arr = arr[..., None]
        layout = {"kind": "batch3", "dtype": arr.dtype}
        return [_one_image(im, name, i, strict) for i, im in enumerate(arr)], layout
    if arr.ndim in (2, 3):
        return [_one_image(arr, name, None, strict)], {"kind": "single", "dtype": arr.dtype,
                                         "squeeze": arr.ndim == 2}
    if arr.ndim == 4:
        if len(arr) == 0:
            raise ValueError(f"Expected at least one image in `{name}`; received shape "
                             f"{arr.shape}.")
        return [_one_image(im, name, i, strict) for i, im in enumerate(arr)], {"kind": "batch",
                                                                     "dtype": arr.dtype}
    raise ValueError(f"Expected `{name}` as one (h, w) or (h, w, c) image or a batch "
                     f"(n, h, w, c); received an array of shape {arr.shape}.")


def _cast(img, dtype):
    img = np.clip(img, 0.0, 1.0)
    if np.dtype(dtype) == np.uint8:
        return np.round(img * 255.0).astype(np.uint8)
    return img.astype(dtype if np.dtype(dtype).kind == "f" else np.float32)


def from_float_images(results, layout):
    """The inverse of `to_float_images`: clip to [0, 1], cast back, restore the layout."""
    dtype = layout["dtype"]
    if layout["kind"] == "single":
        img = _cast(results[0], dtype)
        return img[..., 0] if layout["squeeze"] else img
    if layout["kind"] == "list":
        return [_cast(r, dtype)[..., 0] if sq else _cast(r, dtype)
                for r, sq in zip(results, layout["squeeze"], strict=True)]
    out = np.stack([_cast(r, dtype) for r in results])
    return out[..., 0] if layout["kind"] == "batch3" else out


# -- training patches -------------------------------------------------------------------------
def random_patches(images, size, n, rng, *, flips=True):
    """`n` random `size` x `size` crops of `images` (a list of (h, w, c) arrays), with random
    horizontal and vertical flips and 90-degree rotations when `flips`; shape (n, size, size, c).
    Images are drawn in proportion to their area."""
    areas = np.array([im.shape[0] * im.shape[1] for im in images], dtype=np.float64)
    which = rng.choice(len(images), size=n, p=areas / areas.sum())
    out = np.empty((n, size, size, images[0].shape[-1]), np.float32)
    for k, i in enumerate(which):
        im = images[i]
        y = rng.integers(0, im.shape[0] - size + 1)
        x = rng.integers(0, im.shape[1] - size + 1)
        p = im[y:y + size, x:x + size]
        if flips:
            if rng.random() < 0.5:
                p = p[:, ::-1]
            if rng.random() < 0.5:
                p = p[::-1]
            if rng.random() < 0.5:
                p = np.swapaxes(p, 0, 1)
        out[k] = p
    return out


# -- tiling -----------------------------------------------------------------------------------
def _pad_to(img, mult):
    h, w = img.shape[:2]
    ph, pw = (-h) % mult, (-w) % mult
    if ph or pw:
        img = np.pad(img, ((0, ph), (0, pw), (0, 0)), mode="symmetric")
    return img



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
    padded = _pad_to(image, mult)
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
def _corrupt(tf, clean, noise, low, high):
    """Corrupt a batch in TensorFlow; returns (noisy, per-image level)."""
    n = tf.shape(clean)[0]
    level = tf.random.uniform((n, 1, 1, 1), low, high)
    if noise == "gaussian":
        noisy = clean + level * tf.random.normal(tf.shape(clean))
    elif noise == "salt_pepper":
        u = tf.random.uniform(tf.shape(clean)[:3])[..., None]
        salt = tf.cast(u < level / 2, clean.dtype)
        pepper = tf.cast((u >= level / 2) & (u < level), clean.dtype)
        noisy = clean * (1 - salt - pepper) + salt
    else:  # mask
        u = tf.random.uniform(tf.shape(clean)[:3])[..., None]
        noisy = clean * tf.cast(u >= level, clean.dtype)
    return noisy, level


class _Restorer(ArtifactEstimatorMixin, BaseEstimator):
    """What the restoration estimators share: the network's parameters, training on random
    patches of clean images with pairs made on the fly, tiled inference, persistence."""

    _fitted_attr = "model_"
    _scale = 1

    def _set_common(self, filters, convs_per_level, patch_size, patches_per_epoch, epochs,
                    batch_size, learning_rate, tile, per_channel, random_state, verbose):
        """Store the shared parameters as given (scikit-learn's rule: no checks in init)."""
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

    def _validate_common(self):
        name = type(self).__name__
        check_units(self.filters, "filters", owner=name, allow_empty=False)
        if not isinstance(self.per_channel, bool | np.bool_):
            raise TypeError(f"The 'per_channel' parameter of {name} must be a bool. Got "
                            f"{self.per_channel!r} instead.")
        for p in ("convs_per_level", "patch_size", "patches_per_epoch", "epochs", "batch_size",
                  "tile"):
            check_positive_int(getattr(self, p), p, owner=name)
        check_positive_float(self.learning_rate, "learning_rate", owner=name)

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

    def _fit(self, images, make_pair, build):
        """Train ``build(channels)`` on pairs ``make_pair(clean_batch) -> (inputs, target)``."""
        import keras
        import tensorflow as tf

        imgs, _ = to_float_images(images, "images", batch_3d=True)
        channels = {im.shape[-1] for im in imgs}
        if len(channels) > 1:
            raise ValueError("Expected training images that are all grayscale or all colour; "
                             f"received channel counts {sorted(channels)}.")
        size = self._patch_size(imgs)
        self.n_channels_ = channels.pop()
        self.patch_size_ = size
        rng = np.random.default_rng(self.random_state)
        if self.random_state is not None:
            keras.utils.set_random_seed(int(self.random_state))
        model = self.model_ = build(self.n_channels_)
        bs = int(self.batch_size)
        steps_per_epoch = max(1, int(self.patches_per_epoch) // bs)
        sched = keras.optimizers.schedules.CosineDecay(
            float(self.learning_rate), steps_per_epoch * int(self.epochs), alpha=0.01)
        opt = keras.optimizers.Adam(sched)

        @tf.function
        def step(clean):
            inputs, target = make_pair(clean)
            with tf.GradientTape() as tape:
                loss = tf.reduce_mean(tf.square(model(inputs, training=True) - target))
            grads = tape.gradient(loss, model.trainable_variables)
            opt.apply_gradients(zip(grads, model.trainable_variables, strict=True))
            return loss

        self.history_ = {"loss": [], "seconds": []}
        t0 = time.perf_counter()
        for epoch in range(int(self.epochs)):
            patches = random_patches(imgs, size, steps_per_epoch * bs, rng)
            bar = None
            if self.verbose and sys.stdout.isatty():  # a bar on a terminal, a line in a log
                print(f"epoch {epoch + 1}/{self.epochs}", flush=True)
                bar = keras.utils.Progbar(steps_per_epoch, stateful_metrics=["loss"])
            total = 0.0
            for i in range(steps_per_epoch):
                total += float(step(tf.constant(patches[i * bs:(i + 1) * bs])))
                if bar is not None:
                    bar.update(i + 1, [("loss", total / (i + 1))])
            self.history_["loss"].append(total / steps_per_epoch)
            self.history_["seconds"].append(round(time.perf_counter() - t0, 2))
            if self.verbose and bar is None:
                print(f"epoch {epoch + 1}/{self.epochs}  loss {self.history_['loss'][-1]:.5f}"
                      f"  {self.history_['seconds'][-1]:.1f} s", flush=True)
        self._build_predict()
        return self

    def _build_predict(self):
        import tensorflow as tf

        model = self.model_
        self._predict = tf.function(lambda x: model(x, training=False), reduce_retracing=True)

    def _apply(self, images, extra=None, strict=True, ensemble=False):
        """Run the model over `images` in tiles; `extra(x)` gives more inputs for a tile.
        With `ensemble`, average the 8 flips and quarter turns of each image (each undone
        after the model: the geometric self-ensemble of Lim et al. 2017)."""
        check_is_fitted(self, "model_")
        imgs, layout = to_float_images(images, "images", strict=strict)
        mult, name = self._mult, type(self).__name__
        low = max(mult, 2 if self._scale > 1 else 1)
        out = []
        split = self.n_channels_ == 1 and bool(self.per_channel)
        for i, im in enumerate(imgs):
            if im.shape[-1] != self.n_channels_ and not split:
                hint = (" (or set per_channel=True to apply it to each channel)"
                        if self.n_channels_ == 1 else "")
                raise ValueError(f"This {name} takes {self.n_channels_}-channel images "
                                 f"({'grayscale' if self.n_channels_ == 1 else 'colour'}"
                                 f"{hint}); image {i} has {im.shape[-1]} channel(s), shape "
                                 f"{im.shape}.")
            if min(im.shape[:2]) < low:
                raise ValueError(f"Image {i} is {im.shape[1]}x{im.shape[0]}: this {name} needs "
                                 f"at least {low} pixels on each side.")

            def fn(x):
                x = x.astype(np.float32)
                return self._predict(x if extra is None else [x, extra(x)])

            def run(x):
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

    @classmethod
    def _pretrained(cls, filename):
        """Load a model that ships in ``deepae/pretrained`` (`scripts/train_pretrained.py`)."""
        from importlib.resources import files

        from deepae.persistence import load

        path = files("deepae") / "pretrained" / filename
        if not path.is_file():
            raise FileNotFoundError(f"The pretrained model {filename!r} is missing from this "
                                    f"installation of deepae (looked in {path}); reinstall "
                                    "deepae, or train it with `python scripts/train_pretrained.py`.")
        return load(str(path))

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.required = False
        tags.non_deterministic = True
        return tags

    # -- persistence ---------------------------------------------------------------------------
    def _model_card(self) -> dict:
        return {}

    def _artifact_parts(self):
        info = {"n_channels": int(self.n_channels_), "patch_size": int(self.patch_size_),
                "history": self.history_, **self._model_card()}
        return info, {"model": self.model_}, {}

    def _restore(self, art: Artifact) -> None:
        meta = art.metadata
        self.model_ = art.models["model"]
        self.n_channels_ = int(meta["n_channels"])
        self.patch_size_ = int(meta["patch_size"])
        self.history_ = meta["history"]
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
    tile : int, default=512
        Images larger than this (input pixels) are processed in overlapping tiles, so that
        memory stays bounded; the tiles overlap by the network's receptive radius, which
        makes the result the same as untiled.
    per_channel : bool, default=False
        With a model trained on grayscale images, restore colour images one channel at a
        time (the pretrained models do); otherwise a colour image is an error.
    random_state : int, optional
    verbose : int, default=0

    Attributes
    ----------
    model_ : keras.Model
    n_channels_ : int
        1 (grayscale) or 3 (colour), from the training images.
    patch_size_ : int
    history_ : dict
        ``loss`` per epoch (mean squared error on the training patches) and ``seconds``.
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
    mode : {"blind", "given"}, default="blind"
        ``"blind"``: the network works out the noise level itself. ``"given"``: the noise
        level is a second input (`transform(..., sigma=)`), as in FFDNet.
{common}    """

    def __init__(self, *, noise="gaussian", sigma=(0.0, 0.3), mode="blind", filters=(32, 64, 64),
                 convs_per_level=2, patch_size=48, patches_per_epoch=4096, epochs=20,
                 batch_size=32, learning_rate=1e-3, tile=512, per_channel=False,
                 random_state=None, verbose=0):
        self.noise = noise
        self.sigma = sigma
        self.mode = mode
        self._set_common(filters, convs_per_level, patch_size, patches_per_epoch, epochs,
                         batch_size, learning_rate, tile, per_channel, random_state, verbose)

    @classmethod
    def pretrained(cls):
        """The general-purpose blind Gaussian denoiser that ships with deepae.

        Trained by ``scripts/train_pretrained.py`` on grayscale patches of scikit-image's
        photographs `deepae.datasets.TRAIN_PHOTOS`, noise sigma drawn from [0, 0.35];
        colour images are denoised one channel at a time (``per_channel=True``). Its
        training is in `deepae info` and the benchmark in the README.
        """
        return cls._pretrained("denoiser.deepae")

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

    def fit(self, images, y=None):
        """Train on clean `images` (a batch, a list of images of any sizes, or a folder of
        PNG/JPEG files); returns self."""
        import tensorflow as tf

        name = type(self).__name__
        check_in(self.noise, "noise", NOISES, owner=name)
        check_in(self.mode, "mode", MODES, owner=name)
        self._validate_common()
        lo, hi = self._sigma_range()
        given, noise = self.mode == "given", self.noise

        def make_pair(clean):
            noisy, level = _corrupt(tf, clean, noise, lo, hi)
            return ([noisy, tf.ones_like(clean[..., :1]) * level] if given else noisy), clean

        def build(channels):
            return restoration_net(channels, filters=tuple(self.filters),
                                   convs_per_level=int(self.convs_per_level),
                                   noise_level_input=given, name="denoiser")

        return self._fit(images, make_pair, build)

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
                                "mode": self.mode}}


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
                 tile=512, per_channel=False, random_state=None, verbose=0):
        self.scale = scale
        self._set_common(filters, convs_per_level, patch_size, patches_per_epoch, epochs,
                         batch_size, learning_rate, tile, per_channel, random_state, verbose)

    @property
    def _scale(self):
        return int(self.scale)

    @classmethod
    def pretrained(cls, scale=2):
        """The general-purpose x2 or x4 upscaler that ships with deepae.

        Trained by ``scripts/train_pretrained.py`` on grayscale patches of scikit-image's
        photographs `deepae.datasets.TRAIN_PHOTOS`, box-downscaled; colour images are
        upscaled one channel at a time (``per_channel=True``).
        """
        check_in(scale, "scale", SCALES, owner="SuperResolver.pretrained")
        return cls._pretrained(f"super_resolver_x{int(scale)}.deepae")

    def fit(self, images, y=None):
        """Train on high-resolution `images` (a batch, a list of images of any sizes, or a
        folder of PNG/JPEG files); returns self."""
        import tensorflow as tf

        check_in(self.scale, "scale", SCALES, owner=type(self).__name__)
        self._validate_common()
        s = int(self.scale)

        def make_pair(clean):
            sh = tf.shape(clean)
            small = tf.reshape(clean, (sh[0], sh[1] // s, s, sh[2] // s, s, sh[3]))
            return tf.reduce_mean(small, axis=(2, 4)), clean

        def build(channels):
            return restoration_net(channels, filters=tuple(self.filters),
                                   convs_per_level=int(self.convs_per_level), scale=s,
                                   name="super_resolver")

        return self._fit(images, make_pair, build)

    def transform(self, images, *, ensemble=False):
        """Upscale `images` (one image, a batch or a list) by `scale`; the same layout and
        dtype back, each side `scale` times longer. `ensemble=True` averages the results for
        the 8 flips and quarter turns of each image (8 times the work)."""
        return self._apply(images, ensemble=ensemble)

    def _model_card(self):
        return {"degradation": {"downscale": "box average", "scale": int(self.scale)}}


Denoiser.__doc__ = Denoiser.__doc__.replace("{common}", _COMMON_DOC)
SuperResolver.__doc__ = SuperResolver.__doc__.replace("{common}", _COMMON_DOC)
register_loader("Denoiser")(Denoiser._from_artifact)
register_loader("SuperResolver")(SuperResolver._from_artifact)
