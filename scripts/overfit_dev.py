"""Development runs of the overfitted codec (effort="best") on the *training* photographs.

    python scripts/overfit_dev.py [--iterations 2000] [--lmbda 0.013]
                                  [--arch 7,8,1,8] [--photos camera,coffee,astronaut]

Each photograph's 256x256 crop at (100, 100) is coded with `overfit.encode_planes` (the
architecture levels,context,arm_layers,width) and decoded; JPEG 2000 (the benchmark's
settings) is run at 0.9, 1 and 1.1 times the file's rate. Prints one line per photograph
and the mean PSNR margin over JPEG 2000 at the same rate (interpolated). The design choices
of docs/compression.md ("Encoder effort: best") were made with this script, never on the
benchmark's test crops.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

import numpy as np  # noqa: E402
from compression import jpeg2000, pillow_decode  # noqa: E402


def psnr(a, b):
    return 10 * np.log10(255.0 ** 2 / np.mean((a.astype(np.float64) - b) ** 2))


def main(argv=None):
    from deepae.apps.compress import overfit
    from deepae.datasets import load_photos

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--iterations", type=int, default=overfit.BEST_ITERATIONS)
    ap.add_argument("--lmbda", type=float, default=0.013)
    ap.add_argument("--arch", default="7,8,1,8")
    ap.add_argument("--photos", default="camera,coffee,astronaut")
    args = ap.parse_args(argv)
    arch = overfit.Architecture(*(int(v) for v in args.arch.split(",")))
    margins = []
    for name, photo in zip(args.photos.split(","), load_photos(args.photos.split(",")),
                           strict=True):
        img = np.round(photo[100:356, 100:356] * 255).astype(np.uint8)
        t = time.perf_counter()
        data, stats = overfit.encode_planes((img / 255.0).astype(np.float32)[None], 1,
                                            args.lmbda, iterations=args.iterations, arch=arch,
                                            seed=0)
        seconds = time.perf_counter() - t
        out = overfit.decode(data, 10 ** 8,
                             lambda p: np.round(np.clip(p[0], 0, 1) * 255))
        bpp, ours = 8 * len(data) / img.size, psnr(img, out)
        ref = sorted((8 * len(d) / img.size, psnr(img, pillow_decode(d)))
                     for d in (jpeg2000(img, 8 / bpp * f) for f in (0.9, 1.0, 1.1)))
        theirs = float(np.interp(bpp, [r[0] for r in ref], [r[1] for r in ref]))
        margins.append(ours - theirs)
        print(f"{name}: {bpp:.3f} bpp, {ours:.2f} dB (JPEG 2000 {theirs:.2f} dB at that rate: "
              f"{ours - theirs:+.2f} dB); networks {stats['planes'][0]['weight_bytes']} B; "
              f"{seconds:.0f} s", flush=True)
    print(f"mean margin over JPEG 2000: {np.mean(margins):+.2f} dB ({arch}, "
          f"{args.iterations} iterations, lambda {args.lmbda})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
