"""Semantic hashing: `SemanticHasher` gives each item a short binary code; `HammingIndex`
is the table from codes to item ids.

Codes are packed bits, a (n, ceil(n_bits / 8)) uint8 array in `numpy.packbits` order (the
first bit is the most significant bit of the first byte), as `SemanticHasher.transform`
gives them. Inside, each code is one 64-bit integer key; the table holds the keys sorted
once, with the row of each, so that looking up a batch of addresses is one vectorised binary
search. `search` looks up the query's own address, then every address that differs from it
in 1, 2, ..., `radius` bits (Salakhutdinov & Hinton's semantic hashing), or, for long codes
and wide radii, probes multi-index hashing's substring tables; `rank` orders the whole
collection by Hamming distance with XOR and popcount.
"""

from __future__ import annotations

import itertools
import math
import numbers
import sys
import time
from pathlib import Path

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.exceptions import NotFittedError
from sklearn.utils.validation import check_is_fitted, validate_data

from deepae._validation import (
    POSITIVE_FLOAT,
    POSITIVE_INT,
    RUN_CONSTRAINTS,
    UNITS,
    Interval,
    Options,
)
from deepae.apps._base import ArtifactEstimatorMixin
from deepae.apps.export import ExportMixin, hasher_graph
from deepae.data.preprocessing import KINDS as SCALINGS
from deepae.nn.hashing import hashing_autoencoder  # also registers its Keras classes for load
from deepae.persistence import (
    Artifact,
    check_architecture,
    read_artifact,
    register_loader,
    restore,
    save_artifact,
)
from deepae.training import RUN_PARAMS_DOC, CheckpointedRun, NaNGuard, data_fingerprint

__all__ = ["SemanticHasher", "HammingIndex", "SemanticIndex", "knn_graph", "neighbourhood_targets",
           "pack_keys", "flip_masks"]

MAX_BITS = 256
# up to this length a code is one uint64 key, and every search method applies; longer codes
# are rows of words, searched by the compiled batch kernels
WORD_BITS = 64


