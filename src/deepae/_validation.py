"""Input checks shared by the model, the data loaders and the CLI.

Every message names the argument, what was expected and what was received.
"""

from __future__ import annotations

import numbers
import warnings

import numpy as np

__all__ = ["as_array", "check_positive_int", "check_fraction", "check_in", "check_units"]


def _describe(x) -> str:
    return f"{type(x).__name__} {x!r}" if np.ndim(x) == 0 else type(x).__name__


def as_array(x, name: str = "x", *, min_rank: int = 2, allow_nan: bool = False) -> np.ndarray:
    """Return `x` as a numeric NumPy array, or raise an error that says what is wrong.

    Accepts arrays, nested lists and pandas DataFrames with numeric columns. Integer and
    unsigned (uint8 image) arrays keep their dtype; booleans become float32.
    """
    if x is None:
        raise TypeError(f"Expected `{name}` to be an array; received None.")
    if hasattr(x, "dtypes") and hasattr(x, "columns"):  # pandas DataFrame
        bad = [str(c) for c, dt in zip(x.columns, x.dtypes, strict=True)
               if getattr(dt, "kind", "O") not in "biuf"]
        if bad:
            raise TypeError(
                f"Expected `{name}` with numeric columns only; received non-numeric "
                f"column(s) {bad[:5]}{' ...' if len(bad) > 5 else ''}. Encode or drop them first."
            )
        x = x.to_numpy()
    if isinstance(x, str | bytes):
        raise TypeError(f"Expected `{name}` to be an array; received {type(x).__name__} {x!r}.")
    try:
        arr = np.asarray(x)
    except (ValueError, TypeError) as e:
        raise ValueError(
            f"Expected `{name}` to be a rectangular numeric array; could not convert it: {e}"
        ) from e
    if arr.dtype == bool:
        arr = arr.astype(np.float32)
    if arr.dtype == object or not np.issubdtype(arr.dtype, np.number):
        raise TypeError(
            f"Expected `{name}` with a numeric dtype; received dtype {arr.dtype}"
            + (" (mixed or ragged values)" if arr.dtype == object else "") + "."
        )
    if np.issubdtype(arr.dtype, np.complexfloating):
        raise TypeError(f"Expected `{name}` with real values; received dtype {arr.dtype}.")
    if arr.ndim < min_rank:
        hint = ""
        if arr.ndim == 1 and min_rank == 2:
            hint = " Use x.reshape(-1, 1) for one feature or x.reshape(1, -1) for one sample."
        raise ValueError(
            f"Expected `{name}` with at least {min_rank} dimensions (n_samples, ...); "
            f"received an array of shape {arr.shape}.{hint}"
        )
    if arr.shape[0] == 0 or arr.size == 0:
        raise ValueError(
            f"Expected `{name}` with at least one sample and one feature; received shape {arr.shape}."
        )
    if not allow_nan and np.issubdtype(arr.dtype, np.floating):
        # min and max propagate NaN and show inf without a temporary array of the data's size
        if not (np.isfinite(arr.min()) and np.isfinite(arr.max())):
            finite = np.isfinite(arr)
            n_nan = int(np.isnan(arr).sum())
            n_inf = int(arr.size - finite.sum() - n_nan)
            raise ValueError(
                f"Expected `{name}` with finite values; received {n_nan} NaN and {n_inf} inf "
                f"value(s) (first at index {tuple(int(i) for i in np.argwhere(~finite)[0])})."
            )
    return arr


def check_positive_int(value, name: str, *, minimum: int = 1, owner: str = "") -> int:
    """Return `value` as int if it is an integer >= `minimum`, else raise."""
    where = f" of {owner}" if owner else ""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(
            f"The '{name}' parameter{where} must be an int in the range [{minimum}, inf). "
            f"Got {_describe(value)} instead."
        )
    if value < minimum:
        raise ValueError(
            f"The '{name}' parameter{where} must be an int in the range [{minimum}, inf). "
            f"Got {value} instead."
        )
    return int(value)


