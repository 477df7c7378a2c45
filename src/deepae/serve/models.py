"""What each kind of deepae model takes and gives over the protocol.

A `Servable` wraps one loaded estimator: its v2 inputs and outputs (`metadata`), the checks
of a request's tensors against them (`prepare`, which gives arrays whose first axis is the
row), and one call of the estimator's public methods on the rows of one or more requests
(`run`). The server batches what `prepare` gives and splits what `run` gives; it knows
nothing else about the estimator.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass

import numpy as np

from deepae.serve.protocol import InferenceError, Tensor

__all__ = ["Spec", "Servable", "servable"]

FLOATS = ("FP32", "FP64", "FP16")
INTS = ("INT8", "INT16", "INT32", "INT64", "UINT8", "UINT16", "UINT32", "UINT64")
# neighbours a SemanticIndex request may ask for (bounds the response)
MAX_NEIGHBOURS = 10_000
MAX_EXPLAIN = 1_000


@dataclass(frozen=True)
class Spec:
    """One v2 tensor: name, datatype, shape (-1 for a variable dimension, the first is the
    row), and the datatypes a request may send for it."""

    name: str
    datatype: str
    shape: tuple
    accepts: tuple = ()

    def metadata(self) -> dict:
        return {"name": self.name, "datatype": self.datatype, "shape": list(self.shape)}

    def check(self, tensor: Tensor) -> np.ndarray:
        """The tensor's data, checked against this spec."""
        where = f"input {self.name!r}"
        if tensor.datatype not in (self.accepts or (self.datatype,)):
            raise InferenceError(f"Expected {where} as {self.datatype}; received "
                                 f"{tensor.datatype}.")
        shape = tensor.data.shape
        if len(shape) != len(self.shape) or any(
                d != -1 and d != got for d, got in zip(self.shape, shape, strict=True)):
            raise InferenceError(f"Expected {where} of shape {list(self.shape)} (-1: any "
                                 f"size); received shape {list(shape)}.")
        if 0 in shape:  # no rows, no pixels, no channels: nothing any model can work on
            raise InferenceError(f"Expected {where} with no dimension of size 0 (at least one "
                                 f"row, pixel, channel or column); received shape "
                                 f"{list(shape)}.")
        data = tensor.data
        if data.dtype.kind == "f" and np.isinf(data).any():
            raise InferenceError(f"{where.capitalize()} holds infinite values; expected finite "
                                 "numbers.")
        return data


def _positive_int(params: dict, name: str, default, top: int) -> int | None:
    value = params.get(name, default)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or \
            not 1 <= value <= top:
        raise InferenceError(f"Expected the `{name}` parameter as an int from 1 to {top}; "
                             f"received {value!r}.")
    return int(value)


