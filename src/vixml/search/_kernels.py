"""Numba kernels of the CPU top-k: a per-row reservoir that score blocks stream through.

This module imports numba at import time; :mod:`vixml.search.reservoir` imports it lazily. Kernels
compile on first use (``cache=True`` keeps the machine code on disk for later processes). They are
serial and release the GIL: :class:`vixml.search.reservoir.RowPool` runs them on row ranges in
parallel threads. (numba's own parallel layer starts a second OpenMP runtime beside torch's, and the
two spin against each other between the matmul and the selection: slower on a 2-core machine.)

Each query row owns a reservoir of ``cap >= 2k`` int64 entries, a fill count and a threshold. An
entry packs a score and a label id as ``key << 32 | (2**32 - 1 - id)``, where ``key`` is the score's
float32 bit pattern made order-preserving (two's complement, ``-0.0`` equal to ``+0.0``): a larger
entry is a better one under the total order "higher score, then lower label id", so compacting the
reservoir is a plain integer quickselect with no tie logic.

A score enters only if it is strictly above the row's threshold, the ``k``-th best score kept at the
last compaction: an equal score belongs to a later (higher) label id than the one it ties with, so
it can never make the top-k (blocks arrive in increasing label order). The scan first takes the
maximum of each group of ``GROUP`` consecutive scores (a vectorised pass) and looks inside a group
only when that maximum beats the threshold, so most scores cost a load and a compare, and appends
are O(1) with an O(cap) compaction every ``cap - k`` of them. Before a row's first compaction the
threshold would be -inf and every score of the first block would enter; the ``k``-th largest group
maximum of the block serves instead (the block has ``k`` scores at least that large, so no smaller
score can win), which keeps the first block about as cheap as the others.
"""

from __future__ import annotations

import numpy as np

from vixml._numba import numba as nb

__all__ = ["GROUP", "EMPTY", "push", "push_bf16", "finish", "rescore", "encode", "decode"]

#: Scores skipped at once when their maximum does not beat the threshold.
GROUP = 32
#: Threshold of a row that has not compacted yet (below every entry).
EMPTY = np.iinfo(np.int64).min
_LOW = np.int64(0xFFFFFFFF)
_DOT_MATH = {"nsz", "arcp", "contract", "reassoc"}  # vectorised dot products; infinities kept


@nb.njit(inline="always")
def _key(bits):  # pragma: no cover - compiled
    """Order-preserving int64 key of float32 bits (an int32); -0.0 and +0.0 share key 0."""
    x = np.int64(bits)
    sign = x >> 31  # -1 for negative floats, else 0
    return (x ^ (sign & 0x7FFFFFFF)) - sign


@nb.njit(inline="always")
def _unkey(key):  # pragma: no cover - compiled
    """float32 bits (as an int32 value) of a key (inverse of :func:`_key`, +0.0 for key 0)."""
    sign = key >> 63
    return np.int32(((key + sign) ^ (sign & 0x7FFFFFFF)) & 0xFFFFFFFF)


@nb.njit(nogil=True, cache=True)
def _select(a, n, k):  # pragma: no cover - compiled
    """Reorder ``a[:n]`` so that its ``k`` largest values come first (quickselect, median of three)."""
    lo, hi = 0, n - 1
    while lo < hi:
        mid = (lo + hi) >> 1
        if a[mid] > a[lo]:
            a[mid], a[lo] = a[lo], a[mid]
        if a[hi] > a[lo]:
            a[hi], a[lo] = a[lo], a[hi]
        if a[mid] > a[hi]:
            a[mid], a[hi] = a[hi], a[mid]
        pivot = a[hi]
        store = lo
        for j in range(lo, hi):
            if a[j] > pivot:
                a[j], a[store] = a[store], a[j]
                store += 1
        a[hi], a[store] = a[store], a[hi]
        if store == k - 1 or store == k:
            return
        if store < k:
            lo = store + 1
        else:
            hi = store - 1


@nb.njit(nogil=True, cache=True)
def _kth_largest(a, n, k):  # pragma: no cover - compiled
    """The ``k``-th largest of ``a[:n]`` (reorders ``a``)."""
    _select(a, n, k)
    worst = a[0]
    for j in range(1, k):
        worst = min(worst, a[j])
    return worst


