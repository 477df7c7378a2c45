"""The dense engine: `fit_autoencoder` (compile, callbacks, seeding, NaN guard, checkpoints
and resume) for the autoencoders of tables, arrays and streamed shards.

Training goes through `keras.Model.fit`. Resume uses Keras's `BackupAndRestore`, which writes
the weights, the optimizer state and the epoch counter at the end of each epoch; deepae adds
a `run.json` (what was being trained, on which data) and `history.json` (every epoch's
logs) beside it, each written atomically, so a resumed run keeps the epochs already done.
"""

from __future__ import annotations

import math
import os
import time
import weakref
from types import SimpleNamespace

import keras
import numpy as np

from deepae._validation import as_array, check_fraction, check_in, check_positive_int
from deepae.data.io import read_data
from deepae.data.preprocessing import Scaler, resolve_preprocessing
from deepae.training._callbacks import NaNGuard, Progress
from deepae.training._checkpoint import (
    data_fingerprint,
)
from deepae.training._runs import CheckpointedRun

__all__ = ["fit_autoencoder", "LOSSES", "OPTIMIZERS", "SCHEDULES"]

LOSSES = ("mse", "mae", "binary_crossentropy")
OPTIMIZERS = ("adam", "adamw", "sgd")
SCHEDULES = ("constant", "cosine")


# What the engine remembers of each model it trained, beside the model rather than in it:
# the strategy that made its weights and the settings it compiled it with (held weakly, so
# a model the user drops is freed).
_ENGINE: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _engine_state(model) -> dict:
    return _ENGINE.setdefault(model, {})


def _make_optimizer(optimizer, learning_rate, momentum, weight_decay=None, schedule="constant",
                    total_steps=1):
    if isinstance(optimizer, keras.optimizers.Optimizer):
        return optimizer
    check_in(optimizer, "optimizer", OPTIMIZERS, owner="fit")
    check_in(schedule, "lr_schedule", SCHEDULES, owner="fit")
    if learning_rate is None:
        learning_rate = 1e-2 if optimizer == "sgd" else 1e-3
    if not (isinstance(learning_rate, int | float) and learning_rate > 0):
        raise ValueError(f"The 'learning_rate' parameter of fit must be a float in the range "
                         f"(0, inf). Got {learning_rate!r} instead.")
    lr = learning_rate
    if schedule == "cosine":  # from learning_rate down to 1% of it over the whole run
        lr = keras.optimizers.schedules.CosineDecay(learning_rate, max(1, total_steps),
                                                    alpha=0.01)
    if optimizer == "adam":
        return keras.optimizers.Adam(lr)
    if optimizer == "adamw":
        return keras.optimizers.AdamW(lr, weight_decay=0.004 if weight_decay is None
                                      else weight_decay)
    return keras.optimizers.SGD(lr, momentum=momentum)


def _validation_arrays(model, x, y, validation_data, validation_split):
    if validation_data is not None:
        if isinstance(validation_data, tuple | list):
            vx = validation_data[0]
            vy = validation_data[1] if len(validation_data) > 1 else None
        else:
            vx, vy = validation_data, None
        vx = model.to_model_space(vx, "validation_data")
        vy = vx if vy is None else model.to_model_space(vy, "validation_data")
        return x, y, (vx, vy)
    if validation_split:
        n_val = int(math.ceil(len(x) * validation_split))
        if n_val >= len(x):
            raise ValueError(f"validation_split={validation_split} leaves no training sample "
                             f"out of {len(x)}; use a smaller split or more data.")
        # Keras's convention: the last fraction of the data, before shuffling.
        return x[:-n_val], y[:-n_val], (x[-n_val:], y[-n_val:])
    return x, y, None


def _multi_worker(strategy) -> bool:
    import tensorflow as tf  # the point here: tf.distribute

    return isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)


class _EpochSeed(keras.callbacks.Callback):
    """Sets the epoch number that the input pipeline's shuffle is keyed on, at each epoch's
    start (before its iterator is made), so that epoch e's order is the same whether the
    run was interrupted and resumed or not."""

    def __init__(self, variable):
        super().__init__()
        self.variable = variable

    def on_epoch_begin(self, epoch, logs=None):
        self.variable.assign(epoch)


