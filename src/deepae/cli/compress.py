"""`deepae compress` and `deepae decompress`: learned image compression from the shell.

    deepae compress photo.png photo.dae [--quality 4 | --model codec.deepae] [--refine 200]
    deepae compress train FOLDER -o codec.deepae --lambda 0.013 [--epochs 20]
    deepae decompress photo.dae restored.png [--model codec.deepae]

Without --model, `compress` uses the codec of the given quality that ships with deepae
(`ImageCodec.pretrained`), and `decompress` finds the shipped codec that wrote the file from
the fingerprint in its header. A thin layer over `deepae.ImageCodec`.
"""

from __future__ import annotations

from deepae.cli._options import (
    input_and_output,
    output_path,
    run_parameters,
    save_trained,
    status,
)

__all__ = ["add_compress_parsers"]

_USAGE = {"compress": "deepae compress INPUT -o OUTPUT [--quality Q | --model M] [--refine N] "
                      "| train FOLDER -o M --lambda L",
          "decompress": "deepae decompress INPUT -o OUTPUT [--model M]"}


def _codec(path, quality=None):
    from deepae import ImageCodec

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
    if not args.output:
        raise ValueError("`deepae compress train` needs -o/--output, the codec file to write.")
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


def cmd_compress(args):
    from pathlib import Path

    from deepae.data.io import read_image
    from deepae.fileio import atomic_write

    if args.args and args.args[0] == "train":
        return _train(args)
    src, out = input_and_output(args, "compress", _USAGE["compress"])
    src, dst = Path(src), output_path(args, out, src, args.model)
    if dst.suffix.lower() != ".dae":  # compressed bytes never land in photo.png by mistake
        raise ValueError(f"expected an output file ending in .dae; received {str(dst)!r}")
    image = read_image(src)
    codec = _codec(args.model, args.quality)
    data, stats = codec.compress(image, refine_steps=args.refine, return_stats=True)
    atomic_write(dst, data, overwrite=args.overwrite)
    if not args.quiet:
        restored = codec.decompress(data)
        status(f"wrote {dst}: {stats['bytes']:,} bytes for {image.shape[1]}x{image.shape[0]} "
              f"pixels ({src.stat().st_size:,} bytes in)")
        status(f"rate: {stats['bpp']:.4f} bpp from the file size ({stats['header_bytes']} "
              f"header bytes included); the entropy model estimated {stats['bpp_estimate']:.4f}"
              f" bpp (file {100 * (stats['overhead'] - 1):+.1f}%)")
        status(f"PSNR: {_psnr(image, restored):.2f} dB")
    return 0


def cmd_decompress(args):
    from pathlib import Path

    from deepae import ImageCodec
    from deepae.data.io import write_image

    src, out = input_and_output(args, "decompress", _USAGE["decompress"])
    src, dst = Path(src), output_path(args, out, src, args.model)
    if not src.is_file():
        raise FileNotFoundError(f"No .dae file at {str(src)!r}.")
    data = src.read_bytes()
    codec = ImageCodec.load(args.model) if args.model else ImageCodec.pretrained_for(data)
    image = codec.decompress(data)
    write_image(dst, image, overwrite=args.overwrite)
    if not args.quiet:
        status(f"wrote {dst}: {image.shape[1]}x{image.shape[0]}"
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
    c.add_argument("args", nargs="+", metavar="ARG", help="INPUT (with -o OUTPUT), or train "
                   "FOLDER")
    c.add_argument("--quality", type=int, choices=sorted(QUALITY_LAMBDAS), metavar="{1..8}",
                   help="shipped codec: 1 smallest files ... 8 best images (default 4)")
    c.add_argument("--model", help="codec file (.deepae) instead of a shipped one")
    c.add_argument("--refine", type=int, default=0, metavar="N",
                   help="encoder effort: N gradient steps searching a better latent for this "
                   "image (slow: about 80 s per megapixel with 200; 0.4-0.8 dB more at "
                   "the same size on the benchmark's photos; the decoder is unchanged; "
                   "default 0)")
    c.add_argument("-o", "--output", help="the .dae file to write (train: the codec file)")
    c.add_argument("--lambda", dest="lmbda", type=float, default=0.013,
                   help="train: rate-distortion trade-off, bpp + lambda * 255^2 * MSE "
                   "(default 0.013; larger = larger files, better images)")
    add_patch_training_options(c, patch_size=64)
    c.add_argument("--filters", type=int, default=64, help="train: hidden channels (default 64)")
    c.add_argument("--latent-channels", type=int, default=96,
                   help="train: latent channels (default 96)")
    c.add_argument("--levels", type=int, default=4,
                   help="train: stride-2 stages, the latent is 2^levels smaller (default 4)")
    c.add_argument("--quiet", action="store_true", help="print nothing")
    add_common_options(c)
    c.set_defaults(func=cmd_compress)

    d = sub.add_parser("decompress", help="restore an image from a .dae file",
                       usage=_USAGE["decompress"],
                       description="Decode a .dae file to an image file (PNG, ...).")
    d.add_argument("args", nargs="+", metavar="ARG", help="INPUT (with -o OUTPUT)")
    d.add_argument("-o", "--output", help="the image file to write (PNG, ...)")
    d.add_argument("--model", help="the codec that wrote the file; default: the shipped "
                   "codec whose fingerprint the file carries")
    d.add_argument("--quiet", action="store_true", help="print nothing")
    add_common_options(d)
    d.set_defaults(func=cmd_decompress)
