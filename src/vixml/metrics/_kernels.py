"""Numba kernels: one parallel pass over the queries finds the ranks of the relevant predictions and sums metrics.

This module imports numba at import time; :mod:`vixml.metrics.core` imports it lazily, so that
``import vixml.metrics`` stays cheap. Kernels are compiled on first use (``cache=True`` keeps the machine
code on disk for later processes) for each (score dtype, label-id dtype) pair: float32/float64 x
int32/int64.

Layout of the sums (one row per block of queries, summed by the caller in a fixed order, so results do
not depend on the number of threads), for ``k`` cutoffs and ``nr`` recall cutoffs:

====================  ==========================================================================
columns               per query, summed over the block
====================  ==========================================================================
``[0, k)``            ``sum_{t<=j} y_t / j``                                       (P@j)
``[k, 2k)``           ``DCG@j / IDCG@j``                                            (nDCG@j)
``[2k, 3k)``          ``sum_{t<=j} w_t y_t / j``                          (PSP@j numerator)
``[3k, 4k)``          the same over the best ranking of the true labels (PSP@j denominator)
``[4k, 5k)``          ``PSDCG@j / IDCG@j``                             (PSnDCG@j numerator)
``[5k, 6k)``          the same over the best ranking            (PSnDCG@j denominator)
``[6k, 6k + nr)``     ``sum_{t<=c} y_t / max(sum_l y_l, 1 if 0)``                   (R@c)
``6k + nr``           ``1 / rank of the first relevant prediction`` (0 if none)     (MRR)
====================  ==========================================================================
"""

from __future__ import annotations

import numpy as np

from vixml._numba import numba as nb

__all__ = ["accumulate", "filter_mask"]


@nb.njit(cache=True, nogil=True)
def _contains(sorted_ids, start, end, label):  # pragma: no cover - compiled
    """Whether ``label`` is in the sorted slice ``sorted_ids[start:end]`` (binary search)."""
    lo, hi = start, end
    while lo < hi:
        mid = (lo + hi) >> 1
        if sorted_ids[mid] < label:
            lo = mid + 1
        else:
            hi = mid
    return lo < end and sorted_ids[lo] == label


@nb.njit(parallel=True, cache=True)
def filter_mask(p_indptr, p_indices, f_indptr, f_indices):  # pragma: no cover - compiled
    """keep[j] is False where prediction j's (row, label) is a filter pair. Shapes: (n+1,), (nnz,) -> (nnz,)."""
    n = p_indptr.size - 1
    keep = np.ones(p_indices.size, dtype=np.bool_)
    for i in nb.prange(n):
        fs, fe = f_indptr[i], f_indptr[i + 1]
        if fe == fs:
            continue
        for j in range(p_indptr[i], p_indptr[i + 1]):
            if _contains(f_indices, fs, fe, p_indices[j]):
                keep[j] = False
    return keep


_MIX = -7046029254386353131  # 0x9E3779B97F4A7C15 as int64: Fibonacci hashing of label ids


@nb.njit(cache=True, nogil=True)
def _slot(label, mask):  # pragma: no cover - compiled
    return ((label * _MIX) >> 29) & mask


@nb.njit(cache=True, nogil=True)
def _search(labs, m, label):  # pragma: no cover - compiled
    """Position of label in the ascending labs[:m], -1 if absent."""
    lo, hi = 0, m
    while lo < hi:
        mid = (lo + hi) >> 1
        if labs[mid] < label:
            lo = mid + 1
        else:
            hi = mid
    return lo if lo < m and labs[lo] == label else -1


@nb.njit(cache=True, nogil=True)
def _gather(i, p_indptr, p_indices, p_data, f_indptr, f_indices, canonical, labs, scs):  # pragma: no cover
    """Copy row i's predictions (not padding, not a filter pair) to labs/scs, in input order; return the count.

    Filter pairs are few per row: each is looked up among the gathered labels (binary search when they
    are sorted) and removed by shifting the tail, rather than testing every prediction against them.
    """
    m = 0
    for j in range(p_indptr[i], p_indptr[i + 1]):
        if p_indices[j] >= 0:
            labs[m] = p_indices[j]
            scs[m] = p_data[j]
            m += 1
    for f in range(f_indptr[i], f_indptr[i + 1]):
        q = _search(labs, m, f_indices[f]) if canonical else _scan(labs, m, f_indices[f])
        if q >= 0:
            m -= 1
            for t in range(q, m):
                labs[t] = labs[t + 1]
                scs[t] = scs[t + 1]
    return m