@nb.njit(nogil=True, cache=True)
def _push_row(s, sb, offset, out, c, thr, row, k):  # pragma: no cover - compiled
    """Stream one row of scores (float32 ``s``, the same bits as int32 ``sb``); return the new count."""
    n = s.shape[0]
    cap = out.shape[0]
    n_groups = n // GROUP
    word = np.empty(1, dtype=np.int32)
    maxima = np.empty(max(n_groups, 1), dtype=np.float32)
    for g in range(n_groups):
        m = s[g * GROUP]
        for j in range(g * GROUP + 1, g * GROUP + GROUP):
            m = max(m, s[j])
        maxima[g] = m
    if thr[row] == EMPTY and c >= k:  # earlier blocks filled k slots: their k-th best is a threshold
        thr[row] = _kth_largest(out, c, k)
        c = k
    if thr[row] == EMPTY:
        t = -np.inf
        if n_groups >= k:  # k-th largest group maximum, made exclusive
            t = np.nextafter(_kth_largest(maxima.copy(), n_groups, k), -np.inf)
    else:
        word[0] = _unkey(thr[row] >> 32)
        t = word.view(np.float32)[0]
    for g in range(n_groups + 1):
        lo = g * GROUP
        hi = min(lo + GROUP, n)
        if g < n_groups and maxima[g] <= t:
            continue
        for j in range(lo, hi):
            if s[j] > t:
                out[c] = (_key(sb[j]) << 32) | (_LOW - (offset + j))
                c += 1
                if c == cap:
                    worst = _kth_largest(out, c, k)
                    thr[row] = worst
                    c = k
                    word[0] = _unkey(worst >> 32)
                    t = max(t, word.view(np.float32)[0])
    return c


@nb.njit(nogil=True, cache=True)
def push(scores, bits, offset, res, cnt, thr, k):  # pragma: no cover - compiled
    """Stream a float32 score block through the reservoirs.

    Args:
        scores: (r, n) float32, C-contiguous; column j is label ``offset + j``.
        bits: the same memory viewed as int32 (``scores.view(np.int32)``).
        offset: label id of column 0.
        res: (r, cap) int64 reservoir entries (``cap >= 2k``).
        cnt: (r,) int64 fill counts.
        thr: (r,) int64 threshold entries (``EMPTY`` before the first compaction).
        k: entries kept at each compaction.
    """
    for row in range(scores.shape[0]):
        cnt[row] = _push_row(scores[row], bits[row], offset, res[row], cnt[row], thr, row, k)


@nb.njit(nogil=True, cache=True)
def push_bf16(bits16, offset, res, cnt, thr, k):  # pragma: no cover - compiled
    """:func:`push` for a bfloat16 block given as int16 bits (each row widened to float32 in a scratch row)."""
    r, n = bits16.shape
    for row in range(r):
        wide = np.empty(n, dtype=np.int32)
        src = bits16[row]
        for j in range(n):
            wide[j] = np.int32(src[j]) << 16
        cnt[row] = _push_row(wide.view(np.float32), wide, offset, res[row], cnt[row], thr, row, k)


@nb.njit(nogil=True, cache=True)
def finish(res, cnt, k, out):  # pragma: no cover - compiled
    """Best ``k`` entries per row, best first, into ``out`` ((r, k) int64; ``EMPTY`` where fewer)."""
    r = res.shape[0]
    for row in range(r):
        c = cnt[row]
        a = res[row]
        m = min(c, k)
        if c > k:
            _select(a, c, k)
        best = np.sort(a[:m])
        for j in range(m):
            out[row, j] = best[m - 1 - j]
        for j in range(m, k):
            out[row, j] = EMPTY


@nb.njit(fastmath=_DOT_MATH, nogil=True, cache=True)
def rescore(queries, labels, ids, out):  # pragma: no cover - compiled
    """Float32 dot products of each query with its listed labels, reading label rows in place.

    Args:
        queries: (r, d) float32. labels: (L, d) float32 (a memmap is read row by row).
        ids: (r, s) int64 label ids (``-1`` is padding: its score is left untouched).
        out: (r, s) float32 scores.
    """
    r, s = ids.shape
    d = queries.shape[1]
    for row in range(r):
        qv = queries[row]
        for j in range(s):
            label = ids[row, j]
            if label < 0:
                continue
            lv = labels[label]
            acc = np.float32(0.0)
            for t in range(d):
                acc += qv[t] * lv[t]
            out[row, j] = acc


def decode(entries: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(float32 scores, int64 label ids) of reservoir entries; ``EMPTY`` gives (-inf, -1).

    Args:
        entries: (r, k) int64 from :func:`finish`.
    """
    empty = entries == EMPTY
    ids = _LOW - (entries & _LOW)
    key = entries >> 32
    sign = key >> 63
    bits = (((key + sign) ^ (sign & 0x7FFFFFFF)) & 0xFFFFFFFF).astype(np.uint32)
    values = bits.view(np.float32).copy()
    values[empty] = -np.inf
    ids[empty] = -1
    return values, ids


def encode(values: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """Reservoir entries (int64, same shape) of float32 scores and label ids (inverse of :func:`decode`)."""
    bits = np.ascontiguousarray(values, dtype=np.float32).view(np.int32).astype(np.int64)
    sign = bits >> 31
    key = (bits ^ (sign & 0x7FFFFFFF)) - sign
    return (key << 32) | (_LOW - ids.astype(np.int64))
