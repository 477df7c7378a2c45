"""`deepae compress` and `deepae decompress`: learned image compression from the shell.

    deepae compress photo.png photo.dae [--quality 4 | --model codec.deepae]
                    [--effort fast | refine | best] [--refine 200] [--iterations 2000]
    deepae compress train FOLDER -o codec.deepae --lambda 0.013 [--epochs 20]
    deepae decompress photo.dae restored.png [--model codec.deepae]

Without --model, `compress` uses the codec of the given quality that ships with deepae
(`ImageCodec.pretrained`), and `decompress` finds the shipped codec that wrote the file from
the fingerprint in its header. `-` names standard input or output: `compress - -o -` reads
an image file's bytes and writes the .dae bytes, `decompress - -o -` reads .dae bytes and
writes PNG bytes. A thin layer over `deepae.ImageCodec`.
"""

from __future__ import annotations

from deepae.cli._options import (
    UserError,
    binary_stdout,
    input_and_output,
    is_stdio,
    not_stdio,
    output_path,
    read_stdin,
    result_bytes,
    result_json,
    run_parameters,
    save_trained,
    status,
    stdin_file,
)

__all__ = ["add_compress_parsers"]

_USAGE = {"compress": "deepae compress INPUT -o OUTPUT [--quality Q | --model M] "
                      "[--effort fast|refine|best] | train FOLDER -o M --lambda L",
          "decompress": "deepae decompress INPUT -o OUTPUT [--model M]"}


CODEC_FILE = "a codec is read from a file that deepae can check before it loads it; name the file"


def _codec(path, quality=None):
    from deepae import ImageCodec

    not_stdio(path, "--model", CODEC_FILE)
    if path is None:
        return ImageCodec.pretrained(quality=4 if quality is None else quality)
    if quality is not None:
        raise ValueError(f"Pass either --quality (a shipped codec) or --model; got both "
                         f"(--quality {quality}, --model {path!r}).")
    return ImageCodec.load(path)


def _train(args):
    from deepae import ImageCodec
    from deepae.data.io import read_images

    if len(args.args) != 2:
        raise ValueError(f"expected `deepae compress train FOLDER -o MODEL --lambda L`; got "
                         f"arguments {args.args}")
    if args.json:
        raise UserError("--json prints the figures of `deepae compress INPUT -o FILE.dae`; "
                        "received it with `compress train`")
    if not args.output:
        raise ValueError("`deepae compress train` needs -o/--output, the codec file to write.")
    not_stdio(args.args[1], "FOLDER", "training reads a folder or file of images by name")
    output_path(args, args.output, args.args[1])
    run = run_parameters(args, args.output, args.args[1])
    codec = ImageCodec(lmbda=args.lmbda, epochs=args.epochs, patch_size=args.patch_size,
                       patches_per_epoch=args.patches, filters=args.filters,
                       latent_channels=args.latent_channels, levels=args.levels,
                       random_state=args.seed, verbose=0 if args.quiet else 1, **run)
    codec.fit(read_images(args.args[1]), keep_checkpoint=True)
    save_trained(codec, args, args.output, run["checkpoint_dir"])
    h = codec.history_
    status(f"wrote {args.output} (ImageCodec, lambda {args.lmbda}, {codec.n_channels_} "
          f"channel(s), {len(h['loss'])} epochs, training bpp {h['bpp'][-1]:.3f}, "
          f"mse {h['mse'][-1]:.5f}, fingerprint {codec.fingerprint_[:8]})")
    return 0


def _psnr(a, b) -> float:
    """PSNR in dB of two uint8 images of the same shape, summed over bands of rows:
    `deepae.metrics.psnr` converts both whole images to float64 (1.2 GB more for a
    24-megapixel colour photograph)."""
    import numpy as np

    sq = 0.0
    for r in range(0, a.shape[0], 256):
        sq += float(np.sum((a[r:r + 256].astype(np.float64) - b[r:r + 256]) ** 2))
    return float("inf") if sq == 0 else float(10 * np.log10(255.0 ** 2 * a.size / sq))


