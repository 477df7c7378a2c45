"""Learned image compression: ImageCodec beside JPEG and JPEG 2000, at equal file size.

    python benchmarks/compression.py [--parts fashion,photos,speed] [--n-test 1000]
                                     [--json benchmarks/compression.json] [--merge]
                                     [--plot docs/images/compression_rd.png]
                                     [--codecs benchmarks/out/fashion_codecs] [--reuse]
                                     [--refine 200]
                                     [--smoke]

One run measures:
1. fashion: Fashion-MNIST. One codec per lambda in FASHION_LAMBDAS, trained on the train
   split (28x28 images, 2 stride-2 stages: a 7x7 latent), FASHION_BASE from scratch (15
   epochs) and the others fine-tuned (5 epochs each) from their neighbour outwards from it,
   as scripts/train_codecs.py does for the photo codecs; saved under
   --codecs (--reuse loads them instead of training). Tested on the first --n-test test
   images, each compressed to its own file.
2. photos: the 8 codecs that ship in the package (`ImageCodec.pretrained(quality=1..8)`,
   trained by scripts/train_codecs.py on TRAIN_PHOTOS), on 256x256 crops (centre and four
   corners) of the test photographs brick, grass, gravel, coins, hubble_deep_field
   (grayscale), never trained on. Bjontegaard delta rate against JPEG 2000 and JPEG. The
   same codecs again with encoder-side refinement (`compress(refine_steps=--refine)`, the
   same decoder and format; "deepae refined"), a second curve with its own BD-rates.
3. speed: megapixels per second to encode and to decode hubble_deep_field (1000x872,
   grayscale): deepae quality 4 (and refined, one timing) beside JPEG 2000 and JPEG at
   similar rates.
4. best: `compress(effort="best")` (the overfitted codec, `deepae.apps.compress.overfit`,
   --best-iterations steps per crop) on the same 25 crops at the qualities --best-qualities:
   BD-rate against JPEG 2000, JPEG and, when the photos part is in the same JSON, against
   the fast and refined encoders; encode seconds per megapixel and decode megapixels per
   second (per crop, on the machine as it is), and peak memory of one encode and one decode
   in fresh processes. Each (crop, quality) point is cached in --best-cache as it is
   measured, so an interrupted run goes on where it stopped (--best-cache '' to start
   afresh without one).

Baselines through Pillow: JPEG (libjpeg, qualities 5..95, optimised Huffman tables) and
JPEG 2000 (OpenJPEG, irreversible 9/7 wavelet, one quality layer at a target compression
ratio, written as a bare codestream without the JP2 boxes and without OpenJPEG's comment
marker: the smallest valid file). Bits per pixel
are always the real file size (headers included) over the pixel count; PSNR is the mean over
images of each image's PSNR (8-bit, capped at 99 dB), SSIM likewise. "bpp est." is the
entropy model's ideal code length of the same latents: the file's excess over it is the
header, checksum and coder overhead. Prints tables, writes JSON and the rate-distortion plot.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
FASHION_LAMBDAS = (0.00005, 0.0001, 0.0002, 0.0004, 0.0009, 0.0018, 0.0035, 0.0067, 0.013, 0.025,
                   0.05)
FASHION_BASE = 0.0067  # trained from scratch; the others are fine-tuned outwards from it
FASHION_ARCH = dict(filters=64, latent_channels=48, levels=2, patch_size=28,
                    patches_per_epoch=8192, batch_size=32)
JPEG_QUALITIES = (5, 10, 20, 30, 40, 50, 60, 70, 80, 90, 95)
J2K_RATIOS = (2, 2.5, 3, 3.5, 4, 5, 6, 8, 12, 16, 24, 32, 48, 64, 96, 128, 192)


# -- baselines ------------------------------------------------------------------------------------
def jpeg(img, quality):
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="JPEG", quality=int(quality), optimize=True)
    return buf.getvalue()


def jpeg2000(img, ratio):
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="JPEG2000", quality_mode="rates",
                              quality_layers=[float(ratio)], irreversible=True, no_jp2=True)
    return strip_comment(buf.getvalue())


def strip_comment(codestream: bytes) -> bytes:
    """Drop the COM marker segments (OpenJPEG writes "Created by OpenJPEG version ...", 41
    bytes) from a JPEG 2000 codestream's main header: a valid codestream, 41 bytes smaller."""
    out, i = bytearray(codestream[:2]), 2  # SOC
    while i + 4 <= len(codestream):
        marker = codestream[i:i + 2]
        if marker == b"\xff\x90":  # SOT: the main header ends here
            break
        length = int.from_bytes(codestream[i + 2:i + 4], "big")
        if marker != b"\xff\x64":
            out += codestream[i:i + 2 + length]
        i += 2 + length
    return bytes(out + codestream[i:])


