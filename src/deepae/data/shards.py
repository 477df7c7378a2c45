"""Data sets larger than memory, read block by block: sharded `.npy` files, CSV and Parquet
tables, folders of images.

A source describes rows (one sample each) stored in one or more files; nothing is loaded up
front. Each source says how its rows split into blocks (``blocks``) and reads one block at a
time (``read``), which is all the streaming pipeline (`deepae.data.streaming`) needs:

- `NpyShards`: `.npy` files, read through a memory map that is opened, copied from and
  closed again for every block, so the pages it touched leave the resident memory with it
  (a memory map kept open over a 20 GB file would count every page read towards RSS);
- `TableShards`: CSV files (indexed once: the byte offset of every 1024th line, so that a
  block is one seek and one parse) and Parquet files (a block is a row group); numeric
  columns, as float32 rows;
- `ImageFolder`: the image files of a folder, one row per image, all of one size (or
  resized to one).

`open_shards` picks the source from a path. Every source computes the statistics that
scaling needs (count, min, max, per-feature mean and standard deviation) in one pass
(`Shards.stats`), and refuses missing or infinite values there with the column named.
"""

from __future__ import annotations

import glob
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = ["Shards", "NpyShards", "TableShards", "ImageFolder", "StreamStats", "open_shards"]

_TABLE_SUFFIXES = (".csv", ".parquet", ".pq")


@dataclass
class StreamStats:
    """What one pass over the data measured: global min and max; per-feature mean,
    standard deviation, min and max (arrays of the row shape)."""

    count: int
    min: float
    max: float
    mean: np.ndarray
    std: np.ndarray
    dtype: np.dtype
    feature_min: np.ndarray
    feature_max: np.ndarray


