"""Errors raised by deepae. Each subclasses the builtin a caller would catch."""

__all__ = ["DeepAEError", "ArtifactError", "BitstreamError", "DataNotFoundError", "TrainingError",
           "InvalidParameterError"]


class DeepAEError(Exception):
    """Base class of every error deepae raises on purpose."""


class ArtifactError(DeepAEError, ValueError):
    """A saved model file is corrupted, truncated, foreign or of an unknown format version."""


class DataNotFoundError(DeepAEError, FileNotFoundError):
    """A data set was found in none of the places searched."""


class TrainingError(DeepAEError, FloatingPointError):
    """Training diverged (NaN or inf loss) and was stopped."""


class BitstreamError(DeepAEError, ValueError):
    """A compressed file is truncated, corrupted, foreign, of an unknown format version, or
    was written by another model than the one asked to decode it."""


class InvalidParameterError(DeepAEError, ValueError, TypeError):
    """An estimator's parameter is not one its table of constraints allows (a `ValueError`
    and a `TypeError`, as scikit-learn's error of the same name)."""
