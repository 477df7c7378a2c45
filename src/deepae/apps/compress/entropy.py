"""Frozen integer probability tables and the range coder (constriction) that uses them.

Training learns a continuous density per latent channel (`deepae.nn.compression.
FactorizedPrior`). `freeze_tables` turns it, once, into integers: for channel ``c``, the
frequencies of the values ``offsets[c], offsets[c] + 1, ...`` out of ``2 ** PRECISION``, with
a last entry for the escape symbol (any value outside the table). The integers are saved with
the codec; encoder and decoder build their models from these integers only, so they use the
very same tables on any machine (no floating-point model evaluation on the decoding path).

An escaped value is coded after all table symbols, as its 32-bit two's complement in two
uniform 16-bit halves.

`RangeCoder.min_payload_bytes` bounds from below the payload of latents of given shapes, so
that a decoder refuses a file whose payload is too short for its header before allocating
anything for the latent that the header announces.
"""

from __future__ import annotations

import math

import numpy as np

from deepae.exceptions import BitstreamError

__all__ = ["PRECISION", "SLACK_BITS", "freeze_tables", "table_bits", "cheapest_bits",
           "tail_channels", "RangeCoder"]

PRECISION = 16
_TOTAL = 1 << PRECISION
ESCAPE_BITS = 32
_HALF = 1 << 16
# what the range coder's last words may save below the bound of `position_bits` (measured:
# latents of every channel's most probable value, the cheapest there are, cost 3.7 to 5 bits
# more than the bound with the shipped codecs)
SLACK_BITS = 64


def _quantise(probs: np.ndarray) -> np.ndarray:
    """Integer frequencies >= 1 summing to exactly ``2 ** PRECISION``."""
    f = np.maximum(1, np.floor(probs * _TOTAL)).astype(np.int64)
    diff = _TOTAL - int(f.sum())
    if diff > 0:
        f[np.argmax(probs)] += diff
    while diff < 0:  # more entries were raised to 1 than there was room: take from the largest
        i = int(np.argmax(f))
        take = min(-diff, int(f[i]) - 1)
        f[i] -= take
        diff += take
    return f


