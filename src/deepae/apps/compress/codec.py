"""`ImageCodec`: learned lossy image compression to ``.dae`` files.

The codec is a convolutional autoencoder whose code is quantised and entropy coded (Ballé,
Laparra & Simoncelli 2017; Ballé et al. 2018, factorised prior): analysis transform ->
rounding -> range coding with frozen integer tables -> bytes, and back through the synthesis
transform. Training minimises ``rate + lambda * 255**2 * MSE``, the rate being the learned
prior's estimate of the bits of the noisy latent (additive uniform noise stands in for
rounding); the decoder side sees the rounded latent through a straight-through gradient
(Minnen & Singh 2020), so that training and decoding see the same latents.
"""

from __future__ import annotations

import hashlib
import math
import numbers

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_is_fitted

from deepae._validation import (
    BOOLEAN,
    POSITIVE_FLOAT,
    POSITIVE_INT,
    RUN_CONSTRAINTS,
    Interval,
    validate_params,
)
from deepae.apps._base import MAX_TILE, ArtifactEstimatorMixin
from deepae.apps.compress import _tiles, overfit
from deepae.apps.compress.bitstream import MAGIC, OVERHEAD_BYTES, Header, pack, unpack
from deepae.apps.compress.entropy import RangeCoder, freeze_tables, table_bits
from deepae.apps.compress.refine import LatentRefiner
from deepae.data.images import to_float_images
from deepae.exceptions import ArtifactError, BitstreamError
from deepae.nn.compression import (  # importing the layers registers them with Keras
    FactorizedPrior,
    analysis_transform,
    rate_distortion,
    receptive_halo,
    synthesis_transform,
)
from deepae.persistence import Artifact, check_architecture, register_loader
from deepae.training import RUN_PARAMS_DOC, cosine_adam, images_fingerprint, train_on_patches

__all__ = ["ImageCodec", "QUALITY_LAMBDAS", "MAX_PIXELS", "EFFORTS", "REFINE_STEPS"]

EFFORTS = ("fast", "refine", "best")
REFINE_STEPS = 200  # effort="refine"'s default

# rate-distortion trade-offs of the shipped codecs, quality 1 (smallest files) to 8: the
# lambdas of CompressAI's pretrained models, for distortion in 8-bit units (MSE * 255**2)
QUALITY_LAMBDAS = {1: 0.0018, 2: 0.0035, 3: 0.0067, 4: 0.0130, 5: 0.0250, 6: 0.0483,
                   7: 0.0932, 8: 0.1800}
# no encoder writes larger latent values (inputs in [0, 1] through bounded weights); a file
# that decodes to larger ones is corrupted
_MAX_LATENT = 2 ** 20
# decompression-bomb guard, as Pillow's: a file announcing more pixels (times the planes
# that code them) is refused
MAX_PIXELS = 89_478_485

# BT.601 full-range YCbCr (JPEG's): colour images through a grayscale codec are coded as
# three planes, luma and two chroma planes offset by 1/2
_RGB2YCC = np.array([[0.299, 0.587, 0.114],
                     [-0.168736, -0.331264, 0.5],
                     [0.5, -0.418688, -0.081312]], np.float32)
_YCC2RGB = np.linalg.inv(_RGB2YCC.astype(np.float64)).astype(np.float32)



def _prior(latent_channels: int):
    """The codec's entropy model of the latent, as a Keras model."""
    import keras

    latent = keras.Input((None, None, latent_channels), name="latent")
    return keras.Model(latent, FactorizedPrior(name="factorized_prior")(latent), name="prior")