def check_fraction(value, name: str, *, owner: str = "", closed_low: bool = True) -> float:
    """Return `value` if it is a real number in [0, 1) ((0, 1) if not `closed_low`)."""
    where = f" of {owner}" if owner else ""
    rng = "[0, 1)" if closed_low else "(0, 1)"
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"The '{name}' parameter{where} must be a float in {rng}. "
                        f"Got {_describe(value)} instead.")
    ok = (0 <= value < 1) if closed_low else (0 < value < 1)
    if not ok:
        raise ValueError(f"The '{name}' parameter{where} must be a float in {rng}. "
                         f"Got {value} instead.")
    return float(value)


def check_in(value, name: str, options, *, owner: str = ""):
    """Return `value` if it is one of `options`, else raise naming them all."""
    where = f" of {owner}" if owner else ""
    if value not in options:
        raise ValueError(
            f"The '{name}' parameter{where} must be one of {sorted(map(str, options))}. "
            f"Got {value!r} instead."
        )
    return value


def check_units(value, name: str, *, owner: str = "", allow_empty: bool = True) -> tuple[int, ...]:
    """Return a tuple of positive layer sizes, accepting an int, a list or a tuple."""
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        value = (value,)
    if not isinstance(value, list | tuple):
        raise TypeError(f"The '{name}' parameter of {owner or 'the model'} must be a tuple of "
                        f"positive ints. Got {_describe(value)} instead.")
    if not value and not allow_empty:
        raise ValueError(f"The '{name}' parameter of {owner or 'the model'} must not be empty.")
    out = []
    for i, v in enumerate(value):
        if isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < 1:
            raise ValueError(
                f"The '{name}' parameter of {owner or 'the model'} must hold positive ints; "
                f"got {v!r} at position {i} in {tuple(value)!r}."
            )
        out.append(int(v))
    return tuple(out)


def warn_no_compression(latent_dim: int, n_features: int) -> None:
    if latent_dim >= n_features:
        warnings.warn(
            f"latent_dim={latent_dim} is not smaller than the input's {n_features} features: "
            "nothing is compressed, and the autoencoder can learn the identity.",
            UserWarning,
            stacklevel=3,
        )


def check_binary_labels(y, name: str = "y", *, n: int | None = None) -> np.ndarray:
    """Return `y` as a bool array (True = anomaly) if it holds only 0/1 labels, else raise."""
    y = np.asarray(y).ravel()
    if n is not None and y.shape[0] != n:
        raise ValueError(f"Expected `{name}` with {n} labels, one per row; received {y.shape[0]}.")
    if y.dtype == object or not (np.issubdtype(y.dtype, np.number) or y.dtype == bool):
        raise TypeError(f"Expected `{name}` with labels 0 (normal) and 1 (anomaly); received "
                        f"dtype {y.dtype}.")
    values = set(np.unique(y).tolist())
    if not values <= {0, 1}:
        raise ValueError(f"Expected `{name}` with labels 0 (normal) and 1 (anomaly); received "
                         f"values {sorted(values)[:10]}.")
    return y.astype(bool)


def check_positive_float(value, name: str, *, owner: str = "") -> float:
    """Return `value` as float if it is a real number > 0, else raise."""
    where = f" of {owner}" if owner else ""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not value > 0:
        raise ValueError(f"The '{name}' parameter{where} must be a float in the range (0, inf). "
                         f"Got {value!r} instead.")
    return float(value)


# -- declarative parameter constraints ------------------------------------------------------
# Each estimator states what every parameter may be in one table, `_parameter_constraints`
# (modelled on scikit-learn's, whose module is private: this is ours), checked by
# `validate_params` with scikit-learn's wording. Checks that tie parameters together stay in
# the estimator's own code.

class Interval:
    """A range of numbers: ``Interval(numbers.Integral, 1, None)`` is [1, inf)."""

    def __init__(self, kind, left, right, *, closed: str = "both"):
        self.kind, self.left, self.right, self.closed = kind, left, right, closed

    def is_satisfied_by(self, value) -> bool:
        if isinstance(value, bool) or not isinstance(value, self.kind):
            return False
        if not isinstance(value, numbers.Integral) and not np.isfinite(value):
            return False
        lo_ok = self.left is None or (value >= self.left if self.closed in ("left", "both")
                                      else value > self.left)
        hi_ok = self.right is None or (value <= self.right if self.closed in ("right", "both")
                                       else value < self.right)
        return bool(lo_ok and hi_ok)

    def __str__(self) -> str:
        kind = "an int" if self.kind is numbers.Integral else "a float"
        lo = "-inf" if self.left is None else self.left
        hi = "inf" if self.right is None else self.right
        lb = "[" if self.closed in ("left", "both") and self.left is not None else "("
        rb = "]" if self.closed in ("right", "both") and self.right is not None else ")"
        return f"{kind} in the range {lb}{lo}, {hi}{rb}"


