"""Fuzz the .dae decoder: mutated files must decode or raise BitstreamError, nothing else.

    python scripts/fuzz_bitstream.py [--n 10000] [--seed 0] [--json fuzz.json]
                                     [--model codec.deepae]

Valid files (grayscale and colour, sizes 1x1 to 45x45) are written by a small codec trained
here in seconds (or by --model), then mutated: 1 to 4 random edits each (bit flips, byte
overwrites, insertions, deletions, truncation, a splice of another file); in a third of the
cases the CRC is recomputed afterwards, and in another third the payload-length field and the
CRC, so that mutations reach the header checks and the range decoder instead of stopping at
the checksum. Each file goes to
`ImageCodec.decompress`. The exit status is 1 if any other exception was raised; a crash of
the process (a signal) shows in the exit status too. Prints a table and writes JSON.
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


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=10_000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json")
    ap.add_argument("--model", help="a trained codec (default: a small one trained here)")
    args = ap.parse_args(argv)

    from deepae import BitstreamError, ImageCodec

    rng = np.random.default_rng(args.seed)
    if args.model:
        codec = ImageCodec.load(args.model)
    else:
        imgs = rng.random((8, 32, 32, 1)).astype(np.float32)
        codec = ImageCodec(filters=8, latent_channels=4, levels=2, patch_size=16,
                           patches_per_epoch=64, epochs=1, batch_size=8,
                           random_state=args.seed).fit(imgs)
    originals = [rng.integers(0, 256, s, dtype=np.uint8)
                 for s in [(45, 45), (1, 1), (20, 9, 3), (16, 33)]]
    valid = [codec.compress(im) for im in originals]
    counts = {"decoded": 0, "bitstream_errors": 0, "other_exceptions": 0, "crc_repaired": 0}
    messages, others = {}, []
    t0 = time.perf_counter()
    for k in range(args.n):
        src = valid[k % len(valid)]
        ops = [(OPS[rng.integers(len(OPS))], int(rng.integers(0, 4096)),
                int(rng.integers(0, 256))) for _ in range(rng.integers(1, 5))]
        data = mutate(src, ops, valid[(k + 1) % len(valid)])
        repair = rng.integers(3)  # none, the CRC, or the length field and the CRC
        if repair and len(data) >= 27:
            data = fix_crc(data, length=repair == 2)
            counts["crc_repaired"] += 1
        try:
            out = codec.decompress(data)
            if out.dtype != np.uint8:
                raise TypeError(f"decoded dtype {out.dtype}")
            counts["decoded"] += 1
        except BitstreamError as e:
            counts["bitstream_errors"] += 1
            key = re.sub(r"\d+", "N", str(e))[:58]
            messages[key] = messages.get(key, 0) + 1
        except Exception as e:  # noqa: BLE001 - what the fuzz run is looking for
            counts["other_exceptions"] += 1
            others.append(f"{type(e).__name__}: {e} (ops {ops})")
    seconds = time.perf_counter() - t0
    summary = {"files": args.n, **counts, "seconds": round(seconds, 2),
               "error_kinds": dict(sorted(messages.items(), key=lambda kv: -kv[1])),
               "other_examples": others[:20], "command": "python scripts/fuzz_bitstream.py "
               + " ".join(sys.argv[1:] if argv is None else argv)}
    print(f"{'outcome':<60} {'files':>7}")
    for key in ("decoded", "bitstream_errors", "other_exceptions", "crc_repaired"):
        print(f"{key:<60} {counts[key]:>7}")
    for key, n in list(summary["error_kinds"].items())[:12]:
        print(f"  {key[:58]:<58} {n:>7}")
    print(f"{args.n} mutated files in {seconds:.1f} s")
    for line in others[:5]:
        print("OTHER:", line)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(summary, f, indent=1)
    return 1 if counts["other_exceptions"] else 0


if __name__ == "__main__":
    sys.exit(main())
