"""Tables as they come (DataFrames, CSV, Parquet) turned into the matrix an autoencoder sees.

`TabularPreprocessor` is fitted once, on normal data, and travels inside the model artifact
as JSON: numeric columns are standardised, categorical columns one-hot encoded (a category
never seen in fit encodes as all zeros), and missing values follow an explicit policy.
Every error names the column at fault.
"""

from __future__ import annotations

import numbers

import numpy as np

from deepae._validation import check_in

__all__ = ["TabularPreprocessor", "MISSING_POLICIES", "read_table", "iter_table"]

MISSING_POLICIES = ("impute", "indicator", "reject")


def _is_frame(x) -> bool:
    return hasattr(x, "columns") and hasattr(x, "dtypes") and hasattr(x, "iloc")


def _is_stream(path) -> bool:
    """A binary file object (the command line's standard input): read as CSV."""
    return hasattr(path, "read")


def _where(path) -> str:
    return str(getattr(path, "name", "<stream>")) if _is_stream(path) else str(path)


def _table_format(path) -> str:
    """"parquet" or "csv" from the file name; raise if the file is missing or neither."""
    from pathlib import Path

    if _is_stream(path):
        return "csv"
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"No table at {str(path)!r}.")
    name = path.name.lower()
    if name.endswith((".parquet", ".pq")):
        return "parquet"
    if name.endswith((".csv", ".csv.gz", ".txt")):
        return "csv"
    raise ValueError(f"Expected a .csv or .parquet table; received {str(path)!r}.")


def _empty(path, header: bool) -> ValueError:
    what = "has a header but no rows" if header else "is empty: no header and no rows"
    return ValueError(f"The table {_where(path)!r} {what}.")


def _not_text(path, e: UnicodeDecodeError) -> ValueError:
    return ValueError(f"Expected CSV text (UTF-8) in the table {_where(path)!r}; received "
                      f"bytes that are not UTF-8 text (byte 0x{e.object[e.start]:02x}).")


def read_table(path, **kwargs):
    """Read a CSV (``.csv``, ``.csv.gz``) or Parquet (``.parquet``, ``.pq``) file as a DataFrame.

    `path` may also be a binary file object, read as CSV (its ``name`` names it in errors).
    """
    try:
        import pandas as pd
    except ImportError as e:  # pragma: no cover - pandas is in the tables extra
        raise ImportError('Reading tables needs pandas: pip install "deepae[tables]"') from e
    if _table_format(path) == "parquet":
        frame = pd.read_parquet(path, **kwargs)
    else:
        try:
            frame = pd.read_csv(path, **kwargs)
        except pd.errors.EmptyDataError as e:
            raise _empty(path, header=False) from e
        except UnicodeDecodeError as e:
            raise _not_text(path, e) from e
    if len(frame) == 0:
        raise _empty(path, header=True)
    return frame


