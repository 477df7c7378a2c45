"""`deepae denoise` and `deepae upscale`: image restoration from the shell.

    deepae denoise noisy.png clean.png [--model d.deepae] [--sigma 0.1]
    deepae denoise train FOLDER -o d.deepae [--sigma 0,0.3] [--epochs 20]
    deepae denoise evaluate FOLDER [--model d.deepae] --sigma 0.1
    deepae upscale small.png big.png [--scale 4] [--model s.deepae]
    deepae upscale train FOLDER -o s.deepae --scale 2
    deepae upscale evaluate FOLDER [--scale 2] [--model s.deepae]

Without --model the pretrained models that ship with deepae are used
(`Denoiser.pretrained()`, `SuperResolver.pretrained(scale=...)`). INPUT `-` reads the image
file's bytes from standard input, `-o -` writes PNG bytes to standard output. A thin layer
over `deepae.Denoiser` and `deepae.SuperResolver`: read, call the API, write.
"""

from __future__ import annotations

from deepae.cli._options import (
    UserError,
    binary_stdout,
    input_and_output,
    is_stdio,
    not_stdio,
    output_path,
    result,
    result_bytes,
    result_json,
    run_parameters,
    save_trained,
    status,
    stdin_file,
)

__all__ = ["add_restore_parsers"]

_USAGE = {
    "denoise": "deepae denoise INPUT -o OUTPUT [--model M] | train FOLDER -o M | "
               "evaluate FOLDER [--model M] --sigma S",
    "upscale": "deepae upscale INPUT -o OUTPUT [--scale N] [--model M] | train FOLDER -o M "
               "--scale N | evaluate FOLDER [--scale N] [--model M]",
}


def _sigma(text):
    try:
        parts = [float(v) for v in str(text).split(",")]
    except ValueError:
        raise ValueError(f"--sigma expects a number or LOW,HIGH in [0, 1]; got {text!r}.") from None
    if len(parts) not in (1, 2):
        raise ValueError(f"--sigma expects a number or LOW,HIGH in [0, 1]; got {text!r}.")
    return parts[0] if len(parts) == 1 else tuple(parts)


def _load(path, kind, scale=None):
    """The model in `path`, or the pretrained one that ships with deepae."""
    from deepae import Denoiser, SuperResolver, load

    if path is None:
        if kind == "Denoiser":
            return Denoiser.pretrained()
        return SuperResolver.pretrained(scale=2 if scale is None else scale)
    model = load(path)
    if type(model).__name__ != kind:
        raise ValueError(f"{path!r} holds a {type(model).__name__}, not a {kind}.")
    return model


def _train(args, which):
    from deepae import Denoiser, SuperResolver
    from deepae.data.io import read_images

    if not args.output:
        raise ValueError(f"`deepae {which} train` needs -o/--output, the model file to write.")
    not_stdio(args.args[1], "FOLDER", "training reads a folder or file of images by name")
    common = dict(epochs=args.epochs, patch_size=args.patch_size,
                  patches_per_epoch=args.patches, loss=args.loss,
                  colour_network=args.colour_network, random_state=args.seed,
                  verbose=0 if args.quiet else 1)
    output_path(args, args.output, args.args[1], args.model)
    run = run_parameters(args, args.output, args.args[1], args.model)
    if which == "denoise":
        est = Denoiser(noise=args.noise, sigma=_sigma(args.sigma or "0,0.3"), mode=args.mode,
                       clipped=args.clipped, **common, **run)
    else:
        est = SuperResolver(scale=args.scale or 2, **common, **run)
    est.fit(read_images(args.args[1]), keep_checkpoint=True)
    save_trained(est, args, args.output, run["checkpoint_dir"])
    status(f"wrote {args.output} ({type(est).__name__}, {est.n_channels_} channel(s), "
          f"{len(est.history_['loss'])} epochs, final loss {est.history_['loss'][-1]:.5f})")
    return 0


def _available(module):
    from importlib.util import find_spec

    return find_spec(module) is not None