class Servable:
    """A loaded estimator behind the protocol; subclasses give the tensors and the call."""

    inputs: tuple = ()
    outputs: tuple = ()

    def __init__(self, name: str, estimator):
        self.name = name
        self.estimator = estimator

    def metadata(self) -> dict:
        return {"name": self.name, "versions": ["1"], "platform": "deepae",
                "inputs": [s.metadata() for s in self.inputs],
                "outputs": [s.metadata() for s in self.outputs],
                "parameters": {"estimator": type(self.estimator).__name__,
                               **self.parameter_docs()}}

    def parameter_docs(self) -> dict:
        """The request parameters this model reads, with what they do."""
        return {}

    def options(self, params: dict, asked: dict | None) -> tuple:
        """The request parameters that change the call, as a hashable tuple (requests are
        batched together only when these are equal)."""
        return ()

    def prepare(self, inputs: dict[str, Tensor], params: dict, asked=None):
        """(arrays by input name, rows, options): the request's inputs checked against
        `inputs`, every array with the rows on its first axis."""
        names = {s.name for s in self.inputs}
        missing = [s.name for s in self.inputs if s.name not in inputs and not
                   self.optional(s.name)]
        if missing:
            raise InferenceError(f"Model {self.name!r} expects input(s) {missing[:10]}, which "
                                 f"the request lacks; its inputs: {[s.name for s in self.inputs][:40]}.")
        extra = [n for n in inputs if n not in names]
        if extra:
            raise InferenceError(f"Model {self.name!r} has no input(s) {extra[:10]}; its "
                                 f"inputs: {sorted(names)[:40]}.")
        arrays = {s.name: s.check(inputs[s.name]) for s in self.inputs if s.name in inputs}
        rows = {n: len(a) for n, a in arrays.items()}
        if len(set(rows.values())) > 1:
            raise InferenceError(f"Expected the same number of rows in every input; received "
                                 f"{dict(list(rows.items())[:10])}.")
        self.check_values(arrays)
        return arrays, next(iter(rows.values())), self.options(params, asked)

    def optional(self, name: str) -> bool:
        return False

    def check_values(self, arrays: dict) -> None:
        """Checks of the values beyond datatype and shape (NaN where not allowed)."""

    def output_names(self, options: tuple) -> list[str]:
        return [s.name for s in self.outputs]

    def run(self, arrays: dict, options: tuple) -> dict[str, np.ndarray]:
        raise NotImplementedError

    def example(self) -> dict:
        """One row of valid arrays, to warm the model at start-up."""
        return {s.name: np.zeros((1, *[1 if d == -1 else d for d in s.shape[1:]]),
                                 np.float32) for s in self.inputs}


def _rows_float(arr: np.ndarray) -> np.ndarray:
    return arr if arr.dtype in (np.float32, np.float64) else arr.astype(np.float32)


# -- tables: the anomaly detector -------------------------------------------------------------
class TableDetector(Servable):
    """An `AnomalyDetector` fitted on a DataFrame (or with categorical columns): one input per
    column, shape [n]; FP32 numbers (NaN is missing unless its policy is 'reject') or BYTES
    categories. Outputs score (FP64, `decision_function`) and label (INT64, `predict`); with
    the `explain` parameter, the top-k columns of each row (`explain`)."""

    def __init__(self, name, estimator):
        super().__init__(name, estimator)
        cols = estimator.describe()["columns"]
        self.numeric, self.categorical = list(cols["numeric"]), list(cols["categorical"])
        self.reject_missing = cols["missing"] == "reject"
        order = getattr(estimator, "feature_names_in_", None)
        self.by_name = order is not None  # fitted on a DataFrame: it takes one again
        if order is None:  # fitted on an array: columns x0, x1, ... in that order
            order = sorted(self.numeric + self.categorical, key=lambda c: int(c[1:]))
        self.columns = [str(c) for c in order]
        self.inputs = tuple(
            Spec(c, "FP32", (-1,), FLOATS + INTS) if c in self.numeric else
            Spec(c, "BYTES", (-1,), ("BYTES", "BOOL") + INTS) for c in self.columns)
        self.outputs = (Spec("score", "FP64", (-1,)), Spec("label", "INT64", (-1,)),
                        Spec("explanation_column", "BYTES", (-1, -1)),
                        Spec("explanation_share", "FP32", (-1, -1)))

    def parameter_docs(self):
        return {"explain": "int k: also the k columns behind each row's score "
                           "(explanation_column, explanation_share), largest first",
                "missing": "NaN is a missing number" + (
                    " (refused: this detector's policy is 'reject')" * self.reject_missing)}

    def options(self, params, asked):
        k = _positive_int(params, "explain", None, MAX_EXPLAIN)
        if k is None and "top_k" in params:
            k = _positive_int(params, "top_k", None, MAX_EXPLAIN)
        if k is None and asked and {"explanation_column", "explanation_share"} & set(asked):
            k = 3
        return (k,)

    def output_names(self, options):
        return ["score", "label"] + (["explanation_column", "explanation_share"]
                                     if options[0] else [])

    def check_values(self, arrays):
        if not self.reject_missing:
            return
        for c in self.numeric:
            a = arrays[c]
            if a.dtype.kind == "f" and np.isnan(a).any():
                raise InferenceError(f"Input {c!r} holds {int(np.isnan(a).sum())} NaN "
                                     "value(s), and this detector's missing-value policy is "
                                     "'reject'; expected numbers.")

    def _table(self, arrays):
        import pandas as pd

        cols = {}
        for c in self.columns:
            a = arrays[c]
            if c in self.categorical and a.dtype == object:
                try:
                    a = np.asarray([v.decode() for v in a], dtype=object)
                except UnicodeDecodeError:
                    raise InferenceError(f"Expected UTF-8 text in input {c!r}.") from None
            cols[c] = a.astype(np.float64) if c in self.numeric else a
        frame = pd.DataFrame(cols, columns=self.columns)
        return frame if self.by_name else frame.to_numpy(dtype=object)

    def run(self, arrays, options):
        det, X = self.estimator, self._table(arrays)
        score = np.asarray(det.decision_function(X), np.float64)
        out = {"score": score, "label": (score > det.threshold_).astype(np.int64)}
        k = options[0]
        if k:
            ex = det.explain(X, top_k=k, only_flagged=False)
            k = int(ex["rank"].max())
            out["explanation_column"] = np.asarray(
                [str(c).encode() for c in ex["column"]], dtype=object).reshape(-1, k)
            out["explanation_share"] = ex["share"].to_numpy(np.float32).reshape(-1, k)
        return out

    def example(self):
        return {c: (np.zeros(1, np.float32) if c in self.numeric else
                    np.asarray([b""], dtype=object)) for c in self.columns}


