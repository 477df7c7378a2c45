"""Scaling fitted once on the training data and saved with the model.

A `Scaler` maps user data to the model's space and back. Its state is a small JSON dict plus
NumPy arrays, so it travels inside the model artifact without pickle.
"""

from __future__ import annotations

import numpy as np

from deepae._validation import check_in

__all__ = ["Scaler", "resolve_preprocessing", "preprocessing_for", "output_activation_for_range"]

KINDS = ("none", "unit", "minmax", "standard")


def resolve_preprocessing(x: np.ndarray) -> str:
    """Choose a scaling for `x` when the user asked for ``"auto"``.

    uint8 images are divided by 255; data already in [0, 1] or [-1, 1] is kept as it is;
    other image batches (rank >= 3) are min-max scaled to [0, 1]; tables are standardised.
    """
    if x.dtype == np.uint8:
        return "unit"
    return preprocessing_for(x.dtype, float(np.min(x)), float(np.max(x)), x.ndim - 1)


def preprocessing_for(dtype, lo: float, hi: float, row_rank: int) -> str:
    """`resolve_preprocessing`'s rule from what it looks at: the dtype, the data's range and
    the rank of one sample (1 for table rows, 2 or more for images); also used on statistics
    gathered in a streaming pass."""
    if np.dtype(dtype) == np.uint8:
        return "unit"
    if (lo >= 0.0 and hi <= 1.0) or (lo >= -1.0 and hi <= 1.0):
        return "none"
    if row_rank >= 2:
        return "minmax"
    return "standard"


def output_activation_for_range(lo: float, hi: float) -> str:
    """The output activation that fits data in [lo, hi]: sigmoid, tanh or linear."""
    eps = 1e-6
    if lo >= -eps and hi <= 1 + eps:
        return "sigmoid"
    if lo >= -1 - eps and hi <= 1 + eps:
        return "tanh"
    return "linear"


class Scaler:
    """Affine scaling ``z = (x - offset) / scale`` fitted on training data.

    Parameters
    ----------
    kind : {"none", "unit", "minmax", "standard"}
        ``"unit"`` divides by 255 (uint8 images); ``"minmax"`` maps the global min and max to
        0 and 1 (images); ``"standard"`` gives each feature zero mean and unit variance (tables).

    Attributes
    ----------
    offset_, scale_ : ndarray
        Broadcastable to one sample's shape.
    data_min_, data_max_ : float
        Range of the training data in the model's space, after scaling.
    """

    def __init__(self, kind: str = "none"):
        self.kind = kind

    def fit(self, x: np.ndarray) -> Scaler:
        check_in(self.kind, "preprocessing", KINDS, owner="Scaler")
        x = np.asarray(x)
        if self.kind == "standard":  # per feature
            flat = x.reshape(len(x), -1).astype(np.float64)
            return self._from_statistics(
                mean=flat.mean(axis=0).reshape(x.shape[1:]),
                std=flat.std(axis=0).reshape(x.shape[1:]),
                low=np.min(x, axis=0), high=np.max(x, axis=0))
        return self._from_statistics(low=np.min(x), high=np.max(x))

    @classmethod
    def from_statistics(cls, kind: str, *, low, high, mean=None, std=None) -> Scaler:
        """The scaler `kind` fits on data whose extremes are `low` and `high` (per feature,
        with the per-feature `mean` and `std`, for "standard"): what a streaming pass over
        data larger than memory gives (`deepae.data.streaming.scaler_for`)."""
        return cls(check_in(kind, "preprocessing", KINDS, owner="Scaler"))._from_statistics(
            low=low, high=high, mean=mean, std=std)

    def _from_statistics(self, *, low, high, mean=None, std=None) -> Scaler:
        lo, hi = float(np.min(low)), float(np.max(high))
        if self.kind == "none":
            offset, scale = np.zeros(()), np.ones(())
        elif self.kind == "unit":
            offset, scale = np.zeros(()), np.full((), 255.0)
        elif self.kind == "minmax":
            offset, scale = np.asarray(lo), np.asarray(hi - lo if hi > lo else 1.0)
        else:
            offset, scale = np.asarray(mean), np.where(np.asarray(std) < 1e-12, 1.0, std)
        self.offset_ = np.asarray(offset, np.float32)
        self.scale_ = np.asarray(scale, np.float32)
        # scaling is increasing: the extremes map to the extremes (computed as `transform`)
        self.data_min_ = float(np.min(self.transform(np.asarray(low))))
        self.data_max_ = float(np.max(self.transform(np.asarray(high))))
        return self

    def transform(self, x: np.ndarray) -> np.ndarray:
        """Map data to the model's space, as float32."""
        x = np.asarray(x, dtype=np.float32)
        if self.kind == "none":
            return x
        return (x - self.offset_) / self.scale_

    def inverse_transform(self, z: np.ndarray) -> np.ndarray:
        """Map model outputs back to the data's units, as float32."""
        z = np.asarray(z, dtype=np.float32)
        if self.kind == "none":
            return z
        return z * self.scale_ + self.offset_

    # persistence: JSON-safe state plus arrays, no pickle
    def get_state(self) -> tuple[dict, dict[str, np.ndarray]]:
        meta = {"kind": self.kind, "data_min": self.data_min_, "data_max": self.data_max_}
        return meta, {"scaler_offset": self.offset_, "scaler_scale": self.scale_}

    @classmethod
    def from_state(cls, meta: dict, arrays: dict[str, np.ndarray]) -> Scaler:
        s = cls(check_in(meta["kind"], "kind", KINDS, owner="Scaler"))
        s.offset_ = np.asarray(arrays["scaler_offset"], np.float32)
        s.scale_ = np.asarray(arrays["scaler_scale"], np.float32)
        s.data_min_, s.data_max_ = float(meta["data_min"]), float(meta["data_max"])
        return s
