"""Callbacks every training engine adds."""

from __future__ import annotations

import math

import keras

from deepae.exceptions import TrainingError

__all__ = ["NaNGuard", "Progress"]


class NaNGuard(keras.callbacks.Callback):
    """Stops training with a `TrainingError` as soon as the loss is NaN or infinite."""

    def __init__(self):
        super().__init__()
        self._epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def _check(self, logs, where):
        for key, value in (logs or {}).items():
            if key.endswith("loss") and value is not None and not math.isfinite(float(value)):
                self.model.stop_training = True
                lr = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))
                raise TrainingError(
                    f"Training stopped: `{key}` became {float(value)} at epoch "
                    f"{self._epoch + 1}{where}. Lower the learning rate (now {lr:g}), scale "
                    "the data, or check it for extreme values."
                )

    def on_train_batch_end(self, batch, logs=None):
        self._check(logs, f", batch {batch + 1}")

    def on_epoch_end(self, epoch, logs=None):
        self._check(logs, "")


class Progress(keras.callbacks.ProgbarLogger):
    """Keras's progress bar, ending at its total: with several steps per call
    (`steps_per_execution`) Keras reports the last step of the call, which can lie past the
    epoch's end (``256/235`` in ``make demo``); the count stops at the epoch's steps."""

    def on_train_batch_end(self, batch, logs=None):
        if self.target is not None:
            batch = min(batch, self.target - 1)
        super().on_train_batch_end(batch, logs)