def training_data(xs, ys, batch_size, shuffle, seed=0, batch_map=None):
    """What `Model.fit` gets: a `tf.data` pipeline on TensorFlow, arrays elsewhere.

    `batch_map(x_batch, y_batch) -> (inputs, targets)`, when given, turns each gathered
    batch into what the model takes, in the pipeline: the arrays stay in memory as they
    are (uint8 pixels, 0/1 targets) and each batch is scaled on its way (a million MNIST
    digits take 0.8 GB so, 3 GB as float32, and more again in a second copy). TensorFlow
    only.

    The pipeline shuffles indices (not rows) each epoch and gathers each batch from one
    in-memory tensor, with prefetching; the final partial batch is kept. On this CPU it
    trains the small reference model about 1.5x faster than passing NumPy arrays to `fit`.
    The order of epoch e is a pure function of (`seed`, e) (a stateless permutation,
    `tf.random.experimental.index_shuffle`): a resumed run replays the epochs it redoes in
    the same order. The returned dict's "callbacks" keep the epoch number up to date.
    """
    if keras.backend.backend() != "tensorflow" and batch_map is None:
        return {"x": xs, "y": ys, "batch_size": batch_size, "shuffle": shuffle}
    import tensorflow as tf  # the point here: the input pipeline

    same = ys is xs
    # Variables, not constants: a map function that captures a constant embeds the whole
    # array in its graph, and each new iterator re-optimises that graph (seconds for MNIST).
    with tf.device("/cpu:0"):
        xt = tf.Variable(xs, trainable=False, name="train_x")
        yt = xt if same else tf.Variable(ys, trainable=False, name="train_y")
    n = len(xs)
    ds = tf.data.Dataset.range(n).batch(batch_size)
    callbacks = []
    if shuffle and n > 1:
        with tf.device("/cpu:0"):
            epoch = tf.Variable(0, dtype=tf.int64, trainable=False, name="epoch")
        callbacks.append(_EpochSeed(epoch))
        key = tf.constant(int(seed), tf.int64)
        ds = ds.map(lambda i: tf.random.experimental.index_shuffle(
            i, tf.stack([key, epoch.read_value()]), n - 1))
    if batch_map is not None:
        ds = ds.map(lambda i: batch_map(tf.gather(xt, i), tf.gather(yt, i)))
    elif same:
        ds = ds.map(lambda i: (tf.gather(xt, i),) * 2)
    else:
        ds = ds.map(lambda i: (tf.gather(xt, i), tf.gather(yt, i)))
    # tf.data's autotuner thread makes the end of every `fit` wait for it (seen here: up to
    # 5 s on a 5 s epoch); a fixed prefetch depth costs nothing on a CPU.
    options = tf.data.Options()
    options.autotune.enabled = False
    return {"x": ds.prefetch(2).with_options(options), "shuffle": False,  # shuffled above
            "callbacks": callbacks}