def pillow_decode(data):
    from PIL import Image

    return np.asarray(Image.open(io.BytesIO(data)))


# -- measuring ------------------------------------------------------------------------------------
def quality(a, b):
    from deepae.metrics import ssim

    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    p = 99.0 if mse == 0 else min(99.0, 10 * np.log10(255.0 ** 2 / mse))
    return p, ssim(a, b, data_range=255)


def point(images, encode, decode, label, **extra):
    """Mean bpp (file size), PSNR and SSIM of one setting over `images`."""
    from deepae.metrics import bits_per_pixel

    bpp, psnr, ss = [], [], []
    for img in images:
        data = encode(img)
        out = decode(data)
        bpp.append(bits_per_pixel(data, img.shape))
        p, s = quality(img, out)
        psnr.append(p)
        ss.append(s)
    return {"setting": label, "bpp": float(np.mean(bpp)), "psnr": float(np.mean(psnr)),
            "ssim": float(np.mean(ss)), **extra}


def codec_point(codec, images, label, refine_steps=0, **extra):
    est = []

    def encode(img):
        data, stats = codec.compress(img, refine_steps=refine_steps, return_stats=True)
        est.append(stats["bpp_estimate"])
        return data

    row = point(images, encode, codec.decompress, label, **extra)
    row["bpp_estimate"] = float(np.mean(est))
    row["file_over_estimate"] = row["bpp"] / row["bpp_estimate"]
    return row


def baseline_curves(images, smoke):
    qs = JPEG_QUALITIES[::4] if smoke else JPEG_QUALITIES
    rs = J2K_RATIOS[::4] if smoke else J2K_RATIOS
    return {"JPEG": [point(images, lambda im, q=q: jpeg(im, q), pillow_decode, f"q{q}")
                     for q in qs],
            "JPEG 2000": [point(images, lambda im, r=r: jpeg2000(im, r), pillow_decode,
                                f"ratio {r}") for r in rs]}


def curve_at(rows, bpp):
    """PSNR of a codec at `bpp`: linear between its points; beyond its largest rate, its
    best point (a codec can always spend fewer bits than offered); None below its lowest."""
    rows = sorted(rows, key=lambda r: r["bpp"])
    x = [r["bpp"] for r in rows]
    y = [r["psnr"] for r in rows]
    if bpp < x[0]:
        return None
    if bpp >= x[-1]:
        return max(y)
    return float(np.interp(bpp, x, y))


def margins(ours, ref, up_to):
    """Our PSNR minus the reference's at each of the reference's points up to `up_to` bpp."""
    out, seen = [], set()
    for r in ref:
        if r["bpp"] <= up_to and round(r["bpp"], 6) not in seen:  # settings that give the
            seen.add(round(r["bpp"], 6))                          # same file count once
            mine = curve_at(ours, r["bpp"])
            out.append({"bpp": r["bpp"], "reference_psnr": r["psnr"], "deepae_psnr": mine,
                        "margin_db": None if mine is None else mine - r["psnr"]})
    return out


def bd(ours, ref):
    from deepae.metrics import bd_rate

    try:
        return bd_rate([r["bpp"] for r in ref], [r["psnr"] for r in ref],
                       [r["bpp"] for r in ours], [r["psnr"] for r in ours])
    except ValueError as e:
        return f"n/a ({e})"


