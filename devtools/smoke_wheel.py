"""`pip install deepae` alone works: the wheel of this tree, installed by itself into a fresh
virtual environment, runs.

Builds the wheel (``pip wheel --no-deps``) from a copy of the tree, so that setuptools'
``build/`` and ``*.egg-info`` neither land in the checkout nor carry stale files into the
wheel; creates a virtual environment in a temporary folder and installs the wheel there with
no extra and nothing installed before it (pip takes TensorFlow and the rest from the
registry, or its cache); then, from an empty folder outside the repository (the source tree
is not importable, no user site-packages): imports deepae, runs ``deepae --help``, denoises
and compresses a small image with the shipped pretrained models (TensorFlow, Keras, SciPy,
constriction, Pillow, Matplotlib all in use), and denoises a PNG through the command line
with the default pretrained model. A dependency missing from pyproject.toml or a pretrained
model missing from the package data fails here. The temporary folder is removed at the end.

Run by ``make smoke`` (a part of ``make test``); about a minute, most of it pip installing
TensorFlow: ``python devtools/smoke_wheel.py [--keep]``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PRETRAINED = REPO / "src" / "deepae" / "pretrained"
PIP_QUIET = ["--disable-pip-version-check", "--no-input", "-q"]

# Run inside the fresh environment with `python -I` (no current folder, no PYTHONPATH, no user
# site-packages on sys.path); argv: the pretrained files the source tree ships.
CHECKS = r'''
import sys
from pathlib import Path

import numpy as np

import deepae
from deepae import metrics, plots
from deepae.data.io import read_image, write_image

pkg = Path(deepae.__file__).resolve().parent
if Path(sys.prefix).resolve() not in pkg.parents:
    sys.exit(f"deepae was imported from {pkg}, not from the fresh environment {sys.prefix}")
missing = [n for n in sys.argv[1:] if not (pkg / "pretrained" / n).is_file()]
if missing:
    sys.exit(f"pretrained models missing from the installed package: {missing}")

# A smooth 48x48 image and a noisy copy (sigma 0.1)
rng = np.random.default_rng(0)
yy, xx = np.mgrid[0:48, 0:48] / 47.0
clean = (0.5 + 0.35 * np.sin(3 * xx) * np.cos(2 * yy)).astype(np.float32)
noisy = np.clip(clean + rng.normal(0, 0.1, clean.shape), 0, 1).astype(np.float32)

denoised = deepae.Denoiser.pretrained().transform(noisy)
if denoised.shape != noisy.shape or not np.isfinite(denoised).all():
    sys.exit(f"Denoiser.pretrained(): shape {denoised.shape}, expected {noisy.shape}")
before, after = metrics.psnr(clean, noisy, 1.0), metrics.psnr(clean, denoised, 1.0)
if not after > before:
    sys.exit(f"Denoiser.pretrained(): PSNR {after:.2f} dB, not above the noisy {before:.2f} dB")
ssim = metrics.ssim(clean, denoised, 1.0, channel_axis=None)  # SciPy's Gaussian filter

codec = deepae.ImageCodec.pretrained(quality=4)  # constriction's range coder
data = codec.compress((clean * 255).round().astype(np.uint8))
back = codec.decompress(data)
if back.shape != clean.shape:
    sys.exit(f"ImageCodec.pretrained(): decoded shape {back.shape}, expected {clean.shape}")

# the detector on an array and a table (the tabular preprocessing uses pandas), and its
# exported SavedModel, run by TensorFlow alone, on the same rows
X, y = deepae.datasets.make_transactions(600, fraud_rate=0.02, categorical=True,
                                         random_state=0)
det = deepae.AnomalyDetector(epochs=1, n_estimators=1, random_state=0).fit(X[y == 0])
scores = det.decision_function(X.iloc[:5])
arr = deepae.AnomalyDetector(epochs=1, n_estimators=1, random_state=0).fit(
    X.select_dtypes("number").to_numpy()[:300])
if not (np.isfinite(scores).all() and arr.predict(X.select_dtypes("number").to_numpy()[:5])
        .shape == (5,)):
    sys.exit(f"AnomalyDetector: scores {scores}")
import tensorflow as tf  # noqa: E402

from deepae.exporting import input_names  # noqa: E402

serve = tf.saved_model.load(str(det.export("fraud_savedmodel"))).signatures["serving_default"]
names = input_names(X.columns)
feed = {names[c]: tf.constant(X[c].iloc[:5].to_numpy(np.float32) if c in det.preprocessor_.numeric_
                              else X[c].iloc[:5].astype(str).to_numpy().astype(bytes))
        for c in X.columns}
if not np.allclose(serve(**feed)["score"].numpy(), scores, rtol=1e-5, atol=1e-5):
    sys.exit("the exported SavedModel's scores differ from decision_function's")

write_image("noisy.png", (noisy * 255).round().astype(np.uint8))  # Pillow
if read_image("noisy.png").shape[:2] != clean.shape:
    sys.exit("noisy.png did not read back at 48x48")
plots.reconstruction_grid(noisy[None], denoised[None], "grid.png")  # Matplotlib
print(f"deepae {deepae.__version__} from {pkg}")
print(f"denoiser: PSNR {before:.2f} -> {after:.2f} dB, SSIM {ssim:.3f}; "
      f"codec: {len(data)} bytes for 48x48")
'''


def _copy_tree(dst: Path) -> None:
    """The working tree (tracked files and untracked ones git does not ignore) into `dst`;
    without git, the whole folder less the virtual environment and build outputs."""
    try:
        out = subprocess.run(["git", "-C", str(REPO), "ls-files", "-z", "--cached", "--others",
                              "--exclude-standard"], check=True, capture_output=True).stdout
    except (OSError, subprocess.CalledProcessError):
        shutil.copytree(REPO, dst, ignore=shutil.ignore_patterns(
            ".git", ".venv", "build", "dist", "*.egg-info", "__pycache__", ".*_cache"))
        return
    for name in out.decode().split("\0"):
        src = REPO / name
        if name and src.is_file():  # a tracked file deleted in the working tree is skipped
            (dst / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dst / name)


def _run(cmd, *, env, cwd=None) -> None:
    shown = [Path(cmd[0]).name] + ["CHECKS" if c is CHECKS else str(c) for c in cmd[1:]]
    print("$", " ".join(shown[:8]) + (" ..." if len(shown) > 8 else ""), flush=True)
    subprocess.run([str(c) for c in cmd], env=env, cwd=cwd, check=True)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", action="store_true",
                        help="keep the temporary folder (wheel, environment) and print its path")
    args = parser.parse_args(argv)

    # Nothing from this environment may make a missing dependency importable there.
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "VIRTUAL_ENV")}
    env.update(PYTHONNOUSERSITE="1", TF_CPP_MIN_LOG_LEVEL="2")
    pretrained = sorted(p.name for p in PRETRAINED.glob("*.deepae"))

    tmp = Path(tempfile.mkdtemp(prefix="deepae-smoke-"))
    start = time.perf_counter()
    try:
        src, dist, venv, work = (tmp / d for d in ("src", "dist", "venv", "work"))
        _copy_tree(src)
        _run([sys.executable, "-m", "pip", "wheel", *PIP_QUIET, "--no-deps", "-w", dist, src],
             env=env)
        wheels = sorted(dist.glob("deepae-*.whl"))
        if len(wheels) != 1:
            raise SystemExit(f"expected one deepae wheel in {dist}; found {wheels}")
        built = time.perf_counter()

        _run([sys.executable, "-m", "venv", venv], env=env)
        py, cli = venv / "bin" / "python", venv / "bin" / "deepae"
        _run([py, "-m", "pip", "install", *PIP_QUIET, wheels[0]], env=env)
        installed = time.perf_counter()

        work.mkdir()
        _run([py, "-I", "-c", CHECKS, *pretrained], env=env, cwd=work)
        print("$ deepae --help", flush=True)
        usage = subprocess.run([str(cli), "--help"], env=env, cwd=work, check=True,
                               capture_output=True, text=True).stdout
        if not usage.startswith("usage: deepae"):
            raise SystemExit(f"`deepae --help` printed {usage[:200]!r}")
        print(usage.splitlines()[0][:100], flush=True)
        _run([cli, "denoise", "noisy.png", "-o", "denoised.png"], env=env, cwd=work)
        if not (work / "denoised.png").is_file():
            raise SystemExit("`deepae denoise noisy.png -o denoised.png` wrote no file")
        done = time.perf_counter()
        print(f"smoke: {wheels[0].name} works installed alone "
              f"(build {built - start:.0f} s, fresh install {installed - built:.0f} s, "
              f"checks {done - installed:.0f} s; {done - start:.0f} s in all)")
    except subprocess.CalledProcessError as e:
        print(f"smoke: FAILED: {Path(e.cmd[0]).name} ... exited with {e.returncode}",
              file=sys.stderr)
        return 1
    finally:
        if args.keep:
            print(f"smoke: kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