def _compress_output(args, out, src):
    """The .dae file to write, or None for standard output (``-o -``), checked before any
    work."""
    dst = output_path(args, out, src, args.model, stdout=True)
    if dst is None:
        if args.json:
            raise UserError("--json prints the figures on standard output, where -o - writes "
                            "the compressed bytes; expected -o FILE.dae with --json; received "
                            "-o -")
        binary_stdout(".dae bytes")
    elif dst.suffix.lower() != ".dae":  # compressed bytes never land in photo.png by mistake
        raise ValueError(f"expected an output file ending in .dae (or - for standard "
                         f"output); received {str(dst)!r}")
    return dst


def _report(args, codec, image, data, stats, dst, n_in) -> None:
    """compress's figures: status lines on standard error, and with --json the result."""
    restored = codec.decompress(data)
    h, w = image.shape[:2]
    figures = {"output": "-" if dst is None else str(dst), "bytes": stats["bytes"],
               "input_bytes": n_in, "width": w, "height": h,
               "channels": 1 if image.ndim == 2 else image.shape[2], "bpp": stats["bpp"],
               "effort": "refine" if args.effort == "fast" and args.refine else args.effort,
               **{k: stats[k] for k in ("header_bytes", "bpp_estimate", "overhead", "seconds")
                  if k in stats},
               "psnr": _psnr(image, restored)}
    if args.json:
        result_json(figures)
    if args.quiet:
        return
    status(f"wrote {figures['output'] if dst else 'standard output'}: {stats['bytes']:,} bytes "
           f"for {w}x{h} pixels ({n_in:,} bytes in)")
    if "bpp_estimate" in stats:
        status(f"rate: {stats['bpp']:.4f} bpp from the file size ({stats['header_bytes']} "
               f"header bytes included); the entropy model estimated "
               f"{stats['bpp_estimate']:.4f} bpp (file {100 * (stats['overhead'] - 1):+.1f}%)")
    else:
        status(f"rate: {stats['bpp']:.4f} bpp from the file size, its own networks included "
               f"(encoded in {stats['seconds']:.0f} s)")
    status(f"PSNR: {figures['psnr']:.2f} dB")


def cmd_compress(args):
    from pathlib import Path

    from deepae.data.io import read_image
    from deepae.fileio import atomic_write

    if args.args and args.args[0] == "train":
        return _train(args)
    src, out = input_and_output(args, "compress", _USAGE["compress"])
    not_stdio(args.model, "--model", CODEC_FILE)
    dst = _compress_output(args, out, src)
    if is_stdio(src):
        f = stdin_file("an image file (PNG, JPEG, ...)")
        n_in, image = len(f.getbuffer()), read_image(f)
    else:
        image = read_image(src)
        n_in = Path(src).stat().st_size
    effort = "refine" if args.effort == "fast" and args.refine else args.effort
    if args.iterations is not None and effort != "best":
        raise ValueError(f"--iterations applies to --effort best; received --iterations "
                         f"{args.iterations} with --effort {effort}")
    if args.refine is not None and effort == "best":
        raise ValueError(f"--refine applies to --effort refine; received --refine {args.refine} "
                         "with --effort best")
    codec = _codec(args.model, args.quality)
    if args.effort == "best":
        codec.set_params(verbose=0 if args.quiet else 1)
    data, stats = codec.compress(image, effort=args.effort, refine_steps=args.refine,
                                 iterations=args.iterations, return_stats=True)
    if dst is None:
        result_bytes(data, ".dae bytes")
    else:
        atomic_write(dst, data, overwrite=args.overwrite)
    if args.json or not args.quiet:
        _report(args, codec, image, data, stats, dst, n_in)
    return 0


