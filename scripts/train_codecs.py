"""Train the image codecs that ship inside the package (`deepae/pretrained/codec_q*.deepae`).

    python scripts/train_codecs.py [--base 5] [--epochs 10] [--resume]
                                   [--work benchmarks/out/codec_training] [--out DIR]
    python scripts/train_codecs.py --more 60 [--qualities 8,7,6,1,2,3,4,5] [--out DIR]

Data: grayscale luminance of scikit-image's photographs `deepae.datasets.TRAIN_PHOTOS`
(camera, astronaut, coffee, chelsea, rocket, page, text, moon), random 96x96 patches with
flips and rotations; the benchmark's test photographs (`TEST_PHOTOS`) are never used.

Quality q has the rate-distortion trade-off `deepae.apps.compress.QUALITY_LAMBDAS[q]`. The
base quality is trained from scratch in the phases of `BASE_PHASES` (each a warm restart of
the cosine learning-rate schedule; each phase's result is kept in --work); the others are
fine-tuned in a chain from their trained neighbour (`--epochs` each: 6, 7, 8 upwards from 5,
then 4, 3, 2, 1 downwards), which costs a fraction of training each from scratch. Each codec
is saved as soon as it is trained; `--resume` reuses the phases and codecs already written.
`--more N` is a further round: each codec already in --out continues at its own lambda for N
epochs (`MORE`: a cosine schedule restarted at 5e-4), its history appended. The shipped codecs
are the default chain followed by one round of `--more 60` (400 to 730 s per codec, 65
minutes in all). Seeds are fixed. With the defaults: 30 + 60 + 120 epochs for the base
(measured: 634, 1,800 and 1,501 s on the 2-core CPU, the second phase sharing it with
another job), then 7 fine-tunings of about 100 s each.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

ARCH = dict(filters=64, latent_channels=96, levels=4)
# the base codec's training: a first phase on many small patches, then longer ones on larger
# patches (fewer latents touch a patch border), the same pixels per epoch; 15 to 20 s per
# epoch on a 2-core CPU. Each phase restarts the cosine schedule at 1e-3. Measured on the
# test crops of benchmarks/compression.py after each phase: 29.64 dB at 0.847 bpp, then
# 31.25 dB at 0.811 bpp, then 31.64 dB at 0.811 bpp (JPEG 2000: 33.6 dB at that rate).
BASE_PHASES = (dict(epochs=30, patch_size=96, patches_per_epoch=2048, batch_size=8),
               dict(epochs=60, patch_size=128, patches_per_epoch=1152, batch_size=4),
               dict(epochs=120, patch_size=256, patches_per_epoch=288, batch_size=2))
FINE_TUNE = dict(patch_size=256, patches_per_epoch=288, batch_size=2, learning_rate=5e-4)
# note: the patches of the last base phase and of the fine-tunings are 160 pixels, not 256: a
# patch is at most the smallest training photograph (`text`, 172 rows), rounded down to the
# stride. `--more` uses 128-pixel patches in batches of 8 (25% more pixels per second on the
# 2-core CPU than 160 x 2), about 7.3 megapixels and 6 to 8 s per epoch.
MORE = dict(patch_size=128, patches_per_epoch=448, batch_size=8, learning_rate=5e-4)


def train_more(qualities, epochs, out):
    """One further round: each codec in `out` continues at its own lambda (`MORE`)."""
    from deepae import ImageCodec
    from deepae.apps.compress import QUALITY_LAMBDAS
    from deepae.datasets import TRAIN_PHOTOS, load_photos

    photos = [p[..., None] for p in load_photos(TRAIN_PHOTOS)]
    for q in qualities:
        path = out / f"codec_q{q}.deepae"
        codec = ImageCodec.load(path)
        t = time.perf_counter()
        codec.set_params(lmbda=QUALITY_LAMBDAS[q], epochs=epochs, warm_start=True,
                         random_state=1000 + q, verbose=1, **MORE)
        codec.fit(photos)
        codec.set_params(warm_start=False, verbose=0)
        codec.save(path)
        print(f"codec_q{q}: {epochs} more epochs, {time.perf_counter() - t:.0f} s, train bpp "
              f"{codec.history_['bpp'][-1]:.3f}, mse {codec.history_['mse'][-1]:.6f}",
              flush=True)


def train_base(photos, lmbda, seed, work, resume):
    """The base codec, phase by phase (`BASE_PHASES`), each phase saved in `work`."""
    from deepae import ImageCodec

    codec = None
    for i, phase in enumerate(BASE_PHASES, 1):
        path = work / f"base_phase{i}.deepae"
        if resume and path.exists():
            codec = ImageCodec.load(path)
            print(f"base phase {i}: reused {path}", flush=True)
            continue
        if codec is None:
            codec = ImageCodec(lmbda=lmbda, learning_rate=1e-3, random_state=seed, verbose=1,
                               **ARCH, **phase)
        else:
            codec.set_params(warm_start=True, random_state=seed + 100 * i, **phase)
        codec.fit(photos)
        codec.save(path)
    codec.set_params(warm_start=False)
    return codec


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--base", type=int, default=5)
    ap.add_argument("--work", default=str(Path(__file__).resolve().parents[1] / "benchmarks"
                                          / "out" / "codec_training"))
    ap.add_argument("--epochs", type=int, default=10, help="epochs of each fine-tuning")
    ap.add_argument("--resume", action="store_true")
    ap.add_argument("--out", default=str(Path(__file__).resolve().parents[1] / "src" / "deepae"
                                         / "pretrained"))
    ap.add_argument("--more", type=int, default=0,
                    help="continue each codec in --out for this many epochs (see above)")
    ap.add_argument("--qualities", default="8,7,6,1,2,3,4,5", help="the order of --more")
    args = ap.parse_args(argv)
    if args.more:
        train_more([int(q) for q in args.qualities.split(",")], args.more, Path(args.out))
        return 0

    from deepae import ImageCodec
    from deepae.apps.compress import QUALITY_LAMBDAS
    from deepae.datasets import TRAIN_PHOTOS, load_photos

    photos = [p[..., None] for p in load_photos(TRAIN_PHOTOS)]
    out = Path(args.out)
    # the chain: base, then upwards, then downwards, each from its trained neighbour
    order = [args.base] + list(range(args.base + 1, 9)) + list(range(args.base - 1, 0, -1))
    trained = {}
    for q in order:
        path = out / f"codec_q{q}.deepae"
        if args.resume and path.exists():
            trained[q] = ImageCodec.load(path)
            print(f"codec_q{q}: reused {path}", flush=True)
            continue
        parent = q - 1 if q > args.base else q + 1
        t = time.perf_counter()
        if q == args.base:
            codec = train_base(photos, QUALITY_LAMBDAS[q], q, Path(args.work), args.resume)
        else:
            if parent not in trained:
                raise SystemExit(f"codec_q{q} is fine-tuned from codec_q{parent}, which is "
                                 "neither trained in this run nor found with --resume")
            codec = trained[parent]
            codec.set_params(lmbda=QUALITY_LAMBDAS[q], epochs=args.epochs, warm_start=True,
                             random_state=q, **FINE_TUNE)
            codec.history_ = {}  # the history is this quality's own fine-tuning
            codec.fit(photos)
        codec.set_params(warm_start=False)
        codec.save(path)
        trained[q] = ImageCodec.load(path)  # a fresh copy: the next fine-tuning changes it
        print(f"codec_q{q}: lambda {QUALITY_LAMBDAS[q]}, {time.perf_counter() - t:.0f} s, "
              f"train bpp {codec.history_['bpp'][-1]:.3f}, mse {codec.history_['mse'][-1]:.6f},"
              f" {path.stat().st_size / 1e6:.2f} MB", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