def _evaluate(args, which):
    import numpy as np

    from deepae import baselines
    from deepae.apps.restore import box_downscale, to_float_images
    from deepae.data.io import read_images
    from deepae.metrics import psnr, ssim

    kind = "Denoiser" if which == "denoise" else "SuperResolver"
    if which == "denoise":
        if args.sigma is None:
            raise ValueError("`deepae denoise evaluate` needs --sigma, the noise level to "
                             "add to the clean images.")
        sigma = _sigma(args.sigma)
        if isinstance(sigma, tuple):
            raise ValueError(f"--sigma for evaluate is one noise level; got {args.sigma!r}.")
    not_stdio(args.args[1], "FOLDER", "evaluate reads a folder or file of images by name")
    model = _load(args.model, kind, getattr(args, "scale", None))
    imgs, _ = to_float_images(read_images(args.args[1]))
    rng = np.random.default_rng(args.seed)
    # the baselines that are installed: NL-means (scikit-image), BM3D (bm3d)
    extra = {"NL-means": (_available("skimage") and _available("pywt"),
                          '"deepae[images]"'),
             "BM3D": (_available("bm3d"), "bm3d")} if which == "denoise" else {}
    rows = {}
    for im in imgs:
        if which == "denoise":
            # the noisy picture as a file holds it: clipped to [0, 1], 8 bits
            degraded = (np.round(np.clip(im + rng.normal(0, sigma, im.shape), 0, 1) * 255)
                        / 255).astype(np.float32)
            outs = {"noisy input": degraded}
            if extra.get("NL-means", (False,))[0]:
                outs["NL-means"] = baselines.nl_means(degraded)
            if extra.get("BM3D", (False,))[0]:  # colour images: CBM3D, the colour BM3D
                outs["BM3D"] = baselines.cbm3d(degraded, sigma) if im.shape[-1] == 3 \
                    else baselines.bm3d(degraded, sigma)
            outs["deepae"] = model.transform(degraded, sigma=sigma, ensemble=args.ensemble) \
                if model.mode == "given" else model.transform(degraded, ensemble=args.ensemble)
        else:
            s = model.scale
            h, w = im.shape[0] // s * s, im.shape[1] // s * s
            im = im[:h, :w]
            small = box_downscale(im[None], s)[0]
            outs = {"bicubic": np.clip(baselines.bicubic(small, (h, w)), 0, 1),
                    "deepae": model.transform(small, ensemble=args.ensemble)}
        for name, out in outs.items():
            r = rows.setdefault(name, {"psnr": [], "ssim": []})
            out = np.clip(out, 0, 1)
            r["psnr"].append(psnr(im, out, data_range=1.0))
            r["ssim"].append(ssim(im, out, data_range=1.0) if min(im.shape[:2]) >= 11 else np.nan)
    _scores(args, len(imgs), rows, {name: f"pip install {package}"
                                     for name, (ok, package) in extra.items() if not ok})
    return 0


def _scores(args, n_images, rows, left_out) -> None:
    """Print evaluate's mean PSNR and SSIM per method (a table, or JSON with --json)."""
    import warnings

    import numpy as np

    with warnings.catch_warnings():  # SSIM is NaN for images under 11 pixels a side
        warnings.simplefilter("ignore", RuntimeWarning)
        means = {name: {"psnr": float(np.mean(r["psnr"])), "ssim": float(np.nanmean(r["ssim"]))}
                 for name, r in rows.items()}
    if args.json:
        result_json({"n_images": n_images, "methods": means, "left_out": left_out})
        return
    result(f"{'method':<14} {'PSNR dB':>8} {'SSIM':>7}   ({n_images} images)")
    for name, m in means.items():
        result(f"{name:<14} {m['psnr']:8.2f} {m['ssim']:7.4f}")
    for name, install in left_out.items():
        result(f"({name} left out: {install} to compare with it)")


def _apply(args, which):
    from deepae.data.io import image_bytes, read_image, write_image

    src, out = input_and_output(args, which, _USAGE[which])
    dst = output_path(args, out, src, args.model, stdout=True)
    if dst is None:
        binary_stdout("PNG bytes")
    image = read_image(stdin_file("an image file (PNG, JPEG, ...)") if is_stdio(src) else src)
    model = _load(args.model, "Denoiser" if which == "denoise" else "SuperResolver",
                  getattr(args, "scale", None))
    if which == "denoise":
        sigma = None if args.sigma is None else _sigma(args.sigma)
        out = model.transform(image, sigma=sigma, ensemble=args.ensemble) \
            if model.mode == "given" else model.transform(image, ensemble=args.ensemble)
    else:
        if args.scale is not None and args.scale != model.scale:
            raise ValueError(f"--scale {args.scale} differs from the model's scale "
                             f"{model.scale}; use a x{args.scale} model.")
        out = model.transform(image, ensemble=args.ensemble)
    if dst is None:
        result_bytes(image_bytes(out, ".png"), "PNG bytes")
    else:
        write_image(dst, out, overwrite=args.overwrite)
    return 0


