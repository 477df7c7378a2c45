"""Memory of the .dae codec: small forged files and a 24-megapixel colour photograph.

    python benchmarks/dae_memory.py [--quality 4] [--tile T] [--before REV] [--cap-gb 6]
                                    [--cases forged,photo,small] [--json benchmarks/dae_memory.json]

Each case runs in a fresh process that loads the shipped codec (`ImageCodec.pretrained`),
then does one thing: decompress a file, or compress the photo. The process reads its own
peak resident set from /proc (VmHWM; `ru_maxrss` would count the parent's memory too, which
a spawned child inherits): "peak" is the whole process's, codec and TensorFlow included;
"extra" is the peak during the operation over the resident set just before it (the peak is
reset with /proc/self/clear_refs first). The seconds are the operation's wall time (for a
process that failed, the whole process's, imports included).

Cases:
- forged: files of under 1 KB with a valid checksum whose header announces a large image
  (4096x4096 grayscale and colour, and the largest colour image under `max_pixels`) and an
  empty or random payload, a 1 KB file announcing the largest grayscale image whose
  payload check it passes, and the largest real file under 1 KB (a flat grey square).
  Target: refused, or decoded with under 300 MB extra.
- photo: a 24-megapixel colour photograph (6000x4000: scikit-image's astronaut, enlarged
  twice with Pillow's bicubic filter, mirrored to fill the frame), compressed and the file
  decompressed. Target: a peak under 1.5 GB. The decoded PSNR is printed as a check.
- small: the same at 1024x1024 (the enlarged astronaut alone), which the untiled codec
  also fits in memory: the cost of the tiles in time.

With --before REV, the same cases run first on the deepae of that git revision
(`git archive`, the shipped codecs included) and the table shows both side by side. Each
process is capped at --cap-gb of data memory (RLIMIT_DATA, which counts memory reserved as
well as touched), so that an old decoder that would take tens of gigabytes fails there
(MemoryError, or TensorFlow's kernels crash) instead of exhausting the machine.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import struct
import subprocess
import sys
import tempfile
import time
import zlib
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

ROOT = Path(__file__).resolve().parents[1]
PHOTO_SHAPE = (4000, 6000, 3)
SMALL_SIDE = 1024


def _status_kb(key: str) -> int:
    with open("/proc/self/status") as f:
        return int(next(line for line in f if line.startswith(key)).split()[1])


def forge(fingerprint: bytes, h: int, w: int, c: int, latent: tuple, payload: bytes) -> bytes:
    """A .dae file with a valid CRC announcing an h x w x c image (docs/format.md)."""
    head = struct.pack(">3sB4sHHBHHHI", b"DAE", 1, fingerprint, h, w, c, *latent, len(payload))
    body = head + payload
    return body + struct.pack(">I", zlib.crc32(body))


# -- the child: one operation in a fresh process ------------------------------------------------
def child(args) -> None:
    import resource

    cap = int(args.cap_gb * 2 ** 30)
    resource.setrlimit(resource.RLIMIT_DATA, (cap, cap))
    import numpy as np

    import deepae

    codec = deepae.ImageCodec.pretrained(quality=args.quality)
    if args.tile and "tile" in codec.get_params():  # an older deepae has no tiles
        codec.set_params(tile=args.tile)
    src = Path(args.input)
    if args.op == "compress":
        image = np.load(src)
        codec.compress(image[:64, :64])  # traced: the first call's graph is not the image's
    else:
        data = src.read_bytes()
        image = None
    load_peak = _status_kb("VmHWM:")
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # VmHWM back to the resident set now
    base = _status_kb("VmRSS:")
    t0 = time.perf_counter()
    try:
        if args.op == "compress":
            data = codec.compress(image)
            Path(args.output).write_bytes(data)
            result = f"{len(data):,} bytes"
        else:
            out = codec.decompress(data)
            result = f"decoded {out.shape[1]}x{out.shape[0]}" + ("x3" if out.ndim == 3 else "")
    except deepae.BitstreamError as e:
        out, result = None, f"refused: {e}"
    except MemoryError as e:
        out, result = None, f"MemoryError {e}"
    seconds = time.perf_counter() - t0
    hwm = _status_kb("VmHWM:")
    row = {"peak_mb": max(hwm, load_peak) / 1024, "extra_mb": (hwm - base) / 1024,
           "base_mb": base / 1024, "seconds": seconds, "result": result,
           "tile": codec.get_params().get("tile")}
    if args.reference and out is not None:  # PSNR against the original, in row bands
        ref, sq = np.load(args.reference, mmap_mode="r"), 0.0
        for r in range(0, ref.shape[0], 256):
            sq += float(np.sum((out[r:r + 256].astype(np.float64) - ref[r:r + 256]) ** 2))
        row["psnr_db"] = 10 * np.log10(255.0 ** 2 * ref.size / sq)
    print("RESULT " + json.dumps(row))


# -- the parent: inputs, one process per case, the table ------------------------------------
def photo(side_or_shape):
    """scikit-image's astronaut enlarged twice (bicubic), mirrored to the shape asked."""
    import numpy as np
    from PIL import Image
    from skimage import data

    img = Image.fromarray(data.astronaut()).resize((1024, 1024), Image.BICUBIC)
    img = np.asarray(img)
    h, w, _ = side_or_shape
    return np.pad(img, ((0, max(0, h - 1024)), (0, max(0, w - 1024)), (0, 0)),
                  mode="symmetric")[:h, :w]


