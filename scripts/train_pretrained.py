"""Train the restoration models that ship inside the package (`deepae/pretrained/`).

    python scripts/train_pretrained.py [--only denoiser,x2,x4] [--epochs N]
                                       [--patches 4096] [--out src/deepae/pretrained]

Data: grayscale luminance of scikit-image's photographs `deepae.datasets.TRAIN_PHOTOS`
(camera, astronaut, coffee, chelsea, rocket, page, text, moon), random 48x48 patches with
flips and rotations. The test photographs of the benchmark (`TEST_PHOTOS`) are never used.
- denoiser.deepae: a blind Gaussian Denoiser, sigma drawn per patch from [0, 0.35].
- super_resolver_x2.deepae, super_resolver_x4.deepae: SuperResolvers on box-downscaled
  patches.
All are saved with ``per_channel=True``, so colour images are restored channel by channel.
Epochs by default: 30 for the denoiser, 20 for each upscaler (4,096 patches each), about
14 and 9 minutes on a 2-core CPU; seeds are fixed.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", default="denoiser,x2,x4")
    ap.add_argument("--epochs", type=int, help="default: 30 (denoiser), 20 (upscalers)")
    ap.add_argument("--patches", type=int, default=4096, help="patches per epoch")
    ap.add_argument("--out", default=str(Path(__file__).resolve().parents[1] / "src" / "deepae"
                                         / "pretrained"))
    args = ap.parse_args(argv)

    from deepae import Denoiser, SuperResolver
    from deepae.datasets import TRAIN_PHOTOS, load_photos

    photos = [p[..., None] for p in load_photos(TRAIN_PHOTOS)]
    common = dict(patches_per_epoch=args.patches, patch_size=48,
                  per_channel=True, random_state=0, verbose=1)
    def epochs(default):
        return args.epochs or default

    jobs = {"denoiser": ("denoiser.deepae",
                         lambda: Denoiser(sigma=(0.0, 0.35), epochs=epochs(30), **common)),
            "x2": ("super_resolver_x2.deepae",
                   lambda: SuperResolver(scale=2, epochs=epochs(20), **common)),
            "x4": ("super_resolver_x4.deepae",
                   lambda: SuperResolver(scale=4, epochs=epochs(20), **common))}
    for key in args.only.split(","):
        if key not in jobs:
            raise SystemExit(f"--only takes {sorted(jobs)}; got {key!r}")
        filename, make = jobs[key]
        t = time.perf_counter()
        est = make().fit(photos)
        path = est.save(Path(args.out) / filename)
        print(f"{filename}: {time.perf_counter() - t:.0f} s, final loss "
              f"{est.history_['loss'][-1]:.6f}, {Path(path).stat().st_size / 1e6:.2f} MB",
              flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