@nb.njit(cache=True, nogil=True)
def _scan(labs, m, label):  # pragma: no cover - compiled
    """Position of label in labs[:m] (any order), -1 if absent."""
    for q in range(m):
        if labs[q] == label:
            return q
    return -1


@nb.njit(cache=True, nogil=True)
def _index(labs, m, table):  # pragma: no cover - compiled
    """Hash the m labels into table (open addressing); return (mask, whether a label repeats)."""
    size = 16
    while size < 2 * m:
        size *= 2
    mask = size - 1
    table[:size] = -1
    repeated = False
    for q in range(m):
        h = _slot(labs[q], mask)
        while table[h] != -1 and labs[table[h]] != labs[q]:
            h = (h + 1) & mask
        if table[h] != -1:
            repeated = True
        else:
            table[h] = q
    return mask, repeated


@nb.njit(cache=True, nogil=True)
def _find(labs, table, mask, label):  # pragma: no cover - compiled
    """Position of label among the hashed predictions, -1 if it was not predicted."""
    h = _slot(label, mask)
    while table[h] != -1:
        if labs[table[h]] == label:
            return table[h]
        h = (h + 1) & mask
    return -1


@nb.njit(cache=True, nogil=True)
def _top_weighted(t_indices, t_data, ts, te, weights, best, k):  # pragma: no cover - compiled
    """best[:k] = the k largest w_l * y_l of the true row, descending, 0-padded (pyxclib's ps_indices)."""
    best[:] = 0.0
    count = 0
    for t in range(ts, te):
        v = weights[t_indices[t]] * t_data[t]
        if count == k and v <= best[k - 1]:
            continue
        j = count if count < k else k - 1
        while j > 0 and best[j - 1] < v:
            best[j] = best[j - 1]
            j -= 1
        best[j] = v
        count = min(count + 1, k)


