"""Image restoration: Denoiser and SuperResolver beside NL-means, BM3D and bicubic.

    python benchmarks/restoration.py [--parts digits,photos,speed,memory] [--n-test 1000]
                                     [--digits fashion_mnist,mnist] [--merge]
                                     [--json benchmarks/restoration.json]
                                     [--pictures benchmarks/out/restoration] [--smoke]

One run measures:
1. digits: Fashion-MNIST and MNIST. One blind Denoiser per data set, trained on the train
   split with Gaussian noise of a random sigma in [0, 0.35]; one SuperResolver per scale
   (x2, x4) trained on the train split. Tested on the first --n-test test images:
   denoising at sigma 0.1 / 0.2 / 0.3 (noise drawn with a fixed seed, not clipped) against
   the noisy input, scikit-image NL-means (h = 0.8 x estimate_sigma, fast mode, patch 5,
   distance 6) and BM3D (`bm3d` package, told the true sigma); super-resolution of
   box-downscaled images against Pillow's bicubic (all three: `deepae.baselines`).
2. photos: the models that ship in the package (`Denoiser.pretrained()`,
   `SuperResolver.pretrained(scale=2|4)`, trained by scripts/train_pretrained.py on
   scikit-image's TRAIN_PHOTOS and the wallpaper photographs TRAIN_WALLPAPERS), or those in
   --models. Grayscale: 128x128 crops (the centre and four corners) of brick, grass, gravel,
   coins and hubble_deep_field, as luminance. Colour: the same crops of hubble_deep_field
   in colour and of the held-out wallpaper photographs ColorfulCups, Kite, LadyBird and
   Wood (`deepae.datasets.colour_photo_crops`; `scripts/prepare_photos.py` writes them).
   Denoising at each sigma under two protocols: "clipped" (the noisy image clipped to
   [0, 1] and rounded to 8 bits, as a saved photograph is: the main one) and "unclipped";
   against BM3D (grayscale) or CBM3D (`bm3d.bm3d_rgb`, colour), both told the true sigma,
   and NL-means. Super-resolution x2 and x4 of box-downscaled crops against bicubic.
3. speed: images per second on 28x28 batches (the default architecture), and seconds per
   megapixel on a 1-megapixel photo: the pretrained denoiser in grayscale and colour
   beside BM3D and CBM3D (one process each), the upscalers beside.
4. memory: peak RSS of the pretrained colour denoiser and x2 upscaler on one 4000x3000
   colour photo (tiled), each in a child process.
"deepae x8" is the same model with `transform(..., ensemble=True)` (the average over the
8 flips and quarter turns). PSNR in dB (mean over images of each image's PSNR) and SSIM; pictures of noisy / ours /
BM3D / clean grids in --pictures. The test images are never trained on.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

SIGMAS = (0.1, 0.2, 0.3)


# -- baselines --------------------------------------------------------------------------------
def _bm3d_one(args):
    from deepae.baselines import bm3d

    return bm3d(*args)


def bm3d_batch(images, sigma, workers):
    """BM3D (`deepae.baselines.bm3d`) on each (h, w) image, `workers` processes."""
    jobs = [(im, sigma) for im in images]
    if workers <= 1:
        return [_bm3d_one(j) for j in jobs]
    with ProcessPoolExecutor(workers) as ex:
        return list(ex.map(_bm3d_one, jobs, chunksize=8))


def nlmeans_batch(images):
    from deepae.baselines import nl_means

    return [nl_means(im) for im in images]


def cbm3d_one(args):
    from deepae.baselines import cbm3d

    return cbm3d(*args)


def cbm3d_batch(images, sigma, workers):
    """CBM3D (`deepae.baselines.cbm3d`) on each (h, w, 3) image, `workers` processes."""
    jobs = [(im, sigma) for im in images]
    if workers <= 1:
        return [cbm3d_one(j) for j in jobs]
    with ProcessPoolExecutor(workers) as ex:
        return list(ex.map(cbm3d_one, jobs, chunksize=4))


def bicubic_batch(small, shape):
    from deepae.baselines import bicubic

    return [bicubic(s, shape) for s in small]


# -- scoring ----------------------------------------------------------------------------------
def scores(clean, results, clip=True):
    from deepae.metrics import psnr, ssim

    results = [np.clip(r, 0, 1) if clip else r for r in results]
    p = [psnr(r, c, data_range=1.0) for c, r in zip(clean, results, strict=True)]
    s = [ssim(r, c, data_range=1.0, channel_axis=-1 if c.ndim == 3 else None)
         for c, r in zip(clean, results, strict=True)]
    return {"psnr": round(float(np.mean(p)), 3), "ssim": round(float(np.mean(s)), 4)}


def timed(rows, name, clean, run, *args, channel=False, **kwargs):
    """rows[name] = scores of run(*args, **kwargs) against `clean` and its seconds; returns
    the (h, w) results (`channel`: run gives (h, w, 1) images)."""
    t = time.perf_counter()
    results = run(*args, **kwargs)
    seconds = round(time.perf_counter() - t, 2)
    if channel:
        results = [r[..., 0] for r in results]
    rows[name] = {**scores(clean, results), "seconds": seconds}
    return results


def grid(path, rows, names):
    """Save a picture: one row per example, one column per method."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(rows), len(names), figsize=(1.6 * len(names), 1.6 * len(rows)),
                             squeeze=False)
    for i, row in enumerate(rows):
        for j, (name, img) in enumerate(zip(names, row, strict=True)):
            ax = axes[i, j]
            ax.imshow(np.clip(img, 0, 1), cmap=None if img.ndim == 3 else "gray", vmin=0,
                      vmax=1)
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_title(name, fontsize=8)
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