class TabularPreprocessor:
    """Standardise numeric columns, one-hot encode categorical ones, handle missing values.

    Parameters
    ----------
    missing : {"impute", "indicator", "reject"}, default="impute"
        ``"impute"``: a missing number becomes the column's median on the fitted data (0
        after scaling), a missing category encodes as all zeros (like an unknown one);
        ``"indicator"``: the same, plus a 0/1 column per numeric column that had missing
        values in fit, so that missingness itself can look anomalous; ``"reject"``: any
        missing value raises an error naming the column.
    categorical_columns : sequence of str, optional
        Columns to one-hot encode even if numeric (codes such as a merchant category).
        Non-numeric columns (strings, categories, booleans stored as objects) always are.
    max_categories : int, default=100
        The most frequent categories kept per column; rarer ones encode like unknown ones.

    Attributes
    ----------
    columns_ : list of str
        The input columns, in order (``x0``, ``x1``, ... for arrays).
    numeric_ : list of str
    categories_ : dict of str -> list of str
    mean_, scale_, median_ : ndarray, one value per numeric column
    feature_names_out_ : list of str
        One name per output feature (``amount``, ``merchant=food``, ``amount_missing``).
    groups_ : ndarray of int
        For each output feature, the index in `columns_` of the column it comes from.
    """

    def __init__(self, *, missing="impute", categorical_columns=None, max_categories=100):
        self.missing = missing
        self.categorical_columns = categorical_columns
        self.max_categories = max_categories

    # -- fit ---------------------------------------------------------------------------------
    def fit(self, X):
        check_in(self.missing, "missing", MISSING_POLICIES, owner="TabularPreprocessor")
        frame = self._as_frame(X, "X", fitting=True)
        forced = [str(c) for c in (self.categorical_columns or ())]
        unknown = [c for c in forced if c not in frame]
        if unknown:
            raise ValueError(f"The 'categorical_columns' parameter names column(s) {unknown} "
                             f"that are not in the data; its columns are {list(frame)[:20]}.")
        self.columns_ = [str(c) for c in frame.columns]
        self.numeric_, self.categories_ = [], {}
        for col in self.columns_:
            values = frame[col]
            if col not in forced and _numeric_kind(values):
                self.numeric_.append(col)
            else:
                self.categories_[col] = _top_categories(values, self.max_categories)
        if self.missing == "reject":
            self._reject_missing(frame)
        num = self._numeric_block(frame, fitting=True)
        finite = np.where(np.isnan(num), np.nan, num)
        with np.errstate(all="ignore"):
            import warnings

            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns
                median = np.nanmedian(finite, axis=0) if num.size else np.zeros(0)
                mean = np.nanmean(finite, axis=0) if num.size else np.zeros(0)
                std = np.nanstd(finite, axis=0) if num.size else np.zeros(0)
        self.median_ = np.nan_to_num(median).astype(np.float64)
        self.mean_ = np.nan_to_num(mean).astype(np.float64)
        std = np.nan_to_num(std)
        self.scale_ = np.where(std > 1e-12, std, 1.0).astype(np.float64)
        self.indicators_ = ([c for i, c in enumerate(self.numeric_) if np.isnan(num[:, i]).any()]
                            if self.missing == "indicator" else [])
        self._finish()
        return self

    def _finish(self):
        names, groups = [], []
        index = {c: i for i, c in enumerate(self.columns_)}
        for c in self.numeric_:
            names.append(c)
            groups.append(index[c])
        for c, cats in self.categories_.items():
            names += [f"{c}={v}" for v in cats]
            groups += [index[c]] * len(cats)
        for c in self.indicators_:
            names.append(f"{c}_missing")
            groups.append(index[c])
        self.feature_names_out_ = names
        self.groups_ = np.asarray(groups, dtype=np.int64)
        self._num_index = np.asarray([index[c] for c in self.numeric_], dtype=np.int64)
        self._ind_pos = np.asarray([self.numeric_.index(c) for c in self.indicators_],
                                   dtype=np.int64)

    @property
    def n_features_out(self) -> int:
        return len(self.feature_names_out_)

    # -- transform ---------------------------------------------------------------------------
    def transform(self, X) -> np.ndarray:
        """The model's matrix for `X`: float32 of shape (n_rows, n_features_out)."""
        if not hasattr(self, "columns_"):
            from sklearn.exceptions import NotFittedError

            raise NotFittedError("This TabularPreprocessor is not fitted yet; call fit(X).")
        frame = self._as_frame(X, "X", fitting=False)
        if self.missing == "reject":
            self._reject_missing(frame)
        num = self._numeric_block(frame, fitting=False)  # float64, a new array: ours to change
        missing = np.isnan(num)
        out = np.empty((len(frame), self.n_features_out), dtype=np.float32)
        k = len(self.numeric_)
        if k:
            if missing.any():
                num = np.where(missing, self.median_, num)
            num -= self.mean_  # in place: no temporary the size of the data
            num /= self.scale_
            out[:, :k] = num
        pos = k
        for col, cats in self.categories_.items():
            codes = _category_codes(frame[col], cats)
            block = out[:, pos: pos + len(cats)]
            block[:] = 0.0
            rows = np.flatnonzero(codes >= 0)
            block[rows, codes[rows]] = 1.0
            pos += len(cats)
        if len(self._ind_pos):
            out[:, pos:] = missing[:, self._ind_pos]
        return out

    def fit_transform(self, X) -> np.ndarray:
        return self.fit(X).transform(X)

    def column_contributions(self, feature_values: np.ndarray) -> np.ndarray:
        """Sum per-feature values (n, n_features_out) into per-column values (n, n_columns)."""
        out = np.zeros((len(feature_values), len(self.columns_)), dtype=np.float64)
        np.add.at(out.T, self.groups_, np.asarray(feature_values, np.float64).T)
        return out

    # -- checks ------------------------------------------------------------------------------
    def _as_frame(self, X, name, *, fitting):
        import pandas as pd

        if _is_frame(X):
            frame = X if all(isinstance(c, str) for c in X.columns) else X.rename(columns=str)
        else:
            if isinstance(X, str | bytes) or X is None:
                raise TypeError(f"Expected `{name}` to be a DataFrame or a 2-d array; received "
                                f"{type(X).__name__} {X!r}.")
            arr = np.asarray(X)
            if arr.ndim == 1 and arr.dtype != object:
                raise ValueError(f"Expected `{name}` as a 2-d array (n_rows, n_columns); "
                                 f"received shape {arr.shape}. Use x.reshape(-1, 1) for one "
                                 "column.")
            if arr.ndim != 2:
                raise ValueError(f"Expected `{name}` as a 2-d array (n_rows, n_columns); "
                                 f"received shape {arr.shape}.")
            names = self.columns_ if not fitting and hasattr(self, "columns_") else [
                f"x{i}" for i in range(arr.shape[1])]
            if not fitting and arr.shape[1] != len(names):
                raise ValueError(f"`{name}` has {arr.shape[1]} columns, but the model was fitted "
                                 f"on {len(names)}: {names[:20]}.")
            frame = pd.DataFrame(arr, columns=names)
        if len(frame) == 0 or frame.shape[1] == 0:
            raise ValueError(f"Expected `{name}` with at least one row and one column; received "
                             f"shape {frame.shape}.")
        if len(set(frame.columns)) != frame.shape[1]:
            dup = sorted({c for c in frame.columns if list(frame.columns).count(c) > 1})
            raise ValueError(f"`{name}` has duplicated column name(s) {dup}.")
        if not fitting:
            frame = self.align(frame, name)
        return frame

    def align(self, frame, name="X"):
        """`frame` with the fitted columns in the fitted order; raise naming any column that
        is missing or unknown."""
        missing = [c for c in self.columns_ if c not in frame.columns]
        if missing:
            raise ValueError(f"`{name}` lacks column(s) {missing[:10]} that the model was "
                             f"fitted on (expected columns: {self.columns_[:20]}).")
        known = set(self.columns_)
        extra = [str(c) for c in frame.columns if c not in known]
        if extra:
            raise ValueError(f"`{name}` has unknown column(s) {extra[:10]} that the model "
                             "was not fitted on; drop them (CLI: --id-column / "
                             "--label-column / --drop).")
        if list(frame.columns) != self.columns_:
            frame = frame[self.columns_]
        return frame

    def _numeric_block(self, frame, *, fitting) -> np.ndarray:
        cols = self.numeric_
        # column-major: each column is written (and later checked) contiguously
        out = np.empty((len(frame), len(cols)), dtype=np.float64, order="F")
        for i, c in enumerate(cols):
            out[:, i] = _to_float(frame[c], c)
        bad = np.isinf(out)
        if bad.any():
            j = int(np.argwhere(bad)[0][1])
            raise ValueError(f"Column {cols[j]!r} holds {int(bad[:, j].sum())} infinite "
                             "value(s); expected finite numbers or missing values.")
        return out

    def _reject_missing(self, frame):
        counts = frame.isna().sum()
        bad = counts[counts > 0]
        if len(bad):
            col = str(bad.index[0])
            raise ValueError(f"Column {col!r} has {int(bad.iloc[0])} missing value(s) (NaN), "
                             "and the missing-value policy is 'reject'; fill them or use "
                             "missing='impute' or 'indicator'.")

    # -- persistence (JSON) --------------------------------------------------------------------
    def get_state(self) -> dict:
        return {"missing": self.missing, "max_categories": int(self.max_categories),
                "categorical_columns": list(self.categorical_columns or []),
                "columns": self.columns_, "numeric": self.numeric_,
                "categories": self.categories_, "indicators": self.indicators_,
                "mean": self.mean_.tolist(), "scale": self.scale_.tolist(),
                "median": self.median_.tolist()}

    @classmethod
    def from_state(cls, state: dict) -> TabularPreprocessor:
        pre = cls(missing=state["missing"], categorical_columns=state["categorical_columns"],
                  max_categories=state["max_categories"])
        pre.columns_, pre.numeric_ = list(state["columns"]), list(state["numeric"])
        pre.categories_ = {k: list(v) for k, v in state["categories"].items()}
        pre.indicators_ = list(state["indicators"])
        for key in ("mean", "scale", "median"):
            setattr(pre, f"{key}_", np.asarray(state[key], dtype=np.float64))
        pre._finish()
        return pre