@nb.njit(parallel=True, cache=True)
def accumulate(
    t_indptr, t_indices, t_data, p_indptr, p_indices, p_data, f_indptr, f_indices,
    weights, use_weights, k, cutoffs, canonical, max_pred, max_true, block,
):  # fmt: skip  # pragma: no cover - compiled
    """Per-block metric sums (see the module docstring) and a per-row flag of labels predicted twice.

    No prediction list is sorted: only the ranks of the *relevant* predictions matter, and the rank of
    prediction p is 1 + the number of predictions before it in the order (score descending, then label
    ascending). That costs O(m * r) per query (m predictions, r of them relevant) instead of a sort.

    Args:
        t_indptr, t_indices, t_data: canonical CSR truth, (n+1,), (nnz_t,) sorted per row, (nnz_t,) float64.
        p_indptr, p_indices, p_data: predictions, (n+1,), (nnz_p,) with -1 = padding, (nnz_p,) scores.
        f_indptr, f_indices: CSR filter pairs, (n+1,), (m,) sorted per row.
        weights: (L,) float64 inverse propensities (unused, may be empty, when not use_weights).
        k: cutoffs of P/nDCG/PSP/PSnDCG are 1..k.
        cutoffs: (nr,) int64 recall cutoffs.
        canonical: prediction label ids are sorted and unique within each row (a canonical CSR): the
            true labels are then found by binary search; otherwise by hashing, which also flags repeats.
        max_pred, max_true: longest prediction row and truth row (scratch sizes).
        block: queries per block.

    Returns:
        sums: float64 (n_blocks, 6k + nr + 1); repeats: bool (n,).
    """
    n = t_indptr.size - 1
    nr = cutoffs.size
    disc = 1.0 / np.log2(np.arange(k) + 2.0)
    cs = np.cumsum(disc)
    n_blocks = (n + block - 1) // block
    sums = np.zeros((n_blocks, 6 * k + nr + 1))
    repeats = np.zeros(n, dtype=np.bool_)
    table_size = 16
    while table_size < 2 * max_pred:
        table_size *= 2
    for b in nb.prange(n_blocks):
        acc = sums[b]
        labs = np.empty(max_pred, dtype=p_indices.dtype)
        scs = np.empty(max_pred, dtype=p_data.dtype)
        table = np.empty(table_size if not canonical else 1, dtype=np.int64)
        rel_pos = np.empty(max_true, dtype=np.int64)
        rel_y = np.empty(max_true)
        rel_rank = np.empty(max_true, dtype=np.int64)
        gains = np.zeros(k)
        psg = np.zeros(k)
        best = np.zeros(k)
        for i in range(b * block, min(n, (b + 1) * block)):
            ts, te = t_indptr[i], t_indptr[i + 1]
            m = _gather(i, p_indptr, p_indices, p_data, f_indptr, f_indices, canonical, labs, scs)
            mask = 0
            if not canonical:  # hash the labels: finds repeats, then the true labels in O(1) each
                mask, repeats[i] = _index(labs, m, table)
            # relevant predictions: true labels with a value > 0 that were predicted
            nrel = 0
            rowsum = 0.0
            for t in range(ts, te):
                rowsum += t_data[t]
                if t_data[t] > 0.0 and m > 0:
                    if canonical:  # labels sorted: binary search
                        q = _search(labs, m, t_indices[t])
                    else:
                        q = _find(labs, table, mask, t_indices[t])
                    if q >= 0:
                        rel_pos[nrel] = q
                        rel_y[nrel] = t_data[t]
                        nrel += 1
            for a in range(nrel):  # rank = 1 + #predictions before it; branch-free, so it vectorises
                s_a = scs[rel_pos[a]]
                l_a = labs[rel_pos[a]]
                before = 0
                for q in range(m):
                    before += (scs[q] > s_a) + (scs[q] == s_a) * (labs[q] < l_a)
                rel_rank[a] = 1 + before
            first = 0
            for a in range(nrel):
                r = rel_rank[a]
                if first == 0 or r < first:
                    first = r
                if r <= k:
                    gains[r - 1] += rel_y[a]
                    if use_weights:
                        psg[r - 1] += weights[labs[rel_pos[a]]] * rel_y[a]
            if first > 0:
                acc[6 * k + nr] += 1.0 / first
            deno = rowsum if rowsum != 0.0 else 1.0
            for c in range(nr):
                found = 0.0
                for a in range(nrel):
                    if rel_rank[a] <= cutoffs[c]:
                        found += rel_y[a]
                acc[6 * k + c] += found / deno
            npos = int(rowsum)  # pyxclib: np.asarray(true.sum(axis=1), dtype=np.int32)
            if use_weights and te > ts:
                _top_weighted(t_indices, t_data, ts, te, weights, best, k)
            elif use_weights:
                best[:] = 0.0
            if nrel == 0 and not (use_weights and te > ts):
                continue  # every term below is 0
            cum = 0.0
            dcg = 0.0
            ps_cum = 0.0
            ps_dcg = 0.0
            best_cum = 0.0
            best_dcg = 0.0
            for j in range(k):
                cum += gains[j]
                dcg += gains[j] * disc[j]
                acc[j] += cum / (j + 1)
                # pyxclib's normaliser min(_cumsum[npos - 1], cumsum_j); npos = 0 indexes _cumsum[-1] >= cumsum_j
                norm = cs[min(npos, j + 1) - 1] if npos >= 1 else cs[j]
                acc[k + j] += dcg / norm
                if use_weights:
                    ps_cum += psg[j]
                    best_cum += best[j]
                    ps_dcg += psg[j] * disc[j]
                    best_dcg += best[j] * disc[j]
                    acc[2 * k + j] += ps_cum / (j + 1)
                    acc[3 * k + j] += best_cum / (j + 1)
                    acc[4 * k + j] += ps_dcg / norm
                    acc[5 * k + j] += best_dcg / norm
                gains[j] = 0.0
                psg[j] = 0.0
    return sums, repeats
