"""The training engines: data in the user's units, scaling fitted once, Keras's `fit` (dense
data) or the patch loop (images), with callbacks, checkpoints and resume, the NaN guard,
seeding and distribution strategies.

Resume uses a checkpoint folder that deepae marks as its own (see `remove_checkpoint`):
Keras's `BackupAndRestore` writes the weights, the optimizer state and the epoch counter at
the end of each epoch, and deepae adds `run.json` (what was being trained, on which data)
and `history.json` (every epoch's logs), each written atomically, so a resumed run keeps the
epochs already done.
"""

from deepae.training._callbacks import NaNGuard
from deepae.training._checkpoint import (
    CHECKPOINT_MARK,
    RUN_PARAMS_DOC,
    data_fingerprint,
    images_fingerprint,
    open_checkpoint,
    remove_checkpoint,
)
from deepae.training._dense import LOSSES, OPTIMIZERS, SCHEDULES, fit_autoencoder, training_data
from deepae.training._patches import (
    cosine_adam,
    replica_share,
    run_seed,
    step_seed,
    train_on_patches,
)
from deepae.training._runs import CheckpointedRun

__all__ = ["fit_autoencoder", "train_on_patches", "cosine_adam", "data_fingerprint",
           "images_fingerprint", "LOSSES", "OPTIMIZERS", "SCHEDULES", "NaNGuard",
           "remove_checkpoint", "open_checkpoint", "CHECKPOINT_MARK", "RUN_PARAMS_DOC",
           "CheckpointedRun", "step_seed", "run_seed", "replica_share", "training_data"]
