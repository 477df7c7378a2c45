"""Data larger than memory: sharded `.npy` files, read in blocks through `tf.data`.

`NpyShards` describes a data set stored as one or more `.npy` files whose rows have one
shape and dtype (a folder, a glob pattern or a list of paths). Nothing is loaded up front:
each block of rows is read from a memory map that is opened, copied from and closed again,
so the pages it touched leave the process's resident memory with it (a memory map kept open
over a 20 GB file would count every page read towards RSS).

`scaler_for` fits the model's `Scaler` in one streaming pass (min, max, mean and variance
merged block by block, Chan et al.'s pairwise update); `stream_dataset` is the training
pipeline: the list of blocks, split between workers by block (the auto-shard policy is set
to OFF explicitly: the split is ours), shuffled each epoch, read two at a time, rows mixed in
a shuffle buffer, batched (the last partial batch kept), scaled, prefetched.
"""

from __future__ import annotations

import glob
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = ["NpyShards", "StreamStats", "scaler_for", "stream_dataset"]


class NpyShards:
    """One data set in one or more `.npy` files, read block by block.

    Parameters
    ----------
    source : path, glob pattern, or sequence of paths
        A folder (its ``*.npy`` files in name order), a pattern such as
        ``"data/part-*.npy"``, one file, or a list of files. Every file must hold an array
        of at least one dimension; rows (``array[i]``) must have one shape and dtype
        across files.

    Attributes
    ----------
    paths : list of Path
    lengths : ndarray of int64, rows per file
    row_shape : tuple
    dtype : numpy.dtype
    """

    def __init__(self, source):
        self.paths = _resolve(source)
        lengths, shapes, dtypes = [], set(), set()
        for p in self.paths:
            try:
                arr = np.load(p, mmap_mode="r", allow_pickle=False)
            except (ValueError, OSError) as e:
                raise ValueError(f"Expected `.npy` files; could not read {str(p)!r}: {e}") from e
            if arr.ndim < 1:
                raise ValueError(f"Expected arrays of rows in every shard; {str(p)!r} holds a "
                                 "scalar.")
            lengths.append(arr.shape[0])
            shapes.add(tuple(arr.shape[1:]))
            dtypes.add(arr.dtype)
            del arr
        if len(shapes) > 1 or len(dtypes) > 1:
            raise ValueError("Expected every shard to hold rows of one shape and dtype; "
                             f"received shapes {sorted(shapes)} and dtypes "
                             f"{sorted(map(str, dtypes))}.")
        self.lengths = np.asarray(lengths, np.int64)
        self.row_shape = shapes.pop()
        self.dtype = dtypes.pop()
        if self.n_rows == 0:
            raise ValueError(f"Expected rows to train on; the shards {self._names()} are empty.")

    def _names(self):
        names = [p.name for p in self.paths[:3]]
        return names + ["..."] if len(self.paths) > 3 else names

    @property
    def n_rows(self) -> int:
        return int(self.lengths.sum())

    def __len__(self) -> int:
        return self.n_rows

    @property
    def shape(self) -> tuple:
        """The shape the data would have as one array."""
        return (self.n_rows, *self.row_shape)

    @property
    def nbytes(self) -> int:
        return self.n_rows * int(np.prod(self.row_shape, dtype=np.int64)) * self.dtype.itemsize

    def __repr__(self) -> str:
        return (f"NpyShards({len(self.paths)} files, {self.n_rows:,} rows of "
                f"{self.row_shape} {self.dtype}, {self.nbytes / 2**30:.2f} GiB)")

    def blocks(self, block_rows: int) -> np.ndarray:
        """(n_blocks, 3) int64: shard, first row, end row of every block, in file order."""
        out = []
        for s, n in enumerate(self.lengths):
            starts = np.arange(0, n, block_rows, dtype=np.int64)
            out.append(np.stack([np.full_like(starts, s), starts,
                                 np.minimum(starts + block_rows, n)], axis=1))
        return np.concatenate(out) if out else np.zeros((0, 3), np.int64)

    def read(self, shard: int, start: int, stop: int) -> np.ndarray:
        """Rows ``[start, stop)`` of one shard, copied out of a memory map that is closed
        before returning (its pages leave the resident set)."""
        arr = np.load(self.paths[int(shard)], mmap_mode="r", allow_pickle=False)
        try:
            return np.array(arr[int(start):int(stop)])
        finally:
            mm = getattr(arr, "_mmap", None)
            del arr
            if mm is not None:
                mm.close()

    def iter_blocks(self, block_rows: int = 65536):
        """Every row once, in file order, `block_rows` at a time."""
        for s, a, b in self.blocks(block_rows):
            yield self.read(s, a, b)

    def fingerprint(self) -> str:
        """Names, sizes and the first and last rows: what says two runs read the same data."""
        h = hashlib.sha256()
        for p, n in zip(self.paths, self.lengths, strict=True):
            h.update(f"{p.name}:{n}:{p.stat().st_size}".encode())
        h.update(self.read(0, 0, min(64, int(self.lengths[0]))).tobytes())
        last = len(self.paths) - 1
        n = int(self.lengths[last])
        h.update(self.read(last, max(0, n - 64), n).tobytes())
        return h.hexdigest()[:16]

    def stats(self, block_rows: int = 65536) -> StreamStats:
        """Count, min, max, per-feature mean and standard deviation in one pass."""
        count, mean, m2 = 0, None, None
        lo, hi = np.inf, -np.inf
        for block in self.iter_blocks(block_rows):
            if not len(block):
                continue
            flat = block.reshape(len(block), -1).astype(np.float64)
            lo, hi = min(lo, float(flat.min())), max(hi, float(flat.max()))
            n_b, mean_b = len(flat), flat.mean(axis=0)
            m2_b = ((flat - mean_b) ** 2).sum(axis=0)
            if mean is None:
                count, mean, m2 = n_b, mean_b, m2_b
                continue
            delta = mean_b - mean
            total = count + n_b
            mean = mean + delta * (n_b / total)
            m2 = m2 + m2_b + delta ** 2 * (count * n_b / total)
            count = total
        std = np.sqrt(m2 / count)
        return StreamStats(count, lo, hi, mean.reshape(self.row_shape),
                           std.reshape(self.row_shape), self.dtype)