def make_inputs(work: Path, quality: int, cases) -> list[dict]:
    """The cases' files under `work`, from the codec of this checkout."""
    import numpy as np

    import deepae

    codec = deepae.ImageCodec.pretrained(quality=quality)
    fp, s, m = bytes.fromhex(codec.fingerprint_[:8]), codec.stride, int(codec.latent_channels)
    lat = lambda h, w: (-(-h // s), -(-w // s), m)  # noqa: E731
    rows = []
    if "forged" in cases:
        rng = np.random.default_rng(0)
        junk = rng.integers(0, 256, 1024 - 27, dtype=np.uint8).tobytes()
        side = 5461  # 5461**2 * 3 planes: the largest square colour image under MAX_PIXELS
        # the largest grayscale square whose payload check 997 bytes pass
        big = 16
        while codec._coder.min_payload_bytes([lat(big + 16, big + 16)]) <= len(junk):
            big += 16
        files = {
            "27 B, 4096x4096 grey, empty payload": forge(fp, 4096, 4096, 1, lat(4096, 4096),
                                                         b""),
            "27 B, 4096x4096 colour, empty payload": forge(fp, 4096, 4096, 3,
                                                           lat(4096, 4096), b""),
            f"27 B, {side}x{side} colour, empty payload": forge(fp, side, side, 3,
                                                                lat(side, side), b""),
            "1 KB, 4096x4096 colour, random payload": forge(fp, 4096, 4096, 3,
                                                            lat(4096, 4096), junk),
            f"1 KB, {big}x{big} grey, random payload": forge(fp, big, big, 1, lat(big, big),
                                                             junk)}
        # and a real file: the largest flat grey square the codec writes in under 1 KB
        flat = 16
        while len(codec.compress(np.full((flat + 16,) * 2, 128, np.uint8))) < 1024:
            flat += 16
        data = codec.compress(np.full((flat, flat), 128, np.uint8))
        files[f"{len(data)} B, {flat}x{flat} flat grey (a real file)"] = data
        for name, data in files.items():
            path = work / f"forged_{len(rows)}.dae"
            path.write_bytes(data)
            rows.append({"case": name, "group": "forged", "op": "decompress",
                         "input": str(path)})
    for group, shape in (("photo", PHOTO_SHAPE), ("small", (SMALL_SIDE, SMALL_SIDE, 3))):
        if group not in cases:
            continue
        img_path, dae = work / f"{group}.npy", work / f"{group}.dae"
        np.save(img_path, photo(shape))
        mp = shape[0] * shape[1] / 1e6
        label = f"{shape[1]}x{shape[0]} colour ({mp:.1f} MP)"
        rows.append({"case": f"compress {label}", "group": group, "op": "compress",
                     "input": str(img_path), "output": str(dae)})
        rows.append({"case": f"decompress {label}", "group": group, "op": "decompress",
                     "input": str(dae), "reference": str(img_path)})
    return rows


def run_case(row: dict, src: Path, args, tag: str, work: Path) -> dict:
    env = dict(os.environ, PYTHONPATH=str(src))
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", "--op", row["op"],
           "--input", row["input"], "--quality", str(args.quality), "--cap-gb", str(args.cap_gb)]
    if args.tile:
        cmd += ["--tile", str(args.tile)]
    if row["op"] == "compress":  # each tree writes its own file; the current one's is decoded
        out = row["output"] if tag == "after" else str(work / f"{tag}_{Path(row['output']).name}")
        cmd += ["--output", out]
    if row.get("reference"):
        cmd += ["--reference", row["reference"]]
    t0 = time.perf_counter()
    res = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=args.timeout)
    found = [line for line in res.stdout.splitlines() if line.startswith("RESULT ")]
    if res.returncode == 0 and found:
        return json.loads(found[-1][7:])
    if res.returncode < 0:  # TensorFlow's kernels do not all survive a failed allocation
        how = f"killed by {signal.Signals(-res.returncode).name}"
    else:
        lines = res.stderr.strip().splitlines() or ["no output"]
        errors = [line for line in lines if "rror" in line or "xception" in line] or lines
        how = f"exit status {res.returncode}; {errors[-1].strip()[:110]}"
    return {"peak_mb": None, "extra_mb": None, "seconds": time.perf_counter() - t0,
            "result": f"failed at the {args.cap_gb:g} GB cap ({how})"}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quality", type=int, default=4)
    ap.add_argument("--tile", type=int, help="ImageCodec(tile=...); default: the codec's")
    ap.add_argument("--before", help="a git revision to measure too, e.g. HEAD~3")
    ap.add_argument("--cap-gb", type=float, default=6.0)
    ap.add_argument("--cases", default="forged,photo,small")
    ap.add_argument("--timeout", type=int, default=1800)
    ap.add_argument("--json")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--op", help=argparse.SUPPRESS)
    ap.add_argument("--input", help=argparse.SUPPRESS)
    ap.add_argument("--output", help=argparse.SUPPRESS)
    ap.add_argument("--reference", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        child(args)
        return 0

    cases = set(args.cases.split(","))
    t_start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="dae_memory_") as tmp:
        work = Path(tmp)
        rows = make_inputs(work, args.quality, cases)
        trees = [("after", ROOT / "src")]
        if args.before:
            old = work / "before"
            old.mkdir()
            archive = subprocess.run(["git", "-C", str(ROOT), "archive", args.before, "src"],
                                     capture_output=True, check=True).stdout
            subprocess.run(["tar", "-x", "-C", str(old)], input=archive, check=True)
            trees.append(("before", old / "src"))
        for tag, src in trees:  # "after" first: its compressed photo is what both decode
            for row in rows:
                row[tag] = run_case(row, src, args, tag, work)
                r = row[tag]
                print(f"  [{tag}] {row['case']}: {r['result'][:90]} ({r['seconds']:.1f} s)",
                      flush=True)

    def cell(r):
        if r is None:
            return "-"
        if r["peak_mb"] is None:
            return f"  > {args.cap_gb:g} GB (failed)   "
        return f"{r['peak_mb']:7.0f} {r['extra_mb']:7.0f} {r['seconds']:7.1f}"

    head = f"{'case':<44} {'peak MB':>7} {'extra':>7} {'seconds':>7}"
    tile = next((r["after"].get("tile") for r in rows if r["after"].get("tile")), args.tile)
    print(f"\nImageCodec.pretrained(quality={args.quality}), tile {tile}; peak = the "
          "process's VmHWM, extra = over the resident set before the operation")
    print(head + ("   | before: peak / extra / s" if args.before else ""))
    for row in rows:
        line = f"{row['case']:<44} {cell(row['after'])}"
        if args.before:
            line += f"   | {cell(row.get('before'))}"
        print(line)
        outcome = row["after"]["result"]
        if "psnr_db" in row["after"]:
            outcome += f", PSNR {row['after']['psnr_db']:.2f} dB"
        print(f"    {outcome[:150]}")
        if args.before:
            print(f"    before: {row['before']['result'][:142]}")
    command = "python benchmarks/dae_memory.py " + " ".join(sys.argv[1:] if argv is None
                                                             else argv)
    print(f"\n{command}  ({time.perf_counter() - t_start:.0f} s)")
    if args.json:
        git = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
                             capture_output=True, text=True).stdout.strip()
        for row in rows:
            for key in ("input", "output", "reference"):
                row.pop(key, None)
        out = {"command": command, "commit": git, "before": args.before,
               "quality": args.quality, "tile": tile, "cap_gb": args.cap_gb,
               "machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
               "rows": rows, "seconds": round(time.perf_counter() - t_start, 1)}
        Path(args.json).write_text(json.dumps(out, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
