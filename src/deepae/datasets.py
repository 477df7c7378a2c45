"""Data set loaders: ``deepae.datasets.load_mnist()`` and friends (see `deepae.data`)."""

from deepae.data.datasets import (
    DATASETS,
    load_dataset,
    load_digits,
    load_fashion_mnist,
    load_mnist,
)
from deepae.data.io import read_data, read_idx
from deepae.data.synthetic import make_transactions, time_split
from deepae.data.tabular import read_table

__all__ = ["load_mnist", "load_fashion_mnist", "load_digits", "load_dataset", "DATASETS",
           "read_idx", "read_data", "read_table", "make_transactions", "time_split"]
