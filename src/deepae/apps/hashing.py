"""Semantic hashing: `SemanticHasher` gives each item a short binary code; `HammingIndex`
is the table from codes to item ids.

Codes are packed bits, a (n, ceil(n_bits / 8)) uint8 array in `numpy.packbits` order (the
first bit is the most significant bit of the first byte), as `SemanticHasher.transform`
gives them. Inside, each code is one 64-bit integer key; the table holds the keys sorted
once, with the row of each, so that looking up a batch of addresses is one vectorised binary
search. `search` looks up the query's own address, then every address that differs from it
in 1, 2, ..., `radius` bits (Salakhutdinov & Hinton's semantic hashing); `rank` orders the
whole collection by Hamming distance with XOR and popcount.
"""

from __future__ import annotations

import itertools
import math
import numbers
from pathlib import Path

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted, validate_data

from deepae._validation import check_positive_float, check_positive_int, check_units
from deepae.apps._base import ArtifactEstimatorMixin
from deepae.persistence import Artifact, read_artifact, register_loader, save_artifact

__all__ = ["SemanticHasher", "HammingIndex", "pack_keys", "flip_masks"]

MAX_BITS = 64


def pack_keys(codes, n_bits: int, name: str = "codes") -> np.ndarray:
    """Packed codes (n, ceil(n_bits / 8)) uint8 -> (n,) uint64 keys (the code's bits as one
    big-endian integer)."""
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
    padded = np.zeros((arr.shape[0], 8), np.uint8)
    padded[:, 8 - width:] = arr
    keys = padded.view(">u8").ravel().astype(np.uint64)
    return keys >> np.uint64(8 * width - n_bits)  # drop packbits' zero padding


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


class SemanticHasher(ArtifactEstimatorMixin, TransformerMixin, BaseEstimator):
    """Short binary codes from an autoencoder whose code layer is pushed to binary
    (Salakhutdinov & Hinton 2009, semantic hashing).

    The code layer is a sigmoid with Gaussian noise added to its input in training
    (`deepae.nn.hashing.BinaryCode`), with penalties that keep each bit on for half the items
    and the bits uncorrelated; `transform` thresholds the sigmoid at 1/2 and packs the bits.

    Parameters
    ----------
    n_bits : int, default=32
        Code length, 1 to 64.
    hidden_units : tuple of int, default=(512, 256)
        Encoder layers, widest first; the decoder mirrors them.
    noise_stddev : float, default=3.0
    balance, decorrelation : float, default=0.1
        Weights of the bit-balance and decorrelation penalties.
    epochs : int, default=30
    batch_size : int, default=256
    learning_rate : float, default=1e-3
    preprocessing : str, default="auto"
        Scaling fitted on the training data, as `deepae.Autoencoder`'s: "auto" divides
        uint8 data by 255, keeps data already in [0, 1] or [-1, 1] (TF-IDF vectors) and
        standardises other tables.
    random_state : int, optional
    verbose : int, default=0

    Attributes
    ----------
    model_ : keras.Model
    n_features_in_ : int
    history_ : dict
    """

    _fitted_attr = "model_"

    def __init__(self, n_bits=32, *, hidden_units=(512, 256), noise_stddev=3.0, balance=0.1,
                 decorrelation=0.1, epochs=30, batch_size=256, learning_rate=1e-3,
                 preprocessing="auto", random_state=None, verbose=0):
        self.n_bits = n_bits
        self.hidden_units = hidden_units
        self.noise_stddev = noise_stddev
        self.balance = balance
        self.decorrelation = decorrelation
        self.epochs = epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.preprocessing = preprocessing
        self.random_state = random_state
        self.verbose = verbose

    def _validate_params(self):
        name = type(self).__name__
        n = check_positive_int(self.n_bits, "n_bits", owner=name)
        if n > MAX_BITS:
            raise ValueError(f"The 'n_bits' parameter of {name} must be an int in the range "
                             f"[1, {MAX_BITS}]. Got {self.n_bits!r} instead.")
        check_units(self.hidden_units, "hidden_units", owner=name)
        for p in ("noise_stddev", "balance", "decorrelation"):
            v = getattr(self, p)
            if isinstance(v, bool) or not isinstance(v, numbers.Real) or v < 0:
                raise ValueError(f"The '{p}' parameter of {name} must be a float in the range "
                                 f"[0, inf). Got {v!r} instead.")
        check_positive_int(self.epochs, "epochs", owner=name)
        check_positive_int(self.batch_size, "batch_size", owner=name)
        check_positive_float(self.learning_rate, "learning_rate", owner=name)

    def fit(self, X, y=None):
        """Train on `X` (n_samples, n_features); returns self."""
        import keras

        from deepae.data.preprocessing import Scaler, resolve_preprocessing
        from deepae.nn.hashing import hashing_autoencoder

        self._validate_params()
        X = validate_data(self, X, reset=True, dtype="numeric")
        kind = resolve_preprocessing(X) if self.preprocessing == "auto" else self.preprocessing
        self.scaler_ = Scaler(kind).fit(X)
        Xs = self.scaler_.transform(X).astype(np.float32)
        if self.random_state is not None:
            keras.utils.set_random_seed(int(self.random_state))
        lo, hi = float(Xs.min()), float(Xs.max())
        out = "sigmoid" if lo >= 0 and hi <= 1 else "linear"
        self.model_ = hashing_autoencoder(
            X.shape[1], int(self.n_bits), tuple(self.hidden_units), output_activation=out,
            noise_stddev=float(self.noise_stddev), balance=float(self.balance),
            decorrelation=float(self.decorrelation), seed=self.random_state)
        self.model_.compile(optimizer=keras.optimizers.Adam(float(self.learning_rate)),
                            loss="mse")
        hist = self.model_.fit(Xs, Xs, epochs=int(self.epochs),
                               batch_size=min(int(self.batch_size), len(Xs)), shuffle=True,
                               verbose=self.verbose)
        self.history_ = {k: [float(v) for v in vals] for k, vals in hist.history.items()}
        self._build_encoder()
        return self

    def _build_encoder(self):
        import keras

        from deepae.nn.runtime import compiled

        enc = keras.Model(self.model_.input, self.model_.get_layer("code").output)
        self._encode = compiled(lambda x: enc(x, training=False))

    def code_probabilities(self, X):
        """The code layer's sigmoid outputs, (n_samples, n_bits) in (0, 1)."""
        check_is_fitted(self, "model_")
        X = validate_data(self, X, reset=False, dtype="numeric")
        Xs = self.scaler_.transform(X).astype(np.float32)
        out = [np.asarray(self._encode(Xs[i:i + 8192])) for i in range(0, len(Xs), 8192)]
        return np.concatenate(out) if out else np.zeros((0, int(self.n_bits)), np.float32)

    def transform(self, X):
        """Packed codes of `X`: (n_samples, ceil(n_bits / 8)) uint8 in `numpy.packbits`
        order, the input of `HammingIndex`."""
        return np.packbits(self.code_probabilities(X) > 0.5, axis=1)

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
        self._build_encoder()