def pack_keys(codes, n_bits: int, name: str = "codes") -> np.ndarray:
    """Packed codes (n, ceil(n_bits / 8)) uint8 -> keys: (n,) uint64 (the code's bits as one
    big-endian integer) for codes of at most 64 bits; (n, W) uint64 for longer ones, W =
    ceil(n_bits / 64) words of 64 bits each, the last holding the remaining bits in its low
    end."""
    width = -(-n_bits // 8)
    arr = np.asarray(codes)
    if arr.ndim == 1 and arr.size == width:
        arr = arr[None]
    if arr.dtype != np.uint8:
        raise TypeError(f"Expected `{name}` as packed bits, a uint8 array (numpy.packbits); "
                        f"received dtype {arr.dtype}.")
    if arr.ndim != 2 or arr.shape[1] != width:
        raise ValueError(f"Expected `{name}` of shape (n, {width}) for {n_bits}-bit codes; "
                         f"received {arr.shape}.")
    n_words = -(-n_bits // WORD_BITS)
    padded = np.zeros((arr.shape[0], 8 * n_words), np.uint8)
    if n_words == 1:
        padded[:, 8 - width:] = arr
        keys = padded.view(">u8").ravel().astype(np.uint64)
        return keys >> np.uint64(8 * width - n_bits)  # drop packbits' zero padding
    padded[:, :width] = arr
    keys = padded.view(">u8").astype(np.uint64)  # (n, W)
    keys[:, -1] >>= np.uint64(WORD_BITS * n_words - n_bits)  # the last word's bits, low
    return np.ascontiguousarray(keys)


def flip_masks(n_bits: int, radius: int) -> tuple[np.ndarray, np.ndarray]:
    """XOR masks of every bit pattern with at most `radius` ones among `n_bits`, in order of
    weight, and the weight of each: the addresses to probe around a code."""
    masks, weights = [np.zeros(1, np.uint64)], [np.zeros(1, np.int64)]
    bits = [np.uint64(1) << np.uint64(i) for i in range(n_bits)]
    for r in range(1, radius + 1):
        m = np.fromiter((np.bitwise_or.reduce(c) for c in itertools.combinations(bits, r)),
                        np.uint64, count=math.comb(n_bits, r))
        masks.append(m)
        weights.append(np.full(m.size, r, np.int64))
    return np.concatenate(masks), np.concatenate(weights)


# above this many items "auto" builds the neighbour graph approximately (NN-descent): the
# exact graph's O(n^2) distances took 31 s for 60,000 items here, hours for a million
APPROXIMATE_GRAPH_ITEMS = 100_000
GRAPHS = ("auto", "exact", "approximate")


def knn_graph(X, n_neighbors: int, *, method: str = "exact", random_state=None,
              block_bytes: int = 2 ** 28, verbose=0) -> np.ndarray:
    """Positions of each row's `n_neighbors` nearest other rows (Euclidean), an
    (n, min(n_neighbors, n - 1)) int64 array.

    ``method="exact"``: blocks of rows against all rows, one matrix product each: O(n^2 d)
    work, at most `block_bytes` of distances at a time. ``"approximate"``: NN-descent
    (pynndescent; Dong, Charikar & Li 2011), about O(n^1.14) work: 60,000 MNIST items in
    32 dimensions in under a second once compiled, recall@10 0.986 against the exact graph.
    ``"auto"``: approximate above `APPROXIMATE_GRAPH_ITEMS` items. With `verbose`, the
    exact graph reports its progress and ETA, NN-descent its iterations, on standard error.
    """
    if method not in GRAPHS:
        raise ValueError(f"Expected `method` in {GRAPHS}; received {method!r}.")
    X = np.asarray(X, np.float32)
    n = len(X)
    k = min(int(n_neighbors), n - 1)
    if k < 1:
        return np.empty((n, max(k, 0)), np.int64)
    if method == "approximate" or (method == "auto" and n > APPROXIMATE_GRAPH_ITEMS):
        return _approximate_graph(X, k, random_state, verbose)
    return _exact_graph(X, k, block_bytes, verbose)


def _exact_graph(X, k, block_bytes, verbose=0):
    import keras

    n = len(X)
    out = np.empty((n, k), np.int64)
    sq = np.einsum("ij,ij->i", X, X)
    step = max(1, min(n, block_bytes // (4 * n)))
    bar = Progress("exact neighbour graph", n, verbose)
    for i in range(0, n, step):
        d = sq[None, :] - 2 * (X[i:i + step] @ X.T)  # + |x_i|^2, the same along a row
        d[np.arange(len(d)), np.arange(i, i + len(d))] = np.inf  # not its own neighbour
        out[i:i + step] = keras.ops.convert_to_numpy(keras.ops.top_k(-d, k)[1])
        bar.step(len(d))
    bar.close()
    return out


def _approximate_graph(X, k, random_state, verbose=0):
    from pynndescent import NNDescent

    seed = None if random_state is None else int(random_state)
    graph, _ = NNDescent(X, n_neighbors=k + 1, random_state=seed, low_memory=True,
                         n_jobs=-1, compressed=True, verbose=bool(verbose)).neighbor_graph
    graph = np.asarray(graph, np.int64)
    # each row's own position out (it is not always first: duplicates tie at distance 0);
    # where it is missing, the last neighbour goes
    own = graph == np.arange(len(X))[:, None]
    order = np.argsort(own, axis=1, kind="stable")
    return np.take_along_axis(graph, order, axis=1)[:, :k]


# PCA is fitted on at most this many rows (seeded) and applies to the rest in blocks: a
# million 784-pixel rows would take three copies of 3 GB otherwise
PCA_FIT_ROWS = 100_000
BLOCK_ROWS = 100_000


class Progress:
    """``step()`` after each of `total` units of a long step: with `verbose`, one line on
    standard error, rewritten at most twice a second: done, elapsed time and the time left
    at the pace so far; the step's total time at the end (`close`)."""

    # (name, seconds) of every step closed in this process, for benchmarks to report
    history: list = []

    def __init__(self, name: str, total: int, verbose):
        self.name, self.total, self.verbose = name, max(int(total), 1), bool(verbose)
        self.done, self.start, self.shown = 0, time.perf_counter(), 0.0

    def step(self, units: int = 1) -> None:
        self.done += units
        now = time.perf_counter()
        if self.verbose and (now - self.shown > 0.5 or self.done >= self.total):
            spent = now - self.start
            left = spent / self.done * (self.total - self.done) if self.done else 0.0
            print(f"\r{self.name}: {self.done:,}/{self.total:,}, {spent:.1f} s, ETA "
                  f"{left:.1f} s ", end="", file=sys.stderr, flush=True)
            self.shown = now

    def close(self) -> float:
        spent = time.perf_counter() - self.start
        Progress.history.append((self.name, spent))
        if self.verbose:
            print(f"\r{self.name}: done in {spent:.1f} s" + " " * 30, file=sys.stderr,
                  flush=True)
        return spent


def _extremes(X, scale) -> tuple[float, float]:
    """The smallest and largest value of ``scale(X)`` (X itself without `scale`), block by
    block."""
    if scale is None:
        return float(X.min()), float(X.max())
    parts = [scale(X[i:i + BLOCK_ROWS]) for i in range(0, len(X), BLOCK_ROWS)]
    return float(min(p.min() for p in parts)), float(max(p.max() for p in parts))


def _principal_components(X, dims, random_state, verbose, scale):
    """``scale(X)`` projected on its top `dims` principal components, float32, the PCA
    fitted on at most `PCA_FIT_ROWS` rows and applied block by block."""
    from sklearn.decomposition import PCA

    rows = np.arange(len(X))
    if len(X) > PCA_FIT_ROWS:
        rows = np.sort(np.random.default_rng(random_state).choice(len(X), PCA_FIT_ROWS,
                                                                   replace=False))
    pca = PCA(dims, random_state=random_state).fit(np.asarray(scale(X[rows]), np.float32))
    Z = np.empty((len(X), dims), np.float32)
    bar = Progress("principal components", len(X), verbose)
    for i in range(0, len(X), BLOCK_ROWS):
        Z[i:i + BLOCK_ROWS] = pca.transform(np.asarray(scale(X[i:i + BLOCK_ROWS]), np.float32))
        bar.step(len(Z[i:i + BLOCK_ROWS]))
    bar.close()
    return Z


def _smoothed(Z, neighbours, steps, verbose):
    """``Z <- (Z + mean of the neighbours' Z) / 2``, `steps` times, block by block (the
    neighbours of a million rows at once would take gigabytes)."""
    out = np.empty_like(Z)
    bar = Progress("smoothing over the graph", steps, verbose)
    for _ in range(int(steps)):
        for i in range(0, len(Z), BLOCK_ROWS):
            block = neighbours[i:i + BLOCK_ROWS]
            out[i:i + len(block)] = 0.5 * Z[i:i + len(block)] + 0.5 * Z[block].mean(axis=1)
        Z, out = out, Z
        bar.step()
    bar.close()
    return Z


def neighbourhood_targets(X, n_bits: int, n_neighbors: int = 10, smoothing_steps: int = 10,
                          random_state=None, graph: str = "auto", verbose=0,
                          scale=None) -> np.ndarray:
    """Target bits (n, n_bits) in {0, 1} that follow the data's neighbourhood graph.

    The rows are projected on their top principal components (at most 128; the PCA fitted
    on at most 100,000 of them), smoothed over their k-nearest-neighbour graph, found among
    the first `n_bits` components (at least 8; the subspace that PCA-ITQ quantises):
    ``Z <- (Z + mean of the neighbours' Z) / 2``, `smoothing_steps` times, so that an item
    moves towards the region it lies in; then binarised by PCA-ITQ: bits that agree along
    the graph, balanced and decorrelated. Where there are fewer components than bits,
    random hyperplanes through the mean binarise instead. `graph` is `knn_graph`'s method.
    With `verbose`, each step reports its progress and time on standard error. `scale`,
    when given, maps rows of `X` to the space the targets are computed in, block by block
    (`X` then stays as it is: uint8 pixels, a quarter of their float32 size).
    """
    from deepae.baselines import LSHHasher, PCAHasher

    scale = scale or (lambda rows: rows)
    X = np.asarray(X)
    n, d = X.shape
    dims = min(128, d, n, PCA_FIT_ROWS)
    if dims < d:
        Z = _principal_components(X, dims, random_state, verbose, scale)
    else:
        Z = np.asarray(scale(X), np.float32)
        Z = Z - Z.mean(axis=0)
    bar = Progress(f"neighbour graph ({graph}, {n:,} items)", 1, verbose)
    neighbours = knn_graph(Z[:, :max(int(n_bits), 8)], n_neighbors, method=graph,
                           random_state=random_state, verbose=verbose)  # PCA-ITQ's subspace
    bar.step()
    bar.close()
    if neighbours.shape[1]:
        Z = _smoothed(Z, neighbours, smoothing_steps, verbose)
    itq = dims >= n_bits and n > n_bits
    hasher = PCAHasher(n_bits, itq=True, random_state=random_state) if itq else \
        LSHHasher(n_bits, random_state=random_state)
    bar = Progress("binarising (PCA-ITQ)", 1, verbose)
    codes = hasher.fit(Z).transform(Z)
    bar.step()
    bar.close()
    return np.unpackbits(codes, axis=1)[:, :n_bits].astype(np.float32)


def _runs(lo, hi):
    """Every position in the runs [lo, hi) of a sorted table, run after run."""
    counts = hi - lo
    return np.repeat(lo - np.cumsum(counts) + counts, counts) + np.arange(counts.sum())


class SemanticHasher(ExportMixin, ArtifactEstimatorMixin, TransformerMixin, BaseEstimator):
    """Short binary codes from an autoencoder whose code layer is pushed to binary
    (Salakhutdinov & Hinton 2009, semantic hashing), guided by the data's neighbourhoods.

    The code layer is a sigmoid with Gaussian noise added to its input in training
    (`deepae.nn.hashing.BinaryCode`), with penalties that keep each bit on for half the items
    and the bits uncorrelated; `transform` thresholds the sigmoid at 1/2 and packs the bits.

    With ``n_neighbors > 0`` (the default) a second term makes the codes follow the training
    data's k-nearest-neighbour graph: `neighbourhood_targets` smooths the items over the
    graph and binarises them by PCA-ITQ, and the code layer's logits are fitted to those
    bits (binary cross-entropy, weight `similarity_weight`) while the decoder reconstructs
    the input from the code. Items of one region of the data then share codes, which is what
    retrieval asks of them; the encoder hashes new items without any graph. The exact graph
    costs O(n^2) distances (about 40 s for 60,000 items on two cores); above 100,000 items
    it is built approximately (`graph`). ``n_neighbors=0`` trains the plain semantic-hashing
    autoencoder.

    Parameters
    ----------
    n_bits : int, default=32
        Code length, 1 to 256.
    hidden_units : tuple of int, default=(512, 256)
        Encoder layers, widest first; the decoder mirrors them.
    n_neighbors : int, default=10
        Neighbours per item in the graph; 0 turns the neighbourhood term off.
    graph : {"auto", "exact", "approximate"}, default="auto"
        How the neighbour graph is built (`knn_graph`): exactly, or by NN-descent; "auto":
        approximately above 100,000 items.
    smoothing_steps : int, default=20
        Smoothing passes over the graph.
    similarity_weight : float, default=1.0
        Weight of the neighbourhood term beside the reconstruction error.
    noise_stddev : float, default=3.0
    balance, decorrelation : float, default=0.1
        Weights of the bit-balance and decorrelation penalties.
    epochs : int, default=20
    batch_size : int, default=256
    learning_rate : float, default=1e-3
    preprocessing : str, default="auto"
        Scaling fitted on the training data, as `deepae.Autoencoder`'s: "auto" divides
        uint8 data by 255, keeps data already in [0, 1] or [-1, 1] (TF-IDF vectors) and
        standardises other tables.
{run}    strategy : None, "single", "mirrored", "multi-worker" or tf.distribute.Strategy
        Where training runs (`deepae.distribute`); `batch_size` is the global batch. The
        neighbourhood graph is computed by every worker on the whole training set. A
        strategy instance is not saved with the model (its name is).
    random_state : int, optional
    verbose : int, default=0

    Attributes
    ----------
    model_ : keras.Model
    n_features_in_ : int
    history_ : dict
    """

    _fitted_attr = "model_"

    def __init__(self, n_bits=32, *, hidden_units=(512, 256), n_neighbors=10, graph="auto",
                 smoothing_steps=20, similarity_weight=1.0, noise_stddev=3.0, balance=0.1,
                 decorrelation=0.1, epochs=20, batch_size=256, learning_rate=1e-3,
                 preprocessing="auto", callbacks=None, checkpoint_dir=None, resume=False,
                 strategy=None, random_state=None, verbose=0):
        self.callbacks = callbacks
        self.checkpoint_dir = checkpoint_dir
        self.resume = resume
        self.n_bits = n_bits
        self.hidden_units = hidden_units
        self.n_neighbors = n_neighbors
        self.graph = graph
        self.smoothing_steps = smoothing_steps
        self.similarity_weight = similarity_weight
        self.noise_stddev = noise_stddev
        self.balance = balance
        self.decorrelation = decorrelation
        self.epochs = epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.preprocessing = preprocessing
        self.strategy = strategy
        self.random_state = random_state
        self.verbose = verbose

    _parameter_constraints = {
        "n_bits": [Interval(numbers.Integral, 1, MAX_BITS)], "hidden_units": [UNITS],
        "n_neighbors": [Interval(numbers.Integral, 0, None)],
        "graph": [Options(str, set(GRAPHS))],
        "smoothing_steps": [Interval(numbers.Integral, 0, None)],
        "similarity_weight": [Interval(numbers.Real, 0, None)],
        "noise_stddev": [Interval(numbers.Real, 0, None)],
        "balance": [Interval(numbers.Real, 0, None)],
        "decorrelation": [Interval(numbers.Real, 0, None)], "epochs": [POSITIVE_INT],
        "batch_size": [POSITIVE_INT], "learning_rate": [POSITIVE_FLOAT],
        "preprocessing": [Options(str, {"auto", *SCALINGS})], **RUN_CONSTRAINTS,
    }

    def fit(self, X, y=None, *, keep_checkpoint=False):
        """Train on `X` (n_samples, n_features); returns self. With `keep_checkpoint`, a
        `checkpoint_dir` stays after training (until `deepae.training.remove_checkpoint`,
        once the model is saved)."""
        import keras

        from deepae.data.preprocessing import Scaler, resolve_preprocessing
        from deepae.distribute import is_chief, resolve_strategy, strategy_scope

        self._validate_params()
        dist = resolve_strategy(self.strategy)
        X = validate_data(self, X, reset=True, dtype="numeric")
        kind = resolve_preprocessing(X) if self.preprocessing == "auto" else self.preprocessing
        self.scaler_ = Scaler(kind).fit(X)
        # rows held as given (uint8 pixels: a quarter of float32) and scaled block by block
        # where the data are compact and one process trains; else scaled once, here
        compact = dist is None and X.dtype.itemsize < 4 and kind != "none"
        Xs = X if compact else self.scaler_.transform(X).astype(np.float32)
        scale = self.scaler_.transform if compact else None
        if self.random_state is not None:
            keras.utils.set_random_seed(int(self.random_state))
        lo, hi = _extremes(Xs, scale)
        out = "sigmoid" if lo >= 0 and hi <= 1 else "linear"
        guided = int(self.n_neighbors) > 0 and len(Xs) > 1
        with strategy_scope(dist):  # the model, the optimizer and the metrics on every replica
            self.model_ = hashing_autoencoder(
                X.shape[1], int(self.n_bits), tuple(self.hidden_units), output_activation=out,
                noise_stddev=float(self.noise_stddev), balance=float(self.balance),
                decorrelation=float(self.decorrelation), seed=self.random_state,
                with_logits=guided)
            optimizer = keras.optimizers.Adam(float(self.learning_rate))
        if guided:
            targets = neighbourhood_targets(Xs, int(self.n_bits), int(self.n_neighbors),
                                            int(self.smoothing_steps), self.random_state,
                                            graph=self.graph, verbose=self.verbose,
                                            scale=scale)
            losses = ["mse", keras.losses.BinaryCrossentropy(from_logits=True)]
            weights, y = [1.0, float(self.similarity_weight)], [Xs, targets]
        else:
            losses, weights, y = "mse", None, Xs
        batch_size = min(int(self.batch_size), len(Xs))
        with strategy_scope(dist):
            self.model_.compile(optimizer=optimizer, loss=losses, loss_weights=weights)
            if dist is not None:
                # one tensor per batch (see HashingAutoencoder), with the loss and the
                # optimizer built beforehand, since Keras cannot build them from it
                model, head = self.model_, Xs[:2]
                model.compute_loss(head, [head, targets[:2]] if guided else head,
                                   model(head))
                optimizer.build(model.trainable_variables)
                if guided:
                    Xs = np.concatenate([Xs, targets], axis=1)  # (n, n_features + n_bits)
                y = None
            run = CheckpointedRun(
                self.checkpoint_dir, resume=self.resume, keep=keep_checkpoint,
                chief=dist is None or is_chief(),
                run=self._run_description(data_fingerprint(X), model_config=self.model_.get_config()))
            hist = run.open(self.model_)
            if hist is None:
                feed = {"x": Xs, "y": y, "batch_size": batch_size, "shuffle": True,
                        "callbacks": []}
                if dist is None:  # in memory as given, scaled batch by batch
                    feed = self._training_feed(X, Xs, targets if guided else None,
                                               batch_size)
                    del Xs, y  # a million MNIST digits: 3 GB as float32, 0.8 GB as given
                callbacks = [NaNGuard(), *run.callbacks, *(self.callbacks or []),
                             *feed.pop("callbacks")]
                hist = run.joined(self.model_.fit(**feed, epochs=int(self.epochs),
                                                  verbose=self.verbose, callbacks=callbacks))
                self.model_.history_ = hist.history
                run.close(self.model_)
        self.history_ = {k: [float(v) for v in vals] for k, vals in hist.history.items()}
        self._build_encoder()
        return self

    def _training_feed(self, X, Xs, targets, batch_size) -> dict:
        """`Model.fit`'s data: the rows as given when they take fewer bytes than float32
        (uint8 pixels; scaled in the pipeline), else the scaled rows; the targets as bytes."""
        import tensorflow as tf  # the point here: the input pipeline

        from deepae.training import training_data

        compact = Xs is X  # held as given: scaled in the pipeline
        rows = Xs
        offset = tf.constant(self.scaler_.offset_, tf.float32)
        scale = tf.constant(self.scaler_.scale_, tf.float32)

        def batch_map(x, t):
            x = tf.cast(x, tf.float32)
            if compact:
                x = (x - offset) / scale
            return (x, (x, tf.cast(t, tf.float32))) if targets is not None else (x, x)

        ys = rows if targets is None else targets.astype(np.uint8)
        seed = 0 if self.random_state is None else int(self.random_state)
        return training_data(rows, ys, batch_size, True, seed, batch_map=batch_map)

    def _build_encoder(self):
        import keras

        from deepae.nn.runtime import compiled

        enc = keras.Model(self.model_.input, self.model_.get_layer("code").output)
        def encode(x):  # a def, not a lambda: autograph reads its source
            return enc(x, training=False)

        self._encode = compiled(encode)

    def code_probabilities(self, X):
        """The code layer's sigmoid outputs, (n_samples, n_bits) in (0, 1)."""
        check_is_fitted(self, "model_")
        X = validate_data(self, X, reset=False, dtype="numeric")
        # scaled block by block: a million digits at once took two 3 GB float32 copies
        bar = Progress("hashing", len(X), self.verbose and len(X) >= 100_000)
        out = []
        for i in range(0, len(X), 8192):
            out.append(np.asarray(self._encode(self.scaler_.transform(X[i:i + 8192]).astype(
                np.float32))))
            bar.step(len(out[-1]))
        if len(X) >= 100_000:
            bar.close()
        return np.concatenate(out) if out else np.zeros((0, int(self.n_bits)), np.float32)

    def transform(self, X):
        """Packed codes of `X`: (n_samples, ceil(n_bits / 8)) uint8 in `numpy.packbits`
        order, the input of `HammingIndex`."""
        return np.packbits(self.code_probabilities(X) > 0.5, axis=1)

    def _serving_graph(self):
        return hasher_graph(self)

    def describe(self) -> dict:
        """What the fitted hasher is, as a JSON-able dict (what `deepae info` prints)."""
        check_is_fitted(self, "model_")
        h = self.history_
        return {"estimator": repr(self), "n_bits": int(self.n_bits),
                "parameters": int(self.model_.count_params()),
                "features": int(self.n_features_in_),
                "training": {"epochs": len(h.get("loss", [])),
                             "final_loss": h["loss"][-1] if h.get("loss") else None}}

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.transformer_tags.preserves_dtype = []  # codes are packed uint8 bits, by design
        return tags

    def _artifact_parts(self):
        meta, arrays = self.scaler_.get_state()
        return {"scaler": meta, "history": self.history_,
                "n_features": int(self.n_features_in_)}, {"model": self.model_}, arrays

    def _restore(self, art: Artifact) -> None:
        from deepae.data.preprocessing import Scaler

        self.model_ = art.models["model"]
        self.scaler_ = Scaler.from_state(art.metadata["scaler"], art.arrays)
        self.history_ = art.metadata["history"]
        self.n_features_in_ = int(art.metadata["n_features"])

        def network(out, guided):  # the output and the second head depend on the data
            return lambda: hashing_autoencoder(
                self.n_features_in_, int(self.n_bits), tuple(self.hidden_units),
                output_activation=out, noise_stddev=float(self.noise_stddev),
                balance=float(self.balance), decorrelation=float(self.decorrelation),
                seed=self.random_state, with_logits=guided)

        check_architecture(self.model_, *(network(out, guided) for out in ("sigmoid", "linear")
                                          for guided in (True, False)), where="the file")
        self._build_encoder()


class HammingIndex:
    """A hash table from binary codes to item ids, with exact radius search and ranking.

    Parameters
    ----------
    n_bits : int
        Code length, 1 to 256. Codes of more than 64 bits are searched by the compiled
        batch kernels (`range_search`, `knn`, and `search`, `rank`, `nearest` on them);
        `search`'s explicit methods take codes of at most 64 bits.

    Examples
    --------
    >>> index = HammingIndex(n_bits=32)  # doctest: +SKIP
    >>> index.add(codes, ids)  # doctest: +SKIP
    >>> (found, dist), = index.search(codes[:1], radius=2)  # doctest: +SKIP
    """

    def __init__(self, n_bits: int = 32):
        if isinstance(n_bits, bool) or not isinstance(n_bits, numbers.Integral) \
                or not 1 <= n_bits <= MAX_BITS:
            raise ValueError(f"Expected `n_bits` as an int from 1 to {MAX_BITS}; received "
                             f"{n_bits!r}.")
        self.n_bits = int(n_bits)
        n_words = -(-self.n_bits // WORD_BITS)  # keys in insertion order (`pack_keys`)
        self._keys = np.zeros(0 if n_words == 1 else (0, n_words), np.uint64)
        self._ids = np.zeros(0, np.int64)
        self._sorted = None                    # (sorted keys, their rows), built lazily
        self._multi = None                     # multi-index hashing's tables, built lazily
        self._tables = None                    # the compiled kernels' tables, built lazily
        self._masks = {}

    # -- contents --------------------------------------------------------------------------------
    def __len__(self) -> int:
        return int(self._ids.size)

    @property
    def ids(self) -> np.ndarray:
        """The stored ids, in insertion order."""
        return self._ids.copy()

    @property
    def codes(self) -> np.ndarray:
        """The stored codes as packed bits (n, ceil(n_bits / 8)) uint8, in insertion order."""
        return self._packed_codes()

    @property
    def bytes_per_item(self) -> float:
        """Memory of the table per item: its key and id, and the sorted copy of both."""
        return 2 * (self._keys.itemsize * -(-self.n_bits // WORD_BITS) + self._ids.itemsize)

    def add(self, codes, ids=None) -> HammingIndex:
        """Store packed `codes` (n, ceil(n_bits / 8)) uint8 under `ids` (n,) integers
        (default: consecutive ids after the largest one stored). Returns self."""
        keys = pack_keys(codes, self.n_bits)
        if ids is None:
            start = int(self._ids.max()) + 1 if self._ids.size else 0
            ids = np.arange(start, start + len(keys))
        ids = np.asarray(ids)
        if ids.ndim != 1 or ids.size != len(keys):
            raise ValueError(f"Expected one id per code: {len(keys)} ids; received ids of shape "
                             f"{ids.shape}.")
        if ids.size and ids.dtype.kind not in "iu":
            raise TypeError(f"Expected integer `ids`; received dtype {ids.dtype}.")
        ids = ids.astype(np.int64)
        values, counts = np.unique(ids, return_counts=True)
        bad = np.concatenate([values[counts > 1], ids[np.isin(ids, self._ids)]])
        if bad.size:
            raise ValueError(f"Expected new, distinct `ids`; received ids repeated or already in "
                             f"the index (remove them first): {np.unique(bad)[:10].tolist()}.")
        self._keys = np.concatenate([self._keys, keys])
        self._ids = np.concatenate([self._ids, ids])
        self._sorted = self._multi = self._tables = None
        return self

    def remove(self, ids) -> int:
        """Remove the items with these ids; returns how many were removed (unknown ids are
        ignored)."""
        keep = ~np.isin(self._ids, np.asarray(ids, np.int64).ravel())
        removed = int((~keep).sum())
        if removed:
            self._keys, self._ids = self._keys[keep], self._ids[keep]
            self._sorted = self._multi = self._tables = None
        return removed

    def _table(self):
        if self._sorted is None:
            order = np.argsort(self._keys, kind="stable")  # equal codes keep insertion order
            self._sorted = (self._keys[order], order)
        return self._sorted

    def _check_query(self, query_codes):
        if not len(self):
            raise ValueError("The index is empty: add codes before searching it.")
        return pack_keys(query_codes, self.n_bits, "query_codes")

    # -- lookup ----------------------------------------------------------------------------------
    METHODS = ("auto", "flip", "multi-index", "scan")
    MAX_FLIP_PROBES = 10_000

    def _substrings(self):
        """Multi-index hashing's tables (Norouzi et al. 2012): the code cut into m substrings
        of at most 16 bits, one sorted table of each; built lazily, once."""
        if self._multi is None:
            m = -(-self.n_bits // 16)
            bounds = np.linspace(0, self.n_bits, m + 1).round().astype(int)
            tables = []
            for lo, hi in zip(bounds[:-1], bounds[1:], strict=True):
                width = hi - lo  # bits [lo, hi) counted from the most significant
                sub = (self._keys >> np.uint64(self.n_bits - hi)) & np.uint64((1 << width) - 1)
                order = np.argsort(sub, kind="stable")
                tables.append((self.n_bits - hi, width, sub[order], order))
            self._multi = tables
        return self._multi

    def _plan(self, radius, method):
        n_probes = sum(math.comb(self.n_bits, r) for r in range(radius + 1))
        if method != "auto":
            return method
        if n_probes <= min(self.MAX_FLIP_PROBES, len(self)):
            return "flip"
        m = -(-self.n_bits // 16)
        width = -(-self.n_bits // m)
        sub_probes = m * sum(math.comb(width, r) for r in range(radius // m + 1))
        # expected candidates for spread-out codes: each probe hits n / 2^width items
        candidates = sub_probes * len(self) / 2.0 ** width
        if self.n_bits >= 32 and sub_probes <= self.MAX_FLIP_PROBES and \
                candidates < len(self) / 4:
            return "multi-index"
        return "scan"

    def search(self, query_codes, radius: int = 2, k: int | None = None, *,
               method: str = "auto"):
        """The stored items within Hamming distance `radius` of each query.

        Returns one ``(ids, distances)`` pair of arrays per query, nearest first (equal
        distances in insertion order), at most `k` of them when `k` is given. Every method
        gives that same answer; they differ in the work:

        - ``"flip"``: look up the query's address and every address 1, 2, ... `radius` bits
          away (semantic hashing's lookup): sum of C(n_bits, r) probes, each a binary search;
        - ``"multi-index"``: multi-index hashing for long codes: the code is cut into
          m substrings of at most 16 bits with a table each; an item within `radius` is
          within ``radius // m`` of the query in at least one substring (pigeonhole), so
          those few probes give every candidate, checked then by its full distance;
        - ``"scan"``: the distance to every item (XOR and popcount);
        - ``"auto"`` (default): the compiled batch search of `range_search` (multi-index
          hashing, or the scan where the tables would return most items), every query at
          once on all cores.
        """
        radius = self._check_radius(radius)
        if k is not None and (isinstance(k, bool) or not isinstance(k, numbers.Integral)
                              or k < 1):
            raise ValueError(f"Expected `k` as an int >= 1 or None; received {k!r}.")
        if method not in self.METHODS:
            raise ValueError(f"Expected `method` in {self.METHODS}; received {method!r}.")
        if method != "auto" and self.n_bits > WORD_BITS:
            raise ValueError(f"`method={method!r}` searches codes of at most {WORD_BITS} bits; "
                             f"this index holds {self.n_bits}-bit codes: use method='auto'.")
        if method == "auto":  # the compiled batch search (`range_search`)
            lims, d, ids = self.range_search(query_codes, radius)
            stop = np.diff(lims) if k is None else np.minimum(np.diff(lims), int(k))
            return [(ids[lo:lo + n], d[lo:lo + n]) for lo, n in zip(lims[:-1], stop,
                                                                    strict=True)]
        queries = self._check_query(query_codes)
        plan = self._plan(int(radius), method)
        if plan == "scan":
            return [self._scan(q, radius, k) for q in queries]
        if plan == "multi-index":
            return [self._multi_index(q, radius, k) for q in queries]
        if radius not in self._masks:
            self._masks[radius] = flip_masks(self.n_bits, radius)
        masks, weights = self._masks[radius]
        keys, rows = self._table()
        out = []
        for q in queries:
            probes = q ^ masks
            lo = np.searchsorted(keys, probes, side="left")
            hi = np.searchsorted(keys, probes, side="right")
            hit = hi > lo
            if not hit.any():
                out.append((np.zeros(0, np.int64), np.zeros(0, np.int64)))
                continue
            lo, hi, dist = lo[hit], hi[hit], weights[hit]
            found, d = rows[_runs(lo, hi)], np.repeat(dist, hi - lo)
            out.append(self._ordered(found, d, k))
        return out

    def _ordered(self, found, d, k):
        order = np.lexsort((found, d))  # by distance, then insertion order
        found, d = found[order], d[order]
        if k is not None:
            found, d = found[:k], d[:k]
        return self._ids[found], d

    def _multi_index(self, q, radius, k):
        tables = self._substrings()
        sub_radius = radius // len(tables)
        cand = []
        for shift, width, sub, order in tables:
            key = (q >> np.uint64(shift)) & np.uint64((1 << width) - 1)
            if (width, sub_radius) not in self._masks:
                self._masks[width, sub_radius] = flip_masks(width, sub_radius)
            probes = key ^ self._masks[width, sub_radius][0]
            lo = np.searchsorted(sub, probes, side="left")
            hi = np.searchsorted(sub, probes, side="right")
            hit = hi > lo
            cand.append(order[_runs(lo[hit], hi[hit])])
        found = np.unique(np.concatenate(cand))
        d = np.bitwise_count(self._keys[found] ^ q).astype(np.int64)
        keep = d <= radius
        return self._ordered(found[keep], d[keep], k)

    def _scan(self, q, radius, k):
        d = np.bitwise_count(self._keys ^ q).astype(np.int64)
        found = np.flatnonzero(d <= radius)
        found = found[np.argsort(d[found], kind="stable")]
        if k is not None:
            found = found[:k]
        return self._ids[found], d[found]

    # -- the batch API, in FAISS's shape ----------------------------------------------------------
    def range_search(self, query_codes, radius: int = 2):
        """Every stored item within Hamming distance `radius` (inclusive) of each query, for
        all queries at once (compiled, on all cores).

        Returns ``(lims, distances, ids)`` as FAISS's ``range_search`` does: query ``i``'s
        answer is ``ids[lims[i]:lims[i + 1]]`` at ``distances[lims[i]:lims[i + 1]]``,
        nearest first, equal distances in insertion order (`search`'s answer). FAISS's own
        radius is strict (distance < radius): compare it with ``radius + 1``.
        """
        from deepae.apps import _hamming_kernels as kernels

        radius = self._check_radius(radius)
        queries = self._rows(self._check_query(query_codes))
        keys = self._rows(self._keys)
        words, shifts, widths, offsets, orders = self._kernel_tables()
        m = len(shifts)
        sub_radius = radius // m
        masks = [flip_masks(int(w), min(sub_radius, int(w)))[0] for w in widths]
        # expected candidates for spread-out codes: each probe hits n / 2^width items
        candidates = sum(mk.size * len(self) / 2.0 ** int(w) for mk, w in zip(masks, widths,
                                                                               strict=True))
        if candidates > len(self) / 4:
            lims, d, rows = kernels.radius_scan(keys, queries, radius)
        else:
            lims, d, rows = kernels.radius_multi_index(
                keys, queries, radius, words, shifts, widths, offsets, orders,
                np.concatenate(masks), np.cumsum([0] + [mk.size for mk in masks]),
                sub_radius)
        return lims, d, self._ids[rows]

    def knn(self, query_codes, k: int = 100):
        """The `k` stored items nearest to each query over the whole collection, for all
        queries at once (compiled, on all cores): ``(distances, ids)``, each
        ``(n_queries, k)`` int64, nearest first, equal distances in insertion order (the
        answer of `rank`). Where fewer than `k` items are stored, the rows end in id -1 at
        distance ``n_bits + 1``, as FAISS pads with -1."""
        from deepae.apps import _hamming_kernels as kernels

        k = self._check_k(k)
        queries = self._rows(self._check_query(query_codes))
        d, rows = kernels.knn(self._rows(self._keys), queries, int(k), self.n_bits)
        ids = np.where(rows >= 0, self._ids[np.maximum(rows, 0)], -1)
        return d, ids

    def _kernel_tables(self):
        if self._tables is None:
            from deepae.apps._hamming_kernels import substring_tables

            self._tables = substring_tables(self._rows(self._keys), self.n_bits)
        return self._tables

    @staticmethod
    def _rows(keys):
        """Keys as the kernels take them: (n, W) uint64, C-contiguous (a view for W = 1)."""
        return np.ascontiguousarray(keys.reshape(len(keys), -1))

    @staticmethod
    def _check_k(k) -> int:
        if isinstance(k, bool) or not isinstance(k, numbers.Integral) or k < 1:
            raise ValueError(f"Expected `k` as an int >= 1; received {k!r}.")
        return int(k)

    def _check_radius(self, radius) -> int:
        if isinstance(radius, bool) or not isinstance(radius, numbers.Integral) \
                or not 0 <= radius <= self.n_bits:
            raise ValueError(f"Expected `radius` as an int from 0 to the code length "
                             f"{self.n_bits}; received {radius!r}.")
        return int(radius)

    def rank(self, query_codes, k: int = 100):
        """The `k` stored items nearest to each query by Hamming distance, over the whole
        collection (equal distances in insertion order). Returns one ``(ids, distances)``
        pair per query; `knn` gives the same as two arrays."""
        kk = min(self._check_k(k), max(len(self), 1))  # no padding: k capped at the collection's size
        d, ids = self.knn(query_codes, kk)
        return [(ids[i, :kk], d[i, :kk]) for i in range(len(ids))]

    def nearest(self, query_codes, k: int = 100, radius: int = 2):
        """The `k` nearest stored items of each query: the hash-table lookup within `radius`
        where it finds `k` items, the exhaustive ranking (`rank`) for the queries where it
        finds fewer. The result is always that of ``rank(query_codes, k)``; only the work
        differs. Returns one ``(ids, distances)`` pair per query."""
        found = self.search(query_codes, radius=radius, k=k)
        k = min(int(k), len(self))
        short = [i for i, (ids, _) in enumerate(found) if ids.size < k]
        if short:
            codes = np.asarray(query_codes)
            codes = codes[None] if codes.ndim == 1 else codes
            for i, pair in zip(short, self.rank(codes[short], k=k), strict=True):
                found[i] = pair
        return found

    # -- persistence -----------------------------------------------------------------------------
    def _packed_codes(self) -> np.ndarray:
        """The stored codes as packed bits (n, ceil(n_bits / 8)) uint8, in insertion order."""
        width = -(-self.n_bits // 8)
        if self._keys.ndim == 2:  # words: the last one's bits back to its high end
            words = self._keys.copy()
            words[:, -1] <<= np.uint64(WORD_BITS * words.shape[1] - self.n_bits)
            return words.astype(">u8").view(np.uint8).reshape(len(words), -1)[:, :width]
        codes = (self._keys << np.uint64(8 * width - self.n_bits)).astype(">u8")
        return codes.view(np.uint8).reshape(-1, 8)[:, 8 - width:]

    def describe(self) -> dict:
        """What the index holds, as a JSON-able dict (what `deepae info` prints)."""
        return {"estimator": repr(self), "items": len(self), "n_bits": self.n_bits,
                "bytes_per_item": self.bytes_per_item}

    def save(self, path, overwrite: bool = True) -> Path:
        """Write the index as one deepae artifact (atomically)."""
        return save_artifact(path, "HammingIndex", {"n_bits": self.n_bits, "n_items": len(self)},
                             arrays={"codes": self._packed_codes(), "ids": self._ids},
                             overwrite=overwrite)

    @classmethod
    def load(cls, path) -> HammingIndex:
        return restore(read_artifact(path, kind="HammingIndex"), cls._from_artifact,
                       repr(str(path)))

    @classmethod
    def _from_artifact(cls, art: Artifact) -> HammingIndex:
        index = cls(n_bits=int(art.metadata["n_bits"]))
        if art.arrays["ids"].size:
            index.add(art.arrays["codes"].astype(np.uint8), art.arrays["ids"])
        return index

    def __repr__(self) -> str:
        return f"HammingIndex(n_bits={self.n_bits}) with {len(self):,} items"


class SemanticIndex:
    """A collection searchable by content: a fitted `SemanticHasher` and the `HammingIndex`
    of the collection's codes, saved together as one file (what ``deepae index build``
    writes), so that queries are feature vectors, hashed by the same model.

    Parameters
    ----------
    hasher : SemanticHasher
        Fitted, or fitted by `build`.
    index : HammingIndex, optional
        The codes of the collection (default: empty, of the hasher's code length).
    labels : array of shape (n_items,), optional
        A label per stored item, in insertion order (kept for `evaluate`, e.g. classes).

    Examples
    --------
    >>> idx = SemanticIndex.build(X_train, n_bits=32, epochs=20)  # doctest: +SKIP
    >>> (ids, dist), = idx.nearest(X_query[:1], k=10)  # doctest: +SKIP
    """

    def __init__(self, hasher, index=None, labels=None):
        check_is_fitted(hasher, "model_")
        n_bits = int(hasher.n_bits)
        if index is not None and index.n_bits != n_bits:
            raise ValueError(f"Expected an `index` of {n_bits}-bit codes, the hasher's code "
                             f"length; received one of {index.n_bits} bits.")
        self.hasher = hasher
        self.index = HammingIndex(n_bits) if index is None else index
        self.labels = None if labels is None else np.asarray(labels)
        if self.labels is not None and self.labels.shape != (len(self.index),):
            raise ValueError(f"Expected one label per stored item, shape ({len(self.index)},); "
                             f"received `labels` of shape {self.labels.shape}.")

    @classmethod
    def build(cls, X, ids=None, labels=None, *, hasher=None, **hasher_params) -> SemanticIndex:
        """Fit a hasher on `X` (a `SemanticHasher(**hasher_params)`, or `hasher` if it is
        given and not fitted yet) and store the codes of `X` under `ids`."""
        if hasher is None:
            hasher = SemanticHasher(**hasher_params)
        elif hasher_params:
            raise TypeError("Pass either `hasher` or hasher parameters, not both; received "
                            f"{sorted(hasher_params)}.")
        try:
            check_is_fitted(hasher, "model_")
        except NotFittedError:
            hasher.fit(X)
        out = cls(hasher)
        return out.add(X, ids, labels)

    @property
    def n_bits(self) -> int:
        return self.index.n_bits

    def __len__(self) -> int:
        return len(self.index)

    def add(self, X, ids=None, labels=None) -> SemanticIndex:
        """Hash `X` and store the codes under `ids` (default: consecutive). Labels are kept
        only if every item of the index has one."""
        n_before = len(self.index)
        self.index.add(self.hasher.transform(X), ids)
        n_new = len(self.index) - n_before
        if labels is not None:
            labels = np.asarray(labels)
            if labels.shape != (n_new,):
                self.index.remove(self.index.ids[n_before:])
                raise ValueError(f"Expected one label per row of `X`, shape ({n_new},); "
                                 f"received `labels` of shape {labels.shape}.")
        if labels is not None and (self.labels is not None or n_before == 0):
            self.labels = labels if n_before == 0 else np.concatenate([self.labels, labels])
        else:
            self.labels = None
        return self

    def remove(self, ids) -> int:
        """Remove the items with these ids; returns how many were removed."""
        keep = ~np.isin(self.index.ids, np.asarray(ids, np.int64).ravel())
        removed = self.index.remove(ids)
        if removed and self.labels is not None:
            self.labels = self.labels[keep]
        return removed

    def label_of(self, ids) -> np.ndarray:
        """The stored labels of these ids."""
        if self.labels is None:
            raise ValueError("This index holds no labels: pass `labels` when building it.")
        stored = self.index.ids
        ids = np.asarray(ids, np.int64)
        unknown = ids[~np.isin(ids, stored)]
        if unknown.size:
            raise ValueError(f"Expected ids stored in the index; received unknown ids "
                             f"{np.unique(unknown)[:10].tolist()}.")
        order = np.argsort(stored, kind="stable")
        pos = np.searchsorted(stored, ids, sorter=order)
        return self.labels[order[pos]]

    def search(self, X, radius: int = 2, k: int | None = None):
        """`HammingIndex.search` with feature vectors `X` as queries."""
        return self.index.search(self.hasher.transform(X), radius=radius, k=k)

    def rank(self, X, k: int = 100):
        """`HammingIndex.rank` with feature vectors `X` as queries."""
        return self.index.rank(self.hasher.transform(X), k=k)

    def nearest(self, X, k: int = 100, radius: int = 2):
        """`HammingIndex.nearest` with feature vectors `X` as queries."""
        return self.index.nearest(self.hasher.transform(X), k=k, radius=radius)

    def describe(self) -> dict:
        """What the index holds and the hasher that codes it, as a JSON-able dict (what
        `deepae info` prints)."""
        hasher = self.hasher.describe()
        return {**self.index.describe(), "estimator": repr(self),
                "labels": self.labels is not None, "hasher": hasher.pop("estimator"),
                **{k: v for k, v in hasher.items() if k != "n_bits"}}

    def save(self, path, overwrite: bool = True) -> Path:
        """Write the hasher, the codes, the ids and the labels to one artifact, atomically."""
        meta, models, arrays = self.hasher._artifact_parts()
        arrays = {f"hasher.{k}": v for k, v in arrays.items()}
        arrays.update(codes=self.index._packed_codes(), ids=self.index.ids)
        if self.labels is not None:
            arrays["labels"] = self.labels
        metadata = {"n_bits": self.n_bits, "n_items": len(self),
                    "hasher": {"kind": type(self.hasher).__name__,
                               "params": self.hasher._saved_params(), **meta}}
        return save_artifact(path, "SemanticIndex", metadata, models=models, arrays=arrays,
                             overwrite=overwrite)

    @classmethod
    def load(cls, path) -> SemanticIndex:
        return restore(read_artifact(path, kind="SemanticIndex"), cls._from_artifact,
                       repr(str(path)))

    @classmethod
    def _from_artifact(cls, art: Artifact) -> SemanticIndex:
        meta = dict(art.metadata["hasher"])
        meta.pop("kind", None)
        hasher_arrays = {k[len("hasher."):]: v for k, v in art.arrays.items()
                         if k.startswith("hasher.")}
        hasher = SemanticHasher._from_artifact(Artifact("SemanticHasher", meta, art.models,
                                                        hasher_arrays))
        index = HammingIndex._from_artifact(art)
        return cls(hasher, index, art.arrays.get("labels"))

    def __repr__(self) -> str:
        return f"SemanticIndex(n_bits={self.n_bits}) with {len(self):,} items"


register_loader("HammingIndex", models="(?!)")(HammingIndex._from_artifact)
register_loader("SemanticIndex", model_class="deepae>HashingAutoencoder")(SemanticIndex._from_artifact)
register_loader("SemanticHasher", model_class="deepae>HashingAutoencoder")(SemanticHasher._from_artifact)

SemanticHasher.__doc__ = SemanticHasher.__doc__.replace("{run}", RUN_PARAMS_DOC)