def fit_autoencoder(model, x, y=None, *, epochs=10, batch_size=256, loss="mse",
                    optimizer="adam", learning_rate=None, momentum=0.9, validation_split=0.0,
                    validation_data=None, early_stopping=None, reduce_lr_on_plateau=None,
                    checkpoint_dir=None, resume=False, keep_checkpoint=False,
                    random_state=None, callbacks=None,
                    shuffle=True, verbose="auto", steps_per_execution=None, jit_compile="auto",
                    weight_decay=None, lr_schedule="constant", strategy=None):
    """Train `model` (an `Autoencoder`) to reconstruct `x` (or to map `x` to `y`).

    Parameters
    ----------
    x : array-like of shape (n_samples, ...), a path, or a `deepae.data.shards.Shards`
        Training data in the user's units: uint8 images, floats, a numeric DataFrame, or a
        `.npy`/`.npz`/CSV/Parquet file or a folder of images (see `deepae.datasets.read_data`);
        or a source larger than memory (`.npy` shards, CSV or Parquet tables, a folder of
        images: `deepae.data.shards.open_shards`), streamed in blocks (scaling fitted in one
        pass; no `y`, no `validation_split`).
    y : array-like, optional
        Targets of the same shape (clean images for denoising); default `x`.
    epochs, batch_size : int
        A final partial batch is kept, never dropped.
    loss : {"mse", "mae", "binary_crossentropy"}
    optimizer : {"adam", "adamw", "sgd"} or keras.optimizers.Optimizer
        "sgd" uses `momentum`, "adamw" `weight_decay` (default 0.004). `learning_rate`
        defaults to 1e-3 (Adam, AdamW) / 1e-2 (SGD).
    lr_schedule : {"constant", "cosine"}
        "cosine" decays the learning rate to 1% of its start over all `epochs`.
    validation_split : float in [0, 1)
        Last fraction of the data held out (Keras's convention); or give `validation_data`.
    early_stopping : int, optional
        Patience in epochs; stops when the monitored loss stops improving and restores the
        best weights.
    reduce_lr_on_plateau : int, optional
        Patience in epochs before the learning rate is halved.
    checkpoint_dir : path, optional
        Where a checkpoint is written at the end of each epoch: a new or empty folder, which
        deepae marks as its own (a non-empty folder without the mark is refused). What deepae
        wrote there is removed when training completes (the folder too if deepae made it);
        if the run is interrupted, ``resume=True`` continues from the last completed epoch.
    keep_checkpoint : bool, default=False
        Keep the checkpoint after training completes, for a caller that removes it with
        `remove_checkpoint` only once the model is safely saved; a rerun with
        ``resume=True`` then restores the finished weights without training again.
    random_state : int, optional
        Seeds Python, NumPy and the backend: the same seed and data give the same weights
        on the same machine.
    steps_per_execution, jit_compile :
        Passed to `compile`; by default tuned for the CPU.
    strategy : None, "single", "mirrored", "multi-worker" or tf.distribute.Strategy
        Where training runs (`deepae.distribute`): the model's variables, the optimizer and
        the metrics are created under the strategy's scope. `batch_size` is the global
        batch. The model's weights must not exist yet (an unbuilt model). With a strategy,
        XLA is off by default; with the multi-worker one, one step per call.

    Returns
    -------
    keras.callbacks.History
        `history.history` holds every epoch's logs, resumed runs included.
    """
    epochs, batch_size = _check_options(
        epochs, batch_size, loss, validation_split, early_stopping, reduce_lr_on_plateau,
        random_state, lr_schedule, resume, checkpoint_dir)
    x, y, y_given, streaming, fingerprint = _read_inputs(x, y, validation_split)
    if random_state is not None:
        keras.utils.set_random_seed(random_state)
    dist, jit_compile, steps_per_execution = _distribution(model, strategy, jit_compile,
                                                           steps_per_execution)
    return _fit(model, x, y, y_given, streaming, fingerprint, epochs=epochs,
                batch_size=batch_size, loss=loss, optimizer=optimizer,
                learning_rate=learning_rate, momentum=momentum,
                validation_split=validation_split, validation_data=validation_data,
                early_stopping=early_stopping, reduce_lr_on_plateau=reduce_lr_on_plateau,
                checkpoint_dir=checkpoint_dir, resume=resume, keep_checkpoint=keep_checkpoint,
                random_state=random_state,
                callbacks=callbacks, shuffle=shuffle, verbose=verbose,
                steps_per_execution=steps_per_execution, jit_compile=jit_compile,
                weight_decay=weight_decay, lr_schedule=lr_schedule, strategy=dist)


