"""Options shared by several commands."""

from __future__ import annotations

__all__ = ["add_patch_training_options"]


def add_patch_training_options(p, *, patch_size):
    """The options of the commands that train on random image patches (``train FOLDER``)."""
    p.add_argument("--epochs", type=int, default=20, help="train: epochs (default 20)")
    p.add_argument("--patch-size", type=int, default=patch_size,
                   help=f"train: patch side in pixels (default {patch_size})")
    p.add_argument("--patches", type=int, default=4096,
                   help="train: patches per epoch (default 4096)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