class ImageCodec(ArtifactEstimatorMixin, BaseEstimator):
    """Learned lossy image compression: ``compress(image) -> bytes``, ``decompress(bytes) ->
    image``, with a real file format (``.dae``, see ``docs/format.md``).

    Parameters
    ----------
    lmbda : float, default=0.0130
        The rate-distortion trade-off: the loss is ``bits per pixel + lmbda * 255**2 * MSE``
        (MSE of pixels in [0, 1]). Larger values give larger files of higher quality;
        `QUALITY_LAMBDAS` lists those of the shipped codecs.
    filters : int, default=64
        Channels of the hidden layers of the analysis and synthesis transforms.
    latent_channels : int, default=96
        Channels of the latent code.
    levels : int, default=4
        Stride-2 stages; the latent is ``2 ** levels`` times smaller than the image on each
        side (images are padded to a multiple of it and cropped back).
    patch_size : int, default=64
        Side of the random training patches (capped by the smallest training image).
    patches_per_epoch : int, default=4096
    epochs : int, default=20
    batch_size : int, default=16
    learning_rate : float, default=1e-3
        Adam with gradient-norm clipping at 1 and a cosine decay over the training steps.
    warm_start : bool, default=False
        Continue from the fitted weights (for instance with another `lmbda`: fine-tuning a
        neighbouring quality is much faster than training from scratch).
{run}    strategy : None, "single", "mirrored", "multi-worker" or tf.distribute.Strategy
        Where training runs (`deepae.distribute`); `batch_size` is the global batch, split
        between the replicas (the gradient clipping applies to each replica's share). A
        strategy instance is not saved with the model (its name is).
    tile : int, default=512
        Side, in pixels (rounded down to a multiple of ``2 ** levels``), of the tiles in
        which `compress` and `decompress` run the transforms: each tile is computed with
        `receptive_halo` latents of context on every side, which gives the untiled result
        (the same bytes and pixels, up to float rounding) with memory bounded by the tile
        instead of the image (the halo costs about 10% more time than one window at 1
        megapixel). Refinement (``refine_steps``) searches tiles of this side one after the
        other (`deepae.apps.compress.refine`).
    random_state : int, optional
    verbose : int, default=0

    Attributes
    ----------
    analysis_, synthesis_ : keras.Model
        The transforms.
    prior_ : keras.Model
        Maps a latent to each element's likelihood under the learned factorised prior.
    tables_ : dict
        The frozen integer tables (``offsets``, ``lengths``, ``freqs``) used by the coder.
    fingerprint_ : str
        SHA-256 (hex) of the tables and the transforms' weights; a file records its first 4
        bytes and is only decoded by the codec that wrote it.
    n_channels_ : int
        1 (grayscale) or 3 (colour). A grayscale codec codes colour images as Y, Cb, Cr
        planes; a colour codec codes grayscale images as three equal channels.
    history_ : dict
        Per epoch: ``loss``, ``bpp`` (the prior's estimate on the noisy latents), ``mse``,
        ``seconds``.

    Examples
    --------
    >>> codec = deepae.ImageCodec.pretrained(quality=4)  # doctest: +SKIP
    >>> data = codec.compress(image)  # doctest: +SKIP
    >>> restored = codec.decompress(data)  # doctest: +SKIP
    """

    _fitted_attr = "tables_"

    def __init__(self, *, lmbda=0.0130, filters=64, latent_channels=96, levels=4,
                 patch_size=64, patches_per_epoch=4096, epochs=20, batch_size=16,
                 learning_rate=1e-3, warm_start=False, callbacks=None, checkpoint_dir=None,
                 resume=False, strategy=None, tile=512, random_state=None, verbose=0):
        self.lmbda = lmbda
        self.filters = filters
        self.latent_channels = latent_channels
        self.levels = levels
        self.patch_size = patch_size
        self.patches_per_epoch = patches_per_epoch
        self.epochs = epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.warm_start = warm_start
        self.callbacks = callbacks
        self.checkpoint_dir = checkpoint_dir
        self.resume = resume
        self.strategy = strategy
        self.tile = tile
        self.random_state = random_state
        self.verbose = verbose

    # -- training ------------------------------------------------------------------------------
    _parameter_constraints = {
        "lmbda": [POSITIVE_FLOAT], "filters": [POSITIVE_INT], "latent_channels": [POSITIVE_INT],
        "levels": [Interval(numbers.Integral, 1, 6)], "patch_size": [POSITIVE_INT],
        "patches_per_epoch": [POSITIVE_INT], "epochs": [POSITIVE_INT],
        "batch_size": [POSITIVE_INT], "learning_rate": [POSITIVE_FLOAT],
        "warm_start": [BOOLEAN], "tile": [Interval(numbers.Integral, 1, MAX_TILE)],
        **RUN_CONSTRAINTS,
    }

    @property
    def stride(self) -> int:
        """Image sides are padded to a multiple of this; the latent is this much smaller."""
        return 2 ** int(self.levels)

    def _tile_latents(self) -> int:
        """The tile side in latent positions (`tile` is checked here too: it may be set
        after fitting)."""
        validate_params(type(self).__name__,
                        {"tile": self._parameter_constraints["tile"]}, {"tile": self.tile})
        return max(1, int(self.tile) // self.stride)

    def fit(self, images, y=None, *, keep_checkpoint=False):
        """Train on `images`: a folder path, one image, a batch (n, h, w[, c]) or a list of
        images of any sizes (uint8 or float in [0, 1]), all grayscale or all colour.
        With `keep_checkpoint`, a `checkpoint_dir` stays after training (until the caller
        removes it with `deepae.training.remove_checkpoint`, once the model is saved).
        Returns self."""
        import keras

        from deepae.distribute import resolve_strategy

        self._validate_params()
        dist = resolve_strategy(self.strategy)
        imgs, n_channels, size = self._training_images(images)
        rng = np.random.default_rng(self.random_state)
        if self.random_state is not None:
            keras.utils.set_random_seed(int(self.random_state))
        history = self._networks(n_channels, dist)
        self.patch_size_ = size
        ga, gs, prior = self.analysis_, self.synthesis_, self.prior_
        variables = ga.trainable_variables + gs.trainable_variables + prior.trainable_variables
        bs = int(self.batch_size)
        steps = max(1, int(self.patches_per_epoch) // bs)
        opt = cosine_adam(self.learning_rate, steps * int(self.epochs), variables,
                          strategy=dist)
        run = self._run_description(images_fingerprint(imgs), n_channels=n_channels,
                                    patch_size=size, warm_start_epochs=len(history.get(
                                        "loss", [])))
        self.history_ = train_on_patches(
            self._train_step(variables, opt), imgs, size, epochs=int(self.epochs),
            steps_per_epoch=steps, batch_size=bs, rng=rng, verbose=self.verbose,
            history=history, strategy=dist, networks=[ga, gs, prior], optimizer=opt,
            callbacks=self.callbacks, checkpoint_dir=self.checkpoint_dir, resume=self.resume,
            keep_checkpoint=keep_checkpoint, run=run)
        self._freeze()
        return self

    def _training_images(self, images):
        """The training images as float arrays, their channel count, and the patch side."""
        imgs, _ = to_float_images(images, "images", batch_3d=True)
        channels = {im.shape[-1] for im in imgs}
        if len(channels) > 1:
            raise ValueError("Expected training images that are all grayscale or all colour; "
                             f"received channel counts {sorted(channels)}.")
        smallest = min(min(im.shape[:2]) for im in imgs)
        size = min(int(self.patch_size), smallest) // self.stride * self.stride
        if size < self.stride:
            raise ValueError(f"Training images must be at least {self.stride} pixels on each "
                             f"side for ImageCodec(levels={self.levels}); the smallest is "
                             f"{smallest}.")
        return imgs, channels.pop(), size

    def _networks(self, n_channels, dist) -> dict:
        """Make the networks under the strategy, or keep them for `warm_start` (checked
        against this fit); returns the history to continue."""
        from deepae.distribute import strategy_scope

        arch = dict(filters=int(self.filters), latent_channels=int(self.latent_channels),
                    levels=int(self.levels))
        if self.warm_start and hasattr(self, "tables_"):
            if n_channels != self.n_channels_ or self._arch != arch:
                raise ValueError(f"warm_start=True continues a codec of {self.n_channels_} "
                                 f"channel(s) and architecture {self._arch}; received "
                                 f"{n_channels}-channel images and {arch}.")
            first = getattr(self, "_strategy", None)
            if first is not dist:
                raise ValueError(
                    "warm_start=True continues the weights where they were made: expected the "
                    "`strategy` of the first fit ("
                    f"{'a single device' if first is None else type(first).__name__}); "
                    f"received strategy={self.strategy!r}.")
            history = {k: list(v) for k, v in self.history_.items()}
        else:
            with strategy_scope(dist):  # the weights, on every replica
                self.analysis_ = analysis_transform(n_channels, **arch)
                self.synthesis_ = synthesis_transform(n_channels, **arch)
                self.prior_ = _prior(int(self.latent_channels))
            self._strategy = dist
            history = {}
        self.n_channels_, self._arch = n_channels, arch
        return history

    def _train_step(self, variables, opt):
        """One replica's training step (compiled by `train_on_patches`, one tf.function
        around the replicas): the rate-distortion loss with uniform noise for the rate and
        straight-through rounding for the distortion."""
        import tensorflow as tf

        from deepae.distribute import clip_global_norm
        from deepae.training import replica_share, run_seed, step_seed

        ga, gs, prior = self.analysis_, self.synthesis_, self.prior_
        lmbda = float(self.lmbda) * 255.0 ** 2
        base = run_seed(self.random_state)

        def step(x, scale):
            with tf.GradientTape() as tape:
                y = ga(x, training=True)
                # stateless, keyed on the optimizer's step: a resumed run draws the same
                seed = step_seed(opt, base)
                noisy = y + replica_share(
                    lambda sh: tf.random.stateless_uniform(sh, seed, -0.5, 0.5), tf.shape(y))
                rounded = y + tf.stop_gradient(tf.round(y) - y)  # straight-through
                x_hat = gs(rounded, training=True)
                pixels = tf.cast(tf.reduce_prod(tf.shape(x)[:3]), tf.float32)
                loss, bpp, mse = rate_distortion(prior(noisy), x, x_hat, lmbda, pixels)
                scaled = loss * scale  # this replica's share of the global batch's mean
            # the global batch's gradient clipped to norm 1 (Keras's global_clipnorm would
            # clip each replica's share before the sum)
            grads = clip_global_norm(tape.gradient(scaled, variables), 1.0)
            opt.apply_gradients(zip(grads, variables, strict=True))
            return {"loss": loss, "bpp": bpp, "mse": mse}

        return step

    def _freeze(self):
        """Freeze the prior into integer tables and fingerprint the codec."""
        self.tables_ = freeze_tables(self.prior_.get_layer("factorized_prior"))
        self._setup()

    def _setup(self):
        """Fingerprint, coder and compiled transforms from the fitted state."""
        from deepae.nn.runtime import compiled

        sha = hashlib.sha256()
        for key in ("offsets", "lengths", "freqs"):
            sha.update(np.ascontiguousarray(self.tables_[key], ">i4").tobytes())
        for model in (self.analysis_, self.synthesis_):
            for w in model.get_weights():
                sha.update(np.ascontiguousarray(w, ">f4").tobytes())
        self.fingerprint_ = sha.hexdigest()
        self._coder = RangeCoder(self.tables_)
        ga, gs = self.analysis_, self.synthesis_
        self._encode_fn = compiled(lambda x: ga(x, training=False))
        self._decode_fn = compiled(lambda y: gs(y, training=False))
        self._refiner = None  # built on the first compress(refine_steps > 0)

    # -- coding --------------------------------------------------------------------------------
    def _planes(self, img):
        """The (p, h, w, model channels) planes that code a (h, w, c) float image."""
        c, m = img.shape[-1], self.n_channels_
        if c == m:
            return img[None]
        if m == 1:  # colour image, grayscale codec: Y, Cb, Cr planes
            ycc = img @ _RGB2YCC.T + np.array([0.0, 0.5, 0.5], np.float32)
            return np.moveaxis(ycc, -1, 0)[..., None]
        return np.repeat(img, 3, axis=-1)[None]  # grayscale image, colour codec

    def _image(self, planes, c):
        """The inverse of `_planes`: (p, h, w, m) decoded planes -> (h, w, c) float image."""
        m = self.n_channels_
        if c == m:
            return planes[0]
        if m == 1:
            ycc = np.moveaxis(planes[..., 0], 0, -1) - np.array([0.0, 0.5, 0.5], np.float32)
            return ycc @ _YCC2RGB.T
        return planes[0].mean(axis=-1, keepdims=True)

    def _region(self, arr, name):
        """`region(r0, r1, c0, c1)`: rows r0:r1, columns c0:c1 of the planes that code the
        image `arr` (uint8 or float, checked), padded (mirrored) at the bottom and right to
        multiples of the stride: (p, r1 - r0, c1 - c0, model channels) float32. Only the
        region is converted, never the whole image."""
        h, w = arr.shape[:2]

        def region(r0, r1, c0, c1):
            if r1 <= h and c1 <= w:
                part = arr[r0:r1, c0:c1]
            else:
                part = arr[np.ix_(_tiles.reflect(np.arange(r0, r1), h),
                                  _tiles.reflect(np.arange(c0, c1), w))]
            (img,), _ = to_float_images(part, name)
            return np.ascontiguousarray(self._planes(img), np.float32)

        return region

    @staticmethod
    def _check_image(image, name):
        """`image` as an array, its shape, dtype and (float) values checked, without a float
        copy of it."""
        arr = np.asarray(image)
        if arr.ndim not in (2, 3):
            raise ValueError(f"Expected `{name}` as one (h, w) or (h, w, c) image; received "
                             f"an array of shape {arr.shape}.")
        h, w = arr.shape[:2]
        if min(h, w) < 1 or max(h, w) > 0xFFFF:
            raise ValueError(f"Expected `{name}` of 1 to 65535 pixels on each side; received "
                             f"{w}x{h}.")
        if arr.ndim == 3 and arr.shape[-1] not in (1, 3):
            raise ValueError(f"Expected `{name}` of shape (h, w), (h, w, 1) or (h, w, 3); "
                             f"received {arr.shape}.")
        # the dtype, by name; then the values of a float image, without a float copy of it
        to_float_images(arr[:1, :1], name)
        if arr.dtype.kind == "f" and not (np.isfinite(arr).all() and arr.min() >= -1e-3
                                          and arr.max() <= 1 + 1e-3):
            to_float_images(arr, name)  # the whole image's range in the message
        return arr

    def _latents(self, image, name="image", refine_steps=0):
        check_is_fitted(self, "tables_")
        if isinstance(refine_steps, bool) or not isinstance(refine_steps, numbers.Integral):
            raise TypeError(f"Expected `refine_steps` as an int >= 0; received "
                            f"{refine_steps!r} of type {type(refine_steps).__name__}.")
        if refine_steps < 0:
            raise ValueError(f"Expected `refine_steps` as an int >= 0; received "
                             f"{refine_steps!r}.")
        arr = self._check_image(image, name)
        h, w = arr.shape[:2]
        c = 3 if arr.ndim == 3 and arr.shape[-1] == 3 else 1
        s, tile, halo = self.stride, self._tile_latents(), receptive_halo(int(self.levels))
        lh, lw = -(-h // s), -(-w // s)
        region = self._region(arr, name)
        # (p, lh, lw, M): rounded as it comes unless the refiner starts from the floats
        y = _tiles.analyse(self._encode_fn, region, lh, lw, s, tile, halo,
                           rounded=not refine_steps)
        if refine_steps:
            if self._refiner is None:
                self._refiner = LatentRefiner(self.synthesis_, self.prior_, self.tables_)
            # the search minimises the loss of `lmbda` (the trained one unless set_params
            # changed it since)
            return self._refiner(region, y, int(refine_steps), h, w, self.lmbda, stride=s,
                                 tile=tile, halo=halo), (h, w, c)
        return y, (h, w, c)

    def compress(self, image, *, effort: str = "fast", refine_steps: int | None = None,
                 iterations: int | None = None, return_stats: bool = False):
        """Compress one image to the bytes of a ``.dae`` file.

        Parameters
        ----------
        image : array of shape (h, w) or (h, w, c), c in {1, 3}
            uint8 (0-255) or float in [0, 1]; any size up to 65535 on each side.
        effort : {"fast", "refine", "best"}, default="fast"
            How much computing the encoder spends; the rate is chosen by the codec's `lmbda`
            (`pretrained(quality)`) in every case, and `decompress` reads all three.

            - ``"fast"``: one pass of the analysis transform (about 7 megapixels per second
              on a 2-core CPU).
            - ``"refine"``: searches `refine_steps` (default 200) gradient steps for a
              better latent for this image (`deepae.apps.compress.refine`; 0.4 to 0.8 dB
              more at about the same rate on the benchmark's photos, 15.7% fewer bits by
              BD-rate), about 80 s per megapixel with 200 steps; an image larger than `tile`
              is searched tile by tile; the file is the same format as ``"fast"``.
            - ``"best"``: an overfitted codec (`deepae.apps.compress.overfit`, COOL-CHIC
              style): latent grids, a synthesis network of about 140 multiply-adds per pixel
              and a context model, optimised for this image alone for `iterations` steps
              (default 2000) and written in the file (format version 2). It does not use
              the codec's networks, only its `lmbda`; minutes per 256x256 image, more in
              proportion to the pixels, and about 1 KB of memory per pixel while it runs;
              decoding needs no TensorFlow. A colour image is coded as Y, Cb, Cr planes,
              one codec each.
        refine_steps : int, optional
            ``"refine"``'s steps. A positive value with ``effort="fast"`` means
            ``"refine"`` (the behaviour of earlier versions).
        iterations : int, optional
            ``"best"``'s optimisation steps per plane.
        return_stats : bool, default=False
            Also return a dict: ``bytes``, ``bpp`` (from the real size, header and checksum
            included), ``bpp_estimate`` (the entropy model's ideal code length for the same
            latents, what training minimised; ``"fast"`` and ``"refine"``) and their ratio
            ``overhead``; with ``"best"``, ``seconds`` and per plane its ``mse`` and the bytes
            of its networks and of its latents.

        Returns
        -------
        bytes, or (bytes, dict)

        Memory ("fast", "refine"): the image as given (never converted whole to float), the
        integer latent (4 bytes per value, 96 values per 256 pixels and plane with the
        shipped codecs) and one tile of the analysis transform.
        """
        effort, refine_steps = self._effort(effort, refine_steps, iterations)
        if effort == "best":
            return self._compress_best(image, iterations, return_stats)
        y, (h, w, c) = self._latents(image, refine_steps=refine_steps)
        data = pack(Header(bytes.fromhex(self.fingerprint_[:8]), h, w, c, y.shape[1:]),
                    self._coder.encode(list(y)))
        if not return_stats:
            return data
        est = table_bits(list(y), self.tables_) / (h * w)
        bpp = 8 * len(data) / (h * w)
        return data, {"bytes": len(data), "header_bytes": OVERHEAD_BYTES, "pixels": h * w,
                      "bpp": bpp, "bpp_estimate": est,
                      "overhead": bpp / est if est > 0 else math.inf}

    @staticmethod
    def _effort(effort, refine_steps, iterations):
        """Checked (effort, refine steps): an argument that does not apply to the effort is
        refused, not ignored."""
        if not isinstance(effort, str) or effort not in EFFORTS:
            raise ValueError(f"Expected `effort` as one of {EFFORTS}; received {effort!r}.")
        for name, value, least in (("refine_steps", refine_steps, 0),
                                   ("iterations", iterations, 1)):
            if value is not None and (isinstance(value, bool)
                                      or not isinstance(value, numbers.Integral)):
                raise TypeError(f"Expected `{name}` as an int >= {least}; received {value!r} "
                                f"of type {type(value).__name__}.")
        if refine_steps is not None and refine_steps < 0:
            raise ValueError(f"Expected `refine_steps` as an int >= 0; received "
                             f"{refine_steps!r}.")
        if iterations is not None and iterations < 1:
            raise ValueError(f"Expected `iterations` as an int >= 1; received {iterations!r}.")
        if effort == "fast" and refine_steps:
            effort = "refine"  # the behaviour of earlier versions
        if effort == "best" and refine_steps is not None:
            raise ValueError(f"`refine_steps` applies to effort='refine'; received "
                             f"refine_steps={refine_steps!r} with effort='best'.")
        if effort != "best" and iterations is not None:
            raise ValueError(f"`iterations` applies to effort='best'; received "
                             f"iterations={iterations!r} with effort={effort!r}.")
        if effort == "refine" and refine_steps == 0:
            raise ValueError("Expected `refine_steps` >= 1 with effort='refine' (0 steps is "
                             "effort='fast'); received 0.")
        if effort == "refine" and refine_steps is None:
            refine_steps = REFINE_STEPS
        return effort, int(refine_steps) if effort == "refine" else 0

    def _compress_best(self, image, iterations, return_stats):
        from deepae.apps.compress import overfit

        check_is_fitted(self, "tables_")
        arr = self._check_image(image, "image")
        h, w = arr.shape[:2]
        (img,), _ = to_float_images(arr, "image")
        c = img.shape[-1]
        planes = img[None, ..., 0] if c == 1 else np.moveaxis(
            img @ _RGB2YCC.T + np.array([0.0, 0.5, 0.5], np.float32), -1, 0)
        data, stats = overfit.encode_planes(
            np.ascontiguousarray(planes, np.float32), c, float(self.lmbda),
            iterations=overfit.BEST_ITERATIONS if iterations is None else int(iterations),
            seed=self.random_state, verbose=int(self.verbose))
        if not return_stats:
            return data
        return data, {"bytes": len(data), "pixels": h * w, "bpp": 8 * len(data) / (h * w),
                      **stats}

    def decompress(self, data, *, max_pixels: int = MAX_PIXELS):
        """Decode the bytes of a ``.dae`` file written by this codec to the uint8 image of
        the original shape ((h, w) for a grayscale original, (h, w, 3) for colour).

        Raises
        ------
        BitstreamError
            If `data` is truncated, corrupted, not a ``.dae`` file, of an unknown version,
            written by another codec (its fingerprint differs), announces more than
            `max_pixels` pixels (counted once per plane: a colour image through a grayscale
            codec counts three times), or has a payload too short to hold the latent its
            header announces (checked before anything is allocated for it).

        Memory: the latent (4 bytes per value, 96 values per 256 pixels and plane with the
        shipped codecs), the uint8 image, and one tile of the synthesis transform (`tile`).
        """
        check_is_fitted(self, "tables_")
        if isinstance(max_pixels, bool) or not isinstance(max_pixels, numbers.Integral) \
                or max_pixels < 1:
            raise ValueError(f"Expected `max_pixels` as an int >= 1; received {max_pixels!r}.")
        if isinstance(data, bytes | bytearray | memoryview) \
                and bytes(data[:4]) == MAGIC + bytes([overfit.VERSION]):
            return self._decompress_best(data, max_pixels)
        head, payload = unpack(data)
        if head.fingerprint != bytes.fromhex(self.fingerprint_[:8]):
            raise BitstreamError(f"This .dae file was written by the codec with fingerprint "
                                 f"{head.fingerprint.hex()}; this codec's is "
                                 f"{self.fingerprint_[:8]}. Decode it with the codec that "
                                 "wrote it.")
        h, w, c = head.height, head.width, head.channels
        # decoding costs the same per plane, whatever its channels: Y, Cb and Cr through a
        # grayscale codec are three times the work of one grayscale plane
        n_planes = 3 if (c == 3 and self.n_channels_ == 1) else 1
        if h * w * n_planes > max_pixels:
            raise BitstreamError(f"The .dae file announces a {w}x{h} image coded as {n_planes} "
                                 f"plane(s), {h * w * n_planes:,} pixels in all, more than "
                                 f"max_pixels={max_pixels:,}; pass a larger max_pixels if it "
                                 "is expected.")
        s = self.stride
        expected = (-(-h // s), -(-w // s), int(self.latent_channels))
        if head.latent_shape != expected:
            raise BitstreamError(f"Corrupted .dae file: a {w}x{h} image has a latent of shape "
                                 f"{expected} with this codec; the header says "
                                 f"{head.latent_shape}.")
        # before anything is allocated for the latent the header announces: a payload too
        # short to have coded it
        shapes = [head.latent_shape] * n_planes
        least = self._coder.min_payload_bytes(shapes)
        if len(payload) < least:
            raise BitstreamError(f"Corrupted .dae file: a {w}x{h} image ({n_planes} plane(s) "
                                 f"of {expected[0]}x{expected[1]} latent positions) takes at "
                                 f"least {least:,} payload bytes with this codec's tables; "
                                 f"the file has {len(payload):,}.")
        y = self._coder.decode(payload, shapes)
        if max(max(-int(p.min()), int(p.max())) for p in y) > _MAX_LATENT:
            raise BitstreamError("Corrupted .dae file: decoded latent values out of the "
                                 f"codec's range (|value| <= {_MAX_LATENT}).")
        out = np.empty((h, w, c), np.uint8)
        for (r0, r1, c0, c1), planes in _tiles.synthesise(
                self._decode_fn, y, h, w, s, self._tile_latents(),
                receptive_halo(int(self.levels))):
            img = np.clip(self._image(planes, c), 0.0, 1.0)
            out[r0:r1, c0:c1] = np.round(img * 255.0).astype(np.uint8)
        return out[..., 0] if c == 1 else out

    @staticmethod
    def _decompress_best(data, max_pixels):
        """A version-2 file (``effort="best"``): its own networks, none of this codec's."""
        def to_image(planes):  # (p, rows, w) -> uint8 rows
            if planes.shape[0] == 1:
                img = planes[0]
            else:
                ycc = np.moveaxis(planes, 0, -1) - np.array([0.0, 0.5, 0.5], np.float32)
                img = ycc @ _YCC2RGB.T
            return np.round(np.clip(img, 0.0, 1.0) * 255.0)

        return overfit.decode(data, max_pixels, to_image)

    # -- convenience ---------------------------------------------------------------------------
    def describe(self) -> dict:
        """What the fitted codec is, as a JSON-able dict (what `deepae info` prints):
        fingerprint, size, entropy tables, training summary."""
        check_is_fitted(self, "synthesis_")
        h = self.history_
        return {"estimator": repr(self), "fingerprint": self.fingerprint_,
                "parameters": int(self.analysis_.count_params()
                                  + self.synthesis_.count_params()),
                "channels": self.n_channels_, "stride": self.stride,
                "latent_channels": int(self.latent_channels),
                "table_sizes": [int(self.tables_["lengths"].min()),
                                int(self.tables_["lengths"].max())],
                "training": {"epochs": len(h.get("loss", [])), "patch_size": self.patch_size_,
                             "final_bpp_estimate": h["bpp"][-1] if h.get("bpp") else None,
                             "final_mse": h["mse"][-1] if h.get("mse") else None,
                             "seconds": h["seconds"][-1] if h.get("seconds") else None}}

    @classmethod
    def pretrained(cls, quality: int = 4) -> ImageCodec:
        """A codec that ships with deepae, quality 1 (smallest files) to 8 (best images),
        trained on scikit-image's photographs by ``scripts/train_codecs.py``."""
        if isinstance(quality, bool) or not isinstance(quality, numbers.Integral) \
                or quality not in QUALITY_LAMBDAS:
            raise ValueError(f"Expected `quality` as an int from 1 to 8; received {quality!r}.")
        return cls._pretrained(f"codec_q{int(quality)}.deepae")

    @classmethod
    def pretrained_for(cls, data) -> ImageCodec:
        """The shipped codec that wrote `data` (the bytes of a ``.dae`` file), found by the
        fingerprint in its header; `BitstreamError` if none of them did. A version-2 file
        (``effort="best"``) holds its own networks: any codec decodes it (quality 4's is
        returned)."""
        from importlib.resources import files

        from deepae.persistence import read_header

        if isinstance(data, bytes | bytearray | memoryview) \
                and bytes(data[:4]) == MAGIC + bytes([overfit.VERSION]):
            return cls.pretrained(quality=4)  # the file holds its own networks
        head, _ = unpack(data)
        for q in QUALITY_LAMBDAS:
            path = files("deepae") / "pretrained" / f"codec_q{q}.deepae"
            if path.is_file() and read_header(str(path))["metadata"]["fingerprint"][:8] \
                    == head.fingerprint.hex():
                return cls.load(str(path))
        raise BitstreamError(f"This .dae file was written by the codec with fingerprint "
                             f"{head.fingerprint.hex()}, which is none of the codecs that ship "
                             "with deepae; decode it with the codec that wrote it (--model).")

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.required = False
        tags.non_deterministic = True
        tags.input_tags.three_d_array = True  # image batches; a 2-D array is one grey image
        return tags

    # -- persistence ---------------------------------------------------------------------------
    def _artifact_parts(self):
        info = {"n_channels": int(self.n_channels_), "patch_size": int(self.patch_size_),
                "fingerprint": self.fingerprint_, "history": self.history_,
                "architecture": self._arch}
        models = {"analysis": self.analysis_, "synthesis": self.synthesis_,
                  "prior": self.prior_}
        arrays = {f"tables_{k}": v for k, v in self.tables_.items()}
        return info, models, arrays

    def _restore(self, art: Artifact) -> None:
        meta = art.metadata
        self.analysis_ = art.models["analysis"]
        self.synthesis_ = art.models["synthesis"]
        self.prior_ = art.models["prior"]
        self.tables_ = {k: np.asarray(art.arrays[f"tables_{k}"], np.int32)
                        for k in ("offsets", "lengths", "freqs")}
        self.n_channels_ = int(meta["n_channels"])
        self.patch_size_ = int(meta["patch_size"])
        self.history_ = meta["history"]
        self._arch = dict(meta["architecture"])
        arch = dict(filters=int(self.filters), latent_channels=int(self.latent_channels),
                    levels=int(self.levels))
        if self._arch != arch or self.n_channels_ not in (1, 3):
            raise ArtifactError(f"The file's codec ({self.n_channels_} channel(s), "
                                f"{self._arch}) is not the one its parameters describe "
                                f"({arch}, 1 or 3 channels).")
        n, c = self.n_channels_, arch["latent_channels"]
        check_architecture(self.analysis_, lambda: analysis_transform(n, **arch),
                           where="the file")
        check_architecture(self.synthesis_, lambda: synthesis_transform(n, **arch),
                           where="the file")
        check_architecture(self.prior_, lambda: _prior(c), where="the file")
        self._setup()
        if self.fingerprint_ != meta["fingerprint"]:
            raise ArtifactError(f"The codec's weights or tables do not match its recorded "
                                f"fingerprint ({meta['fingerprint'][:8]} recorded, "
                                f"{self.fingerprint_[:8]} computed): the file is corrupted.")


register_loader("ImageCodec", models="analysis|prior|synthesis")(ImageCodec._from_artifact)

ImageCodec.__doc__ = ImageCodec.__doc__.replace("{run}", RUN_PARAMS_DOC)
