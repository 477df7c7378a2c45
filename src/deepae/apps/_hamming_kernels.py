"""Compiled Hamming-distance kernels of `HammingIndex` (numba; all queries in parallel).

Codes are keys: a row of W uint64 words per item ((n, W), W = ceil(n_bits / 64)), each word
the bits of its 64-bit slice of the code as a big-endian integer (the last word holds the
remaining bits in its low end). Every kernel is exact and orders an answer by distance, then
by insertion order (the row in `keys`), as the index's other methods do.

- `knn`: the `k` nearest of every query by one pass over the keys per query: a bucket per
  distance holds the best `k` seen so far, and an item enters only when it is nearer than the
  worst kept (ties: the earlier item stays), so the pass costs one XOR, one popcount and one
  comparison per item;
- `radius_multi_index`: multi-index hashing (Norouzi et al. 2012) with a table per substring
  of at most 16 bits, kept as offsets into a sorted order (a bucket is a slice); a candidate
  is counted once, in the first table that finds it;
- `radius_scan`: the distance to every item, for radii where the tables would return most
  of the collection anyway.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange, types
from numba.extending import intrinsic

__all__ = ["knn", "radius_multi_index", "radius_scan", "substring_tables"]


@intrinsic
def _ctpop(typingctx, x):
    """LLVM's population count: one POPCNT instruction where the CPU has it."""
    def codegen(context, builder, signature, args):
        return builder.ctpop(args[0])

    return types.uint64(types.uint64), codegen


@njit(inline="always", cache=True)
def _popcount(x):
    return np.int64(_ctpop(x))


@njit(inline="always", cache=True)
def _distance(keys, j, q):
    v = _popcount(keys[j, 0] ^ q[0])
    for w in range(1, q.size):
        v += _popcount(keys[j, w] ^ q[w])
    return v


@njit(inline="always", cache=True)
def _offer(v, j, kk, buckets, cnt, total, worst):
    """Item `j` at distance `v` offered to the best `kk` kept in `buckets` (one per distance,
    rows in insertion order); returns the new (total, worst)."""
    if total < kk:
        buckets[v, cnt[v]] = j
        cnt[v] += 1
        return total + 1, max(worst, v)
    if v < worst:  # nearer than the worst kept: it enters, the latest of the worst leaves
        buckets[v, cnt[v]] = j
        cnt[v] += 1
        cnt[worst] -= 1
        while cnt[worst] == 0:
            worst -= 1
    return total, worst


@njit(inline="always", cache=True)
def _emit(qi, buckets, cnt, n_bits, out_d, out_i):
    p = 0
    for v in range(n_bits + 1):
        for c in range(cnt[v]):
            out_d[qi, p] = v
            out_i[qi, p] = buckets[v, c]
            p += 1


@njit(cache=True)
def _knn_outputs(nq, n, k, n_bits):
    """(distances, rows) filled with the padding, and how many items a query keeps."""
    return (np.full((nq, k), n_bits + 1, np.int64), np.full((nq, k), -1, np.int64),
            min(k, n))


@njit(inline="always", cache=True)
def _buckets(n_bits, kk):
    return np.empty((n_bits + 1, max(kk, 1)), np.int64), np.zeros(n_bits + 1, np.int64)


@njit(parallel=True, cache=True)
def _knn_one_word(keys, queries, k, n_bits):
    out_d, out_i, kk = _knn_outputs(queries.size, keys.size, k, n_bits)
    for qi in prange(queries.size):
        q = queries[qi]
        buckets, cnt = _buckets(n_bits, kk)
        total, worst = 0, -1
        # one loop (a loop for the first kk items and one for the rest measured 40% slower)
        for j in range(keys.size):
            total, worst = _offer(_popcount(keys[j] ^ q), j, kk, buckets, cnt, total, worst)
        _emit(qi, buckets, cnt, n_bits, out_d, out_i)
    return out_d, out_i


@njit(parallel=True, cache=True)
def _knn_words(keys, queries, k, n_bits):
    out_d, out_i, kk = _knn_outputs(queries.shape[0], keys.shape[0], k, n_bits)
    for qi in prange(queries.shape[0]):
        q = queries[qi]
        buckets, cnt = _buckets(n_bits, kk)
        total, worst = 0, -1
        for j in range(keys.shape[0]):
            total, worst = _offer(_distance(keys, j, q), j, kk, buckets, cnt, total, worst)
        _emit(qi, buckets, cnt, n_bits, out_d, out_i)
    return out_d, out_i


def knn(keys, queries, k, n_bits):
    """(distances, rows), each (n_queries, k) int64: the `k` nearest rows of each query;
    where there are fewer than `k` rows, row -1 at distance ``n_bits + 1``. One pass over
    the keys per query (a kernel of its own for one-word codes, the common case)."""
    if keys.shape[1] == 1:
        return _knn_one_word(np.ascontiguousarray(keys[:, 0]),
                             np.ascontiguousarray(queries[:, 0]), k, n_bits)
    return _knn_words(keys, queries, k, n_bits)


@njit(cache=True)
def _sort_segment(d, rows, lo, hi):
    """Insertion sort of d[lo:hi], rows[lo:hi] by (distance, row): answers are short."""
    for a in range(lo + 1, hi):
        dv, rv = d[a], rows[a]
        b = a - 1
        while b >= lo and (d[b] > dv or (d[b] == dv and rows[b] > rv)):
            d[b + 1] = d[b]
            rows[b + 1] = rows[b]
            b -= 1
        d[b + 1] = dv
        rows[b + 1] = rv