# -- parts ----------------------------------------------------------------------------------------
def train_fashion_codecs(x_train, args):
    from deepae import ImageCodec

    folder = Path(args.codecs)
    lambdas = FASHION_LAMBDAS[::3] if args.smoke else FASHION_LAMBDAS
    base = lambdas.index(FASHION_BASE) if FASHION_BASE in lambdas else len(lambdas) // 2
    order = [base] + list(range(base + 1, len(lambdas))) + list(range(base - 1, -1, -1))
    codecs, seconds = {}, {}
    for i in order:
        path = folder / f"fashion_{lambdas[i]}.deepae"
        if args.reuse and path.exists():
            codecs[i] = ImageCodec.load(path)
            continue
        t = time.perf_counter()
        if i == base:
            codec = ImageCodec(lmbda=lambdas[i], epochs=1 if args.smoke else 15,
                               random_state=0, verbose=1, **FASHION_ARCH)
        else:
            parent = codecs[i - 1 if i > base else i + 1]
            codec = ImageCodec.load(parent.save(folder / ".parent.deepae"))
            codec.set_params(lmbda=lambdas[i], epochs=1 if args.smoke else 5,
                             learning_rate=5e-4, warm_start=True, random_state=i)
        codec.fit(x_train)
        codec.set_params(warm_start=False)
        codec.save(path)
        codecs[i] = codec
        seconds[lambdas[i]] = round(time.perf_counter() - t, 1)
        print(f"fashion codec lambda {lambdas[i]}: {seconds[lambdas[i]]} s", flush=True)
    (folder / ".parent.deepae").unlink(missing_ok=True)
    return [(lambdas[i], codecs[i]) for i in range(len(lambdas))], seconds


def fashion(args):
    from deepae.datasets import load_fashion_mnist

    (x_train, _), (x_test, _) = load_fashion_mnist()
    if args.smoke:
        x_train = x_train[:2000]
    test = list(x_test[:args.n_test])
    codecs, seconds = train_fashion_codecs(x_train, args)
    # training cost so far along each codec's chain (its history holds its parents' epochs)
    ours = [codec_point(c, test, f"lambda {lam}", lmbda=lam,
                        epochs_in_chain=len(c.history_["loss"]),
                        train_seconds_in_chain=c.history_["seconds"][-1]) for lam, c in codecs]
    res = {"images": len(test), "train_seconds": seconds, "deepae": ours,
           **baseline_curves(test, args.smoke)}
    res["margin_vs_jpeg2000_up_to_2bpp"] = margins(ours, res["JPEG 2000"], 2.0)
    got = [m["margin_db"] for m in res["margin_vs_jpeg2000_up_to_2bpp"]]
    res["min_margin_db"] = None if not got or None in got else min(got)
    res["at_or_below_0.5bpp"] = [r for r in ours if r["bpp"] <= 0.5]
    return res


def photos(args):
    from deepae import ImageCodec
    from deepae.datasets import photo_crops

    crops = [np.round(c * 255).astype(np.uint8) for c in photo_crops(size=256)]
    if args.smoke:
        crops = crops[:3]
    ours = [codec_point(ImageCodec.pretrained(quality=q), crops, f"quality {q}", quality=q)
            for q in range(1, 9)]
    res = {"images": len(crops), "deepae": ours, **baseline_curves(crops, args.smoke)}
    res["bd_rate_vs_jpeg2000_percent"] = bd(ours, res["JPEG 2000"])
    res["bd_rate_vs_jpeg_percent"] = bd(ours, res["JPEG"])
    res["at_or_below_0.5bpp"] = [r for r in ours if r["bpp"] <= 0.5]
    if args.refine:
        refined = [codec_point(ImageCodec.pretrained(quality=q), crops,
                               f"quality {q}, refine {args.refine}", refine_steps=args.refine,
                               quality=q) for q in range(1, 9)]
        res["deepae refined"] = refined
        res["refined_bd_rate_vs_jpeg2000_percent"] = bd(refined, res["JPEG 2000"])
        res["refined_bd_rate_vs_jpeg_percent"] = bd(refined, res["JPEG"])
        res["refined_bd_rate_vs_deepae_percent"] = bd(refined, ours)
    return res


