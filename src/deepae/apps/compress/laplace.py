"""The frozen integer Laplace tables of the overfitted ``.dae`` format (version 2).

A latent ``y`` is coded as ``v = y - round(mu)`` with the table of its predicted scale and
the fraction of its predicted mean, both bins computed in integers from the context model's
fixed-point outputs (`deepae.apps.compress._overfit_kernels`):

- scale bin ``j`` in ``0 .. N_SCALES - 1``: the Laplace scale ``b_j = exp(LOG_SCALE_MIN +
  LOG_SCALE_STEP * j)``, exp(-4.6) = 0.01 to exp(4) = 54.6;
- mean bin ``m`` in ``0 .. N_MEANS - 1``: the mean's fraction ``(m - 8) / 16``, -1/2 to 1/2.

Table ``(j, m)`` holds the frequencies, out of ``2 ** PRECISION``, of ``v = -R_j .. R_j``
(``R_j = min(MAX_RADIUS, max(MIN_RADIUS, ceil(TAIL * b_j)))``) and a last *escape* entry for any
value outside; every entry is at least 1 and none above `MAX_FREQ`, so every symbol costs at
least ``-log2(MAX_FREQ / 2**16)`` bits (0.0014): a file's payload bounds the number of
latents it can hold. The integers are computed once by ``scripts/make_laplace_tables.py``
(Python's `decimal`, correctly rounded) and shipped with the package; `tables` checks their
SHA-256.
"""

from __future__ import annotations

import functools
import hashlib
import math

import numpy as np

__all__ = ["PRECISION", "N_SCALES", "N_MEANS", "LOG_SCALE_MIN", "LOG_SCALE_STEP", "MAX_RADIUS",
           "MIN_RADIUS", "TAIL", "MAX_FREQ", "TABLES_SHA256", "MIN_SYMBOL_BITS", "PAYLOAD_BITS_PER_SYMBOL", "tables"]

PRECISION = 16
N_SCALES = 87
N_MEANS = 17
LOG_SCALE_MIN = "-4.6"  # strings: exact decimals for the table script
LOG_SCALE_STEP = "0.1"
MAX_RADIUS = 511
# no table is narrower: a latent the model thought nearly certain costs at most 16 bits, as
# in training, instead of an escape's 32 more (with a radius of 2, escapes were 4.5% of the
# latents' bits of a training photograph)
MIN_RADIUS = 16
TAIL = 11  # R_j = ceil(11 b_j): the Laplace tail beyond holds exp(-11) = 1.7e-5 of the mass
MAX_FREQ = (1 << PRECISION) - 64
MIN_SYMBOL_BITS = -math.log2(MAX_FREQ / (1 << PRECISION))
# what the decoder may count per symbol when it bounds a payload from below: the table's
# least cost less what one step of our rANS coder can lose to integer rounding (at most
# 64 / 2**23 of the state, taken in bits), so that no legitimate file is ever refused
PAYLOAD_BITS_PER_SYMBOL = MIN_SYMBOL_BITS - 64 / ((1 << 23) * math.log(2))
TABLES_SHA256 = "726050d68267c51e3e78d0eba194a6700ae84987571cc2c0a9cd13dc01410fd2"


@functools.cache
def tables() -> dict:
    """``{"freqs": (N_SCALES, N_MEANS, 2 * MAX_RADIUS + 2) int64, "cums": the same with one
    more column (cumulative frequencies, starting at 0), "lengths": (N_SCALES,) int64}``,
    from the shipped file, checked against `TABLES_SHA256`."""
    from importlib.resources import files

    from deepae.exceptions import ArtifactError

    path = files("deepae.apps.compress") / "laplace_tables.npz"
    with path.open("rb") as fh, np.load(fh, allow_pickle=False) as f:
        freqs, lengths = np.asarray(f["freqs"]), np.asarray(f["lengths"])
    digest = hashlib.sha256(freqs.astype(">u2").tobytes()
                            + lengths.astype(">i4").tobytes()).hexdigest()
    if digest != TABLES_SHA256:
        raise ArtifactError(f"deepae's Laplace tables ({path}) are corrupted: SHA-256 {digest}, "
                            f"expected {TABLES_SHA256}. Reinstall deepae.")
    freqs = freqs.astype(np.int64)
    cums = np.zeros(freqs.shape[:2] + (freqs.shape[2] + 1,), np.int64)
    np.cumsum(freqs, axis=-1, out=cums[..., 1:])
    return {"freqs": freqs, "cums": cums, "lengths": lengths.astype(np.int64)}