class HammingIndex:
    """A hash table from binary codes to item ids, with exact radius search and ranking.

    Parameters
    ----------
    n_bits : int
        Code length, 1 to 64.

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
        self._keys = np.zeros(0, np.uint64)   # keys in insertion order
        self._ids = np.zeros(0, np.int64)
        self._sorted = None                    # (sorted keys, their rows), built lazily
        self._masks = {}

    # -- contents --------------------------------------------------------------------------------
    def __len__(self) -> int:
        return int(self._ids.size)

    @property
    def ids(self) -> np.ndarray:
        """The stored ids, in insertion order."""
        return self._ids.copy()

    @property
    def bytes_per_item(self) -> float:
        """Memory of the table per item: its key and id, and the sorted copy of both."""
        return 2 * (self._keys.itemsize + self._ids.itemsize)

    def add(self, codes, ids=None) -> HammingIndex:
        """Store packed `codes` (n, ceil(n_bits / 8)) uint8 under `ids` (n,) integers
        (default: consecutive ids after the largest one stored). Returns self."""
        keys = pack_keys(codes, self.n_bits)
        if ids is None:
            start = int(self._ids.max()) + 1 if self._ids.size else 0
            ids = np.arange(start, start + keys.size)
        ids = np.asarray(ids)
        if ids.ndim != 1 or ids.size != keys.size:
            raise ValueError(f"Expected one id per code: {keys.size} ids; received ids of shape "
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
        self._sorted = None
        return self

    def remove(self, ids) -> int:
        """Remove the items with these ids; returns how many were removed (unknown ids are
        ignored)."""
        keep = ~np.isin(self._ids, np.asarray(ids, np.int64).ravel())
        removed = int((~keep).sum())
        if removed:
            self._keys, self._ids, self._sorted = self._keys[keep], self._ids[keep], None
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
    def search(self, query_codes, radius: int = 2, k: int | None = None):
        """The stored items within Hamming distance `radius` of each query, found by looking
        up the query's address and every address 1, 2, ... `radius` bits away.

        Returns one ``(ids, distances)`` pair of arrays per query, nearest first (equal
        distances in insertion order), at most `k` of them when `k` is given. Where probing
        would visit more addresses than there are items, the table is scanned instead: the
        result is the same.
        """
        if isinstance(radius, bool) or not isinstance(radius, numbers.Integral) \
                or not 0 <= radius <= self.n_bits:
            raise ValueError(f"Expected `radius` as an int from 0 to the code length "
                             f"{self.n_bits}; received {radius!r}.")
        if k is not None and (isinstance(k, bool) or not isinstance(k, numbers.Integral)
                              or k < 1):
            raise ValueError(f"Expected `k` as an int >= 1 or None; received {k!r}.")
        queries = self._check_query(query_codes)
        n_probes = sum(math.comb(self.n_bits, r) for r in range(radius + 1))
        if n_probes > len(self):
            return [self._scan(q, radius, k) for q in queries]
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
            counts = hi - lo
            # every row in each [lo, hi) run, with its probe's distance
            run = np.repeat(lo - np.cumsum(counts) + counts, counts) + np.arange(counts.sum())
            found, d = rows[run], np.repeat(dist, counts)
            order = np.lexsort((found, d))  # by distance, then insertion order
            found, d = found[order], d[order]
            if k is not None:
                found, d = found[:k], d[:k]
            out.append((self._ids[found], d))
        return out

    def _scan(self, q, radius, k):
        d = np.bitwise_count(self._keys ^ q).astype(np.int64)
        found = np.flatnonzero(d <= radius)
        found = found[np.argsort(d[found], kind="stable")]
        if k is not None:
            found = found[:k]
        return self._ids[found], d[found]

    def rank(self, query_codes, k: int = 100):
        """The `k` stored items nearest to each query by Hamming distance, over the whole
        collection (XOR and popcount on the keys; equal distances in insertion order).
        Returns one ``(ids, distances)`` pair per query."""
        if isinstance(k, bool) or not isinstance(k, numbers.Integral) or k < 1:
            raise ValueError(f"Expected `k` as an int >= 1; received {k!r}.")
        queries = self._check_query(query_codes)
        k = min(int(k), len(self))
        out = []
        for q in queries:
            d = np.bitwise_count(self._keys ^ q)
            if k < d.size:
                # the k-th smallest distance, then every item up to it, in insertion order
                kth = np.partition(d, k - 1)[k - 1]
                cand = np.flatnonzero(d <= kth)
                cand = cand[np.argsort(d[cand], kind="stable")][:k]
            else:
                cand = np.argsort(d, kind="stable")
            out.append((self._ids[cand], d[cand].astype(np.int64)))
        return out

    # -- persistence -----------------------------------------------------------------------------
    def save(self, path, overwrite: bool = True) -> Path:
        """Write the index as one deepae artifact (atomically)."""
        width = -(-self.n_bits // 8)
        codes = (self._keys << np.uint64(8 * width - self.n_bits)).astype(">u8")
        packed = codes.view(np.uint8).reshape(-1, 8)[:, 8 - width:]
        return save_artifact(path, "HammingIndex", {"n_bits": self.n_bits, "n_items": len(self)},
                             arrays={"codes": packed, "ids": self._ids}, overwrite=overwrite)

    @classmethod
    def load(cls, path) -> HammingIndex:
        art = read_artifact(path)
        if art.kind != "HammingIndex":
            from deepae.exceptions import ArtifactError

            raise ArtifactError(f"{str(path)!r} holds a {art.kind}, not a HammingIndex.")
        return cls._from_artifact(art)

    @classmethod
    def _from_artifact(cls, art: Artifact) -> HammingIndex:
        index = cls(n_bits=int(art.metadata["n_bits"]))
        if art.arrays["ids"].size:
            index.add(art.arrays["codes"].astype(np.uint8), art.arrays["ids"])
        return index

    def __repr__(self) -> str:
        return f"HammingIndex(n_bits={self.n_bits}) with {len(self):,} items"


register_loader("HammingIndex")(HammingIndex._from_artifact)
register_loader("SemanticHasher")(SemanticHasher._from_artifact)