def _atomic_json(path, obj):
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(obj, indent=1))
    os.replace(tmp, path)


def _peak_rss_mb(code: str) -> float:
    """Peak resident memory (MB) of a fresh Python process running `code`."""
    import subprocess

    probe = (code + "\nimport resource, sys\n"
             "sys.stdout.write('PEAK %d' % resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         check=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    return int(out.stdout.rsplit("PEAK ", 1)[1]) / 1024


def best(args):
    from deepae import ImageCodec
    from deepae.apps.compress import overfit
    from deepae.apps.compress.laplace import TABLES_SHA256
    from deepae.datasets import photo_crops

    crops = [np.round(c * 255).astype(np.uint8) for c in photo_crops(size=256)]
    qualities = [int(q) for q in args.best_qualities.split(",")]
    # a cached point is reused only for the same encoder: architecture, tables, revision
    version = (f"{overfit.DEFAULT_ARCHITECTURE}, tables {TABLES_SHA256[:8]}, encoder "
               f"revision {overfit.ENCODER_REVISION}")
    iterations = args.best_iterations
    if args.smoke:
        crops, qualities, iterations = crops[:2], qualities[:4], min(iterations, 20)
    cache = {}
    if args.best_cache and Path(args.best_cache).exists():
        cache = json.loads(Path(args.best_cache).read_text())
    rows = []
    for q in qualities:
        codec = ImageCodec.pretrained(quality=q)
        points = []
        order = list(enumerate(crops))
        for i, img in (order[::-1] if args.best_reverse else order):
            key = f"crop {i}, quality {q}, {iterations} iterations, {version}"
            if key not in cache:
                codec.set_params(random_state=i)
                t = time.perf_counter()
                data = codec.compress(img, effort="best", iterations=iterations)
                enc = time.perf_counter() - t
                out = codec.decompress(data)  # compiles the decoder's kernels once
                dec = best_time(lambda d=data, c=codec: c.decompress(d), 3)
                p, ss = quality(img, out)
                cache[key] = {"bytes": len(data), "bpp": 8 * len(data) / img.size, "psnr": p,
                              "ssim": ss, "encode_seconds": enc, "decode_seconds": dec}
                if args.best_cache:
                    _atomic_json(args.best_cache, cache)
                print(f"best: {key}: {cache[key]['bpp']:.3f} bpp, {p:.2f} dB, {enc:.0f} s",
                      flush=True)
            points.append(cache[key])
        mp = crops[0].size / 1e6
        rows.append({"setting": f"quality {q}, best {iterations}", "quality": q,
                     **{k: float(np.mean([pt[k] for pt in points]))
                        for k in ("bpp", "psnr", "ssim")},
                     "encode_seconds_per_crop": float(np.mean([pt["encode_seconds"]
                                                               for pt in points])),
                     "encode_seconds_per_mp": float(np.mean([pt["encode_seconds"]
                                                             for pt in points])) / mp,
                     "decode_mp_per_s": mp / float(np.mean([pt["decode_seconds"]
                                                            for pt in points]))})
    res = {"images": len(crops), "iterations": iterations, "deepae best": rows,
           **baseline_curves(crops, args.smoke)}
    # per crop: best's PSNR minus JPEG 2000's on the same crop at the same rate (its curve
    # over the ratios, interpolated), a view that the averaged curves above do not give:
    # they average rates that constant lambda spreads over the crops unevenly
    ratios = J2K_RATIOS[::4] if args.smoke else J2K_RATIOS
    margins_by_q = {}
    for i, img in enumerate(crops):
        ref = sorted((8 * len(d) / img.size, quality(img, pillow_decode(d))[0])
                     for d in (jpeg2000(img, r) for r in ratios))
        for q in qualities:
            pt = cache[f"crop {i}, quality {q}, {iterations} iterations, {version}"]
            if ref[0][0] <= pt["bpp"] <= ref[-1][0]:
                margins_by_q.setdefault(q, []).append(
                    pt["psnr"] - float(np.interp(pt["bpp"], [r[0] for r in ref],
                                                 [r[1] for r in ref])))
    res["per_crop_margin_vs_jpeg2000_db"] = {
        f"quality {q}": {"crops": len(m), "mean": float(np.mean(m)), "min": float(np.min(m)),
                         "max": float(np.max(m)), "crops_above": int(np.sum(np.array(m) > 0))}
        for q, m in margins_by_q.items()}
    res["bd_rate_vs_jpeg2000_percent"] = bd(rows, res["JPEG 2000"])
    res["bd_rate_vs_jpeg_percent"] = bd(rows, res["JPEG"])
    if args.merge and Path(args.json).exists():
        photos_res = json.loads(Path(args.json).read_text()).get("photos", {})
        for name, key in (("deepae", "bd_rate_vs_fast_percent"),
                          ("deepae refined", "bd_rate_vs_refined_percent")):
            if photos_res.get(name):
                res[key] = bd(rows, photos_res[name])
    # peak memory of one encode and one decode (quality 4, the first crop), fresh processes;
    # the baseline is importing deepae (and with it TensorFlow) alone
    tmp, arr = Path(args.codecs) / "best_memory.dae", Path(args.codecs) / "best_memory.npy"
    np.save(arr, crops[0])
    setup = f"import numpy as np\nfrom deepae.apps.compress import overfit\nimg = np.load({str(arr)!r})\n"
    res["encode_peak_mb"] = _peak_rss_mb(
        setup + "from deepae import ImageCodec\ncodec = ImageCodec.pretrained(quality=4)\n"
        f"open({str(tmp)!r}, 'wb').write(codec.compress(img, effort='best', "
        f"iterations={min(iterations, 200)}))")
    res["decode_peak_mb"] = _peak_rss_mb(
        setup + f"overfit.decode(open({str(tmp)!r}, 'rb').read(), 10 ** 8, lambda p: p[0])")
    res["import_peak_mb"] = _peak_rss_mb(setup)
    return res


def best_time(fn, repeats):
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def speed(args):
    from deepae import ImageCodec
    from deepae.datasets import load_photos

    img = np.round(load_photos(["hubble_deep_field"])[0] * 255).astype(np.uint8)
    mp = img.size / 1e6
    codec = ImageCodec.pretrained(quality=4)
    ours = codec.compress(img)
    rate = 8 * len(ours) / img.size
    # the baselines at about the same rate as ours
    ratio = 8 / rate
    q = min(JPEG_QUALITIES, key=lambda q: abs(8 * len(jpeg(img, q)) / img.size - rate))
    methods = {"deepae (quality 4)": (lambda: codec.compress(img), codec.decompress),
               f"JPEG 2000 (ratio {ratio:.0f})": (lambda: jpeg2000(img, ratio), pillow_decode),
               f"JPEG (q{q})": (lambda: jpeg(img, q), pillow_decode)}
    if args.refine:
        methods[f"deepae (quality 4, refine {args.refine})"] = (
            lambda: codec.compress(img, refine_steps=args.refine), codec.decompress)
    repeats = 1 if args.smoke else 3
    rows = {}
    for name, (enc, dec) in methods.items():
        data = enc()
        slow = "refine" in name  # minutes per run: timed once (after a warm-up run)
        rows[name] = {"bpp": 8 * len(data) / img.size,
                      "encode_mp_per_s": mp / best_time(enc, 1 if slow else repeats),
                      "decode_mp_per_s": mp / best_time(lambda d=data, f=dec: f(d), repeats)}
    return {"image": f"hubble_deep_field {img.shape[1]}x{img.shape[0]} grayscale",
            "methods": rows}


# -- output -----------------------------------------------------------------------------------------
def print_rd(name, res):
    print(f"\n{name} ({res['images']} images): mean bpp (file) / PSNR dB / SSIM")
    print(f"{'method':<14} {'setting':<22} {'bpp':>7} {'bpp est.':>9} {'PSNR':>7} {'SSIM':>7}")
    for method in ("deepae", "deepae refined", "deepae best", "JPEG 2000", "JPEG"):
        for r in res.get(method, ()):
            est = f"{r['bpp_estimate']:9.3f}" if "bpp_estimate" in r else f"{'':9}"
            print(f"{method:<14} {r['setting']:<22} {r['bpp']:7.3f} {est} {r['psnr']:7.2f} "
                  f"{r['ssim']:7.4f}")


def print_all(out):
    if "fashion" in out:
        f = out["fashion"]
        print_rd("Fashion-MNIST", f)
        print("\ndeepae minus JPEG 2000 at JPEG 2000's points up to 2 bpp:")
        for m in f["margin_vs_jpeg2000_up_to_2bpp"]:
            mine = "n/a" if m["deepae_psnr"] is None else f"{m['deepae_psnr']:.2f}"
            marg = "n/a" if m["margin_db"] is None else f"{m['margin_db']:+.2f} dB"
            print(f"  {m['bpp']:.3f} bpp: JPEG 2000 {m['reference_psnr']:.2f}, deepae {mine}"
                  f"  -> {marg}")
        print(f"smallest margin: {f['min_margin_db']}; models at <= 0.5 bpp: "
              + ", ".join(f"{r['setting']} {r['bpp']:.3f} bpp {r['psnr']:.2f} dB"
                          for r in f["at_or_below_0.5bpp"]))
    if "photos" in out:
        p = out["photos"]
        print_rd("Photos (256x256 crops of TEST_PHOTOS)", p)
        print(f"\nBD-rate vs JPEG 2000: {p['bd_rate_vs_jpeg2000_percent']}%, vs JPEG: "
              f"{p['bd_rate_vs_jpeg_percent']}%; models at <= 0.5 bpp: "
              + ", ".join(f"{r['setting']} {r['bpp']:.3f} bpp {r['psnr']:.2f} dB"
                          for r in p["at_or_below_0.5bpp"]))
        if "deepae refined" in p:
            print(f"refined: BD-rate vs JPEG 2000 {p['refined_bd_rate_vs_jpeg2000_percent']}%, "
                  f"vs JPEG {p['refined_bd_rate_vs_jpeg_percent']}%, vs deepae without "
                  f"refinement {p['refined_bd_rate_vs_deepae_percent']}%")
    if "best" in out:
        b = out["best"]
        print_rd(f"effort='best' ({b['iterations']} iterations per crop)", b)
        print(f"\nbest: BD-rate vs JPEG 2000 {b['bd_rate_vs_jpeg2000_percent']}%, vs JPEG "
              f"{b['bd_rate_vs_jpeg_percent']}%, vs fast {b.get('bd_rate_vs_fast_percent')}%, "
              f"vs refined {b.get('bd_rate_vs_refined_percent')}%")
        print("best minus JPEG 2000 on the same crop at the same rate (dB): "
              + "; ".join(f"{q}: mean {m['mean']:+.2f}, min {m['min']:+.2f}, max "
                          f"{m['max']:+.2f}, {m['crops_above']}/{m['crops']} crops above"
                          for q, m in b["per_crop_margin_vs_jpeg2000_db"].items()))
        print(f"{'setting':<26} {'encode s/crop':>13} {'encode s/MP':>12} {'decode MP/s':>12}")
        for r in b["deepae best"]:
            print(f"{r['setting']:<26} {r['encode_seconds_per_crop']:13.1f} "
                  f"{r['encode_seconds_per_mp']:12.0f} {r['decode_mp_per_s']:12.2f}")
        print(f"peak memory (fresh process, 256x256 crop): encode {b['encode_peak_mb']:.0f} MB, "
              f"decode {b['decode_peak_mb']:.0f} MB; importing deepae (TensorFlow) alone "
              f"{b['import_peak_mb']:.0f} MB")
    if "speed" in out:
        s = out["speed"]
        print(f"\nspeed on {s['image']} (megapixels per second, best of 3)")
        print(f"{'method':<34} {'bpp':>6} {'encode':>8} {'decode':>8}")
        for name, r in s["methods"].items():
            print(f"{name:<34} {r['bpp']:6.3f} {r['encode_mp_per_s']:8.2f} "
                  f"{r['decode_mp_per_s']:8.2f}")


def plot(out, path):
    from deepae.plots import rate_distortion

    panels = {}
    for key, title in (("fashion", "Fashion-MNIST (28x28)"),
                       ("photos", "test photos (256x256 crops)")):
        if key in out:
            # the baselines up to a little beyond deepae's highest rate: the range compared
            top = 1.6 * max(r["bpp"] for r in out[key]["deepae"])
            panels[title] = {m: ([r["bpp"] for r in out[key][m] if r["bpp"] <= top],
                                 [r["psnr"] for r in out[key][m] if r["bpp"] <= top])
                             for m in ("deepae", "deepae refined", "JPEG 2000", "JPEG")
                             if m in out[key]}
            if key == "photos" and "best" in out:
                rows = out["best"]["deepae best"]
                panels[title]["deepae best"] = ([r["bpp"] for r in rows],
                                                [r["psnr"] for r in rows])
    if panels:
        return rate_distortion(panels, path)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--parts", default="fashion,photos,speed")
    ap.add_argument("--n-test", type=int, default=1000)
    ap.add_argument("--json", default=str(ROOT / "benchmarks" / "compression.json"))
    ap.add_argument("--plot", default=str(ROOT / "docs" / "images" / "compression_rd.png"))
    ap.add_argument("--codecs", default=str(ROOT / "benchmarks" / "out" / "fashion_codecs"))
    ap.add_argument("--reuse", action="store_true", help="load Fashion codecs from --codecs")
    ap.add_argument("--merge", action="store_true", help="keep other parts of --json")
    ap.add_argument("--refine", type=int, default=200,
                    help="photos and speed: also the refined encoder with this many steps "
                    "(0: not)")
    ap.add_argument("--best-qualities", default="1,3,5,8",
                    help="best: the qualities (lambdas) measured")
    ap.add_argument("--best-iterations", type=int, default=None,
                    help="best: optimisation steps per crop (default: the library's)")
    ap.add_argument("--best-reverse", action="store_true",
                    help="best: measure the crops last to first (a second process, with its "
                    "own --best-cache, shares the work; merge the caches)")
    ap.add_argument("--best-cache", default=str(ROOT / "benchmarks" / "out" / "best_points.json"),
                    help="best: per-point results, read and extended ('' for none)")
    ap.add_argument("--smoke", action="store_true", help="tiny run to check the script")
    ap.add_argument("--plot-only", action="store_true", help="redraw the plot from --json")
    args = ap.parse_args(argv)
    if args.best_iterations is None:
        from deepae.apps.compress.overfit import BEST_ITERATIONS

        args.best_iterations = BEST_ITERATIONS
    if args.smoke:
        args.n_test = min(args.n_test, 20)
        args.refine = min(args.refine, 5)
    Path(args.codecs).mkdir(parents=True, exist_ok=True)
    out = {}
    if args.merge and Path(args.json).exists():
        out = json.loads(Path(args.json).read_text())
    if args.plot_only:
        print(f"wrote {plot(json.loads(Path(args.json).read_text()), args.plot)}")
        return 0
    out["command"] = "python benchmarks/compression.py " + " ".join(
        sys.argv[1:] if argv is None else argv)
    for part in args.parts.split(","):
        fn = {"fashion": fashion, "photos": photos, "speed": speed, "best": best}.get(part)
        if fn is None:
            raise SystemExit(f"--parts takes fashion, photos, speed, best; got {part!r}")
        t = time.perf_counter()
        out[part] = fn(args)
        out[part]["seconds"] = round(time.perf_counter() - t, 1)
        Path(args.json).write_text(json.dumps(out, indent=1))
    print_all(out)
    if args.plot and not args.smoke:
        print(f"\nwrote {plot(out, args.plot)}")
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