def _run(which):
    def cmd(args):
        first = args.args[0] if args.args else None
        not_stdio(args.model, "--model", "a model is read from a file that deepae can check "
                  "before it loads it; name the file")
        if args.json and first != "evaluate":
            raise UserError(f"--json prints the scores of `deepae {which} evaluate FOLDER`; "
                            f"received it with {' '.join(args.args)!r}")
        if first == "train":
            if len(args.args) != 2:
                raise ValueError(f"expected `deepae {which} train FOLDER -o MODEL`; got "
                                 f"arguments {args.args}")
            return _train(args, which)
        if first == "evaluate":
            if len(args.args) != 2:
                raise ValueError(f"expected `deepae {which} evaluate FOLDER [--model MODEL]`;"
                                 f" got arguments {args.args}")
            return _evaluate(args, which)
        return _apply(args, which)

    return cmd


def add_restore_parsers(sub):
    """Add ``denoise`` and ``upscale``."""
    from deepae.apps.restore import COLOUR_NETWORKS, MODES, NOISES, SCALES
    from deepae.cli._options import add_common_options, add_patch_training_options

    for which, helptext in (("denoise", "remove noise from an image; train or evaluate a "
                             "denoiser"),
                            ("upscale", "super-resolution: upscale an image x2 or x4; train or "
                             "evaluate an upscaler")):
        p = sub.add_parser(which, help=helptext, usage=_USAGE[which],
                           description=helptext[0].upper() + helptext[1:] + ".")
        p.add_argument("args", nargs="+", metavar="ARG",
                       help="INPUT (with -o OUTPUT; - reads the image from standard input), "
                       "or train FOLDER, or evaluate FOLDER")
        p.add_argument("--model", help="model file (.deepae); default: the pretrained "
                       "model that ships with deepae")
        p.add_argument("-o", "--output", help="the image file to write, or - for PNG bytes on "
                       "standard output (train: the model file)")
        add_patch_training_options(p, patch_size=48)
        p.add_argument("--quiet", action="store_true", help="no per-epoch lines")
        p.add_argument("--ensemble", action="store_true", help="average the results for the "
                       "8 flips and quarter turns of the image (8 times slower, a little "
                       "better)")
        p.add_argument("--loss", choices=("mse", "psnr"), default="mse",
                       help="train: minimise the mean squared error, or maximise each "
                       "patch's PSNR (default mse)")
        p.add_argument("--colour-network", choices=COLOUR_NETWORKS, default="joint",
                       help="train on colour images: one network over the three channels "
                       "(joint), or one applied to each channel with the whole image beside "
                       "it (shared: three times the work; default joint)")
        if which == "denoise":
            p.add_argument("--sigma", help="noise level in [0, 1]: the level to remove "
                           "(given-sigma models), to add (evaluate), or LOW,HIGH to train on "
                           "(default 0,0.3)")
            p.add_argument("--noise", choices=NOISES,
                           default="gaussian", help="train: noise model (default gaussian)")
            p.add_argument("--mode", choices=MODES, default="blind",
                           help="train: blind, or the noise level as an input (default blind)")
            p.add_argument("--clipped", type=float, default=0.0, metavar="SHARE",
                           help="train: the share of noisy training images clipped to [0, 1] "
                           "and rounded to 8 bits, as a saved noisy photo is (default 0; the "
                           "pretrained denoiser: 0.75)")
        else:
            p.add_argument("--scale", type=int, choices=SCALES,
                           help="upscaling factor (train: default 2)")
        p.add_argument("--json", action="store_true", help="evaluate: print the scores as "
                       "one JSON document on standard output (and nothing else there)")
        add_common_options(p)
        p.set_defaults(func=_run(which))
