"""Streaming training data through `tf.data`: the model's scaling fitted in one pass, and
the pipeline that reads blocks of rows from the sources of `deepae.data.shards` (sharded
`.npy` files, CSV and Parquet tables, folders of images).

`scaler_for` fits the model's `Scaler` in one streaming pass (min, max, mean and variance
merged block by block); `stream_dataset` is the training pipeline: the list of blocks, split
between workers by block (the auto-shard policy is set to OFF explicitly: the split is
ours), shuffled each epoch, read in groups whose rows are permuted together, batched (the
last partial batch kept), scaled, prefetched.
"""

from __future__ import annotations

import numpy as np

from deepae.data.shards import (
    ImageFolder,
    NpyShards,
    Shards,
    StreamStats,
    TableShards,
    open_shards,
)

__all__ = ["Shards", "NpyShards", "TableShards", "ImageFolder", "StreamStats", "open_shards",
           "scaler_for", "stream_dataset"]


def scaler_for(shards: Shards, kind: str = "auto", stats: StreamStats | None = None):
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
    if st is None:  # uint8 to "unit": the type's own range, no pass over the data
        return Scaler.from_statistics(kind, low=0.0, high=255.0)
    if kind == "standard":
        return Scaler.from_statistics(kind, low=st.feature_min, high=st.feature_max,
                                      mean=st.mean, std=st.std)
    return Scaler.from_statistics(kind, low=st.min, high=st.max)


def stream_dataset(shards: Shards, batch_size: int, *, scaler=None, shuffle: bool = True,
                   block_rows: int = 8192, shuffle_buffer: int = 32768, seed=None,
                   num_workers: int = 1, worker_index: int = 0, targets: bool = True):
    """A `tf.data.Dataset` of batches, ``(x, x)`` (or ``x`` with ``targets=False``),
    scaled to float32 by `scaler`, over every row of `shards` once per epoch.

    Blocks of `block_rows` contiguous rows (or the source's own blocks: Parquet row groups)
    are the unit of reading and of splitting between workers (worker `worker_index` of
    `num_workers` reads every `num_workers`-th block; the auto-shard policy is OFF). With
    `shuffle`, the block order changes every epoch, and consecutive blocks are read in
    groups of about `shuffle_buffer` rows whose rows are permuted together (in NumPy, a new
    permutation each epoch): the rows of a batch come from several places of the data, and
    no row-by-row `tf.data` shuffle buffer costs the CPU that training needs. The last
    partial batch is kept.
    """
    import tensorflow as tf  # the point here: the input pipeline

    blocks = shards.blocks(int(block_rows))
    row_shape = tuple(shards.row_shape)
    dtype = shards.dtype
    mine = blocks[int(worker_index)::int(num_workers)] if num_workers > 1 else blocks
    sizes = mine[:, 2] - mine[:, 1]
    per_group = max(1, int(shuffle_buffer) // max(1, int(sizes.mean()))) if len(mine) else 1

    def read(b):
        return shards.read(*b)

    def read_group(group, key):
        rows = np.concatenate([shards.read(*b) for b in group])
        return rows[np.random.default_rng(int(key)).permutation(len(rows))]

    ds = tf.data.Dataset.from_tensor_slices(blocks)
    if num_workers > 1:
        ds = ds.shard(int(num_workers), int(worker_index))
    out = tf.as_dtype(dtype)
    if shuffle:
        ds = ds.shuffle(len(blocks), seed=seed, reshuffle_each_iteration=True)
        keys = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True)
        ds = tf.data.Dataset.zip(ds.batch(per_group), keys).map(
            lambda g, k: tf.ensure_shape(tf.numpy_function(read_group, [g, k], out,
                                                           stateful=False), (None, *row_shape)),
            num_parallel_calls=2, deterministic=True)
    else:
        ds = ds.map(lambda b: tf.ensure_shape(tf.numpy_function(read, [b], out,
                                                                stateful=False),
                                              (None, *row_shape)),
                    num_parallel_calls=2, deterministic=True)
    ds = ds.rebatch(int(batch_size))
    offset = np.float32(0) if scaler is None else scaler.offset_
    scale = np.float32(1) if scaler is None else scaler.scale_

    def prepare(x):
        z = (tf.cast(x, tf.float32) - offset) / scale
        return (z, z) if targets else z

    ds = ds.map(prepare, num_parallel_calls=2, deterministic=True)
    # The exact number of batches, so that Keras knows an epoch's steps (rebatch hides it)
    n_batches = -(-int(sizes.sum()) // int(batch_size))
    ds = ds.apply(tf.data.experimental.assert_cardinality(n_batches))
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = \
        tf.data.experimental.AutoShardPolicy.OFF  # sharded by block above
    options.autotune.enabled = False
    return ds.prefetch(4).with_options(options)