def _numeric_kind(values) -> bool:
    return getattr(values.dtype, "kind", "O") in "biuf"


def _to_float(values, col) -> np.ndarray:
    kind = getattr(values.dtype, "kind", "O")
    if kind in "biuf" and isinstance(values.dtype, np.dtype):
        return values.to_numpy(dtype=np.float64)  # NumPy dtypes: NaN is the only missing value
    if kind in "biuf":  # pandas' nullable dtypes (Int64, Float64, boolean): NA -> NaN
        return values.to_numpy(dtype=np.float64, na_value=np.nan)
    import pandas as pd

    conv = pd.to_numeric(values, errors="coerce")
    bad = conv.isna() & values.notna()
    if bad.any():
        example = values[bad].iloc[0]
        raise TypeError(f"Column {col!r} must be numeric, as when the model was fitted; "
                        f"received {int(bad.sum())} non-numeric value(s) such as {example!r} "
                        f"(dtype {values.dtype}).")
    return conv.to_numpy(dtype=np.float64, na_value=np.nan)


def _label(value) -> str:
    """One category's name: 3, 3.0 and "3" are the same category."""
    if isinstance(value, bool | np.bool_):
        return str(bool(value))
    if isinstance(value, numbers.Real) and float(value).is_integer():
        return str(int(value))
    return str(value)


