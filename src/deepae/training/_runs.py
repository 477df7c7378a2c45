"""The checkpoint side of a Keras `fit` run, shared by the dense engine and the hasher: the
folder checked and marked, the run recorded and compared on resume, Keras's
`BackupAndRestore` and the epoch log, a finished run kept until its model is saved, and the
history of a resumed run joined to the epochs done before."""

from __future__ import annotations

from pathlib import Path

import keras

from deepae.training._checkpoint import (
    CHECKPOINT_MARK,
    HistoryLog,
    as_json,
    check_same_run,
    keep_finished,
    open_checkpoint,
    read_checkpoint_json,
    remove_checkpoint,
    write_json_atomic,
)

__all__ = ["CheckpointedRun"]


class CheckpointedRun:
    """One run of `Model.fit` with an optional checkpoint folder.

    `run` (JSON) says what is trained on which data with which options; a resumed run must be
    the same (its ``data_fingerprint`` is compared first, with its own message). Under a
    multi-worker strategy only the chief keeps the folder's files; every worker has
    `BackupAndRestore`.
    """

    def __init__(self, checkpoint_dir, *, resume: bool, keep: bool, run: dict, chief: bool):
        self.ckpt = None if checkpoint_dir is None else Path(checkpoint_dir)
        self.resume, self.keep, self.run, self.chief = resume, keep, as_json(run), chief
        self.previous: list[dict] = []
        self.callbacks: list = []

    def open(self, model) -> keras.callbacks.History | None:
        """Check the folder and make the callbacks; a kept finished run is restored into
        `model` and its History returned (nothing is left to train), else None."""
        ckpt = self.ckpt
        if ckpt is None:
            return None
        # Keras would delete the backup folder whole at the end: on the chief,
        # `remove_checkpoint` removes only its files (keeping anything a user put there); a
        # worker, which checked below that the folder is deepae's, lets Keras clean it
        backup = keras.callbacks.BackupAndRestore(
            str(ckpt / "backup"), double_checkpoint=True,
            delete_checkpoint=not self.keep and not self.chief)
        if not self.chief:
            # the chief checks and marks the folder; a worker never removes a `backup` that
            # is not deepae's (Keras deletes the folder whole when training ends)
            if (ckpt / "backup").exists() and not (ckpt / CHECKPOINT_MARK).is_file():
                raise ValueError(f"`checkpoint_dir` {str(ckpt)!r} holds a 'backup' folder "
                                 "that deepae did not make; choose a new or empty folder.")
            self.callbacks = [backup]
            return None
        run_file = ckpt / "run.json"
        if open_checkpoint(ckpt, self.resume):
            finished = self._resumed(model, run_file)
            if finished is not None:
                return finished
        write_json_atomic(run_file, self.run)
        self.callbacks = [backup, HistoryLog(ckpt / "history.json", self.previous)]
        return None

    def _resumed(self, model, run_file: Path):
        ckpt = self.ckpt
        saved = read_checkpoint_json(run_file, dict, {})
        self.previous = read_checkpoint_json(ckpt / "history.json", list, [])
        if not all(isinstance(r, dict) and isinstance(r.get("epoch"), int) and all(
                isinstance(v, int | float) and not isinstance(v, bool) for v in r.values())
                for r in self.previous):
            raise ValueError(f"The checkpoint's history.json in {str(ckpt)!r} is damaged "
                             "(expected a list of epochs); remove the folder to start again.")
        if not saved:
            raise ValueError(f"Cannot resume from {str(ckpt)!r}: it holds no record of its run "
                             "(run.json is missing or empty), so nothing says it is this one; "
                             "remove the folder (deepae.training.remove_checkpoint) to start "
                             "again.")
        if run_file.exists():
            fingerprint = self.run.get("data_fingerprint")
            if saved.get("data_fingerprint") != fingerprint:
                raise ValueError(
                    f"Cannot resume from {str(ckpt)!r}: it was trained on data with "
                    f"fingerprint {saved.get('data_fingerprint')}, and `x` has {fingerprint}.")
            check_same_run(ckpt, saved, self.run)
        finished = read_checkpoint_json(ckpt / "final.json", dict, None)
        if finished is None or not (ckpt / "final.weights.h5").is_file():
            return None
        history, summary = finished.get("history", {}), finished.get("summary", {})
        if not isinstance(history, dict) or not isinstance(summary, dict) or not all(
                isinstance(v, list) for v in history.values()):
            raise ValueError(f"The checkpoint's final.json in {str(ckpt)!r} is damaged "
                             "(expected a history of lists and a summary); remove the folder "
                             "to start again.")
        # a run that completed and was kept (the CLI's save failed): its finished weights
        # (the best ones under early stopping), not the last epoch's backup
        model.load_weights(ckpt / "final.weights.h5")
        model.history_ = finished.get("history", {})
        model.training_summary_ = finished.get("summary", {})
        history = keras.callbacks.History()
        history.set_model(model)
        history.history = model.history_
        history.epoch = list(range(len(next(iter(history.history.values()), []))))
        return history

    def joined(self, history: keras.callbacks.History) -> keras.callbacks.History:
        """`history` of this run after the epochs done before an interruption."""
        done = {r["epoch"]: r for r in self.previous}
        for i, e in enumerate(history.epoch):
            done[e + 1] = {"epoch": e + 1,
                           **{k: float(v[i]) for k, v in history.history.items()}}
        rows = [done[k] for k in sorted(done)]
        history.history = {k: [r[k] for r in rows if k in r]
                           for k in (rows[-1].keys() if rows else []) if k != "epoch"}
        history.epoch = [r["epoch"] - 1 for r in rows]
        return history

    def close(self, model) -> None:
        """After training: keep the finished run (until the model is saved) or remove it."""
        if self.ckpt is None or not self.chief:
            return
        if self.keep:
            keep_finished(model, self.ckpt)
        else:
            remove_checkpoint(self.ckpt)
