"""Write the frozen integer Laplace tables of the overfitted ``.dae`` format (version 2).

    python scripts/make_laplace_tables.py [--check]

`deepae.apps.compress.overfit` codes each latent with one of these tables, chosen by the
integer outputs of the file's context model (scale bin, mean-fraction bin): the decoder
needs the very same integers on every machine, so they are computed once here, with
Python's `decimal` (correctly rounded `exp`, no platform maths library), and shipped in the
package as ``src/deepae/apps/compress/laplace_tables.npz``; the code checks their SHA-256.
With --check the tables are recomputed and compared with the shipped file.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from decimal import Decimal, getcontext
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "src" / "deepae" / "apps" / "compress" / "laplace_tables.npz"
sys.path.insert(0, str(ROOT / "src"))

from deepae.apps.compress.laplace import (  # noqa: E402
    LOG_SCALE_MIN,
    LOG_SCALE_STEP,
    MAX_FREQ,
    MAX_RADIUS,
    MIN_RADIUS,
    N_MEANS,
    N_SCALES,
    PRECISION,
    TAIL,
)


def laplace_cdf(x: Decimal, b: Decimal) -> Decimal:
    if x < 0:
        return (x / b).exp() / 2
    return 1 - (-x / b).exp() / 2


def table(j: int, m: int) -> np.ndarray:
    """Frequencies of symbols -R..R and the escape, summing to 2**PRECISION."""
    total = 1 << PRECISION
    b = (Decimal(LOG_SCALE_MIN) + Decimal(LOG_SCALE_STEP) * j).exp()
    f = Decimal(m - (N_MEANS - 1) // 2) / (N_MEANS - 1)  # the mean's fraction, -1/2 .. 1/2
    radius = int(min(MAX_RADIUS, max(MIN_RADIUS,
                                     int((b * TAIL).to_integral_value("ROUND_CEILING")))))
    half = Decimal(1) / 2
    cdf = [laplace_cdf(Decimal(v) - half - f, b) for v in range(-radius, radius + 2)]
    p = [cdf[i + 1] - cdf[i] for i in range(2 * radius + 1)]
    p.append(1 - sum(p))  # the escape: everything outside
    freqs = np.array([max(1, int((q * total).to_integral_value("ROUND_FLOOR"))) for q in p],
                     np.int64)
    mode = int(np.argmax(freqs[:-1]))
    freqs[mode] += total - int(freqs.sum())
    while freqs[mode] > MAX_FREQ:  # no symbol is free: spread the excess to the neighbours
        excess = int(freqs[mode]) - MAX_FREQ
        freqs[mode] = MAX_FREQ
        lo, hi = mode - 1, mode + 1
        freqs[lo] += excess // 2
        freqs[hi] += excess - excess // 2
    assert freqs.sum() == total and freqs.min() >= 1  # noqa: S101  (a script's own check)
    return freqs


def build() -> dict:
    getcontext().prec = 40
    width = 2 * MAX_RADIUS + 2
    freqs = np.zeros((N_SCALES, N_MEANS, width), np.uint16)
    lengths = np.zeros(N_SCALES, np.int32)
    for j in range(N_SCALES):
        for m in range(N_MEANS):
            t = table(j, m)
            freqs[j, m, :t.size] = t
            lengths[j] = t.size
    return {"freqs": freqs, "lengths": lengths}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true")
    args = ap.parse_args(argv)
    tables = build()
    digest = hashlib.sha256(tables["freqs"].astype(">u2").tobytes()
                            + tables["lengths"].astype(">i4").tobytes()).hexdigest()
    if args.check:
        with np.load(OUT, allow_pickle=False) as f:
            same = all(np.array_equal(f[k], v) for k, v in tables.items())
        print(f"{'identical' if same else 'DIFFERENT'}: {OUT} (sha256 {digest})")
        return 0 if same else 1
    np.savez_compressed(OUT, **tables)
    print(f"wrote {OUT} ({OUT.stat().st_size:,} bytes), sha256 {digest}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