def _factorized(values):
    """(codes into labels, labels) of a column; missing values get code -1."""
    import pandas as pd

    codes, uniques = pd.factorize(values, use_na_sentinel=True)
    return np.asarray(codes, dtype=np.int64), [_label(u) for u in uniques]


def _top_categories(values, max_categories) -> list:
    if (isinstance(max_categories, bool) or not isinstance(max_categories, numbers.Integral)
            or max_categories < 1):
        raise ValueError("The 'max_categories' parameter of TabularPreprocessor must be an int "
                         f"in the range [1, inf). Got {max_categories!r} instead.")
    codes, labels = _factorized(values)
    counts: dict = {}
    for label, n in zip(labels, np.bincount(codes[codes >= 0], minlength=len(labels)),
                        strict=True):
        counts[label] = counts.get(label, 0) + int(n)
    # most frequent first; ties by name so that the order does not depend on row order
    ordered = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    return sorted(k for k, _ in ordered[: int(max_categories)])


def _category_codes(values, cats) -> np.ndarray:
    """Index of each row's category in `cats`; -1 for missing and unknown categories."""
    codes, labels = _factorized(values)
    lookup = {c: i for i, c in enumerate(cats)}
    table = np.asarray([lookup.get(label, -1) for label in labels] + [-1], dtype=np.int64)
    return table[codes]  # code -1 (missing) picks the final -1


def iter_table(path, *, chunk_size=100_000):
    """Yield ``(frame, bytes_read)`` chunks of a CSV or Parquet file, in row order.

    Memory stays at one chunk whatever the file's size; `bytes_read` (of the file, for a
    progress bar) is approximate for CSV. `path` may also be a binary file object with
    ``tell()``, read as CSV.
    """
    from pathlib import Path

    if _is_stream(path):
        yield from _csv_chunks(path, path, chunk_size)
        return
    path = Path(path)
    if _table_format(path) == "parquet":
        import pyarrow.parquet as pq

        pf = pq.ParquetFile(path)
        size, done, total = path.stat().st_size, 0, max(pf.metadata.num_rows, 1)
        if pf.metadata.num_rows == 0:
            raise _empty(path, header=True)
        for batch in pf.iter_batches(batch_size=chunk_size):
            done += batch.num_rows
            yield batch.to_pandas(), int(size * done / total)
        return
    with open(path, "rb") as fh:
        yield from _csv_chunks(fh, path, chunk_size)


def _csv_chunks(fh, path, chunk_size):
    """``(frame, bytes_read)`` chunks of the CSV text of the binary file object `fh`."""
    import pandas as pd

    try:
        first = True
        for chunk in pd.read_csv(fh, chunksize=chunk_size):
            first = False
            yield chunk, fh.tell()
    except pd.errors.EmptyDataError as e:
        raise _empty(path, header=False) from e
    except UnicodeDecodeError as e:
        raise _not_text(path, e) from e
    if first:
        raise _empty(path, header=True)
