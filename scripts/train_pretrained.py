"""Train the restoration models that ship inside the package (`deepae/pretrained/`).

    python scripts/prepare_photos.py                 # once: the wallpaper photographs
    python scripts/train_pretrained.py [--only denoiser,denoiser_rgb,x2,x2_rgb,x4,x4_rgb]
                                       [--epochs-scale 1.0] [--work DIR] [--out DIR]
    python scripts/train_pretrained.py --more N [--only ...]     # N more epochs each
                                       [--more-lr 3e-4] [--loss psnr] [--colour-mix]
    python scripts/train_pretrained.py --combine [--out DIR]     # only write the files
    python scripts/train_pretrained.py --from-shipped --more N --only denoiser_rgb
                                       # continue the networks that ship (no --work needed)

Data: scikit-image's photographs `deepae.datasets.TRAIN_PHOTOS` and the wallpaper
photographs `deepae.datasets.TRAIN_WALLPAPERS` (`scripts/prepare_photos.py`); grayscale
models train on their luminance, colour models on the colour ones (the grayscale
scikit-image photos left out). The test photographs of the benchmark (`TEST_PHOTOS`,
`TEST_WALLPAPERS`) are never used. Random 96x96 patches with flips and rotations.

Jobs (`JOBS`), each a network of `ARCH`, trained in this order:
- denoiser / denoiser_rgb: blind Gaussian denoisers, sigma drawn per patch from [0, 0.35],
  three quarters of the noisy patches clipped to [0, 1] and rounded to 8 bits
  (``clipped=0.75``), the rest unclipped;
- x2 / x2_rgb, x4 / x4_rgb: upscalers of box-downscaled patches.
A colour job starts from its grayscale job's network, then trains on colour patches. The
colour networks are shared ones (``colour_network="shared"``: each channel in turn, the
whole image beside it, three times the work of a joint network), which begin as the
grayscale network on each channel exactly (`shared_from_grayscale`). `colour_start` also
starts a joint network (``"joint"``, as the colour networks were before): the grayscale
one's first and last convolutions spread over the three channels (it begins as the
grayscale network on the luminance, its correction added to each channel).

Each job checkpoints every epoch in ``--work/<job>_ckpt`` and resumes from there when
rerun; its estimator is saved to ``--work/<job>.deepae`` when done (a finished job is
skipped on a rerun). Then each pair is written to --out as one file holding both networks
(`Denoiser.with_colour`): ``denoiser.deepae``, ``super_resolver_x2.deepae``,
``super_resolver_x4.deepae`` (default ``benchmarks/out/pretrained``; deepae refuses to
write inside its own package, so shipping them is a copy into ``src/deepae/pretrained``).
`--more N` continues every finished job for N epochs (``warm_start``, a new cosine
schedule from `MORE_LR` or `--more-lr`), its history appended; `--loss psnr` trains those
epochs on each patch's PSNR (`Denoiser(loss="psnr")`), as the shipped networks' last
epochs were.
`--colour-mix` adds to the colour jobs' photographs a copy of each with its channels
reordered and/or some inverted (`colour_mixes`): colour edges that luminance does not show;
as the patches per epoch stay the same, about half of them then come from the copies.
`--from-shipped` first writes ``--work/<job>.deepae`` for each job whose file is missing
from the pairs in ``src/deepae/pretrained`` (a new machine can go on from what ships).
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

ROOT = Path(__file__).resolve().parents[1]
ARCH = dict(filters=(32, 64, 128, 128), convs_per_level=2, patch_size=96, batch_size=16,
            patches_per_epoch=1024, learning_rate=1e-3)
MORE_LR = 3e-4
# job: (estimator, parameters, epochs, colour, the grayscale job a colour one starts from)
JOBS = {
    "denoiser": ("Denoiser", dict(sigma=(0.0, 0.35), clipped=0.75), 110, False, None),
    "denoiser_rgb": ("Denoiser", dict(sigma=(0.0, 0.35), clipped=0.75,
                                      colour_network="shared"), 25, True, "denoiser"),
    "x2": ("SuperResolver", dict(scale=2), 65, False, None),
    "x2_rgb": ("SuperResolver", dict(scale=2, colour_network="shared"), 50, True, "x2"),
    "x4": ("SuperResolver", dict(scale=4), 65, False, None),
    "x4_rgb": ("SuperResolver", dict(scale=4, colour_network="shared"), 25, True, "x4"),
}
FILES = {"denoiser.deepae": ("denoiser", "denoiser_rgb"),
         "super_resolver_x2.deepae": ("x2", "x2_rgb"),
         "super_resolver_x4.deepae": ("x4", "x4_rgb")}
LUMA = (0.2125, 0.7154, 0.0721)  # skimage.color.rgb2gray's weights


def colour_mixes(photos, seed=0):
    """A copy of each colour photograph (float, in [0, 1]) with its channels reordered
    and/or some of them inverted (``1 - x``), never equal to the photograph (a gray one,
    its three channels equal, gets at least one channel inverted): colour edges that
    luminance does not show, which natural photographs have too few of for a joint colour
    network to learn. Deterministic for a `seed`."""
    import numpy as np

    rng = np.random.default_rng(seed)
    out = []
    for i, p in enumerate(photos):
        for _ in range(100):
            order, flip = rng.permutation(3), rng.random(3) < 0.5
            q = p[..., order]
            q[..., flip] = 1.0 - q[..., flip]
            if not np.array_equal(q, p):
                break
        else:  # only a photograph of equal channels, each 1 - itself (0.5 everywhere)
            raise ValueError(f"colour_mixes needs photographs that some reordering or "
                             f"inversion of their channels changes; photograph {i} is "
                             "uniform gray 0.5.")
        out.append(q)
    return out


def training_photos(colour, mix=False):
    """The training photographs: (h, w, 3) colour or (h, w, 1) luminance; with `mix`, the
    colour ones followed by their `colour_mixes`."""
    from deepae.datasets import TRAIN_PHOTOS, TRAIN_WALLPAPERS, load_photos, load_wallpapers

    if colour:
        photos = [p for p in load_photos(TRAIN_PHOTOS, gray=False) if p.ndim == 3]
        photos = photos + load_wallpapers(TRAIN_WALLPAPERS)
        return photos + colour_mixes(photos) if mix else photos
    photos = load_photos(TRAIN_PHOTOS) + load_wallpapers(TRAIN_WALLPAPERS, gray=True)
    return [p[..., None] for p in photos]


def colour_start(est, gray):
    """Give the unfitted colour estimator `est` the grayscale network of `gray`. A joint
    colour network (``colour_network="joint"``) gets its input convolution reading the
    luminance of the three channels and its output convolution adding the same correction
    to each; a shared one (``"shared"``) restores each channel exactly as `gray` does
    (`shared_from_grayscale`)."""
    import numpy as np

    from deepae import Denoiser
    from deepae.nn.restoration import restoration_net, shared_from_grayscale

    if tuple(est.get_params()["filters"]) != tuple(gray.get_params()["filters"]):
        raise SystemExit(f"A colour job starts from its grayscale job's network: filters "
                         f"{tuple(gray.get_params()['filters'])} there, "
                         f"{tuple(est.get_params()['filters'])} asked (give --filters to both "
                         "or neither).")
    # the network the estimator builds for colour images (`restoration_net`, as its name)
    p = est.get_params()
    shared = p["colour_network"] == "shared"
    model = restoration_net(3, filters=tuple(p["filters"]),
                            convs_per_level=int(p["convs_per_level"]),
                            scale=int(p.get("scale", 1)), shared=shared,
                            name="denoiser" if isinstance(est, Denoiser) else "super_resolver")
    if shared:
        shared_from_grayscale(model, gray.model_)
    else:
        weights = []
        for new, old in zip(model.weights, gray.model_.weights, strict=True):
            old = old.numpy()
            if tuple(new.shape) != old.shape:  # the first and the last convolution
                if len(old.shape) == 4 and old.shape[-2] == 1:  # in: (3, 3, 1, f) -> (3, 3, 3, f)
                    old = np.concatenate([old * w for w in LUMA], axis=-2)
                else:  # output kernel (3, 3, f, 1) or bias (1,): one per channel
                    old = np.repeat(old, 3, axis=-1)
            weights.append(old)
        model.set_weights(weights)
    # a warm start from these weights: the fitted state a fit on colour images would leave
    est.model_, est.n_channels_, est.history_ = model, 3, {}
    est.set_params(warm_start=True)


def run_job(name, work, epochs_scale, more=0, loss=None, filters=None, mix=False,
            more_lr=MORE_LR):
    from deepae import Denoiser, SuperResolver

    kind, params, epochs, colour, parent = JOBS[name]
    cls = {"Denoiser": Denoiser, "SuperResolver": SuperResolver}[kind]
    done = work / f"{name}.deepae"
    if filters and (more or done.exists()):
        raise SystemExit(f"--filters sets the network of a new job; {name} is trained already "
                         f"({done}): a warm start keeps its architecture.")
    if done.exists() and not more:
        unused = [o for o, v in (("--loss", loss), ("--colour-mix", mix and colour)) if v]
        print(f"{name}: done ({done}){''.join(f'; {o} not used' for o in unused)}",
              flush=True)
        return
    seed = sorted(JOBS).index(name)
    if more:
        if not done.exists():
            raise SystemExit(f"--more continues finished jobs: {done} is missing.")
        est = cls.load(done)
        est.set_params(warm_start=True, epochs=more, learning_rate=more_lr,
                       random_state=1000 + seed + len(est.history_.get("loss", [])),
                       checkpoint_dir=str(work / f"{name}_more_ckpt"), resume=True, verbose=2)
        if loss:
            est.set_params(loss=loss)
    else:
        arch = {**ARCH, **params, **({"loss": loss} if loss else {}),
                **({"filters": filters} if filters else {})}
        est = cls(**arch, epochs=max(1, round(epochs * epochs_scale)),
                  per_channel=not colour, random_state=seed,
                  checkpoint_dir=str(work / f"{name}_ckpt"), resume=True, verbose=2)
        if colour:
            parent_file = work / f"{parent}.deepae"
            if not parent_file.exists():
                raise SystemExit(f"{name} starts from {parent}: train it first ({parent_file} "
                                 "is missing).")
            colour_start(est, cls.load(parent_file))
    t = time.perf_counter()
    est.fit(training_photos(colour, mix), keep_checkpoint=True)
    est.set_params(warm_start=False, checkpoint_dir=None, resume=False, verbose=0)
    est.save(done)
    from deepae.training import remove_checkpoint

    remove_checkpoint(est_ckpt := work / (f"{name}_more_ckpt" if more else f"{name}_ckpt"))
    h = est.history_
    print(f"{name}: {len(h['loss'])} epochs in all, this run {time.perf_counter() - t:.0f} s, "
          f"total {h['seconds'][-1]:.0f} s, final loss {h['loss'][-1]:.6f} ({est_ckpt.name} "
          "removed)", flush=True)


def from_shipped(work):
    """Write ``work/<job>.deepae`` for each job whose file is missing, split from the pair
    that ships: the grayscale network with its estimator, the colour one with a copy."""
    from deepae import Denoiser, SuperResolver

    for filename, jobs in FILES.items():
        missing = []
        for j in jobs:
            if (work / f"{j}.deepae").exists():
                print(f"{j}: kept {work / f'{j}.deepae'}", flush=True)
            elif (work / f"{j}_ckpt").exists():  # a run under way: resumed, not replaced
                print(f"{j}: not taken from {filename}: {work / f'{j}_ckpt'} is resumed",
                      flush=True)
            else:
                missing.append(j)
        if not missing:
            continue
        cls = Denoiser if JOBS[jobs[0]][0] == "Denoiser" else SuperResolver
        for job in missing:
            est = cls.load(ROOT / "src" / "deepae" / "pretrained" / filename)
            if JOBS[job][3]:  # the colour network, with its own training record and design
                info, design = est.colour_training_, est.describe()["colour_network"]["design"]
                est.model_, est.n_channels_ = est.colour_model_, 3
                est.patch_size_, est.history_ = info["patch_size"], info["history"]
                est.set_params(per_channel=False, colour_network=design)
            del est.colour_model_, est.colour_training_
            est.save(work / f"{job}.deepae")
            print(f"{job}: from the shipped {filename} ({len(est.history_['loss'])} epochs)",
                  flush=True)


def combine(work, out):
    """Write each pair of finished jobs to `out` as one file with both networks."""
    from deepae import Denoiser, SuperResolver

    for filename, (gray, colour) in FILES.items():
        cls = Denoiser if JOBS[gray][0] == "Denoiser" else SuperResolver
        files = [work / f"{gray}.deepae", work / f"{colour}.deepae"]
        if not all(f.exists() for f in files):
            print(f"{filename}: not written ({' or '.join(map(str, files))} missing)")
            continue
        est = cls.load(files[0]).with_colour(cls.load(files[1]))
        path = est.save(Path(out) / filename)
        print(f"{filename}: {Path(path).stat().st_size / 1e6:.2f} MB", flush=True)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", default=",".join(JOBS))
    ap.add_argument("--epochs-scale", type=float, default=1.0,
                    help="multiply every job's epochs (a quick run: 0.05)")
    ap.add_argument("--more", type=int, default=0)
    ap.add_argument("--more-lr", type=float,
                    help=f"the first learning rate of --more's cosine schedule (default "
                         f"{MORE_LR:g})")
    ap.add_argument("--loss", choices=("mse", "psnr"), help="the training loss of the jobs "
                    "run now (default: the job's own, mse for a new one)")
    ap.add_argument("--filters", help="filters of new jobs, e.g. 64,64,128,128 (default: "
                    "ARCH's)")
    ap.add_argument("--colour-mix", action="store_true",
                    help="colour jobs also train on a copy of each photograph with its "
                         "channels reordered and/or some inverted (colour edges; about "
                         "half of the patches then come from the copies)")
    ap.add_argument("--combine", action="store_true", help="only write the --out files")
    ap.add_argument("--from-shipped", action="store_true",
                    help="first take the missing finished jobs from the shipped pairs")
    ap.add_argument("--work", default=str(ROOT / "benchmarks" / "out" / "pretrained_training"))
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "out" / "pretrained"),
                    help="where the pairs are written (deepae never writes inside its "
                         "package: copy them to src/deepae/pretrained to ship them)")
    args = ap.parse_args(argv)
    # every argument checked before anything is written or trained
    only = [n.strip() for n in args.only.split(",")]
    unknown = [n for n in only if n not in JOBS]
    if unknown:
        ap.error(f"--only takes names among {list(JOBS)}, separated by commas; got "
                 f"{', '.join(map(repr, unknown))}")
    if args.more < 0:
        ap.error(f"--more takes a number of epochs (0 or more); got {args.more}")
    if args.more_lr is not None:
        if not (math.isfinite(args.more_lr) and args.more_lr > 0):
            ap.error(f"--more-lr takes a positive finite learning rate; got {args.more_lr}")
        if not args.more or args.combine:
            ap.error(f"--more-lr sets the learning rate of --more N rounds; got --more-lr "
                     f"{args.more_lr:g} with " + ("--combine" if args.combine else
                                                   f"--more {args.more}"))
    if args.colour_mix:
        if args.combine:
            ap.error("--colour-mix changes the training data; --combine trains nothing")
        if not any(JOBS[n][3] for n in only):
            ap.error(f"--colour-mix changes the colour jobs' data; --only {args.only} has "
                     "none")
    filters = None
    if args.filters is not None:
        try:
            filters = tuple(int(f) for f in args.filters.split(","))
        except ValueError:
            filters = ()
        if not filters or min(filters) < 1:
            ap.error(f"--filters takes positive integers separated by commas, finest level "
                     f"first (e.g. 32,64,128,128); got {args.filters!r}")
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    if args.from_shipped:
        from_shipped(work)
    if not args.combine:
        for name in only:
            run_job(name, work, args.epochs_scale, args.more, args.loss, filters,
                    args.colour_mix, args.more_lr or MORE_LR)
    combine(work, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