class ArrayDetector(Servable):
    """An `AnomalyDetector` fitted on a numeric array: input x [n, d]."""

    def __init__(self, name, estimator):
        super().__init__(name, estimator)
        self.inputs = (Spec("x", "FP32", (-1, int(estimator.n_features_in_)), FLOATS),)
        self.outputs = (Spec("score", "FP64", (-1,)), Spec("label", "INT64", (-1,)))
        self.reject_missing = estimator.describe()["columns"]["missing"] == "reject"

    def check_values(self, arrays):
        if self.reject_missing and np.isnan(arrays["x"]).any():
            raise InferenceError("Input 'x' holds NaN value(s), and this detector's "
                                 "missing-value policy is 'reject'; expected numbers.")

    def run(self, arrays, options):
        score = np.asarray(self.estimator.decision_function(arrays["x"]), np.float64)
        return {"score": score, "label": (score > self.estimator.threshold_).astype(np.int64)}


# -- arrays: reducer, autoencoder, hasher, index --------------------------------------------------
class _FiniteX(Servable):
    def check_values(self, arrays):
        x = arrays["x"]
        if x.dtype.kind == "f" and np.isnan(x).any():
            raise InferenceError("Input 'x' holds NaN value(s); expected numbers.")


class Reducer(_FiniteX):
    """`AutoencoderReducer`: x [n, d] -> codes [n, k] (`transform`)."""

    def __init__(self, name, estimator):
        super().__init__(name, estimator)
        k = int(estimator.describe()["latent_dim"])
        self.inputs = (Spec("x", "FP32", (-1, int(estimator.n_features_in_)), FLOATS),)
        self.outputs = (Spec("codes", "FP32", (-1, k)),)

    def run(self, arrays, options):
        return {"codes": np.asarray(self.estimator.transform(arrays["x"]), np.float32)}


class AutoencoderModel(_FiniteX):
    """`Autoencoder`: x [n, *input_shape] -> codes (`encode`) and reconstruction
    (`reconstruct`)."""

    def __init__(self, name, estimator):
        super().__init__(name, estimator)
        info = estimator.describe()
        shape = tuple(int(d) for d in info["input_shape"])
        self.inputs = (Spec("x", "FP32", (-1, *shape), FLOATS),)
        self.outputs = (Spec("codes", "FP32", (-1, int(info["latent_dim"]))),
                        Spec("reconstruction", "FP32", (-1, *shape)))

    def run(self, arrays, options):
        x = _rows_float(arrays["x"])
        return {"codes": np.asarray(self.estimator.encode(x), np.float32),
                "reconstruction": np.asarray(self.estimator.reconstruct(x), np.float32)}