# -- one data set -----------------------------------------------------------------------------
def train_models(name, train, args, res):
    """One blind Denoiser and one SuperResolver per scale, trained on `train`."""
    from deepae import Denoiser, SuperResolver

    common = dict(epochs=args.epochs, patches_per_epoch=args.patches,
                  patch_size=args.patch_size, random_state=0, verbose=1)
    t = time.perf_counter()
    den = Denoiser(sigma=(0.0, 0.35), **common).fit(train)
    res["denoiser_fit_seconds"] = round(time.perf_counter() - t, 1)
    print(f"{name}: denoiser trained in {res['denoiser_fit_seconds']} s", flush=True)
    srs = {}
    for scale in (2, 4):
        t = time.perf_counter()
        srs[scale] = SuperResolver(scale=scale, **common).fit(train)
        res[f"sr_x{scale}_fit_seconds"] = round(time.perf_counter() - t, 1)
    return den, srs


def restoration_table(name, test, den, srs, args, out, pictures):
    """Denoising at each sigma with `den` and super-resolution with each of `srs`
    ({scale: model}) on `test` (a list of (h, w) float images)."""
    from deepae.apps.restore import box_downscale

    res = out.setdefault(name, {})
    res["n_test"] = len(test)
    rng = np.random.default_rng(0)
    for sigma in SIGMAS:
        # every method gets the same unclipped noisy image (the noise model of the paper
        # figures and of the Denoiser's training); results are clipped to [0, 1]
        noisy = [(c + rng.normal(0, sigma, c.shape)).astype(np.float32) for c in test]
        clipped = [np.clip(x, 0, 1) for x in noisy]
        rows = {"noisy input": scores(test, noisy, clip=False)}
        batch = [x[..., None] for x in noisy]
        ours = timed(rows, "deepae", test, den.transform, batch, channel=True)
        timed(rows, "deepae x8", test, den.transform, batch,
              ensemble=True, channel=True)
        timed(rows, "NL-means", test, nlmeans_batch, noisy)
        b3 = timed(rows, "BM3D", test, bm3d_batch, noisy, sigma, args.workers)
        record(out, args, name, f"denoise_sigma_{sigma}", rows, pictures,
               clipped, ours, b3, test, names=["noisy", "deepae", "BM3D", "clean"])
    for scale, sr in srs.items():
        hr = [c[: c.shape[0] // scale * scale, : c.shape[1] // scale * scale] for c in test]
        small = [box_downscale(c[None, ..., None], scale)[0, ..., 0] for c in hr]
        bic = [bicubic_batch([s], c.shape)[0] for s, c in zip(small, hr, strict=True)]
        rows = {"bicubic": scores(hr, bic)}
        batch = [s[..., None] for s in small]
        ours = timed(rows, "deepae", hr, sr.transform, batch, channel=True)
        timed(rows, "deepae x8", hr, sr.transform, batch, ensemble=True,
              channel=True)
        record(out, args, name, f"sr_x{scale}", rows, pictures, bic, ours, hr,
               names=["bicubic", "deepae", "original"])


def noisy_images(test, sigma, clipped, seed):
    """`test` with Gaussian noise of `sigma` (a fixed seed), clipped to [0, 1] and rounded to
    8 bits when `clipped` (as a noisy photograph saved to a file is)."""
    rng = np.random.default_rng(seed)
    noisy = [(c + rng.normal(0, sigma, c.shape)).astype(np.float32) for c in test]
    if clipped:
        noisy = [np.round(np.clip(x, 0, 1) * 255).astype(np.float32) / 255 for x in noisy]
    return noisy


def photo_table(name, test, den, srs, args, out, pictures):
    """Denoising (both protocols) and super-resolution of the photo crops `test`, all
    grayscale (h, w) or all colour (h, w, 3)."""
    from deepae.apps.restore import box_downscale

    colour = test[0].ndim == 3
    res = out.setdefault(name, {})
    res["n_test"] = len(test)
    for protocol in ("clipped", "unclipped"):
        for k, sigma in enumerate(SIGMAS):
            noisy = noisy_images(test, sigma, protocol == "clipped", seed=k)
            # the noisy input as every method receives it (unclipped: values outside [0, 1])
            rows = {"noisy input": scores(test, noisy, clip=False)}
            ours = timed(rows, "deepae", test, den.transform, noisy)
            timed(rows, "deepae x8", test, den.transform, noisy, ensemble=True)
            if colour:  # the pair's grayscale network on each channel in turn, beside
                timed(rows, "deepae per channel", test, per_channel, den, noisy)
            timed(rows, "NL-means", test, nlmeans_batch, noisy)
            if colour:
                b3 = timed(rows, "CBM3D", test, cbm3d_batch, noisy, sigma, args.workers)
            else:
                b3 = timed(rows, "BM3D", test, bm3d_batch, noisy, sigma, args.workers)
            record(out, args, name, f"denoise_{protocol}_sigma_{sigma}", rows, pictures,
                   [np.clip(x, 0, 1) for x in noisy], ours, b3, test,
                   names=["noisy", "deepae", "CBM3D" if colour else "BM3D", "clean"])
    for scale, sr in srs.items():
        hr = [c[: c.shape[0] // scale * scale, : c.shape[1] // scale * scale] for c in test]
        small = [box_downscale(c.reshape(c.shape[:2] + (-1,))[None], scale)[0] for c in hr]
        small = [s.reshape(s.shape[:2] + c.shape[2:]) for s, c in zip(small, hr, strict=True)]
        bic = [bicubic_batch([s], c.shape[:2])[0] for s, c in zip(small, hr, strict=True)]
        rows = {"bicubic": scores(hr, bic)}
        ours = timed(rows, "deepae", hr, sr.transform, small)
        timed(rows, "deepae x8", hr, sr.transform, small, ensemble=True)
        if colour:
            timed(rows, "deepae per channel", hr, per_channel, sr, small)
        record(out, args, name, f"sr_x{scale}", rows, pictures, bic, ours, hr,
               names=["bicubic", "deepae", "original"])


def per_channel(model, images):
    """`model` (a grayscale+colour pair) on each channel of each colour image as a grayscale
    image: its grayscale network, channel by channel, instead of its colour network."""
    return [np.stack([model.transform(im[..., c]) for c in range(im.shape[-1])], axis=-1)
            for im in images]


def photo_models(folder):
    """The pretrained models, or those in `folder` (files named as in the package)."""
    from deepae import Denoiser, SuperResolver

    if folder is None:
        return Denoiser.pretrained(), {s: SuperResolver.pretrained(scale=s) for s in (2, 4)}
    folder = Path(folder)
    return Denoiser.load(folder / "denoiser.deepae"), {
        s: SuperResolver.load(folder / f"super_resolver_x{s}.deepae") for s in (2, 4)}


def record(out, args, name, key, rows, pictures, *columns, names):
    """Store one table row group, print it, save the JSON, and draw the first four images of
    each of `columns` (lists of (h, w) images) side by side."""
    out[name][key] = rows
    print(f"  {key}: " + "  ".join(f"{k} {v['psnr']:.2f}" for k, v in rows.items()), flush=True)
    save(out, args)
    if pictures:
        n = min(4, len(columns[0]))
        grid(Path(pictures) / f"{name}_{key}.png", [[col[i] for col in columns] for i in range(n)],
             names)


def save(out, args):
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1))


def photo_speed(args):
    """Seconds per output megapixel on a 1-megapixel photo (the held-out wallpaper
    LadyBird, 853x533, resized bicubically to 1280x800) in colour, and its first channel
    in grayscale; deepae run once untimed at that size first (compiled, warm)."""
    from deepae.baselines import bicubic
    from deepae.datasets import TEST_WALLPAPERS, load_wallpapers

    den, srs = photo_models(args.models)
    photo = np.clip(bicubic(load_wallpapers(TEST_WALLPAPERS[2])[0], (800, 1280)), 0, 1)
    gray = photo.mean(axis=-1)
    res = {}

    def clock(name, fn, image, out_pixels, warm=True):
        if warm:
            fn(image)  # compiled and warm at this size
        t = time.perf_counter()
        fn(image)
        res[name] = round((time.perf_counter() - t) / (out_pixels / 1e6), 3)

    noisy = np.clip(photo + np.random.default_rng(0).normal(0, 0.1, photo.shape), 0, 1)
    clock("deepae denoise, grayscale", den.transform, noisy[..., 0], gray.size)
    clock("deepae denoise, colour", den.transform, noisy, gray.size)
    clock("deepae denoise, colour per channel", lambda im: per_channel(den, [im]), noisy,
          gray.size)
    clock("BM3D, grayscale", lambda im: bm3d_batch([im], 0.1, 1), noisy[..., 0], gray.size,
          warm=False)
    clock("CBM3D, colour", lambda im: cbm3d_batch([im], 0.1, 1), noisy, gray.size, warm=False)
    for s, sr in srs.items():
        small = photo[::s, ::s]
        clock(f"deepae x{s}, colour", sr.transform, small, small[..., 0].size * s * s)
        clock(f"deepae x{s}, grayscale", sr.transform, small[..., 0], small[..., 0].size * s * s)
    return res


def memory_child(task, models):
    """Run in a child process: the pretrained colour denoiser on a 4000x3000 colour photo,
    or the x2 upscaler from 2000x1500 to it; print peak RSS in MB."""
    import resource

    args = argparse.Namespace(models=models)
    den, srs = photo_models(args.models)
    rng = np.random.default_rng(0)
    if task == "denoise":
        img = (rng.random((3000, 4000, 3)) * 255).astype(np.uint8)
        t = time.perf_counter()
        den.transform(img)
    else:
        img = (rng.random((1500, 2000, 3)) * 255).astype(np.uint8)
        t = time.perf_counter()
        srs[2].transform(img)
    secs = time.perf_counter() - t
    print(json.dumps({"peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                      "seconds": round(secs, 1)}))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--parts", default="digits,photos,speed,memory")
    ap.add_argument("--n-test", type=int, default=1000)
    ap.add_argument("--digits", default="fashion_mnist,mnist",
                    help="digit-sized data sets for the digits part")
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--patches", type=int, default=8192, help="patches per epoch")
    ap.add_argument("--patch-size", type=int, default=48)
    ap.add_argument("--workers", type=int, default=2, help="processes for BM3D")
    ap.add_argument("--json", default="benchmarks/restoration.json")
    ap.add_argument("--pictures", default="benchmarks/out/restoration")
    ap.add_argument("--merge", action="store_true", help="keep other parts of --json")
    ap.add_argument("--smoke", action="store_true", help="a quick check of the script")
    ap.add_argument("--models", default=None,
                    help="photos: a folder with denoiser.deepae and super_resolver_x{2,4}.deepae"
                         " instead of the pretrained models")
    ap.add_argument("--memory-child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.memory_child:
        return memory_child(args.memory_child, args.models)
    parts = set(args.parts.split(","))
    if args.smoke:
        args.n_test, args.epochs, args.patches = 8, 1, 128
    out = json.loads(Path(args.json).read_text()) if args.merge and Path(args.json).exists() \
        else {}
    out.setdefault("commands", {})
    for part in parts:  # which command wrote each part (digits: per data set)
        key = f"digits:{args.digits}" if part == "digits" else part
        out["commands"][key] = "python " + " ".join(sys.argv)

    if "digits" in parts:
        from deepae.datasets import load_fashion_mnist, load_mnist

        loaders = {"fashion_mnist": load_fashion_mnist, "mnist": load_mnist}
        for name in args.digits.split(","):
            (x, _), (xt, _) = loaders[name]()
            if args.smoke:
                x = x[:512]
            test = [im.astype(np.float32) / 255 for im in xt[: args.n_test]]
            res = out.setdefault(name, {})
            den, srs = train_models(name, x, args, res)
            restoration_table(name, test, den, srs, args, out, args.pictures)
    if "photos" in parts:
        # the models that ship in the package, trained by scripts/train_pretrained.py on
        # TRAIN_PHOTOS; the test crops come from TEST_PHOTOS only
        from deepae.datasets import TEST_WALLPAPERS, colour_photo_crops, photo_crops

        test = photo_crops()[: 3 if args.smoke else None]
        out["photos"] = {"models": args.models or "Denoiser.pretrained(), SuperResolver."
                                   "pretrained(scale=2|4) (scripts/train_pretrained.py)"}
        den, srs = photo_models(args.models)
        photo_table("photos", test, den, srs, args, out, args.pictures)
        crops = colour_photo_crops()[: 3 if args.smoke else None]
        out["photos_colour"] = {"models": out["photos"]["models"],
                                "test": "hubble_deep_field (colour) and the wallpapers "
                                        + ", ".join(TEST_WALLPAPERS) + ": 5 crops each"}
        photo_table("photos_colour", crops, den, srs, args, out, args.pictures)
    if "speed" in parts:
        from deepae import Denoiser

        d = Denoiser(epochs=1, patches_per_epoch=64, random_state=0).fit(
            np.random.default_rng(0).random((8, 48, 48)).astype(np.float32))
        batch = np.random.default_rng(1).random((1000, 28, 28, 1)).astype(np.float32)
        d.transform(batch[:10])
        t = time.perf_counter()
        d.transform(batch)
        ours = 1000 / (time.perf_counter() - t)
        t = time.perf_counter()
        bm3d_batch([b[..., 0] for b in batch[:20]], 0.1, 1)
        theirs = 20 / (time.perf_counter() - t)
        out["speed"] = {"digits_images_per_s": {"deepae": round(ours, 1),
                                                "BM3D": round(theirs, 2)},
                        "photo_s_per_megapixel": photo_speed(args),
                        "note": "digits: the default architecture (untrained weights run at "
                                "the same speed); photo: the pretrained models on a 1-megapixel "
                                "photo (seconds per output megapixel), one BM3D process"}
        print("speed:", out["speed"], flush=True)
        save(out, args)
    if "memory" in parts:
        out["memory_4000x3000"] = {}
        for task in ("denoise", "x2"):
            cmd = [sys.executable, __file__, "--memory-child", task]
            if args.models:
                cmd += ["--models", args.models]
            r = subprocess.run(cmd, capture_output=True, text=True, check=True)
            out["memory_4000x3000"][task] = json.loads(r.stdout.strip().splitlines()[-1])
        out["memory_4000x3000"]["note"] = (
            "peak RSS of a fresh process (importing deepae and TensorFlow included): the "
            "pretrained colour denoiser on a 4000x3000 colour photo, and the x2 upscaler "
            "making one (from 2000x1500), in 512-pixel tiles")
        print("memory, 4000x3000 colour:", out["memory_4000x3000"], flush=True)
        save(out, args)
    print_table(out)


def print_table(out):
    print("\nPSNR dB / SSIM, mean over test images")
    for name in ("fashion_mnist", "mnist", "photos", "photos_colour"):
        if name not in out:
            continue
        res = out[name]
        for key, rows in res.items():
            if not isinstance(rows, dict):
                continue
            cells = "  ".join(f"{m} {v['psnr']:.2f}/{v['ssim']:.3f}"
                              for m, v in rows.items() if isinstance(v, dict))
            print(f"{name:<14} {key:<18} {cells}")


if __name__ == "__main__":
    main()