class Shards:
    """Rows stored in one or more files, read block by block (the base of the sources).

    Subclasses set ``paths`` (one per shard), ``lengths`` (rows per shard), ``row_shape`` and
    ``dtype`` (of the rows `read` returns), and define `read`; `blocks` splits each shard
    into runs of rows, which a subclass may align to its storage.
    """

    paths: list
    lengths: np.ndarray
    row_shape: tuple
    dtype: np.dtype
    columns: list | None = None  # feature names, when the files have them

    def _names(self):
        names = [Path(p).name for p in self.paths[:3]]
        return names + ["..."] if len(self.paths) > 3 else names

    def _check_rows(self):
        if self.n_rows == 0:
            raise ValueError(f"Expected rows to train on; the shards {self._names()} are empty.")

    @property
    def n_rows(self) -> int:
        return int(self.lengths.sum())

    def __len__(self) -> int:
        return self.n_rows

    @property
    def shape(self) -> tuple:
        """The shape the data would have as one array."""
        return (self.n_rows, *self.row_shape)

    @property
    def nbytes(self) -> int:
        return self.n_rows * int(np.prod(self.row_shape, dtype=np.int64)) * self.dtype.itemsize

    def __repr__(self) -> str:
        return (f"{type(self).__name__}({len(self.paths)} files, {self.n_rows:,} rows of "
                f"{self.row_shape} {self.dtype}, {self.nbytes / 2**30:.2f} GiB)")

    def blocks(self, block_rows: int) -> np.ndarray:
        """(n_blocks, 3) int64: shard, first row, end row of every block, in file order."""
        out = []
        for s, n in enumerate(self.lengths):
            starts = np.arange(0, n, block_rows, dtype=np.int64)
            out.append(np.stack([np.full_like(starts, s), starts,
                                 np.minimum(starts + block_rows, n)], axis=1))
        return np.concatenate(out) if out else np.zeros((0, 3), np.int64)

    def read(self, shard: int, start: int, stop: int) -> np.ndarray:  # pragma: no cover
        """Rows ``[start, stop)`` of one shard, as an array of `dtype`."""
        raise NotImplementedError

    def iter_blocks(self, block_rows: int = 65536):
        """Every row once, in file order, a block at a time."""
        for s, a, b in self.blocks(block_rows):
            yield self.read(s, a, b)

    def _identity(self) -> str:
        """What names the stored data: file names, sizes and row counts."""
        return "".join(f"{Path(p).name}:{n}:{Path(p).stat().st_size};"
                       for p, n in zip(self.paths, self.lengths, strict=True))

    def fingerprint(self) -> str:
        """Names, sizes and the first and last rows: what says two runs read the same data."""
        h = hashlib.sha256(self._identity().encode())
        first = next(i for i, n in enumerate(self.lengths) if n)
        last = max(i for i, n in enumerate(self.lengths) if n)
        h.update(self.read(first, 0, min(64, int(self.lengths[first]))).tobytes())
        n = int(self.lengths[last])
        h.update(self.read(last, max(0, n - 64), n).tobytes())
        return h.hexdigest()[:16]

    def _feature_name(self, flat_index: int) -> str:
        if self.columns is not None and len(self.row_shape) == 1:
            return f"column {self.columns[flat_index]!r}"
        return f"feature {np.unravel_index(flat_index, self.row_shape)}"

    def stats(self, block_rows: int = 65536) -> StreamStats:
        """Count, min, max, per-feature mean, standard deviation, min and max in one pass
        (blocks merged by Chan et al.'s pairwise update). Missing (NaN) and infinite values
        are refused, with the file, the row and the column named."""
        count, mean, m2 = 0, None, None
        f_lo = f_hi = None
        for s, a, b in self.blocks(block_rows):
            block = self.read(s, a, b)
            if not len(block):
                continue
            flat = block.reshape(len(block), -1).astype(np.float64)
            bad = ~np.isfinite(flat)
            if bad.any():
                row, col = np.argwhere(bad)[0]
                raise ValueError(
                    f"Expected finite values to train on; {Path(self.paths[s]).name!r} row "
                    f"{a + row} has {flat[row, col]} in {self._feature_name(col)}. Fill or "
                    "drop missing values before streaming.")
            lo_b, hi_b = flat.min(axis=0), flat.max(axis=0)
            f_lo = lo_b if f_lo is None else np.minimum(f_lo, lo_b)
            f_hi = hi_b if f_hi is None else np.maximum(f_hi, hi_b)
            n_b, mean_b = len(flat), flat.mean(axis=0)
            m2_b = ((flat - mean_b) ** 2).sum(axis=0)
            if mean is None:
                count, mean, m2 = n_b, mean_b, m2_b
                continue
            delta = mean_b - mean
            total = count + n_b
            mean = mean + delta * (n_b / total)
            m2 = m2 + m2_b + delta ** 2 * (count * n_b / total)
            count = total
        std = np.sqrt(m2 / count)
        shape = self.row_shape
        return StreamStats(count, float(f_lo.min()), float(f_hi.max()), mean.reshape(shape),
                           std.reshape(shape), self.dtype, f_lo.reshape(shape),
                           f_hi.reshape(shape))


def _resolve(source, suffixes, what) -> list[Path]:
    """The files that `source` names: a folder (its files with `suffixes`, by name), a glob
    pattern, one file, or a list of files."""
    if isinstance(source, str | os.PathLike):
        text = str(source)
        path = Path(text)
        if path.is_dir():
            paths = sorted(p for p in path.iterdir() if p.name.lower().endswith(suffixes))
            where = f"in the folder {text!r}"
        elif any(c in text for c in "*?["):
            paths = [Path(p) for p in sorted(glob.glob(text))]
            where = f"matching {text!r}"
        else:
            if not path.exists():
                raise FileNotFoundError(f"No data at {text!r}.")
            paths, where = [path], text
    else:
        paths = [Path(p) for p in source]
        where = "in the list given"
        missing = [str(p) for p in paths if not p.exists()]
        if missing:
            raise FileNotFoundError(f"No data at {missing[:3]}.")
    if not paths:
        raise FileNotFoundError(f"Expected {what}; found none {where}.")
    return paths


