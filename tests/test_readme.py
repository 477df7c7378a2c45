"""The README's examples run: every ```python block (in order, in one namespace, as a reader
would type them) and every ```sh line that calls deepae, on tiny stand-ins for the files
and data sets they name, with training cut to a couple of epochs. An example that stops
working fails here."""

import contextlib
import functools
import io
import re
import shlex
import shutil
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

import deepae
from conftest import write_idx
from deepae.cli.main import main

README = Path(__file__).resolve().parents[1] / "README.md"
BLOCKS = re.findall(r"```(python|sh|toml)\n(.*?)```", README.read_text(), re.S)
# shell lines that install things or run the whole suite: not examples of deepae's use
NOT_RUN = ("make ", "pip ", "apt-get ")


def _image(h, w, seed, colour=False):
    yy, xx = np.mgrid[:h, :w]
    r = np.random.default_rng(seed)
    img = 128 + 90 * np.sin(xx / r.uniform(3, 6)) * np.cos(yy / r.uniform(3, 6))
    img = np.stack([img, img[::-1], img[:, ::-1]], -1) if colour else img
    return np.clip(img + r.normal(0, 8, img.shape), 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """The files the examples name, small: a fake MNIST (through DEEPAE_DATA), tables,
    photographs, arrays."""
    root = tmp_path_factory.mktemp("readme")
    rng = np.random.default_rng(0)
    mnist = root / "mnist_data"
    mnist.mkdir()
    digits = (rng.random((300, 28, 28)) ** 3 * 255).astype(np.uint8)
    write_idx(mnist / "train-images-idx3-ubyte.gz", digits[:200])
    write_idx(mnist / "train-labels-idx1-ubyte.gz", rng.integers(0, 10, 200))
    write_idx(mnist / "t10k-images-idx3-ubyte.gz", digits[200:])
    write_idx(mnist / "t10k-labels-idx1-ubyte.gz", rng.integers(0, 10, 100))
    files = root / "files"
    files.mkdir()
    X, y = deepae.datasets.make_transactions(3000, fraud_rate=0.02, categorical=True,
                                             random_state=0)
    table = X.assign(txn_id=np.arange(len(X)), Class=y.to_numpy())
    table[:2000].to_csv(files / "train.csv", index=False)
    table[2000:].to_csv(files / "test.csv", index=False)
    table[2000:].drop(columns="Class").to_csv(files / "new.csv", index=False)
    pd.DataFrame(rng.normal(size=(200, 6)), columns=list("abcdef")).to_csv(
        files / "data.csv", index=False)
    for folder in ("photos", "test_photos", "my_photos"):
        (files / folder).mkdir()
        for i in range(3):
            Image.fromarray(_image(64, 72, i)).save(files / folder / f"im{i}.png")
    for name, (h, w) in {"noisy.png": (48, 56), "small.png": (24, 32),
                         "photo.png": (48, 64)}.items():
        Image.fromarray(_image(h, w, 7)).save(files / name)
    flat = digits.reshape(300, -1).astype(np.float32)
    np.savez(files / "data.npz", x=flat[:200], ids=np.arange(1000, 1200), y=np.arange(200) % 10)
    np.savez(files / "queries.npz", x=flat[200:220])
    np.savez(files / "test.npz", x=flat[200:], y=np.arange(100) % 10)
    (files / "data").mkdir()
    for i in range(2):
        np.save(files / "data" / f"part{i}.npy", rng.normal(size=(150, 20)).astype("float32"))
    (files / "logs").mkdir()
    pd.DataFrame(rng.normal(size=(200, 3)), columns=["amount", "v1", "v2"]).to_parquet(
        files / "logs" / "day1.parquet")
    toml = [b for lang, b in BLOCKS if lang == "toml"]
    (files / "train.toml").write_text(toml[0])
    return {"root": root, "mnist": mnist, "files": files}


TINY = {"epochs": 2, "patches_per_epoch": 32}


def _tiny(cls):
    """`cls` whose training is cut to a couple of epochs (and a few patches): the examples'
    code runs as written, in seconds."""
    init = cls.__init__

    @functools.wraps(init)
    def tiny_init(self, *args, **kwargs):
        init(self, *args, **kwargs)
        for key, value in TINY.items():
            if hasattr(self, key):
                setattr(self, key, min(getattr(self, key), value))
    return tiny_init


@pytest.fixture
def tiny(world, monkeypatch):
    monkeypatch.setenv("DEEPAE_DATA", str(world["mnist"]))
    for cls in (deepae.AutoencoderReducer, deepae.AnomalyDetector, deepae.SemanticHasher,
                deepae.Denoiser, deepae.SuperResolver, deepae.ImageCodec):
        monkeypatch.setattr(cls, "__init__", _tiny(cls))
    fit = deepae.Autoencoder.fit

    def fit_tiny(self, *args, **kwargs):  # Autoencoder.fit takes epochs as an argument
        kwargs["epochs"] = min(kwargs.get("epochs", 10), 2)
        return fit(self, *args, **kwargs)

    monkeypatch.setattr(deepae.Autoencoder, "fit", fit_tiny)
    from deepae.apps.compress import overfit

    monkeypatch.setattr(overfit, "BEST_ITERATIONS", 20)  # effort="best": a few steps


def _fresh(world, tmp_path, monkeypatch):
    work = tmp_path / "work"
    shutil.copytree(world["files"], work)
    monkeypatch.chdir(work)
    return work


def test_python_examples(world, tiny, tmp_path, monkeypatch):
    _fresh(world, tmp_path, monkeypatch)
    rng = np.random.default_rng(1)
    flat = rng.normal(size=(300, 24)).astype(np.float32)
    # the names a block uses without defining them (each section's own `X` and `image`)
    given = {"noisy_uint8_image": _image(48, 56, 3), "small": _image(24, 32, 4),
             "image": _image(40, 48, 5, colour=True), "X": flat,
             "ids": np.arange(5000, 5300), "query": flat[0], "Q": flat[:5]}
    namespace = {}
    python = [b for lang, b in BLOCKS if lang == "python"]
    assert len(python) >= 7
    injected = set()
    for i, block in enumerate(python):
        # a stand-in only where a block reads the name before it assigns it (the section's
        # own data, which the reader brings); any other undefined name is a NameError
        for name in _read_before_assigned(block) & set(given):
            namespace[name] = given[name]
            injected.add(name)
        code = compile(block, f"README.md python block {i + 1}", "exec")
        exec(code, namespace)  # noqa: S102 - the README's own examples
    assert injected == set(given), f"stand-ins no block reads: {set(given) - injected}"
    assert namespace["codes"].shape == (300, 4)  # the hasher's, the last block to set it


def _read_before_assigned(block: str) -> set:
    """Names `block` reads (at module level, in source order) before it assigns them."""
    import ast

    assigned, read_first = set(), set()
    nodes = sorted((n for n in ast.walk(ast.parse(block)) if isinstance(n, ast.Name)),
                   key=lambda n: (n.lineno, n.col_offset))
    for node in nodes:
        if isinstance(node.ctx, ast.Store):
            assigned.add(node.id)
        elif node.id not in assigned:
            read_first.add(node.id)
    return read_first


def _shell_blocks():
    return [(i, b) for i, (lang, b) in enumerate(BLOCKS) if lang == "sh"]


def _redirect(words, sign):
    """`words` without ``SIGN FILE``, and FILE (None without it)."""
    if sign not in words:
        return words, None
    at = words.index(sign)
    return words[:at] + words[at + 2:], words[at + 1]


def _run_line(line, monkeypatch):
    """Run a shell line of deepae commands, with ``<``, ``>`` and ``|``, in this process."""
    words = shlex.split(line, comments=True)
    data = None
    commands = [[]]
    for word in words:
        if word == "|":
            commands.append([])
        else:
            commands[-1].append(word)
    for command in commands:
        assert command[0] == "deepae", f"README line {line!r} is not a deepae command"
        command, source = _redirect(command, "<")
        command, out = _redirect(command, ">")
        if source is not None:
            data = Path(source).read_bytes()
        monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data or b"")))
        buf = io.TextIOWrapper(io.BytesIO(), encoding="utf-8")
        with contextlib.redirect_stdout(buf):
            rc = main(command[1:])
        assert rc == 0, f"README line {line!r} exited with {rc}"
        buf.flush()
        data = buf.buffer.getvalue()
        if out is not None:
            Path(out).write_bytes(data)
            assert Path(out).stat().st_size > 0


@pytest.mark.parametrize("index, block", _shell_blocks(), ids=lambda v: str(v)[:30])
def test_shell_examples(world, tiny, tmp_path, monkeypatch, index, block):
    _fresh(world, tmp_path, monkeypatch)
    ran = 0
    for line in block.splitlines():
        if not shlex.split(line, comments=True) or line.startswith(NOT_RUN):
            continue
        _run_line(line, monkeypatch)
        ran += 1
    installs = [line for line in block.splitlines() if line.startswith(NOT_RUN)]
    assert ran or installs