def freeze_tables(prior, *, tail_mass: float = 1e-6, max_symbols: int = 4096,
                  search: int = 4096) -> dict:
    """Integer tables of a trained `FactorizedPrior` (the ``update()`` step of CompressAI).

    Each channel's table covers the integers whose cumulative lies between ``tail_mass / 2``
    and ``1 - tail_mass / 2`` (at most `max_symbols` of them); what falls outside goes to the
    escape symbol. Returns ``{"offsets": (C,) int32, "lengths": (C,) int32,
    "freqs": (C, K) int32}`` (rows zero-padded to the longest table, escape included).
    """
    from keras import ops

    grid = np.arange(-search, search + 1, dtype=np.float32)
    c = int(prior.channels)
    x = np.broadcast_to(grid, (c, 1, grid.size)).astype(np.float32)
    lower = np.asarray(ops.convert_to_numpy(prior.logits_cumulative(x - 0.5)), np.float64)[:, 0]
    upper = np.asarray(ops.convert_to_numpy(prior.logits_cumulative(x + 0.5)), np.float64)[:, 0]
    sign = -np.sign(lower + upper)
    sig = lambda t: 0.5 * (1.0 + np.tanh(0.5 * t))  # noqa: E731  (the logistic, no overflow)
    pmf = np.abs(sig(sign * upper) - sig(sign * lower))  # (C, grid)
    cdf_hi = sig(upper)  # cdf at v + 1/2
    cdf_lo = sig(lower)  # cdf at v - 1/2
    offsets, rows = [], []
    for k in range(c):
        inside = np.nonzero((cdf_hi[k] >= tail_mass / 2) & (cdf_lo[k] <= 1 - tail_mass / 2))[0]
        if inside.size == 0:  # a degenerate density: keep the most likely value
            inside = np.array([int(np.argmax(pmf[k]))])
        lo, hi = int(inside[0]), int(inside[-1])
        if hi - lo + 1 > max_symbols:  # keep the most probable window
            mid = int(np.argmax(pmf[k]))
            lo = max(0, min(mid - max_symbols // 2, grid.size - max_symbols))
            hi = lo + max_symbols - 1
        p = pmf[k, lo:hi + 1]
        escape = max(0.0, 1.0 - float(p.sum()))
        rows.append(_quantise(np.append(p, escape)))
        offsets.append(int(grid[lo]))
    width = max(r.size for r in rows)
    freqs = np.zeros((c, width), np.int32)
    for k, r in enumerate(rows):
        freqs[k, :r.size] = r
    return {"offsets": np.asarray(offsets, np.int32),
            "lengths": np.asarray([r.size for r in rows], np.int32), "freqs": freqs}


def _symbols(values: np.ndarray, offset: int, length: int):
    """Table symbols of one channel's values, and which of them escape."""
    v = values.astype(np.int64) - offset
    esc = (v < 0) | (v >= length - 1)
    return np.where(esc, length - 1, v).astype(np.int32), esc


def table_bits(latents, tables) -> float:
    """The entropy model's estimate of the bits for integer `latents` (a list of (h, w, C)
    arrays): the ideal code length under the frozen tables, escapes included. The real file
    also holds the header, the checksum and the coder's last word; see
    `deepae.ImageCodec.compress`."""
    bits = 0.0
    for y in latents:
        for c in range(y.shape[-1]):
            off, length = int(tables["offsets"][c]), int(tables["lengths"][c])
            sym, esc = _symbols(y[..., c].ravel(), off, length)
            freq = tables["freqs"][c, :length].astype(np.float64)
            bits += float(-np.log2(freq[sym] / _TOTAL).sum()) + ESCAPE_BITS * int(esc.sum())
    return bits


def cheapest_bits(tables) -> np.ndarray:
    """(C,) the fewest bits a value of each channel can cost in the payload: ``-log2`` of the
    largest probability of its table, taken as ``(largest frequency + 1) / 2**16`` to cover
    the coder's own rounding of the probabilities to 24 bits."""
    freqs = np.asarray(tables["freqs"], np.int64)  # rows zero-padded: the maxima are inside
    return -np.log2(np.minimum(freqs.max(axis=1) + 1, _TOTAL) / _TOTAL)


def tail_channels(tables) -> int:
    """The first of the channels that end the stream and whose trailing values may cost
    nothing: the last channel whose most probable value is not the first of its table, and
    all after it.

    The first symbol of a table leaves the coder's lower bound where it is, so a run of it
    at the very end of the stream ends in zero bytes, which the payload drops
    (`RangeCoder.encode`): the last channel's trailing values can be free, and when they are
    all first symbols, so can the end of the channel before, and so on while channels are
    made of their first symbol, as a channel whose most probable value is its first (a dead
    channel: one value) mostly is. -1 if every channel's most probable value is its first:
    then the whole stream may be such a run.
    """
    freqs = np.asarray(tables["freqs"], np.int64)
    live = np.flatnonzero(freqs.argmax(axis=1) != 0)
    return int(live[-1]) if live.size else -1  # -1: no live channel, any run can be free


class RangeCoder:
    """Range coding of integer latents with the frozen tables (constriction's
    ``RangeEncoder``/``RangeDecoder``, 32-bit words, 24-bit model precision)."""

    def __init__(self, tables: dict):
        import constriction

        self.offsets = np.asarray(tables["offsets"], np.int64)
        self.lengths = np.asarray(tables["lengths"], np.int64)
        freqs = np.asarray(tables["freqs"], np.int64)
        model = constriction.stream.model
        # dyadic probabilities from the integers: exact in float64, so every machine builds
        # the same fixed-point model from them
        self.models = [model.Categorical(freqs[c, :n].astype(np.float64) / _TOTAL,
                                         perfect=False)
                       for c, n in enumerate(self.lengths)]
        self.uniform = model.Uniform(_HALF)
        cheapest, tail = cheapest_bits(tables), tail_channels(tables)
        # all channels of one latent position (nothing can be bounded without a live channel)
        self.position_bits = float(cheapest.sum()) if tail >= 0 else 0.0
        self.tail_bits = float(cheapest[tail:].sum()) if tail >= 0 else 0.0
        self._constriction = constriction

    def min_payload_bytes(self, shapes) -> int:
        """The fewest payload bytes that `encode` writes for latents of the given (h, w, C)
        `shapes`: every value at its cheapest (`cheapest_bits`), less the channels that end
        the stream (`tail_channels`) in the last latent, less `SLACK_BITS`. A shorter
        payload is corrupted or forged. Pure arithmetic: nothing is allocated for the
        latents.

        The bound holds for any latent whose last live channel (`tail_channels`) is not all
        made of its table's first value, a tail value of probability about 1e-6 in a trained
        codec; only such a latent codes to fewer bytes than its values' cheapest costs.
        """
        shapes = [tuple(int(v) for v in shape) for shape in shapes]
        if not shapes:
            return 0
        positions = sum(h * w for h, w, _ in shapes)
        last = shapes[-1][0] * shapes[-1][1]
        bits = positions * self.position_bits - last * self.tail_bits - SLACK_BITS
        return max(0, math.ceil(bits / 8))

    def encode(self, latents) -> bytes:
        """Code a list of (h, w, C) integer arrays; returns the payload bytes."""
        enc = self._constriction.stream.queue.RangeEncoder()
        escaped = []
        for y in latents:
            for c in range(y.shape[-1]):
                values = y[..., c].ravel()
                sym, esc = _symbols(values, int(self.offsets[c]), int(self.lengths[c]))
                enc.encode(sym, self.models[c])
                escaped.append(values[esc])
        raw = np.concatenate(escaped).astype(np.int64) if escaped else np.zeros(0, np.int64)
        if raw.size:
            u = (np.clip(raw, -(2 ** 31), 2 ** 31 - 1) & 0xFFFFFFFF).astype(np.int64)
            halves = np.stack([u >> 16, u & 0xFFFF], axis=1).ravel().astype(np.int32)
            enc.encode(halves, self.uniform)
        data = enc.get_compressed().astype(">u4").tobytes()
        return data.rstrip(b"\0")  # the decoder pads the last word with zeros again

    def decode(self, payload: bytes, shapes) -> list[np.ndarray]:
        """Decode the latents of the given (h, w, C) `shapes` from `payload`: a list of int32
        arrays. Memory: the latents, one channel's symbols and the escapes' positions."""
        payload = bytes(payload) + b"\0" * (-len(payload) % 4)
        words = np.frombuffer(payload, ">u4").astype(np.uint32)
        try:
            dec = self._constriction.stream.queue.RangeDecoder(words)
            out, escapes = [], []
            for h, w, ch in shapes:
                if ch != len(self.models):
                    raise BitstreamError(f"Corrupted .dae file: latent with {ch} channels, the "
                                         f"codec's tables have {len(self.models)}.")
                y = np.empty((h, w, ch), np.int32)
                for c in range(ch):
                    sym = np.asarray(dec.decode(self.models[c], h * w), np.int32)
                    y[..., c] = (sym + np.int32(self.offsets[c])).reshape(h, w)
                    where = np.flatnonzero(sym == self.lengths[c] - 1)
                    if where.size:
                        escapes.append((y, c, where))
                out.append(y)
            n_esc = sum(e.size for _, _, e in escapes)
            if n_esc:
                halves = np.asarray(dec.decode(self.uniform, 2 * n_esc), np.int64)
                u = (halves[0::2] << 16) | halves[1::2]
                raw = np.where(u >= 2 ** 31, u - 2 ** 32, u)
                i = 0
                for y, c, where in escapes:
                    rows, cols = np.divmod(where, y.shape[1])
                    y[rows, cols, c] = raw[i:i + where.size]
                    i += where.size
        except BitstreamError:
            raise
        except (ValueError, RuntimeError, OverflowError, AssertionError) as e:
            raise BitstreamError(f"Corrupted .dae file: the payload cannot be decoded "
                                 f"({type(e).__name__}: {e}).") from e
        return out