class Options:
    """One of a few values: ``Options(str, {"auto", "none"})``."""

    def __init__(self, kind, values):
        self.kind, self.values = kind, set(values)

    def is_satisfied_by(self, value) -> bool:
        return isinstance(value, self.kind) and not isinstance(value, bool) and \
            value in self.values

    def __str__(self) -> str:
        kind = "a str" if self.kind is str else "an int"
        return f"{kind} among {{{', '.join(repr(v) for v in sorted(self.values))}}}"


class Constraint:
    def __init__(self, text, test):
        self.text, self.test = text, test

    def is_satisfied_by(self, value) -> bool:
        return bool(self.test(value))

    def __str__(self) -> str:
        return self.text


def _units_ok(value, allow_empty=True) -> bool:
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        value = (value,)  # one layer
    return isinstance(value, list | tuple) and (allow_empty or len(value) > 0) and all(
        isinstance(v, numbers.Integral) and not isinstance(v, bool) and v >= 1 for v in value)


BOOLEAN = Constraint("a bool", lambda v: isinstance(v, bool | np.bool_))
CALLABLE = Constraint("a callable", callable)
UNITS = Constraint("a tuple of positive ints", _units_ok)
NONEMPTY_UNITS = Constraint("a non-empty tuple of positive ints",
                             lambda v: _units_ok(v, allow_empty=False))
PATH = Constraint("a str or a path", lambda v: isinstance(v, str) or hasattr(v, "__fspath__"))
CALLBACKS = Constraint("a list of Keras callbacks", lambda v: isinstance(v, list | tuple) and all(
    hasattr(c, "set_model") and hasattr(c, "on_epoch_end") for c in v))
OPTIMIZER = Constraint("a Keras optimizer", lambda v: hasattr(v, "apply_gradients"))
COLUMNS = Constraint("a list of column names", lambda v: isinstance(v, list | tuple) and all(
    isinstance(c, str) for c in v))
NO_VALIDATION = Constraint("anything", lambda v: True)  # checked where it is used
VERBOSE = Constraint("an int, a bool or 'auto'", lambda v: v == "auto" or isinstance(
    v, numbers.Integral))
RANDOM_STATE = Interval(numbers.Integral, 0, 2 ** 32 - 1)  # NumPy's and Keras's seeds
POSITIVE_INT = Interval(numbers.Integral, 1, None)
POSITIVE_FLOAT = Interval(numbers.Real, 0, None, closed="neither")
# what every estimator's training run takes
RUN_CONSTRAINTS = {"callbacks": [CALLBACKS, None], "checkpoint_dir": [PATH, None],
                   "resume": [BOOLEAN], "random_state": [RANDOM_STATE, None],
                   "strategy": [NO_VALIDATION], "verbose": [VERBOSE]}


def _describe_allowed(allowed) -> str:
    texts = [str(c) if c is not None else "None" for c in allowed]
    return texts[0] if len(texts) == 1 else ", ".join(texts[:-1]) + " or " + texts[-1]


def validate_params(owner: str, constraints: dict, params: dict) -> None:
    """Check each of `params` against its entry of `constraints` (a list of what it may be:
    `Interval`, `Options`, a constraint such as `BOOLEAN`, a type, or None); raise
    `InvalidParameterError` in scikit-learn's words for the first that fits none."""
    from deepae.exceptions import InvalidParameterError

    for name, allowed in constraints.items():
        value = params[name]
        for c in allowed:
            if c is None:
                if value is None:
                    break
            elif isinstance(c, type):
                if isinstance(value, c) and not isinstance(value, bool):
                    break
            elif c.is_satisfied_by(value):
                break
        else:
            raise InvalidParameterError(
                f"The '{name}' parameter of {owner} must be {_describe_allowed(allowed)}. "
                f"Got {value!r} instead.")