class Hasher(_FiniteX):
    """`SemanticHasher`: x [n, d] -> packed codes UINT8 [n, ceil(n_bits / 8)]."""

    def __init__(self, name, estimator):
        super().__init__(name, estimator)
        info = estimator.describe()
        self.inputs = (Spec("x", "FP32", (-1, int(info["features"])), FLOATS),)
        self.outputs = (Spec("codes", "UINT8", (-1, math.ceil(int(info["n_bits"]) / 8))),)

    def run(self, arrays, options):
        return {"codes": np.asarray(self.estimator.transform(arrays["x"]), np.uint8)}


class Index(_FiniteX):
    """`SemanticIndex`: x [n, d] -> the k nearest stored items' ids and Hamming distances
    [n, k] (`nearest`; k = min(parameter k, items))."""

    def __init__(self, name, estimator):
        super().__init__(name, estimator)
        d = int(estimator.describe()["features"])
        self.inputs = (Spec("x", "FP32", (-1, d), FLOATS),)
        self.outputs = (Spec("ids", "INT64", (-1, -1)), Spec("distances", "INT64", (-1, -1)))

    def parameter_docs(self):
        return {"k": "int, default 10: neighbours per query",
                "radius": "int, default 2: Hamming radius of the hash-table lookup"}

    def options(self, params, asked):
        return (_positive_int(params, "k", 10, MAX_NEIGHBOURS),
                _positive_int(params, "radius", 2, 64))

    def run(self, arrays, options):
        k, radius = options
        radius = min(radius, int(self.estimator.n_bits))
        found = self.estimator.nearest(arrays["x"], k=k, radius=radius)
        width = min(k, len(self.estimator))
        ids = np.stack([np.asarray(i, np.int64) for i, _ in found]) if width else \
            np.zeros((len(found), 0), np.int64)
        dist = np.stack([np.asarray(d, np.int64) for _, d in found]) if width else \
            np.zeros((len(found), 0), np.int64)
        return {"ids": ids.reshape(len(found), width), "distances": dist.reshape(len(found), width)}


# -- images: the restorers ----------------------------------------------------------------------
def _image_spec(estimator) -> Spec:
    c = int(estimator.n_channels_)
    # any channel count (each through the grey model), or 1 and 3 with a colour network
    # (the model refuses other counts)
    paired = getattr(estimator, "colour_model_", None) is not None
    channels = -1 if c == 1 and (bool(estimator.per_channel) or paired) else c
    return Spec("x", "FP32", (-1, -1, -1, channels), FLOATS)


class _Images(_FiniteX):
    def example(self):
        c = self.inputs[0].shape[-1]
        return {"x": np.zeros((1, 64, 64, 1 if c == -1 else c), np.float32)}


