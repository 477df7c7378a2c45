import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

# deepae before TensorFlow: its quiet import keeps TensorFlow's start-up and device-scan
# lines (cuInit's failure where CUDA's libraries have no GPU) off the workers' standard
# error, which pytest-xdist prints after the summary line
import deepae  # noqa: E402

# Two logical CPU devices, set before TensorFlow starts its devices (the first thing that
# would: conftest runs before any test module), so that the strategy tests run
# MirroredStrategy on two real replicas: each takes half of the global batch and the
# gradients are all-reduced (with one CPU replica, a strategy takes the very path of no
# strategy). Without a strategy every op still runs on CPU:0, as before; with no GPU,
# TensorFlow's MirroredStrategy() takes every logical CPU, so strategy="mirrored" here means
# two replicas. The strategy tests check `num_replicas_in_sync == 2`.
N_TEST_REPLICAS = 2


def _split_cpu(n):
    import tensorflow as tf  # the point here: tf.config's logical devices

    cpu = tf.config.list_physical_devices("CPU")[0]
    try:
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration() for _ in range(n)])
    except RuntimeError:  # TensorFlow already started (a plugin imported it): one device
        pass


_split_cpu(N_TEST_REPLICAS)


@pytest.fixture
def rng():
    return np.random.default_rng(0)


@pytest.fixture
def table(rng):
    """200 rows, 12 features on a 3-d manifold, not standardised."""
    z = rng.normal(size=(200, 3))
    w = rng.normal(size=(3, 12))
    return (z @ w * 5 + 10 + 0.05 * rng.normal(size=(200, 12))).astype(np.float32)


@pytest.fixture
def images(rng):
    """64 uint8 8x8 images: bright squares at random places."""
    x = np.zeros((64, 8, 8), np.uint8)
    for i in range(64):
        r, c = rng.integers(0, 5, size=2)
        x[i, r: r + 3, c: c + 3] = 255
    return x


def small_model(**kw):

    kw.setdefault("hidden_units", (16,))
    kw.setdefault("latent_dim", 4)
    return deepae.Autoencoder(**kw)


def write_idx(path, arr):
    import gzip
    import struct

    arr = np.asarray(arr, np.uint8)
    header = bytes([0, 0, 0x08, arr.ndim]) + struct.pack(f">{arr.ndim}I", *arr.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + arr.tobytes())


def smooth_images(n, h, w, c=1, seed=0):
    """Blurry blobs: images a small network can learn to denoise in seconds."""
    r = np.random.default_rng(seed)
    yy, xx = np.mgrid[:h, :w]
    out = np.zeros((n, h, w, c), np.float32)
    for i in range(n):
        for _ in range(3):
            cy, cx, s = r.uniform(0, h), r.uniform(0, w), r.uniform(3, 8)
            blob = np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * s * s))
            out[i] += blob[..., None] * r.uniform(0.3, 0.6, c)
    return np.clip(out, 0, 1)
