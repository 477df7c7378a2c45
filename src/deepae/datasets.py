"""Data set loaders: ``deepae.datasets.load_mnist()`` and friends (see `deepae.data`)."""

from deepae.data.datasets import (
    DATASETS,
    TEST_PHOTOS,
    TEST_WALLPAPERS,
    TRAIN_PHOTOS,
    TRAIN_WALLPAPERS,
    colour_photo_crops,
    load_dataset,
    load_digits,
    load_fashion_mnist,
    load_mnist,
    load_photos,
    load_wallpapers,
    make_infinite_mnist,
    photo_crops,
    wallpaper_folder,
)
from deepae.data.io import read_data, read_idx
from deepae.data.synthetic import make_transactions, time_split
from deepae.data.tabular import read_table
from deepae.data.text import load_bbc_news, vectorize_documents

__all__ = ["load_mnist", "make_infinite_mnist", "load_fashion_mnist", "load_digits", "load_photos", "photo_crops",
           "load_dataset", "DATASETS", "TRAIN_PHOTOS", "TEST_PHOTOS",
           "load_wallpapers", "colour_photo_crops", "wallpaper_folder", "TRAIN_WALLPAPERS",
           "TEST_WALLPAPERS",
           "read_idx", "read_data", "read_table", "make_transactions", "time_split",
           "load_bbc_news", "vectorize_documents"]
