"""Fetch and prepare the wallpaper photographs the restoration models train and test on.

    python scripts/prepare_photos.py [--out ~/.cache/deepae/photos] [--debs DIR]

Downloads Debian's ``mate-backgrounds`` and ``plasma-workspace-wallpapers`` packages with
``apt-get download`` (47 MB and 94 MB; nothing is installed), unpacks them with
``dpkg -x`` in a temporary folder, and writes the 23 real photographs among them
(`deepae.datasets.TRAIN_WALLPAPERS` and the held-out `TEST_WALLPAPERS`) as PNG files in
--out (`deepae.datasets.wallpaper_folder`). Each is the largest size the package has,
box-averaged down by 3 (long side of 2,400 pixels or more) or 2 (smaller ones): averaging
washes out the JPEG artefacts of the originals. `--debs DIR` uses .deb files already
downloaded there. A manifest (``manifest.json``) records each photograph's source file,
its SHA-256, the factor and the size written. Files are written under a temporary name and
renamed, so an interrupted run leaves no half-written photograph.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

MATE = "usr/share/backgrounds/mate/nature/{}.jpg"
PLASMA = "usr/share/wallpapers/{}/contents/images"
PACKAGES = ("mate-backgrounds", "plasma-workspace-wallpapers")


def source(root: Path, name: str) -> Path:
    """The largest JPEG of photograph `name` in the unpacked packages under `root`."""
    mate = root / MATE.format(name)
    if mate.is_file():
        return mate
    folder = root / PLASMA.format(name)
    files = sorted(folder.glob("*.jpg"), key=lambda p: _pixels(p.stem))
    if not files:
        raise SystemExit(f"No photograph {name!r} in the packages: looked for {mate} and "
                         f"{folder}/*.jpg")
    return files[-1]


def _pixels(stem):
    w, _, h = stem.partition("x")
    return int(w) * int(h) if w.isdigit() and h.isdigit() else 0


def run(cmd, **kwargs):
    """Run a command; a missing tool or a failure ends the script with one clear line."""
    if shutil.which(cmd[0]) is None:
        raise SystemExit(f"prepare_photos needs `{cmd[0]}` (a Debian or Ubuntu system); it is "
                         "not on PATH. On another system, download the two .deb files and "
                         "pass --debs DIR (dpkg is still needed to unpack them).")
    done = subprocess.run(cmd, capture_output=True, text=True, **kwargs)
    if done.returncode:
        raise SystemExit(f"`{' '.join(cmd)}` failed ({done.returncode}): "
                         f"{(done.stderr or done.stdout).strip().splitlines()[-1:]}")
    return done


def box_down(rgb, factor):
    import numpy as np

    h, w = rgb.shape[0] // factor * factor, rgb.shape[1] // factor * factor
    blocks = rgb[:h, :w].astype(np.float64).reshape(h // factor, factor, w // factor, factor, 3)
    return np.clip(np.rint(blocks.mean(axis=(1, 3))), 0, 255).astype(np.uint8)


def main(argv=None):
    import numpy as np
    from PIL import Image

    from deepae.datasets import TEST_WALLPAPERS, TRAIN_WALLPAPERS, wallpaper_folder

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=None, help="default: deepae.datasets.wallpaper_folder()")
    ap.add_argument("--debs", default=None, help="a folder with the two .deb files already")
    args = ap.parse_args(argv)
    out = wallpaper_folder(args.out)
    manifest = {}
    with tempfile.TemporaryDirectory() as tmp:
        debs = Path(args.debs) if args.debs else Path(tmp)
        if not args.debs:
            run(["apt-get", "download", *PACKAGES], cwd=debs)
        chosen = []
        for package in PACKAGES:
            found = sorted(debs.glob(f"{package}_*.deb"))
            if len(found) != 1:
                raise SystemExit(f"Expected one {package}_*.deb in {debs}; found "
                                 f"{[f.name for f in found]}.")
            chosen += found
        root = Path(tmp) / "unpacked"
        for f in chosen:
            run(["dpkg", "-x", str(f), str(root)])
        out.mkdir(parents=True, exist_ok=True)
        (out / "manifest.json").unlink(missing_ok=True)  # stale until this run completes
        for name in TRAIN_WALLPAPERS + TEST_WALLPAPERS:
            src = source(root, name)
            with Image.open(src) as im:
                rgb = np.asarray(im.convert("RGB"))
            factor = 3 if max(rgb.shape[:2]) >= 2400 else 2
            small = box_down(rgb, factor)
            part = out / f".{name}.png.part"
            try:
                Image.fromarray(small).save(part, format="PNG")
                os.replace(part, out / f"{name}.png")
            finally:
                part.unlink(missing_ok=True)
            manifest[name] = {"package": next(f.name for f in chosen if f.name.startswith(
                                  "mate" if src.is_relative_to(root / "usr/share/backgrounds")
                                  else "plasma")),
                              "source": str(src.relative_to(root)),
                              "sha256": hashlib.sha256(src.read_bytes()).hexdigest(),
                              "factor": factor, "size": [small.shape[1], small.shape[0]],
                              "held_out": name in TEST_WALLPAPERS}
            print(f"{name}: {src.name} {rgb.shape[1]}x{rgb.shape[0]} / {factor} -> "
                  f"{small.shape[1]}x{small.shape[0]}", flush=True)
    part = out / ".manifest.json.part"
    part.write_text(json.dumps(manifest, indent=1))
    os.replace(part, out / "manifest.json")
    print(f"{len(manifest)} photographs in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
