"""Time effort="best" alone on one 256x256 test crop (crop 10, quality 4): encode seconds
and decode megapixels per second, with nothing else running.

    python scripts/time_best.py
"""

import time

import numpy as np

import deepae
from deepae.datasets import photo_crops


def main():
    img = np.round(photo_crops(size=256)[10] * 255).astype(np.uint8)
    codec = deepae.ImageCodec.pretrained(quality=4)
    codec.compress(img[:32, :32], effort="best", iterations=5)  # warm-up: tracing, numba
    t = time.perf_counter()
    data = codec.compress(img, effort="best")
    enc = time.perf_counter() - t
    codec.decompress(data)
    t = time.perf_counter()
    for _ in range(5):
        codec.decompress(data)
    dec = (time.perf_counter() - t) / 5
    mp = img.size / 1e6
    print(f"alone: encode {enc:.1f} s per 256x256 crop ({enc / mp:.0f} s/MP), decode "
          f"{mp / dec:.2f} MP/s, {8 * len(data) / img.size:.3f} bpp")


if __name__ == "__main__":
    main()