@dataclass
class StreamStats:
    """What one pass over the data measured (per-feature mean and std, global min/max)."""

    count: int
    min: float
    max: float
    mean: np.ndarray
    std: np.ndarray
    dtype: np.dtype


def _resolve(source) -> list[Path]:
    if isinstance(source, str | os.PathLike):
        text = str(source)
        path = Path(text)
        if path.is_dir():
            paths = sorted(path.glob("*.npy"))
            where = f"in the folder {text!r}"
        elif any(c in text for c in "*?["):
            paths = [Path(p) for p in sorted(glob.glob(text))]
            where = f"matching {text!r}"
        else:
            if not path.exists():
                raise FileNotFoundError(f"No data at {text!r}.")
            paths, where = [path], text
    else:
        paths = [Path(p) for p in source]
        where = "in the list given"
        missing = [str(p) for p in paths if not p.exists()]
        if missing:
            raise FileNotFoundError(f"No data at {missing[:3]}.")
    if not paths:
        raise FileNotFoundError(f"Expected .npy shards; found none {where}.")
    return paths


def scaler_for(shards: NpyShards, kind: str = "auto", stats: StreamStats | None = None):
    """The `Scaler` that `kind` gives on the whole data set, fitted in one streaming pass.

    "auto" chooses as `deepae.data.preprocessing.resolve_preprocessing` does on an array:
    uint8 -> "unit"; data within [0, 1] or [-1, 1] -> "none"; images (rows of rank >= 2)
    -> "minmax"; other tables -> "standard".
    """
    from deepae.data.preprocessing import KINDS, Scaler, preprocessing_for

    if kind == "unit" or (kind == "auto" and shards.dtype == np.uint8):
        kind = "unit"
        st = stats
    else:
        st = stats or shards.stats()
        if kind == "auto":
            kind = preprocessing_for(shards.dtype, st.min, st.max, len(shards.row_shape))
    if kind not in KINDS:
        raise ValueError(f"Expected `preprocessing` in {('auto', *KINDS)}; received {kind!r}.")
    s = Scaler(kind)
    if kind in ("none", "unit"):
        s.offset_ = np.zeros((), np.float32)
        s.scale_ = np.ones((), np.float32) if kind == "none" else np.full((), 255.0, np.float32)
        lo, hi = (0.0, 255.0) if st is None else (st.min, st.max)
    elif kind == "minmax":
        span = st.max - st.min if st.max > st.min else 1.0
        s.offset_, s.scale_ = np.asarray(st.min, np.float32), np.asarray(span, np.float32)
        lo, hi = st.min, st.max
    else:
        std = np.where(st.std < 1e-12, 1.0, st.std)
        s.offset_, s.scale_ = st.mean.astype(np.float32), std.astype(np.float32)
        lo, hi = st.min, st.max
    if kind == "standard":  # the exact range after per-feature scaling needs another pass
        s.data_min_, s.data_max_ = _scaled_range(shards, s)
    else:
        s.data_min_ = float((lo - float(s.offset_)) / float(s.scale_))
        s.data_max_ = float((hi - float(s.offset_)) / float(s.scale_))
    return s