def cmd_decompress(args):
    from pathlib import Path

    from deepae import ImageCodec
    from deepae.data.io import image_bytes, write_image

    src, out = input_and_output(args, "decompress", _USAGE["decompress"])
    not_stdio(args.model, "--model", CODEC_FILE)
    dst = output_path(args, out, src, args.model, stdout=True)
    if dst is None:
        binary_stdout("PNG bytes")
    if is_stdio(src):
        data = read_stdin("the bytes of a .dae file")
    elif not Path(src).is_file():
        raise FileNotFoundError(f"No .dae file at {str(src)!r}.")
    else:
        data = Path(src).read_bytes()
    codec = ImageCodec.load(args.model) if args.model else ImageCodec.pretrained_for(data)
    image = codec.decompress(data)
    if dst is None:
        result_bytes(image_bytes(image, ".png"), "PNG bytes")
    else:
        write_image(dst, image, overwrite=args.overwrite)
    if not args.quiet:
        status(f"wrote {dst or 'standard output'}: {image.shape[1]}x{image.shape[0]}"
               f"{'x3' if image.ndim == 3 else ''} from {len(data):,} bytes")
    return 0


def add_compress_parsers(sub):
    """Add ``compress`` (with ``compress train``) and ``decompress``."""
    from deepae.apps.compress.codec import QUALITY_LAMBDAS
    from deepae.cli._options import add_common_options, add_patch_training_options

    c = sub.add_parser("compress", help="compress an image to a .dae file; train a codec",
                       usage=_USAGE["compress"],
                       description="Compress an image with a learned codec to a .dae file "
                       "(docs/format.md), or train a codec on a folder of images.")
    c.add_argument("args", nargs="+", metavar="ARG", help="INPUT (with -o OUTPUT; - reads the "
                   "image file from standard input), or train FOLDER")
    c.add_argument("--quality", type=int, choices=sorted(QUALITY_LAMBDAS), metavar="{1..8}",
                   help="shipped codec: 1 smallest files ... 8 best images (default 4)")
    c.add_argument("--model", help="codec file (.deepae) instead of a shipped one")
    c.add_argument("--effort", choices=("fast", "refine", "best"), default="fast",
                   help="encoder effort (the rate stays --quality's): fast, one pass; refine, "
                   "a search for a better latent (--refine steps, default 200; about 80 s "
                   "per megapixel); best, a small codec overfitted to this image and written "
                   "in the file (--iterations steps, default 2000; about 45 s per 256x256 "
                   "image, the best files; docs/compression.md)")
    c.add_argument("--refine", type=int, default=None, metavar="N",
                   help="refine's gradient steps (N > 0 alone means --effort refine)")
    c.add_argument("--iterations", type=int, default=None, metavar="N",
                   help="best's optimisation steps per plane (default 2000)")
    c.add_argument("-o", "--output", help="the .dae file to write, or - for standard output "
                   "(train: the codec file)")
    c.add_argument("--lambda", dest="lmbda", type=float, default=0.013,
                   help="train: rate-distortion trade-off, bpp + lambda * 255^2 * MSE "
                   "(default 0.013; larger = larger files, better images)")
    add_patch_training_options(c, patch_size=64)
    c.add_argument("--filters", type=int, default=64, help="train: hidden channels (default 64)")
    c.add_argument("--latent-channels", type=int, default=96,
                   help="train: latent channels (default 96)")
    c.add_argument("--levels", type=int, default=4,
                   help="train: stride-2 stages, the latent is 2^levels smaller (default 4)")
    c.add_argument("--quiet", action="store_true", help="no status lines on standard error")
    c.add_argument("--json", action="store_true", help="print the figures (bytes, bpp, PSNR) "
                   "as one JSON document on standard output (and nothing else there); needs "
                   "-o FILE.dae")
    add_common_options(c)
    c.set_defaults(func=cmd_compress)

    d = sub.add_parser("decompress", help="restore an image from a .dae file",
                       usage=_USAGE["decompress"],
                       description="Decode a .dae file to an image file (PNG, ...).")
    d.add_argument("args", nargs="+", metavar="ARG", help="INPUT (with -o OUTPUT; - reads "
                   "the .dae bytes from standard input)")
    d.add_argument("-o", "--output", help="the image file to write (PNG, ...), or - for PNG "
                   "bytes on standard output")
    d.add_argument("--model", help="the codec that wrote the file; default: the shipped "
                   "codec whose fingerprint the file carries")
    d.add_argument("--quiet", action="store_true", help="no status line on standard error")
    add_common_options(d)
    d.set_defaults(func=cmd_decompress)
