"""Fuzz the .dae decoder: mutated and forged files must decode or raise BitstreamError,
nothing else, in bounded memory.

    python scripts/fuzz_bitstream.py [--n 10000] [--seed 0] [--json fuzz.json]
                                     [--model codec.deepae | --quality Q]
                                     [--max-extra-mb 300] [--format 1 | 2]

Valid files (grayscale and colour, sizes 1x1 to 45x45) are written by a small codec trained
here in seconds (or by --model, or the shipped codec of --quality), then mutated: 1 to 4
random edits each (bit flips, byte overwrites, insertions, deletions, truncation, a splice
of another file); in a third of the cases the CRC is recomputed afterwards, and in another
third the payload-length field and the CRC, so that mutations reach the header checks and
the range decoder instead of stopping at the checksum. One case in four is a forged header
instead: a random image size (area log-uniform up to 65535**2, grayscale or colour) with
the latent shape that matches it, a payload of up to 2,000 bytes (empty, random, or cut
from a valid file) and a valid CRC, half the time sized to just pass the payload check, so
that large announced images reach the decoder.

With --format 2 the valid files are version-2 files (`compress(effort="best")`, 20
optimisation steps: the file holds its own networks); the CRC repair recomputes the CRC
only, and a forged file has a random image size, mostly the default architecture (one in
ten random architecture bytes), and per plane a networks' section (from a valid file or
random, or well-formed with extreme values up to 2**31) and a latents' section (empty,
random or cut from a valid file), half the time with
the image shrunk until the latents' section passes the payload check.

Each file goes to `ImageCodec.decompress`. The exit status is 1 if any other exception was
raised or if the process's peak resident set grew by more than --max-extra-mb during the
cases (Linux: VmHWM, reset after the warm-up); a crash of the process (a signal) shows in
the exit status too. Prints a table and writes JSON. `run` does the same from Python.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import struct
import sys
import time
import zlib

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

OPS = ("flip", "set", "insert", "delete", "cut", "splice")


def mutate(data: bytes, ops, other: bytes = b"") -> bytes:
    """Apply ``(op, position, value)`` edits to `data`; `other` is spliced by "splice"."""
    b = bytearray(data)
    for op, pos, val in ops:
        i = pos % (len(b) + 1)
        if op == "flip" and b:
            b[i % len(b)] ^= 1 << (val % 8)
        elif op == "set" and b:
            b[i % len(b)] = val
        elif op == "insert":
            b[i:i] = bytes([val])
        elif op == "delete" and b:
            del b[i % len(b)]
        elif op == "cut":
            b = b[:i]
        elif op == "splice" and other:
            j = val % len(other)
            b = b[:i] + bytearray(other[j:])
    return bytes(b)


def fix_crc(data: bytes, length: bool = False) -> bytes:
    """Recompute the trailing CRC-32 over everything before it (and with `length`, first set
    the payload-length field to what the file holds)."""
    body = bytearray(data[:-4])
    if length and len(data) >= 27:
        struct.pack_into(">I", body, 19, len(data) - 27)
    return bytes(body) + struct.pack(">I", zlib.crc32(body))


def _status_kb(key: str):
    """A field of /proc/self/status in KB (None where there is no /proc)."""
    try:
        with open("/proc/self/status") as f:
            return int(next(line for line in f if line.startswith(key)).split()[1])
    except (OSError, StopIteration):
        return None


def _reset_peak() -> bool:
    """Set VmHWM back to the resident set now (Linux 4.0+); False where that is not possible."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def forge(codec, rng, valid) -> bytes:
    """A file whose header is forged with a valid CRC: a random image size (area log-uniform
    up to 65535**2, aspect ratio up to e**4; grayscale or colour), the latent shape that
    matches it under
    `codec`, and a payload of 0 to 2,000 bytes: empty, random or cut from one of the `valid`
    files; half the time the image is shrunk until the payload passes the payload check."""
    from deepae.apps.compress.bitstream import HEADER_BYTES, Header, pack

    kind = rng.integers(4)
    if kind == 0:
        payload = b""
    elif kind == 1:
        src = valid[rng.integers(len(valid))][HEADER_BYTES:-4]
        payload = src[:rng.integers(len(src) + 1)]
    else:
        payload = rng.integers(0, 256, rng.integers(0, 2001), dtype=np.uint8).tobytes()
    area, aspect = np.exp(rng.uniform(0, np.log(65535.0 ** 2))), np.exp(rng.uniform(-4, 4))
    h, w = (int(v) for v in np.clip(np.round([np.sqrt(area * aspect), np.sqrt(area / aspect)]),
                                    1, 65535))
    c = int(rng.choice([1, 3]))
    s, m = codec.stride, int(codec.latent_channels)
    planes = 3 if (c == 3 and codec.n_channels_ == 1) else 1
    lat = lambda: (-(-h // s), -(-w // s), m)  # noqa: E731
    least = getattr(codec._coder, "min_payload_bytes", None)  # None: an older deepae
    if least is not None and rng.integers(2):  # as large as this payload can announce
        while least([lat()] * planes) > len(payload) and max(h, w) > 1:
            h, w = max(1, h * 3 // 4), max(1, w * 3 // 4)
    head = Header(bytes.fromhex(codec.fingerprint_[:8]), h, w, c, lat())
    return pack(head, payload)


def extreme_weights(rng, arch) -> bytes:
    """A networks' section that parses, with random steps and integers up to 2**31 - 1."""
    from deepae.apps.compress import overfit

    out = overfit._BitWriter()
    for module, (max_e, max_eb) in (("arm", (8, 16)), ("synthesis", (16, 24))):
        sizes = dict(arch.shapes()[module])
        for v in (rng.integers(0, max_e + 1), rng.integers(0, max_eb + 1), 15, 15):
            out.uint(int(v), 8)
        for group in overfit._groups(arch, module):
            n = sum(int(np.prod(sizes[name])) for name in group)
            scale = 2.0 ** rng.uniform(0, 31)
            out.eg(np.clip(rng.normal(0, scale, n), -(2 ** 31 - 1), 2 ** 31 - 1)
                   .astype(np.int64), 15)
    return out.to_bytes()


def forge_v2(rng, valid) -> bytes:
    """A forged version-2 file with a valid CRC (see the module's docstring)."""
    from deepae.apps.compress import overfit

    src = overfit.read_header(valid[rng.integers(len(valid))], 10 ** 9)
    area, aspect = np.exp(rng.uniform(0, np.log(65535.0 ** 2))), np.exp(rng.uniform(-4, 4))
    h, w = (int(v) for v in np.clip(np.round([np.sqrt(area * aspect), np.sqrt(area / aspect)]),
                                    1, 65535))
    c = int(rng.choice([1, 3]))
    arch = overfit.DEFAULT_ARCHITECTURE
    fields = [arch.levels, arch.context, arch.arm_layers, arch.width]
    if rng.integers(10) == 0:
        fields = [int(v) for v in rng.integers(0, 256, 4)]
    sections = []
    for _ in range(3 if c == 3 else 1):
        kind = rng.integers(3)
        if kind == 0:
            weights = src.planes[0][0]
        elif kind == 1:
            weights = rng.integers(0, 256, rng.integers(0, 300), dtype=np.uint8).tobytes()
        else:  # well-formed, with extreme but codable values: the range checks
            weights = extreme_weights(rng, arch)
        kind = rng.integers(3)
        latents = (b"" if kind == 0 else src.planes[0][1][:rng.integers(len(src.planes[0][1]) + 1)]
                   if kind == 1 else rng.integers(0, 256, rng.integers(0, 2001),
                                                  dtype=np.uint8).tobytes())
        sections.append((weights, latents))
    if rng.integers(4) == 0:  # the source's own size and sections: decodes
        h, w = src.height, src.width
        sections = [src.planes[0]] * (3 if c == 3 else 1)
    elif rng.integers(2) and fields[:2] == [arch.levels, arch.context]:
        from deepae.apps.compress.laplace import PAYLOAD_BITS_PER_SYMBOL

        shortest = min(len(lat) for _, lat in sections)
        while (arch.n_latents(h, w) * PAYLOAD_BITS_PER_SYMBOL / 8 - 8 > shortest
               and max(h, w) > 1):
            h, w = max(1, h * 3 // 4), max(1, w * 3 // 4)
    body = bytearray(struct.pack(">3sB4sHHB4B", b"DAE", 2, overfit.FINGERPRINT, h, w, c,
                                 *fields))
    for weights, latents in sections:
        body += struct.pack(">H", len(weights)) + weights + struct.pack(">I", len(latents))
        body += latents
    return bytes(body) + struct.pack(">I", zlib.crc32(body))


def run(n=10_000, seed=0, model=None, max_extra_mb=300.0, log=print, quality=None,
        version=1) -> dict:
    """Fuzz `n` files; returns the summary (see the module's docstring)."""
    from deepae import BitstreamError, ImageCodec

    rng = np.random.default_rng(seed)
    if quality is not None:
        codec = ImageCodec.pretrained(quality=quality)
    elif model:
        codec = ImageCodec.load(model)
    else:
        imgs = rng.random((8, 32, 32, 1)).astype(np.float32)
        codec = ImageCodec(filters=8, latent_channels=4, levels=2, patch_size=16,
                           patches_per_epoch=64, epochs=1, batch_size=8,
                           random_state=seed).fit(imgs)
    originals = [rng.integers(0, 256, s, dtype=np.uint8)
                 for s in [(45, 45), (1, 1), (20, 9, 3), (16, 33)]]
    if version == 2:
        valid = [codec.compress(im, effort="best", iterations=20) for im in originals]
    else:
        valid = [codec.compress(im) for im in originals]
    for data in valid:  # warm: the transforms traced before the memory baseline
        codec.decompress(data)
    counts = {"decoded": 0, "bitstream_errors": 0, "other_exceptions": 0, "crc_repaired": 0,
              "forged_headers": 0, "forged_decoded": 0}
    messages, others = {}, []
    measured = _reset_peak()
    base = _status_kb("VmRSS:")
    slowest, t0 = (0.0, ""), time.perf_counter()
    for k in range(n):
        src = valid[k % len(valid)]
        forged = rng.integers(4) == 0
        if forged:
            data = forge_v2(rng, valid) if version == 2 else forge(codec, rng, valid)
            ops = "forged header"
            counts["forged_headers"] += 1
        else:
            ops = [(OPS[rng.integers(len(OPS))], int(rng.integers(0, 4096)),
                    int(rng.integers(0, 256))) for _ in range(rng.integers(1, 5))]
            data = mutate(src, ops, valid[(k + 1) % len(valid)])
            repair = rng.integers(3)  # none, the CRC, or the length field and the CRC
            if repair and len(data) >= 27:
                data = fix_crc(data, length=repair == 2 and version == 1)
                counts["crc_repaired"] += 1
        t = time.perf_counter()
        try:
            out = codec.decompress(data)
            if out.dtype != np.uint8:
                raise TypeError(f"decoded dtype {out.dtype}")
            counts["decoded"] += 1
            counts["forged_decoded"] += int(forged)
        except BitstreamError as e:
            counts["bitstream_errors"] += 1
            key = re.sub(r"\d[\d,]*", "N", str(e))[:58]
            messages[key] = messages.get(key, 0) + 1
        except Exception as e:  # noqa: BLE001 - what the fuzz run is looking for
            counts["other_exceptions"] += 1
            others.append(f"{type(e).__name__}: {e} (ops {ops})")
        if time.perf_counter() - t > slowest[0]:
            slowest = (time.perf_counter() - t, f"{len(data)} bytes, {ops}")
    seconds = time.perf_counter() - t0
    peak = _status_kb("VmHWM:")
    extra = (peak - base) / 1024 if measured and peak and base else None
    summary = {"files": n, "format": version, **counts, "seconds": round(seconds, 2),
               "peak_extra_mb": None if extra is None else round(extra, 1),
               "max_extra_mb": max_extra_mb,
               "memory_ok": extra is None or extra <= max_extra_mb,
               "slowest_file_seconds": round(slowest[0], 3), "slowest_file": slowest[1],
               "error_kinds": dict(sorted(messages.items(), key=lambda kv: -kv[1])),
               "other_examples": others[:20]}
    log(f"{'outcome':<60} {'files':>7}")
    for key in counts:
        log(f"{key:<60} {counts[key]:>7}")
    for key, k in list(summary["error_kinds"].items())[:12]:
        log(f"  {key[:58]:<58} {k:>7}")
    log(f"{n} files in {seconds:.1f} s; slowest {slowest[0]:.3f} s ({slowest[1][:60]})")
    log("peak memory: " + ("not measured (no /proc)" if extra is None else
                           f"{extra:+.1f} MB over the resident set after the warm-up "
                           f"(limit {max_extra_mb:g} MB)"))
    for line in others[:5]:
        log(f"OTHER: {line}")
    return summary


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=10_000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json")
    ap.add_argument("--model", help="a trained codec (default: a small one trained here)")
    ap.add_argument("--quality", type=int, help="the shipped codec of this quality (1-8)")
    ap.add_argument("--format", type=int, choices=(1, 2), default=1,
                    help="the .dae version of the valid files (2: effort='best')")
    ap.add_argument("--max-extra-mb", type=float, default=300.0,
                    help="fail if the peak resident set grows by more (default 300)")
    args = ap.parse_args(argv)
    summary = run(args.n, args.seed, args.model, args.max_extra_mb, quality=args.quality,
                  version=args.format)
    summary["command"] = "python scripts/fuzz_bitstream.py " + " ".join(
        sys.argv[1:] if argv is None else argv)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(summary, f, indent=1)
    return 1 if summary["other_exceptions"] or not summary["memory_ok"] else 0


if __name__ == "__main__":
    sys.exit(main())
