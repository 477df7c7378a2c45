"""Distribution strategies: where the model's variables live and who computes the steps.

deepae trains with Keras's `Model.fit`, which runs on TensorFlow's own distribution engine
(`tf.distribute`) when the model is built and compiled under a strategy's scope. A
`strategy` argument is one of:

- ``None`` or ``"single"``: the default device, no strategy (the fastest on one CPU);
- ``"mirrored"``: `tf.distribute.MirroredStrategy`, one replica per local GPU (or the
  CPU when there is none), gradients all-reduced each step;
- ``"multi-worker"``: `tf.distribute.MultiWorkerMirroredStrategy`, configured the
  standard way, by the ``TF_CONFIG`` environment variable of each worker process;
- a `tf.distribute.Strategy` instance, used as it is.

`batch_size` is always the global batch: each step's batch is split between the replicas,
so a run with the same global batch and learning rate follows the same schedule on any
number of workers.
"""

from __future__ import annotations

import contextlib
import json
import os

__all__ = ["STRATEGIES", "resolve_strategy", "strategy_scope", "replica_step", "is_chief",
           "worker_info", "clip_global_norm"]

STRATEGIES = ("single", "mirrored", "multi-worker")


_BY_NAME = {}  # one instance per name and process: a collective strategy starts only once


def resolve_strategy(strategy):
    """The `tf.distribute.Strategy` that `strategy` names, or None for a single device.
    A name gives the same instance every time in a process (so a model built under it can
    be trained again)."""
    if strategy is None or strategy == "single":
        return None
    import tensorflow as tf  # the point here: tf.distribute

    if isinstance(strategy, tf.distribute.Strategy):
        return strategy
    if strategy in _BY_NAME:
        return _BY_NAME[strategy]
    if strategy == "mirrored":
        return _BY_NAME.setdefault(strategy, tf.distribute.MirroredStrategy())
    if strategy == "multi-worker":
        if "TF_CONFIG" not in os.environ:
            raise ValueError("strategy='multi-worker' needs the TF_CONFIG environment "
                             "variable of this worker (cluster addresses and task index); "
                             "it is not set. See docs/distributed.md.")
        return _BY_NAME.setdefault(strategy, tf.distribute.MultiWorkerMirroredStrategy())
    raise ValueError(f"Expected `strategy` in {STRATEGIES}, None or a tf.distribute.Strategy; "
                     f"received {strategy!r}.")


def strategy_scope(strategy):
    """The strategy's scope, or a context that does nothing for a single device."""
    return contextlib.nullcontext() if strategy is None else strategy.scope()


def replica_step(strategy, step, global_batch: int):
    """Run a hand loop's training step on every replica of `strategy`.

    ``step(batch, scale) -> dict``, a Python function that this one compiles (a
    `tf.function` inside it could not hold the replicas' synchronisation), takes a float32
    batch tensor and a scalar `scale`, multiplies its loss by `scale` before taking the
    gradient, applies the gradient with a Keras optimizer created under the strategy's
    scope, and returns the batch's mean metrics.
    The returned function takes one global batch (a NumPy array of `global_batch` rows, the
    same on every worker), gives each replica its share of the rows, and returns the metrics
    averaged over the whole batch. `scale` is the replica's share of the global batch: the
    Keras optimizer sums the replicas' gradients, so the sum is the gradient of the global
    batch's mean loss, the step a single device takes on the same batch. Without a strategy
    the step runs as it is with ``scale=1``.
    """
    import numpy as np
    import tensorflow as tf  # the point here: tf.distribute's replicas

    if strategy is None:
        one, compiled = tf.constant(1.0), tf.function(step)
        return lambda batch: compiled(tf.constant(batch), one)
    n_replicas = int(strategy.num_replicas_in_sync)
    if global_batch < n_replicas:
        raise ValueError(f"Expected `batch_size` (the global batch) of at least the number of "
                         f"replicas, {n_replicas}; received {global_batch}.")

    def on_replica(batch):
        scale = tf.cast(tf.shape(batch)[0], tf.float32) / float(global_batch)
        return {k: v * scale for k, v in step(batch, scale).items()}

    @tf.function
    def run(batch):
        logs = strategy.run(on_replica, args=(batch,))
        return {k: strategy.reduce("SUM", v, axis=None) for k, v in logs.items()}

    def call(batch):
        def share(ctx):  # this replica's rows of the global batch
            parts = np.array_split(batch, ctx.num_replicas_in_sync)
            return tf.constant(parts[ctx.replica_id_in_sync_group])

        return run(strategy.experimental_distribute_values_from_function(share))

    return call


def clip_global_norm(grads, clipnorm: float):
    """`grads` scaled so that the gradient of the global batch has a norm of at most
    `clipnorm`, for a step that runs on every replica (`replica_step`).

    Keras's ``global_clipnorm`` clips each replica's share before the optimizer sums the
    shares, which on several replicas is not the single device's clipping. Here the shares
    are summed first (one all-reduce), the global norm taken from the sum, and every share
    scaled by the same factor, so the optimizer's sum is the clipped global gradient: the
    step one device takes. On one replica, the same as ``tf.clip_by_global_norm``.
    """
    import tensorflow as tf

    ctx = tf.distribute.get_replica_context()
    total = grads
    if ctx is not None and ctx.num_replicas_in_sync > 1:
        total = ctx.all_reduce("SUM", grads)
    norm = tf.linalg.global_norm(total)
    factor = float(clipnorm) / tf.maximum(norm, float(clipnorm))
    return [None if g is None else g * factor for g in grads]


def _tf_config() -> tuple[list, str, int] | None:
    """(worker addresses, task type, task index) from ``TF_CONFIG``, or None without it."""
    raw = os.environ.get("TF_CONFIG")
    if not raw:
        return None
    try:
        cfg = json.loads(raw)
        task = cfg.get("task", {})
        return (list(cfg.get("cluster", {}).get("worker", [])), str(task.get("type", "worker")),
                int(task.get("index", 0)))
    except (ValueError, TypeError, AttributeError) as e:
        raise ValueError("Expected TF_CONFIG as JSON of the form {'cluster': {'worker': "
                         "[...]}, 'task': {'type': 'worker', 'index': i}}; received "
                         f"{raw[:200]!r} ({e}).") from e


def worker_info() -> tuple[int, int]:
    """(this worker's index, number of workers) from ``TF_CONFIG``; (0, 1) without it."""
    cfg = _tf_config()
    if cfg is None:
        return 0, 1
    workers, kind, index = cfg
    return (index if kind == "worker" else 0), max(1, len(workers))


def is_chief() -> bool:
    """Whether this process writes checkpoints and saved models: worker 0 (or the chief)."""
    cfg = _tf_config()
    if cfg is None:
        return True
    _, kind, index = cfg
    return kind == "chief" or (kind == "worker" and index == 0)