def _check_options(epochs, batch_size, loss, validation_split, early_stopping,
                   reduce_lr_on_plateau, random_state, lr_schedule, resume, checkpoint_dir):
    """`fit_autoencoder`'s options, each checked alone and against the others."""
    owner = "fit"
    epochs = check_positive_int(epochs, "epochs", owner=owner)
    batch_size = check_positive_int(batch_size, "batch_size", owner=owner)
    check_in(loss, "loss", LOSSES, owner=owner)
    check_fraction(validation_split, "validation_split", owner=owner)
    for name, value in (("early_stopping", early_stopping),
                        ("reduce_lr_on_plateau", reduce_lr_on_plateau)):
        if value is not None:
            check_positive_int(value, name, owner=owner)
    if random_state is not None:
        check_positive_int(random_state, "random_state", minimum=0, owner=owner)
    if reduce_lr_on_plateau is not None and lr_schedule != "constant":
        raise ValueError(f"reduce_lr_on_plateau={reduce_lr_on_plateau} cannot be combined with "
                         f"lr_schedule={lr_schedule!r}: choose one way to lower the rate.")
    if resume and checkpoint_dir is None:
        raise ValueError("resume=True needs the `checkpoint_dir` of the interrupted run; "
                         "received checkpoint_dir=None.")
    return epochs, batch_size


def _read_inputs(x, y, validation_split):
    """`x` and `y` as arrays (or `x` as shards to stream), and the data's fingerprint."""
    from deepae.data.shards import Shards

    streaming = isinstance(x, Shards)
    y_given = y is not None
    if streaming:
        if y_given or validation_split:
            raise ValueError(f"Streaming `x` ({type(x).__name__}) trains an autoencoder on its "
                             "own rows: expected y=None and validation_split=0; received "
                             f"y={'an array' if y_given else None}, "
                             f"validation_split={validation_split}.")
        return x, y, y_given, streaming, x.fingerprint()
    x = read_data(x) if isinstance(x, str | os.PathLike) else as_array(x, "x")
    if y_given:
        y = read_data(y) if isinstance(y, str | os.PathLike) else as_array(y, "y")
        if y.shape != x.shape:
            raise ValueError(f"Expected `y` with the shape of `x` {x.shape}; received "
                             f"{y.shape}.")
    return x, y, y_given, streaming, data_fingerprint(x)


def _distribution(model, strategy, jit_compile, steps_per_execution):
    """The strategy to train under, and the compile options it allows."""
    from deepae.distribute import resolve_strategy

    dist = resolve_strategy(strategy)
    if dist is not None and model.built and _engine_state(model).get("strategy") is not dist:
        raise ValueError("A `strategy` must create the model's weights: expected an unbuilt "
                         "model, or one built under the same strategy; received one already "
                         "built (trained or loaded) without it. Build a new one, or train it "
                         "without a strategy.")
    if dist is not None and jit_compile == "auto":
        jit_compile = False
    if dist is not None and steps_per_execution is None and (
            _multi_worker(dist) or dist.num_replicas_in_sync > 1):
        # Keras 3's loop of several steps per call fails under the collective strategy and
        # on several mirrored replicas ("You must feed a value for placeholder tensor
        # ..."): one step per call there.
        steps_per_execution = 1
    return dist, jit_compile, steps_per_execution


def _fit(model, x, y, y_given, streaming, fingerprint, **options):
    """`fit_autoencoder` after the checks. The model's variables and the optimizer are made,
    and `Model.fit` runs, inside the strategy's scope; the input pipeline (whose variables
    are local to each worker) outside it."""
    from deepae.distribute import strategy_scope

    o = SimpleNamespace(**options)
    _build(model, x, streaming, o.strategy)
    xs, ys, val, n_rows = _model_space_data(model, x, y, y_given, streaming, o)
    user_compiled = _compile_once(model, n_rows, o)
    ckpt = _checkpointed_run(model, fingerprint, o)
    finished = ckpt.open(model)
    if finished is not None:
        return finished
    cbs = _monitors(val is not None, o) + ckpt.callbacks + list(o.callbacks or [])

    start = time.perf_counter()
    data = _fit_data(model, x, xs, ys, streaming, o)
    n_val = 0 if val is None else len(val[0])
    if val is not None and "batch_size" not in data:
        val = training_data(val[0], val[1], o.batch_size, False)["x"]
    cbs = data.pop("callbacks", []) + cbs
    if o.verbose != 0:  # Keras adds its own bar only when it finds none
        cbs.append(Progress())
    with strategy_scope(o.strategy):
        history = keras.Model.fit(model, **data, epochs=o.epochs, validation_data=val,
                                  callbacks=cbs, verbose=o.verbose)
    seconds = time.perf_counter() - start

    first_this_run = history.epoch[0] + 1 if history.epoch else None
    history = ckpt.joined(history)
    model.history_ = history.history
    model.training_summary_ = _summary(
        model, history, o, resumed_after=len(ckpt.previous) if ckpt.previous else None,
        user_compiled=user_compiled, n_rows=n_rows, n_val=n_val, seconds=seconds,
        fingerprint=fingerprint, first_this_run=first_this_run)
    ckpt.close(model)
    return history