class DenoiserModel(_Images):
    """`Denoiser`: images x [n, h, w, c] in [0, 1] -> image (`transform`); in mode 'given'
    the noise level is the input sigma [n] or the parameter sigma."""

    def __init__(self, name, estimator):
        super().__init__(name, estimator)
        self.given = estimator.mode == "given"
        self.inputs = (_image_spec(estimator),) + (
            (Spec("sigma", "FP32", (-1,), FLOATS),) if self.given else ())
        self.outputs = (Spec("image", "FP32", (-1, -1, -1, self.inputs[0].shape[-1])),)

    def optional(self, name):
        return name == "sigma"

    def parameter_docs(self):
        return {"sigma": "float in [0, 1]: the noise level, for every image (or the input "
                         "sigma, one per image)"} if self.given else {}

    def options(self, params, asked):
        sigma = params.get("sigma")
        if sigma is not None and (isinstance(sigma, bool) or not isinstance(
                sigma, numbers.Real) or not 0 <= sigma <= 1):
            raise InferenceError(f"Expected the `sigma` parameter as a number in [0, 1]; "
                                 f"received {sigma!r}.")
        if sigma is not None and not self.given:
            raise InferenceError(f"Model {self.name!r} is a blind denoiser: it takes no "
                                 "`sigma` parameter.")
        return (None if sigma is None else float(sigma),)

    def prepare(self, inputs, params, asked=None):
        arrays, n, options = super().prepare(inputs, params, asked)
        if self.given and ("sigma" in arrays) == (options[0] is not None):
            raise InferenceError(f"Model {self.name!r} denoises with a given noise level: "
                                 "expected either the input 'sigma' [n] or the `sigma` "
                                 "parameter; received " + ("both." if options[0] is not None
                                                           else "neither."))
        if options[0] is not None:  # one sigma for the batch: a column, so rows can merge
            arrays["sigma"] = np.full(n, options[0], np.float32)
        return arrays, n, ()

    def check_values(self, arrays):
        super().check_values(arrays)
        s = arrays.get("sigma")
        if s is not None and (np.isnan(s).any() or s.min() < 0 or s.max() > 1):
            raise InferenceError("Expected input 'sigma' in [0, 1]; received values from "
                                 f"{float(np.nanmin(s))} to {float(np.nanmax(s))}.")

    def example(self):
        out = super().example()
        if self.given:
            out["sigma"] = np.zeros(1, np.float32)
        return out

    def run(self, arrays, options):
        x = _rows_float(arrays["x"])
        if not self.given:
            return {"image": np.asarray(self.estimator.transform(x), np.float32)}
        sigma = arrays["sigma"]
        out = np.empty(x.shape, np.float32)
        for s in np.unique(sigma):
            rows = np.flatnonzero(sigma == s)
            out[rows] = self.estimator.transform(x[rows], sigma=float(s))
        return {"image": out}


class UpscalerModel(_Images):
    """`SuperResolver`: images x [n, h, w, c] in [0, 1] -> image [n, scale h, scale w, c]."""

    def __init__(self, name, estimator):
        super().__init__(name, estimator)
        self.inputs = (_image_spec(estimator),)
        self.outputs = (Spec("image", "FP32", (-1, -1, -1, self.inputs[0].shape[-1])),)

    def run(self, arrays, options):
        return {"image": np.asarray(self.estimator.transform(_rows_float(arrays["x"])),
                                    np.float32)}


def servable(name: str, estimator) -> Servable:
    """The `Servable` for a loaded deepae estimator; TypeError for a kind not served."""
    from deepae.apps.autoencoder import Autoencoder
    from deepae.apps.detect import AnomalyDetector
    from deepae.apps.hashing import SemanticHasher, SemanticIndex
    from deepae.apps.reduce import AutoencoderReducer
    from deepae.apps.restore import Denoiser, SuperResolver

    if isinstance(estimator, AnomalyDetector):
        table = hasattr(estimator, "feature_names_in_") or bool(
            estimator.describe()["columns"]["categorical"])
        return (TableDetector if table else ArrayDetector)(name, estimator)
    kinds = [(AutoencoderReducer, Reducer), (Autoencoder, AutoencoderModel),
             (SemanticHasher, Hasher), (SemanticIndex, Index), (Denoiser, DenoiserModel),
             (SuperResolver, UpscalerModel)]
    for cls, wrapper in kinds:
        if isinstance(estimator, cls):
            return wrapper(name, estimator)
    raise TypeError(f"deepae serve serves AnomalyDetector, AutoencoderReducer, Autoencoder, "
                    f"SemanticHasher, SemanticIndex, Denoiser and SuperResolver models; "
                    f"received a {type(estimator).__name__}.")
