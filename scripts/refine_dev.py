"""Choose the latent refinement's learning rate (`deepae.apps.compress.refine`) on the
training photographs, never on the benchmark's test photographs.

    python scripts/refine_dev.py [--qualities 2,5,8] [--steps 200] [--rates 0.005,0.01,0.02]
                                 [--json scripts/refine_dev.json]

For each shipped quality and each learning rate: 160x160 centre crops of TRAIN_PHOTOS
compressed without and with refinement; mean bits per pixel (real file sizes), mean PSNR and
the rate-distortion cost the refinement lowers (bpp + lambda * MSE in 8-bit units).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def centre_crops(size=160):
    import numpy as np

    from deepae.datasets import TRAIN_PHOTOS, load_photos

    out = []
    for p in load_photos(TRAIN_PHOTOS):
        h, w = p.shape
        y, x = (h - size) // 2, (w - size) // 2
        out.append(np.round(p[y:y + size, x:x + size] * 255).astype(np.uint8))
    return out


def measure(codec, crops, steps):
    import numpy as np

    from deepae.metrics import bits_per_pixel, psnr

    bpp, db, mse = [], [], []
    for im in crops:
        data = codec.compress(im, refine_steps=steps)
        out = codec.decompress(data)
        bpp.append(bits_per_pixel(data, im.shape))
        mse.append(np.mean((out.astype(float) - im) ** 2))
        db.append(psnr(im, out, data_range=255))
    return float(np.mean(bpp)), float(np.mean(db)), float(np.mean(mse))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--qualities", default="2,5,8")
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--rates", default="0.005,0.01,0.02")
    ap.add_argument("--json", default=str(Path(__file__).with_suffix(".json")))
    args = ap.parse_args(argv)

    from deepae import ImageCodec
    from deepae.apps.compress import QUALITY_LAMBDAS
    from deepae.apps.compress.refine import LatentRefiner

    crops = centre_crops()
    rows = []
    for q in (int(v) for v in args.qualities.split(",")):
        codec = ImageCodec.pretrained(quality=q)
        lam = QUALITY_LAMBDAS[q]
        for lr in [None] + [float(v) for v in args.rates.split(",")]:
            if lr is not None:  # the codec's refiner with this rate (a development hook)
                codec._refiner = LatentRefiner(codec.synthesis_, codec.prior_, codec.tables_,
                                               learning_rate=lr)
            t = time.perf_counter()
            bpp, psnr, mse = measure(codec, crops, 0 if lr is None else args.steps)
            row = {"quality": q, "learning_rate": lr, "steps": 0 if lr is None else args.steps,
                   "bpp": bpp, "psnr": psnr, "cost": bpp + lam * mse,
                   "seconds": round(time.perf_counter() - t, 1)}
            rows.append(row)
            print(f"q{q} lr {lr}: bpp {bpp:.4f} PSNR {psnr:.3f} cost {row['cost']:.4f} "
                  f"({row['seconds']} s)", flush=True)
    Path(args.json).write_text(json.dumps({"command": "python scripts/refine_dev.py "
                                           + " ".join(argv or sys.argv[1:]),
                                           "crops": len(crops), "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
