"""The patch loop of the image estimators (denoiser, upscaler, codec): random patches drawn
anew each epoch and a compiled step, driven by a `keras.callbacks.CallbackList` (so Keras's
callbacks, the progress bar and the NaN guard work as in `fit`), with the checkpoint folder
of the dense engine: at each epoch's end the networks' weights, the optimizer's variables,
the patch generator's state and the history go to one file (`loop.npz`, written
atomically), from which `resume=True` continues."""

from __future__ import annotations

import io
import json
import sys
import time
import zipfile
from pathlib import Path

import keras
import numpy as np

from deepae.fileio import atomic_write
from deepae.training._callbacks import NaNGuard
from deepae.training._checkpoint import (
    LOOP_STATE,
    as_json,
    check_same_run,
    open_checkpoint,
    read_checkpoint_json,
    remove_checkpoint,
    write_json_atomic,
)

__all__ = ["train_on_patches", "cosine_adam", "Networks"]


class Networks(keras.Model):
    """What the patch loop's callbacks see as their `model`: the trained networks and their
    optimizer, in one container (never called, never saved). `EarlyStopping` sets its
    `stop_training`; `restore_best_weights` and `TensorBoard` read its weights."""

    def __init__(self, networks, optimizer):
        super().__init__(name="networks")
        self.networks = list(networks)
        self.optimizer = optimizer
        self.stop_training = False


def _save_state(path: Path, model: Networks, rng, epoch: int, history: dict,
                finished: bool = False) -> None:
    arrays = {f"net{i}_{j:04d}": w for i, net in enumerate(model.networks)
              for j, w in enumerate(net.get_weights())}
    arrays.update({f"opt_{j:04d}": keras.ops.convert_to_numpy(v)
                   for j, v in enumerate(model.optimizer.variables)})
    meta = {"epoch": epoch, "rng": rng.bit_generator.state, "history": history,
            "finished": bool(finished)}
    arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), np.uint8)
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    atomic_write(path, buf.getvalue())


def _load_state(path: Path, model: Networks, rng) -> tuple[int, dict, bool]:
    """Restore what `_save_state` wrote; returns (epochs done, history, whether the run had
    finished: completed, or stopped by a callback, and kept)."""
    try:
        with np.load(path, allow_pickle=False) as f:
            meta = json.loads(bytes(f["meta"]).decode())
            for i, net in enumerate(model.networks):
                net.set_weights([f[f"net{i}_{j:04d}"] for j in range(len(net.weights))])
            for j, v in enumerate(model.optimizer.variables):
                v.assign(f[f"opt_{j:04d}"])
        epoch, history = meta["epoch"], meta["history"]
        if not isinstance(epoch, int) or epoch < 0 or not isinstance(history, dict) or not all(
                isinstance(v, list) and len(v) >= epoch for v in history.values()):
            raise ValueError(f"epoch {epoch!r} and a history of {len(history)} entries do not "
                             "agree")
        rng.bit_generator.state = meta["rng"]
        return epoch, history, bool(meta.get("finished", False))
    except (OSError, ValueError, KeyError, TypeError, AttributeError,
            zipfile.BadZipFile) as e:
        raise ValueError(f"The checkpoint {str(path)!r} is damaged or holds another network "
                         f"({type(e).__name__}: {e}); remove the folder to start again.") from e


def _open(checkpoint_dir, resume, run, model, rng, history):
    """Check and mark the folder; on resume, restore its state. Returns (folder, first
    epoch, history); the first epoch is None for a kept run that had finished."""
    from deepae.distribute import is_chief

    ckpt, first = Path(checkpoint_dir), 0
    if not is_chief():  # the chief keeps the folder; every worker restores from it
        if resume and (ckpt / LOOP_STATE).is_file():
            first, history, finished = _load_state(ckpt / LOOP_STATE, model, rng)
            return None, (None if finished else first), history
        return None, first, history
    if open_checkpoint(ckpt, resume):
        saved = read_checkpoint_json(ckpt / "run.json", dict, {})
        if not saved:
            raise ValueError(f"Cannot resume from {str(ckpt)!r}: it holds no record of its run "
                             "(run.json is missing or empty); remove the folder to start "
                             "again.")
        check_same_run(ckpt, saved, run)
        if (ckpt / LOOP_STATE).is_file():
            first, history, finished = _load_state(ckpt / LOOP_STATE, model, rng)
            if finished:  # a kept finished run: nothing left to train
                return ckpt, None, history
    write_json_atomic(ckpt / "run.json", run)
    return ckpt, first, history
def step_seed(optimizer, base: int):
    """A seed for the stateless random ops of one training step (int64, shape (2,)): the
    run's `base` and the optimizer's step count. The count is saved and restored with the
    optimizer, so a resumed run draws the noise an uninterrupted one would (TensorFlow's
    stateful generators restart instead). Call it inside the step; draw with
    `replica_share` so that replicas draw what one device would."""
    import tensorflow as tf

    return tf.stack([tf.cast(base, tf.int64), tf.cast(optimizer.iterations, tf.int64)])