def _build(model, x, streaming, strategy):
    """A first fit: the sample shape and the scaling from the data, then the variables."""
    from deepae.distribute import strategy_scope

    if model.built:
        # built but never fitted by deepae (a clone, a model built by hand): its scaling
        # layer is still the identity, so its first fit chooses the scaling
        if model.scaler_ is None and getattr(model, "scaling", None) is not None:
            model.scaler_ = _fit_scaler(model, x, streaming)
        return
    if model.data_shape is None:
        model.data_shape = tuple(int(d) for d in x.shape[1:])
    if model.scaler_ is None:
        model.scaler_ = _fit_scaler(model, x, streaming)
    with strategy_scope(strategy):
        model.build((None, *model.data_shape))
    _engine_state(model)["strategy"] = strategy


def _fit_scaler(model, x, streaming) -> Scaler:
    """The scaling `model.preprocessing` chooses for `x` (one pass over shards)."""
    if streaming:
        from deepae.data.streaming import scaler_for

        return scaler_for(x, model.preprocessing)
    kind = model.preprocessing
    if kind == "auto":
        kind = resolve_preprocessing(x)
    return Scaler(kind).fit(x)


def _model_space_data(model, x, y, y_given, streaming, o):
    """The training and validation data in the model's space (none for shards, which are
    scaled as they stream), and the number of training rows."""
    if streaming:
        if tuple(x.row_shape) != tuple(model.data_shape):
            raise ValueError(f"`x` has rows of shape {tuple(x.row_shape)}, but "
                             f"{type(model).__name__} is expecting {tuple(model.data_shape)}.")
        _, _, val = _validation_arrays(model, np.zeros((0, *x.row_shape), np.float32), None,
                                       o.validation_data, 0.0)
        return None, None, val, len(x)
    xs = model.to_model_space(x, "x")
    ys = model.to_model_space(y, "y") if y_given else xs
    xs, ys, val = _validation_arrays(model, xs, ys, o.validation_data, o.validation_split)
    return xs, ys, val, len(xs)


def _compile_once(model, n_rows, o) -> bool:
    """Compile once; a later fit with the same settings continues with the same optimizer
    state and the already traced train step. A model compiled by the user is kept as is
    (returns True then)."""
    from deepae.distribute import strategy_scope

    key = (o.loss, o.optimizer if isinstance(o.optimizer, str) else id(o.optimizer),
           o.learning_rate, o.momentum, o.steps_per_execution, o.jit_compile, o.weight_decay,
           o.lr_schedule, o.epochs if o.lr_schedule != "constant" else None)
    state = _engine_state(model)
    user_compiled = getattr(model, "compiled", False) and not state.get("key")
    if user_compiled or state.get("key") == key:
        return user_compiled
    # Several steps per call amortise Python overhead (measured in
    # benchmarks/train_throughput.py); an epoch still ends at its last batch.
    steps_per_execution = 32 if o.steps_per_execution is None else o.steps_per_execution
    total_steps = o.epochs * math.ceil(n_rows / o.batch_size)
    jit_compile = o.jit_compile
    if jit_compile == "auto":
        # XLA speeds a step up by up to ~1.2x on this CPU but costs about a second of
        # compiling per batch shape: worth it only for runs of many steps.
        jit_compile = keras.backend.backend() in ("tensorflow", "jax") and total_steps >= 200
    with strategy_scope(o.strategy):
        model.compile(optimizer=_make_optimizer(o.optimizer, o.learning_rate, o.momentum,
                                                o.weight_decay, o.lr_schedule, total_steps),
                      loss=o.loss, steps_per_execution=steps_per_execution,
                      jit_compile=jit_compile)
        # the optimizer's slots made now, in the strategy's scope: made lazily inside
        # the replicated step, they are a placeholder that no replica feeds (Model.fit
        # fails on two replicas: "You must feed a value for placeholder tensor")
        model.optimizer.build(model.trainable_variables)
    state["key"] = key
    return False