def _scaled_range(shards, scaler):
    lo, hi = np.inf, -np.inf
    for block in shards.iter_blocks():
        z = scaler.transform(block)
        lo, hi = min(lo, float(z.min())), max(hi, float(z.max()))
    return lo, hi


def stream_dataset(shards: NpyShards, batch_size: int, *, scaler=None, shuffle: bool = True,
                   block_rows: int = 8192, shuffle_buffer: int = 32768, seed=None,
                   num_workers: int = 1, worker_index: int = 0, targets: bool = True):
    """A `tf.data.Dataset` of batches, ``(x, x)`` (or ``x`` with ``targets=False``),
    scaled to float32 by `scaler`, over every row of `shards` once per epoch.

    Blocks of `block_rows` contiguous rows are the unit of reading and of splitting between
    workers (worker `worker_index` of `num_workers` reads every `num_workers`-th block; the
    auto-shard policy is OFF). With `shuffle`, the block order changes every epoch and rows
    are mixed in a buffer of `shuffle_buffer` rows. The last partial batch is kept.
    """
    import tensorflow as tf  # the point here: the input pipeline

    blocks = shards.blocks(int(block_rows))
    row_shape = tuple(shards.row_shape)
    dtype = shards.dtype

    def read(b):
        return shards.read(*b)

    ds = tf.data.Dataset.from_tensor_slices(blocks)
    if num_workers > 1:
        ds = ds.shard(int(num_workers), int(worker_index))
    if shuffle:
        ds = ds.shuffle(len(blocks), seed=seed, reshuffle_each_iteration=True)
    ds = ds.map(lambda b: tf.ensure_shape(tf.numpy_function(read, [b], tf.as_dtype(dtype),
                                                            stateful=False),
                                          (None, *row_shape)),
                num_parallel_calls=2, deterministic=True)
    if shuffle:
        ds = ds.unbatch().shuffle(int(shuffle_buffer), seed=seed,
                                  reshuffle_each_iteration=True).batch(int(batch_size))
    else:
        ds = ds.rebatch(int(batch_size))
    offset = np.float32(0) if scaler is None else scaler.offset_
    scale = np.float32(1) if scaler is None else scaler.scale_

    def prepare(x):
        z = (tf.cast(x, tf.float32) - offset) / scale
        return (z, z) if targets else z

    ds = ds.map(prepare, num_parallel_calls=2, deterministic=True)
    # The exact number of batches, so that Keras knows an epoch's steps (unbatch hides it)
    mine = blocks[int(worker_index)::int(num_workers)] if num_workers > 1 else blocks
    n_batches = -(-int((mine[:, 2] - mine[:, 1]).sum()) // int(batch_size))
    ds = ds.apply(tf.data.experimental.assert_cardinality(n_batches))
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = \
        tf.data.experimental.AutoShardPolicy.OFF  # sharded by block above
    options.autotune.enabled = False
    return ds.prefetch(4).with_options(options)