def replica_share(draw, shape):
    """This replica's rows of ``draw(global_shape)``: `shape` is the replica's share of the
    batch, the global batch being that many rows per replica. A stateless draw then gives
    every sample the noise it gets on one device, whatever the number of replicas."""
    import tensorflow as tf

    ctx = tf.distribute.get_replica_context()
    if ctx is None or ctx.num_replicas_in_sync == 1:
        return draw(shape)
    local = shape[0]
    full = draw(tf.concat([[local * ctx.num_replicas_in_sync], shape[1:]], axis=0))
    start = local * ctx.replica_id_in_sync_group
    return full[start: start + local]


def run_seed(random_state) -> int:
    """The base of `step_seed` for a run: `random_state`, or fresh entropy without one."""
    if random_state is None:
        return int(np.random.SeedSequence().entropy % (2**31 - 1))
    return int(random_state) % (2**31 - 1)


def cosine_adam(learning_rate, total_steps, variables, *, strategy=None, **kwargs):
    """The patch loops' optimizer: Adam whose rate decays along a cosine to 1% over
    `total_steps`, made and built for `variables` in the strategy's scope (its slots live
    beside the weights on every replica). `kwargs` go to `keras.optimizers.Adam`."""
    from deepae.distribute import strategy_scope

    with strategy_scope(strategy):
        sched = keras.optimizers.schedules.CosineDecay(float(learning_rate), int(total_steps),
                                                       alpha=0.01)
        opt = keras.optimizers.Adam(sched, **kwargs)
        opt.build(variables)
    return opt


def train_on_patches(step, images, size, *, epochs, steps_per_epoch, batch_size, rng,
                     verbose=0, history=None, strategy=None, networks=(), optimizer=None,
                     callbacks=None, checkpoint_dir=None, resume=False, keep_checkpoint=False,
                     run=None) -> dict:
    """Train on random patches of `images`, drawn anew each epoch (a hand loop: `Model.fit`
    cannot draw new patches or corrupt them in the step).

    ``step(batch, scale) -> dict`` runs one training step (compiled here) on a (n, size, size,
    c) float32 batch, its loss multiplied by `scale` before the gradient, and returns the
    batch's mean metrics (``loss`` first); under a `strategy` each replica runs it on its
    share of the global batch (`deepae.distribute.replica_step`). `networks` (the Keras
    models trained) and their `optimizer` are what `callbacks` see and what a checkpoint in
    `checkpoint_dir` saves; `run` (JSON) describes the run, and a resumed run must be the
    same; the folder is removed when training completes, unless `keep_checkpoint` (the
    command line keeps it until the model is saved). Returns the history: each metric's mean per epoch and ``seconds`` since the start,
    appended to `history` when given (a continued training). A NaN or inf loss stops
    training with `TrainingError`.
    """
    from deepae.data.images import random_patches
    from deepae.distribute import replica_step

    history = history if history is not None else {}
    model = Networks(networks, optimizer)
    ckpt, first = None, 0
    if checkpoint_dir is not None:
        ckpt, first, history = _open(checkpoint_dir, resume, as_json(run or {}), model, rng,
                                     history)
        if first is None:  # the kept run had finished (completed, or stopped by a callback)
            if ckpt is not None and not keep_checkpoint:
                remove_checkpoint(ckpt)
            return history
    step = replica_step(strategy, step, batch_size)
    # Keras's progress bar, as in `fit`: a bar on a terminal, one line per epoch in a log
    shown = (1 if sys.stdout.isatty() else 2) if verbose == "auto" or verbose == 1 else verbose
    cbs = keras.callbacks.CallbackList([NaNGuard(), *(callbacks or [])], add_history=False,
                                       add_progbar=bool(verbose), model=model,
                                       verbose=int(shown or 0), epochs=int(epochs),
                                       steps=int(steps_per_epoch))
    t0 = time.perf_counter() - (history.get("seconds") or [0.0])[-1]
    cbs.on_train_begin()
    for epoch in range(first, int(epochs)):
        cbs.on_epoch_begin(epoch)
        patches = random_patches(images, size, steps_per_epoch * batch_size, rng)
        totals = {}
        for i in range(steps_per_epoch):
            cbs.on_train_batch_begin(i)
            logs = {k: float(v) for k, v in
                    step(patches[i * batch_size:(i + 1) * batch_size]).items()}
            for k, v in logs.items():
                totals[k] = totals.get(k, 0.0) + v
            cbs.on_train_batch_end(i, logs)
        logs = {k: v / steps_per_epoch for k, v in totals.items()}
        for k, v in logs.items():
            history.setdefault(k, []).append(v)
        history.setdefault("seconds", []).append(round(time.perf_counter() - t0, 2))
        cbs.on_epoch_end(epoch, logs)
        if ckpt is not None:
            _save_state(ckpt / LOOP_STATE, model, rng, epoch + 1, history)
        if model.stop_training:
            break
    cbs.on_train_end()  # (EarlyStopping's best weights come back here)
    if ckpt is not None:
        if keep_checkpoint:  # the finished run, as it ends, until the model is saved
            _save_state(ckpt / LOOP_STATE, model, rng, len(history.get("loss", [])), history,
                        finished=True)
        else:
            remove_checkpoint(ckpt)
    return history