def _monitors(has_validation, o) -> list:
    """The NaN guard, and early stopping and learning-rate reduction when asked."""
    monitor = "val_loss" if has_validation else "loss"
    cbs = [NaNGuard()]
    if o.early_stopping is not None:
        cbs.append(keras.callbacks.EarlyStopping(monitor=monitor, patience=o.early_stopping,
                                                 restore_best_weights=True))
    if o.reduce_lr_on_plateau is not None:
        cbs.append(keras.callbacks.ReduceLROnPlateau(monitor=monitor, factor=0.5,
                                                     patience=o.reduce_lr_on_plateau))
    return cbs


def _checkpointed_run(model, fingerprint, o) -> CheckpointedRun:
    """The checkpoint side of this run; a resumed run must repeat what it records."""
    from deepae.distribute import is_chief

    optimizer = o.optimizer if isinstance(o.optimizer, str) else type(o.optimizer).__name__
    return CheckpointedRun(
        o.checkpoint_dir, resume=o.resume, keep=o.keep_checkpoint,
        chief=o.strategy is None or is_chief(),
        run={"model_config": model.get_config(), "data_fingerprint": fingerprint,
             "epochs": o.epochs, "batch_size": o.batch_size, "loss": str(o.loss),
             "optimizer": optimizer, "learning_rate": o.learning_rate,
             "momentum": o.momentum, "weight_decay": o.weight_decay,
             "lr_schedule": o.lr_schedule, "early_stopping": o.early_stopping,
             "validation_split": o.validation_split})


def _fit_data(model, x, xs, ys, streaming, o) -> dict:
    """`Model.fit`'s data arguments: the shards' stream, or the arrays' shuffled batches."""
    if streaming:
        from deepae.data.streaming import stream_dataset
        from deepae.distribute import worker_info

        index, n_workers = worker_info() if o.strategy is not None else (0, 1)
        return {"x": stream_dataset(x, o.batch_size, scaler=model.scaler_, shuffle=o.shuffle,
                                    seed=o.random_state, num_workers=n_workers,
                                    worker_index=index), "shuffle": False}
    # the shuffle's key: from the seeded NumPy generator, so a seeded run (and its
    # resumption) gets the same one
    return training_data(xs, ys, o.batch_size, o.shuffle,
                          seed=int(np.random.randint(0, 2**31 - 1)))


def _summary(model, history, o, *, resumed_after, user_compiled, n_rows, n_val, seconds,
             fingerprint, first_this_run) -> dict:
    """`training_summary_`: what ran, for how long, and the final figures."""
    rows = history.epoch
    lr = float(keras.ops.convert_to_numpy(model.optimizer.learning_rate))
    strategy = o.strategy
    return {
        "epochs_requested": o.epochs, "epochs_run": len(rows),
        "resumed_after_epoch": resumed_after,
        "stopped_early": bool(o.early_stopping is not None and len(rows) < o.epochs),
        "batch_size": o.batch_size,
        "loss": "user-compiled" if user_compiled else o.loss,
        "optimizer": type(model.optimizer).__name__.lower(),
        "learning_rate": float(f"{lr:.6g}"),
        "lr_schedule": o.lr_schedule,
        "random_state": o.random_state,
        "strategy": None if strategy is None else type(strategy).__name__,
        "replicas": 1 if strategy is None else int(strategy.num_replicas_in_sync),
        "n_samples": int(n_rows), "n_validation": int(n_val),
        "seconds": round(seconds, 3), "data_fingerprint": fingerprint,
        "final": {k: v[-1] for k, v in history.history.items() if v},
        "first_epoch_this_run": first_this_run,
    }