@njit(cache=True)
def _multi_index_one(keys, q, radius, words, shifts, widths, offsets, orders, masks,
                     mask_lims, sub_radius, out_d, out_rows, start, fill):
    """The rows within `radius` of `q` (each once); written at `start` when `fill`, counted
    either way."""
    m = shifts.size
    found = 0
    for s in range(m):
        sub = (q[words[s]] >> np.uint64(shifts[s])) & np.uint64((1 << widths[s]) - 1)
        for pi in range(mask_lims[s], mask_lims[s + 1]):
            key = sub ^ masks[pi]
            for p in range(offsets[s, key], offsets[s, key + 1]):
                j = orders[s, p]
                v = _distance(keys, j, q)
                if v > radius:
                    continue
                first = True  # counted in the first table whose probes reach it
                for t in range(s):
                    part = ((keys[j, words[t]] ^ q[words[t]]) >> np.uint64(shifts[t])) \
                        & np.uint64((1 << widths[t]) - 1)
                    if _popcount(part) <= sub_radius:
                        first = False
                        break
                if first:
                    if fill:
                        out_d[start + found] = v
                        out_rows[start + found] = j
                    found += 1
    return found


@njit(parallel=True, cache=True)
def radius_multi_index(keys, queries, radius, words, shifts, widths, offsets, orders, masks,
                       mask_lims, sub_radius):
    """(lims, distances, rows) of every query's rows within `radius`, by multi-index
    hashing over `substring_tables`; ``masks[mask_lims[s]:mask_lims[s + 1]]`` are the probes
    of table `s` (every pattern of at most `sub_radius` bits in its width)."""
    nq = queries.shape[0]
    counts = np.zeros(nq, np.int64)
    empty_d = np.zeros(0, np.int64)
    for qi in prange(nq):
        counts[qi] = _multi_index_one(keys, queries[qi], radius, words, shifts, widths,
                                      offsets, orders, masks, mask_lims, sub_radius, empty_d,
                                      empty_d, 0, False)
    lims = np.zeros(nq + 1, np.int64)
    lims[1:] = np.cumsum(counts)
    out_d = np.empty(lims[-1], np.int64)
    out_rows = np.empty(lims[-1], np.int64)
    for qi in prange(nq):
        _multi_index_one(keys, queries[qi], radius, words, shifts, widths, offsets, orders,
                         masks, mask_lims, sub_radius, out_d, out_rows, lims[qi], True)
        _sort_segment(out_d, out_rows, lims[qi], lims[qi + 1])
    return lims, out_d, out_rows


@njit(parallel=True, cache=True)
def radius_scan(keys, queries, radius):
    """(lims, distances, rows) of every query's rows within `radius`, by a full scan."""
    nq, n = queries.shape[0], keys.shape[0]
    counts = np.zeros(nq, np.int64)
    for qi in prange(nq):
        q, c = queries[qi], 0
        for j in range(n):
            if _distance(keys, j, q) <= radius:
                c += 1
        counts[qi] = c
    lims = np.zeros(nq + 1, np.int64)
    lims[1:] = np.cumsum(counts)
    out_d = np.empty(lims[-1], np.int64)
    out_rows = np.empty(lims[-1], np.int64)
    for qi in prange(nq):
        q, p = queries[qi], lims[qi]
        for j in range(n):
            v = _distance(keys, j, q)
            if v <= radius:
                out_d[p] = v
                out_rows[p] = j
                p += 1
        _sort_segment(out_d, out_rows, lims[qi], lims[qi + 1])
    return lims, out_d, out_rows


def substring_tables(keys: np.ndarray, n_bits: int):
    """Multi-index hashing's tables: each 64-bit word of the code cut into substrings of at
    most 16 bits; for substring `s` its word (`words`), where it sits in it (`shifts`,
    `widths`), the rows sorted by its value (`orders`, (m, n) int64) and the offsets of each
    value in that order (`offsets`, (m, 2 ** 16 + 1)): the rows whose substring is ``v`` are
    ``orders[s, offsets[s, v]:offsets[s, v + 1]]``."""
    words, shifts, widths = [], [], []
    for w in range(keys.shape[1]):
        bits = min(64, n_bits - 64 * w)  # the word's value sits in its low `bits` bits
        m = -(-bits // 16)
        bounds = np.linspace(0, bits, m + 1).round().astype(int)
        for lo, hi in zip(bounds[:-1], bounds[1:], strict=True):
            words.append(w)
            shifts.append(bits - hi)
            widths.append(hi - lo)
    m = len(words)
    offsets = np.zeros((m, 2 ** 16 + 1), np.int64)
    orders = np.empty((m, keys.shape[0]), np.int64)
    for s in range(m):
        sub = ((keys[:, words[s]] >> np.uint64(shifts[s]))
               & np.uint64((1 << widths[s]) - 1)).astype(np.int64)
        orders[s] = np.argsort(sub, kind="stable")
        offsets[s, 1:] = np.cumsum(np.bincount(sub, minlength=2 ** 16))
    return (np.asarray(words, np.int64), np.asarray(shifts, np.int64),
            np.asarray(widths, np.int64), offsets, orders)
