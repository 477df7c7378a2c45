"""Compiled Hamming-distance kernels of `HammingIndex` (numba; all queries in parallel).

Codes are keys: one uint64 per item, the code's bits as a big-endian integer (at most 64
bits). Every kernel is exact and orders an answer by distance, then by insertion order
(the row in `keys`), as the index's other methods do.

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
from numba import njit, prange

__all__ = ["knn", "radius_multi_index", "radius_scan", "substring_tables"]


@njit(inline="always", cache=True)
def _popcount(x):
    x = x - ((x >> np.uint64(1)) & np.uint64(0x5555555555555555))
    x = (x & np.uint64(0x3333333333333333)) + ((x >> np.uint64(2)) & np.uint64(0x3333333333333333))
    x = (x + (x >> np.uint64(4))) & np.uint64(0x0F0F0F0F0F0F0F0F)
    return np.int64((x * np.uint64(0x0101010101010101)) >> np.uint64(56))


@njit(parallel=True, cache=True)
def knn(keys, queries, k, n_bits):
    """(distances, rows), each (n_queries, k) int64: the `k` nearest rows of each query;
    where there are fewer than `k` rows, row -1 at distance ``n_bits + 1``."""
    nq, n = queries.size, keys.size
    kk = min(k, n)
    out_d = np.full((nq, k), n_bits + 1, np.int64)
    out_i = np.full((nq, k), -1, np.int64)
    for qi in prange(nq):
        q = queries[qi]
        buckets = np.empty((n_bits + 1, max(kk, 1)), np.int64)
        cnt = np.zeros(n_bits + 1, np.int64)
        total = 0
        worst = -1
        for j in range(n):
            v = _popcount(keys[j] ^ q)
            if total < kk:
                buckets[v, cnt[v]] = j
                cnt[v] += 1
                total += 1
                if v > worst:
                    worst = v
            elif v < worst:  # nearer than the worst kept: it enters, the latest worst leaves
                buckets[v, cnt[v]] = j
                cnt[v] += 1
                cnt[worst] -= 1
                while cnt[worst] == 0:
                    worst -= 1
        p = 0
        for v in range(n_bits + 1):
            for c in range(cnt[v]):
                out_d[qi, p] = v
                out_i[qi, p] = buckets[v, c]
                p += 1
    return out_d, out_i


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
def _multi_index_one(keys, q, radius, shifts, widths, offsets, orders, masks, mask_lims,
                     sub_radius, out_d, out_rows, start, fill):
    """The rows within `radius` of `q` (each once); written at `start` when `fill`, counted
    either way."""
    m = shifts.size
    found = 0
    for s in range(m):
        sub = (q >> np.uint64(shifts[s])) & np.uint64((1 << widths[s]) - 1)
        for pi in range(mask_lims[s], mask_lims[s + 1]):
            key = sub ^ masks[pi]
            for p in range(offsets[s, key], offsets[s, key + 1]):
                j = orders[s, p]
                x = keys[j] ^ q
                v = _popcount(x)
                if v > radius:
                    continue
                first = True  # counted in the first table whose probes reach it
                for t in range(s):
                    part = (x >> np.uint64(shifts[t])) & np.uint64((1 << widths[t]) - 1)
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
def radius_multi_index(keys, queries, radius, shifts, widths, offsets, orders, masks,
                       mask_lims, sub_radius):
    """(lims, distances, rows) of every query's rows within `radius`, by multi-index
    hashing over `substring_tables`; ``masks[mask_lims[s]:mask_lims[s + 1]]`` are the probes
    of table `s` (every pattern of at most `sub_radius` bits in its width)."""
    nq = queries.size
    counts = np.zeros(nq, np.int64)
    empty_d = np.zeros(0, np.int64)
    for qi in prange(nq):
        counts[qi] = _multi_index_one(keys, queries[qi], radius, shifts, widths, offsets,
                                      orders, masks, mask_lims, sub_radius, empty_d, empty_d,
                                      0, False)
    lims = np.zeros(nq + 1, np.int64)
    lims[1:] = np.cumsum(counts)
    out_d = np.empty(lims[-1], np.int64)
    out_rows = np.empty(lims[-1], np.int64)
    for qi in prange(nq):
        _multi_index_one(keys, queries[qi], radius, shifts, widths, offsets, orders, masks,
                         mask_lims, sub_radius, out_d, out_rows, lims[qi], True)
        _sort_segment(out_d, out_rows, lims[qi], lims[qi + 1])
    return lims, out_d, out_rows


@njit(parallel=True, cache=True)
def radius_scan(keys, queries, radius):
    """(lims, distances, rows) of every query's rows within `radius`, by a full scan."""
    nq, n = queries.size, keys.size
    counts = np.zeros(nq, np.int64)
    for qi in prange(nq):
        q, c = queries[qi], 0
        for j in range(n):
            if _popcount(keys[j] ^ q) <= radius:
                c += 1
        counts[qi] = c
    lims = np.zeros(nq + 1, np.int64)
    lims[1:] = np.cumsum(counts)
    out_d = np.empty(lims[-1], np.int64)
    out_rows = np.empty(lims[-1], np.int64)
    for qi in prange(nq):
        q, p = queries[qi], lims[qi]
        for j in range(n):
            v = _popcount(keys[j] ^ q)
            if v <= radius:
                out_d[p] = v
                out_rows[p] = j
                p += 1
        _sort_segment(out_d, out_rows, lims[qi], lims[qi + 1])
    return lims, out_d, out_rows


def substring_tables(keys: np.ndarray, n_bits: int):
    """Multi-index hashing's tables: the code cut into m = ceil(n_bits / 16) substrings of
    at most 16 bits; for each, the rows sorted by substring (`orders`, (m, n) int64) and the
    offsets of each substring value in that order (`offsets`, (m, 2 ** 16 + 1)): the rows
    whose substring is ``v`` are ``orders[s, offsets[s, v]:offsets[s, v + 1]]``."""
    m = -(-n_bits // 16)
    bounds = np.linspace(0, n_bits, m + 1).round().astype(int)
    shifts = np.asarray([n_bits - hi for hi in bounds[1:]], np.int64)
    widths = np.asarray(np.diff(bounds), np.int64)
    offsets = np.zeros((m, 2 ** 16 + 1), np.int64)
    orders = np.empty((m, keys.size), np.int64)
    for s in range(m):
        sub = ((keys >> np.uint64(shifts[s])) & np.uint64((1 << int(widths[s])) - 1)).astype(
            np.int64)
        orders[s] = np.argsort(sub, kind="stable")
        offsets[s, 1:] = np.cumsum(np.bincount(sub, minlength=2 ** 16))
    return shifts, widths, offsets, orders