class NpyShards(Shards):
    """One data set in one or more `.npy` files, read block by block.

    Parameters
    ----------
    source : path, glob pattern, or sequence of paths
        A folder (its ``*.npy`` files in name order), a pattern such as
        ``"data/part-*.npy"``, one file, or a list of files. Every file must hold an array
        of at least one dimension; rows (``array[i]``) must have one shape and dtype
        across files.

    Attributes
    ----------
    paths : list of Path
    lengths : ndarray of int64, rows per file
    row_shape : tuple
    dtype : numpy.dtype
    """

    def __init__(self, source):
        self.paths = _resolve(source, (".npy",), ".npy shards")
        lengths, shapes, dtypes = [], set(), set()
        for p in self.paths:
            try:
                arr = np.load(p, mmap_mode="r", allow_pickle=False)
            except (ValueError, OSError) as e:
                raise ValueError(f"Expected `.npy` files; could not read {str(p)!r}: {e}") from e
            if arr.ndim < 1:
                raise ValueError(f"Expected arrays of rows in every shard; {str(p)!r} holds a "
                                 "scalar.")
            lengths.append(arr.shape[0])
            shapes.add(tuple(arr.shape[1:]))
            dtypes.add(arr.dtype)
            del arr
        if len(shapes) > 1 or len(dtypes) > 1:
            raise ValueError("Expected every shard to hold rows of one shape and dtype; "
                             f"received shapes {sorted(shapes)} and dtypes "
                             f"{sorted(map(str, dtypes))}.")
        self.lengths = np.asarray(lengths, np.int64)
        self.row_shape = shapes.pop()
        self.dtype = dtypes.pop()
        self._check_rows()

    def read(self, shard: int, start: int, stop: int) -> np.ndarray:
        """Rows ``[start, stop)`` of one shard, copied out of a memory map that is closed
        before returning (its pages leave the resident set)."""
        arr = np.load(self.paths[int(shard)], mmap_mode="r", allow_pickle=False)
        try:
            return np.array(arr[int(start):int(stop)])
        finally:
            mm = getattr(arr, "_mmap", None)
            del arr
            if mm is not None:
                mm.close()


_LINE_INDEX = 1024  # a CSV file's byte offset is kept for every 1024th data line


class TableShards(Shards):
    """A table in one or more CSV or Parquet files, streamed as float32 rows of its numeric
    columns.

    Parameters
    ----------
    source : path, glob pattern, or sequence of paths
        A folder (its ``.csv`` or its ``.parquet``/``.pq`` files, by name), a pattern, one
        file or a list. Every file must have the same columns (CSV: a header line).
    columns : sequence of str, optional
        The columns to train on, in this order; default every column, which must then all
        be numeric (a text column is refused by name: leave it out with `columns`, or use
        `deepae.AnomalyDetector`, which encodes categories, on data that fits in memory).

    Notes
    -----
    A CSV file is indexed once, when the source is made: one pass that keeps the byte
    offset of every 1024th line, so that reading any block is one seek and one parse.
    Records must be one per line (no line breaks inside quoted fields), and compressed CSV
    cannot be read from the middle: decompress it, or convert it to Parquet. A Parquet file
    is read a row group at a time (blocks are its row groups, whatever block size is asked
    for): write it with row groups of about 10^4 to 10^5 rows.
    Missing values are read as NaN and refused by the statistics pass (`Shards.stats`).
    """

    def __init__(self, source, *, columns=None):
        self.paths = _resolve(source, _TABLE_SUFFIXES, "CSV or Parquet files")
        kinds = {_table_kind(p) for p in self.paths}
        if len(kinds) > 1:
            raise ValueError("Expected the files of one table in one format; received CSV and "
                             f"Parquet files ({self._names()}).")
        self.kind = kinds.pop()
        self.dtype = np.dtype(np.float32)
        self._offsets, self._groups = [], []
        file_columns, lengths = None, []
        for p in self.paths:
            names, numeric = (_csv_header(p) if self.kind == "csv" else _parquet_schema(p))
            if file_columns is None:
                file_columns, numeric_of = names, dict(zip(names, numeric, strict=True))
            elif names != file_columns:
                raise ValueError(f"Expected every file of the table to have the columns of "
                                 f"{self.paths[0].name!r} {file_columns}; {p.name!r} has "
                                 f"{names}.")
            if self.kind == "csv":
                offsets, n = _index_lines(p)
                self._offsets.append(offsets)
            else:
                import pyarrow.parquet as pq

                meta = pq.ParquetFile(p).metadata
                sizes = [meta.row_group(i).num_rows for i in range(meta.num_row_groups)]
                self._groups.append(np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64))
                n = meta.num_rows
            lengths.append(n)
        self._file_columns = file_columns
        if columns is None:
            chosen = list(file_columns)
        else:
            if isinstance(columns, str) or not all(isinstance(c, str) for c in columns):
                raise TypeError(f"Expected `columns` as a list of column names; received "
                                f"{columns!r}.")
            chosen = list(columns)
            unknown = [c for c in chosen if c not in file_columns]
            if unknown:
                raise ValueError(f"Unknown column(s) {unknown} in `columns`; the table has "
                                 f"{file_columns}.")
        text = [c for c in chosen if not numeric_of[c]]
        if text:
            raise ValueError(f"Expected numeric columns to stream; column(s) {text} of "
                             f"{self.paths[0].name!r} are not numbers. Leave them out with "
                             "columns=[...].")
        if not chosen:
            raise ValueError("Expected at least one column to stream; received columns=[].")
        self.columns = chosen
        self.lengths = np.asarray(lengths, np.int64)
        self.row_shape = (len(chosen),)
        self._check_rows()

    def blocks(self, block_rows: int) -> np.ndarray:
        if self.kind == "csv":
            return super().blocks(block_rows)
        out = [np.stack([np.full(len(g) - 1, s), g[:-1], g[1:]], axis=1)
               for s, g in enumerate(self._groups) if len(g) > 1]
        out = [b[b[:, 2] > b[:, 1]] for b in out]  # no empty row groups
        return np.concatenate(out).astype(np.int64) if out else np.zeros((0, 3), np.int64)

    def read(self, shard: int, start: int, stop: int) -> np.ndarray:
        shard, start, stop = int(shard), int(start), int(stop)
        path = self.paths[shard]
        if self.kind == "parquet":
            return self._read_parquet(shard, start, stop)
        import io

        import pandas as pd

        offsets = self._offsets[shard]
        first = start // _LINE_INDEX
        end = -(-stop // _LINE_INDEX)
        with open(path, "rb") as fh:
            fh.seek(int(offsets[first]))
            raw = fh.read(int(offsets[end] - offsets[first]) if end < len(offsets) else -1)
        frame = pd.read_csv(io.BytesIO(raw), header=None, names=self._file_columns,
                            usecols=self.columns, skiprows=start - first * _LINE_INDEX,
                            nrows=stop - start)
        if len(frame) != stop - start:
            raise ValueError(f"{path.name!r} rows {start}-{stop} gave {len(frame)} records "
                             "instead of one per line: blank lines, or line breaks inside "
                             "quoted fields, which streaming cannot index.")
        return self._to_rows(frame, path, start)

    def _read_parquet(self, shard, start, stop):
        import pyarrow.parquet as pq

        groups = self._groups[shard]
        i = int(np.searchsorted(groups, start, side="right")) - 1
        table = pq.ParquetFile(self.paths[shard]).read_row_group(i, columns=self.columns)
        frame = table.slice(start - int(groups[i]), stop - start).to_pandas()
        return self._to_rows(frame, self.paths[shard], start)

    def _to_rows(self, frame, path, start):
        import pandas as pd

        frame = frame[self.columns]
        for c in self.columns:
            if not pd.api.types.is_numeric_dtype(frame[c]):
                values = pd.to_numeric(frame[c], errors="coerce")
                bad = np.flatnonzero(values.isna() & frame[c].notna())
                if len(bad):
                    raise ValueError(f"Expected numbers in column {c!r}; {Path(path).name!r} "
                                     f"row {start + int(bad[0])} has {frame[c].iloc[bad[0]]!r}.")
                frame[c] = values
        return frame.to_numpy(np.float32, na_value=np.nan)

    def _identity(self) -> str:
        return super()._identity() + ",".join(self.columns)


def _table_kind(path) -> str:
    name = Path(path).name.lower()
    if name.endswith((".parquet", ".pq")):
        return "parquet"
    if name.endswith(".csv"):
        return "csv"
    if name.endswith((".csv.gz", ".gz", ".zip", ".bz2", ".xz")):
        raise ValueError(f"Cannot stream the compressed file {str(path)!r}: a block cannot be "
                         "read from its middle. Decompress it, or convert it to Parquet.")
    raise ValueError(f"Expected .csv or .parquet files; received {str(path)!r}.")


def _csv_header(path):
    """Column names and whether each is numeric, from the header and the first rows."""
    import pandas as pd

    try:
        head = pd.read_csv(path, nrows=1000)
    except pd.errors.EmptyDataError as e:
        raise ValueError(f"The table {str(path)!r} is empty: no header and no rows.") from e
    names = [str(c) for c in head.columns]
    numeric = [pd.api.types.is_numeric_dtype(head[c]) or head[c].isna().all()
               for c in head.columns]
    return names, numeric


def _parquet_schema(path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = pq.read_schema(path)
    numeric = [pa.types.is_integer(f.type) or pa.types.is_floating(f.type)
               or pa.types.is_boolean(f.type) or pa.types.is_decimal(f.type) for f in schema]
    return list(schema.names), numeric


def _index_lines(path, chunk_bytes: int = 1 << 26):
    """(byte offsets of data lines 0, 1024, 2048, ... and of the end, number of data
    lines) of a CSV file with a header line: one pass, 64 MiB at a time."""
    starts, total, n_lines, pos = [], 0, 0, 0
    ends_with_newline = True
    with open(path, "rb") as fh:
        while True:
            chunk = fh.read(chunk_bytes)
            if not chunk:
                break
            nl = np.flatnonzero(np.frombuffer(chunk, np.uint8) == 10) + pos + 1
            # line k (0 = header) starts after newline k - 1; data line d = line d + 1
            first_line = n_lines + 1  # the line that starts after this chunk's first newline
            d = np.arange(first_line, first_line + len(nl)) - 1  # data line index
            starts.append(nl[d % _LINE_INDEX == 0])
            n_lines += len(nl)
            pos += len(chunk)
            ends_with_newline = chunk.endswith(b"\n")
        total = pos
    offsets = np.concatenate(starts) if starts else np.zeros(0, np.int64)
    n_data = n_lines - 1 if ends_with_newline else n_lines  # the last line may lack its \n
    n_data = max(0, n_data)
    offsets = offsets[offsets < total]  # a final newline starts no line
    return np.append(offsets, total).astype(np.int64), n_data


class ImageFolder(Shards):
    """The images of a folder (PNG, JPEG, ...; by name), one row each, read as uint8.

    Parameters
    ----------
    source : path, glob pattern, or sequence of paths
        A folder, a pattern such as ``"photos/*.png"``, or a list of image files.
    size : (height, width), optional
        Resize every image to this size (Pillow's area filter). Without it every image must
        have the size of the first one (an image of another size is refused by name).
    mode : {"L", "RGB"}, optional
        Grayscale rows (h, w) or colour rows (h, w, 3); default: the first image's.
    """

    def __init__(self, source, *, size=None, mode=None):
        from deepae.data.io import IMAGE_SUFFIXES

        self.files = _resolve(source, IMAGE_SUFFIXES, f"image files ({', '.join(IMAGE_SUFFIXES)})")
        if size is not None:
            if (not isinstance(size, tuple | list) or len(size) != 2
                    or not all(isinstance(v, int) and v > 0 for v in size)):
                raise ValueError(f"Expected `size` as (height, width), two positive ints; "
                                 f"received {size!r}.")
            size = (int(size[0]), int(size[1]))
        if mode not in (None, "L", "RGB"):
            raise ValueError(f"Expected `mode` in (None, 'L', 'RGB'); received {mode!r}.")
        self.size = size
        first, _ = self._load(self.files[0], mode)  # its alpha is reported when it is read
        self._alpha_said = False
        self.mode = mode or ("L" if first.ndim == 2 else "RGB")
        self.row_shape = first.shape
        self.dtype = np.dtype(np.uint8)
        self.paths = [Path(self.files[0]).parent]
        self.lengths = np.asarray([len(self.files)], np.int64)

    def _load(self, path, mode):
        """One image as a row (the rule of `deepae.data.io.read_image`), and whether its
        transparency was dropped."""
        from PIL import Image

        from deepae.data.io import _as_mode, _load_image

        img, dropped = _load_image(path)
        if mode is not None:
            img = _as_mode(img, mode)
        if self.size is not None and img.shape[:2] != self.size:
            img = np.asarray(Image.fromarray(img).resize(self.size[::-1], Image.Resampling.BOX))
        return img, dropped

    def read(self, shard: int, start: int, stop: int) -> np.ndarray:
        from deepae.data.io import _warn_alpha

        out = np.empty((int(stop) - int(start), *self.row_shape), np.uint8)
        dropped = []
        for i, path in enumerate(self.files[int(start):int(stop)]):
            img, lost = self._load(path, self.mode)
            if img.shape != self.row_shape:
                raise ValueError(
                    f"Expected images of one size and mode: {self.files[0].name} gives "
                    f"{self.row_shape} but {path.name} gives {img.shape}. Pass size=(h, w) "
                    "(and mode=) to resize them as they are read.")
            out[i] = img
            if lost:
                dropped.append(path)
        if dropped and not self._alpha_said:  # once per source, not once per block and epoch
            self._alpha_said = True
            _warn_alpha(dropped, self.paths[0], stacklevel=2,
                        note="; said for the first block that has any")
        return out

    def _identity(self) -> str:
        return "".join(f"{p.name}:{p.stat().st_size};" for p in self.files) + \
            f"{self.size}{self.mode}"

    def __repr__(self) -> str:
        return (f"ImageFolder({len(self.files):,} images of {self.row_shape} uint8, "
                f"{self.nbytes / 2**30:.2f} GiB)")


def open_shards(source, **kwargs) -> Shards:
    """The source that `source` names, from its files' suffixes: `.npy` files
    (`NpyShards`), CSV or Parquet files (`TableShards`, which takes ``columns=``) or images
    (`ImageFolder`, which takes ``size=`` and ``mode=``). A source is returned as it is."""
    if isinstance(source, Shards):
        return source
    from deepae.data.io import IMAGE_SUFFIXES

    if isinstance(source, str | os.PathLike):
        path = Path(source)
        names = [p.name.lower() for p in path.iterdir()] if path.is_dir() else [path.name.lower()]
    else:
        names = [Path(p).name.lower() for p in source]
    for suffixes, cls in (((".npy",), NpyShards), (_TABLE_SUFFIXES, TableShards),
                          (IMAGE_SUFFIXES, ImageFolder)):
        if any(n.endswith(suffixes) for n in names):
            return cls(source, **kwargs)
    if any(n.endswith((".csv.gz", ".gz")) for n in names):
        _table_kind(next(n for n in names if n.endswith(".gz")))  # says why it cannot stream
    raise ValueError(f"Expected .npy shards, CSV or Parquet files, or images to stream; "
                     f"found none in {str(source)!r}.")
