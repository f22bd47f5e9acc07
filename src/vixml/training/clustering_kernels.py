"""Numba kernels behind :func:`vixml.training.clustering.balanced_kmeans`.

The points never move: a permutation ``perm`` (N,) keeps each tree node a contiguous range
``perm[start:end]`` and the kernels read rows ``X[perm[k]]`` in place, scaled by ``inv_norm[perm[k]]``,
so the (N, d) matrix is neither normalised into a copy nor gathered. Two ways to split nodes:

* :func:`split_nodes` (deep levels, many small nodes): one thread runs a whole 2-means split of a node,
  ``prange`` over the nodes. A node of a deep level fits in cache, so its iterations cost no memory traffic.
* the ``parallel_*`` kernels (top levels, a few huge nodes): one node at a time, each step parallel over
  chunks of its points; :mod:`vixml.training.clustering` drives the iterations.

Both follow the reference ``b_kmeans_dense`` step for step (see :func:`split_nodes`) and give the same
result for the same start pair (up to the rounding of float64 sums, which the top path adds chunk by chunk),
so the choice between them is only about speed. Three identities make a step cheaper than the reference's
without changing it: a point's score cos(c1) - cos(c0) is one dot product ``x . (c1 - c0) / |x|``; the
objective (sum of each point's cosine to its side's normalised mean) is ``|S0| + |S1|`` for the side sums
S, so it needs no pass over the points; and the side sums change only by the points that moved.

This module imports numba at import time; :mod:`vixml.training.clustering` imports it lazily.
"""

from __future__ import annotations

import numpy as np

from vixml._numba import numba as nb

__all__ = [
    "row_inverse_norms",
    "kth_smallest",
    "balanced_assign",
    "assign_at_threshold",
    "stable_partition",
    "start_direction",
    "centroid_direction",
    "split_nodes",
    "parallel_diffs",
    "parallel_sums",
]

_CHUNK = 4096  # points per parallel work item in the top-level kernels


@nb.njit(parallel=True, cache=True)
def row_inverse_norms(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Inverse L2 norms of the rows (0 for a zero row), and a flag per row that is not finite.

    Args:
        x: (N, d) float32.

    Returns:
        inv_norm (N,) float32 and bad (N,) bool (a NaN or infinite entry in the row).
    """
    n, d = x.shape
    inv = np.empty(n, dtype=np.float32)
    bad = np.zeros(n, dtype=np.bool_)
    for i in nb.prange(n):
        acc = 0.0
        for j in range(d):
            v = np.float64(x[i, j])
            acc += v * v
        if not np.isfinite(acc):
            bad[i] = True
            inv[i] = 0.0
        elif acc > 0.0:
            inv[i] = 1.0 / np.sqrt(acc)
        else:
            inv[i] = 0.0
    return inv, bad


@nb.njit(cache=True)
def kth_smallest(a: np.ndarray, k: int) -> float:
    """The k-th smallest (0-based) value of ``a``, by Wirth's quickselect; ``a`` is scrambled (pass a copy).

    Own selection instead of ``np.partition``, whose numba version takes seconds to compile.
    """
    lo = 0
    hi = a.shape[0] - 1
    while lo < hi:
        p, q, r = a[lo], a[(lo + hi) // 2], a[hi]  # median of three: no quadratic case on sorted input
        pivot = max(min(p, q), min(max(p, q), r))
        i = lo
        j = hi
        while i <= j:
            while a[i] < pivot:
                i += 1
            while pivot < a[j]:
                j -= 1
            if i <= j:
                a[i], a[j] = a[j], a[i]
                i += 1
                j -= 1
        if j < k:
            lo = i
        if k < i:
            hi = j
    return a[k]


@nb.njit(cache=True)
def balanced_assign(diff: np.ndarray, n_left: int, assign: np.ndarray) -> None:
    """The ``n_left`` points of smallest ``diff`` go to side 0, the rest to side 1.

    This is the reference's "sort by sim(c1) - sim(c0), first part to cluster 0" without the sort: a
    selection finds the threshold (:func:`assign_at_threshold` does the rest).

    Args:
        diff: (n,) float32, similarity to centroid 1 minus similarity to centroid 0.
        n_left: size of side 0, in [1, n - 1].
        assign: (n,) int8 output, 0 or 1 per point.
    """
    assign_at_threshold(diff, kth_smallest(diff.copy(), n_left - 1), n_left, assign)


@nb.njit(cache=True)
def assign_at_threshold(diff: np.ndarray, t: float, n_left: int, assign: np.ndarray) -> None:
    """Side 0 = points with ``diff < t``, then points with ``diff == t`` in position order up to ``n_left``.

    ``t`` must be the ``n_left``-th smallest value of ``diff``, so side 0 gets exactly ``n_left`` points and
    ties are broken deterministically (as a stable sort would).
    """
    n = diff.shape[0]
    less = 0
    for k in range(n):
        if diff[k] < t:
            less += 1
    need = n_left - less
    for k in range(n):
        v = diff[k]
        if v < t:
            assign[k] = 0
        elif v == t and need > 0:
            assign[k] = 0
            need -= 1
        else:
            assign[k] = 1


@nb.njit(cache=True)
def stable_partition(idx: np.ndarray, assign: np.ndarray) -> None:
    """Reorder ``idx`` in place: side-0 entries first, then side-1, each keeping its order."""
    tmp = idx.copy()
    lo = 0
    for k in range(tmp.shape[0]):
        if assign[k] == 0:
            idx[lo] = tmp[k]
            lo += 1
    for k in range(tmp.shape[0]):
        if assign[k] != 0:
            idx[lo] = tmp[k]
            lo += 1


@nb.njit(cache=True)
def centroid_direction(sums: np.ndarray, w: np.ndarray) -> float:
    """``w = c1 - c0`` (d,) float32 with ``c = sums / |sums|``; returns ``|sums[0]| + |sums[1]|``.

    The returned value is the reference's objective times n: the similarity of every point of a side to
    that side's normalised mean, summed, is ``sum_i x_i . S / |S| = |S|``, so no pass over the points is
    needed for it. ``w`` scores a point by ``x . w = cos(c1) - cos(c0)`` in one dot product instead of two.
    A zero sum gives a zero centroid.
    """
    d = sums.shape[1]
    norms = np.zeros(2)
    for s in range(2):
        acc = 0.0
        for j in range(d):
            acc += sums[s, j] * sums[s, j]
        norms[s] = np.sqrt(acc)
    s0 = 1.0 / norms[0] if norms[0] > 0.0 else 0.0
    s1 = 1.0 / norms[1] if norms[1] > 0.0 else 0.0
    for j in range(d):
        w[j] = np.float32(sums[1, j] * s1 - sums[0, j] * s0)
    return norms[0] + norms[1]


@nb.njit(cache=True, fastmath=True)
def _diffs(x, inv, idx, w, diff) -> None:
    """diff[k] = cos(c1) - cos(c0) of point idx[k] = x . (c1 - c0) / |x|."""
    d = x.shape[1]
    for k in range(idx.shape[0]):
        r = idx[k]
        acc = np.float32(0.0)
        for j in range(d):
            acc += x[r, j] * w[j]
        diff[k] = acc * inv[r]


@nb.njit(cache=True)
def _update_sums(x, inv, idx, assign, prev, sums, first: bool) -> None:
    """Side sums (2, d) float64 of the normalised points: all of them on the first step, then the movers."""
    d = x.shape[1]
    for k in range(idx.shape[0]):
        s = assign[k]
        if not first and s == prev[k]:
            continue
        r = idx[k]
        scale = np.float64(inv[r])
        for j in range(d):
            v = x[r, j] * scale
            sums[s, j] += v
            if not first:
                sums[1 - s, j] -= v


@nb.njit(cache=True)
def start_direction(x, inv, r0: int, r1: int) -> np.ndarray:
    """``w = x[r1] / |x[r1]| - x[r0] / |x[r0]|`` (d,) float32: the direction of the two start centroids."""
    w = np.empty(x.shape[1], dtype=np.float32)
    for j in range(x.shape[1]):
        w[j] = x[r1, j] * inv[r1] - x[r0, j] * inv[r0]
    return w


@nb.njit(cache=True)
def _split_one(x, inv, idx, n_left, i0, i1, max_iter, tol) -> int:
    """Balanced 2-means of the points ``idx`` (reorders ``idx``: side 0 first). Returns the step count."""
    n = idx.shape[0]
    sums = np.zeros((2, x.shape[1]), dtype=np.float64)
    diff = np.empty(n, dtype=np.float32)
    assign = np.zeros(n, dtype=np.int8)
    prev = np.zeros(n, dtype=np.int8)
    w = start_direction(x, inv, idx[i0], idx[i1])
    _diffs(x, inv, idx, w, diff)
    old = -1e6
    new = -2.0
    steps = 0
    while True:
        balanced_assign(diff, n_left, assign)
        _update_sums(x, inv, idx, assign, prev, sums, steps == 0)
        old, new = new, centroid_direction(sums, w) / n
        prev[:] = assign
        steps += 1
        if new - old < tol or steps >= max_iter:
            break
        _diffs(x, inv, idx, w, diff)
    stable_partition(idx, assign)
    return steps


@nb.njit(parallel=True, cache=True)
def split_nodes(x, inv, perm, starts, lefts, ends, i0s, i1s, max_iter: int, tol: float) -> np.ndarray:
    """Split every node of a level into two balanced halves, one node per thread.

    Per node (the reference ``b_kmeans_dense``): centroids = the node's points ``i0`` and ``i1``; repeat:
    score each point by cosine(c1) - cosine(c0), put the ``left`` lowest-scored points on side 0 and the
    rest on side 1, recompute each centroid as the normalised mean of its side, and stop once the mean
    similarity of points to their own centroid improves by less than ``tol`` (or after ``max_iter`` steps).

    Args:
        x: (N, d) float32 points, any norm.
        inv: (N,) float32 inverse row norms (from :func:`row_inverse_norms`).
        perm: (N,) int64 point ids; node m is ``perm[starts[m]:ends[m]]``; reordered in place so that its
            first ``lefts[m]`` entries are side 0.
        starts, lefts, ends: (M,) int64 node ranges and side-0 sizes (1 <= lefts < ends - starts).
        i0s, i1s: (M,) int64 distinct positions within each node of the two starting centroids.
        max_iter: step cap per node.
        tol: stop when the objective improves by less than this.

    Returns:
        (M,) int64 number of steps each node took.
    """
    m_nodes = starts.shape[0]
    steps = np.zeros(m_nodes, dtype=np.int64)
    for m in nb.prange(m_nodes):
        idx = perm[starts[m] : ends[m]]
        steps[m] = _split_one(x, inv, idx, lefts[m], i0s[m], i1s[m], max_iter, tol)
    return steps


@nb.njit(parallel=True, cache=True)
def parallel_diffs(x, inv, idx, w, diff) -> None:
    """Parallel :func:`_diffs` over chunks of one big node's points (same outputs)."""
    n = idx.shape[0]
    n_chunks = (n + _CHUNK - 1) // _CHUNK
    for t in nb.prange(n_chunks):
        lo = t * _CHUNK
        hi = min(lo + _CHUNK, n)
        _diffs(x, inv, idx[lo:hi], w, diff[lo:hi])


@nb.njit(parallel=True, cache=True)
def parallel_sums(x, inv, idx, assign, prev, sums, first: bool) -> None:
    """Parallel :func:`_update_sums` over chunks of one big node's points (updates ``sums`` in place)."""
    n = idx.shape[0]
    d = x.shape[1]
    n_chunks = (n + _CHUNK - 1) // _CHUNK
    part = np.zeros((n_chunks, 2, d), dtype=np.float64)
    for t in nb.prange(n_chunks):
        lo = t * _CHUNK
        hi = min(lo + _CHUNK, n)
        _update_sums(x, inv, idx[lo:hi], assign[lo:hi], prev[lo:hi], part[t], first)
    for t in range(n_chunks):
        for s in range(2):
            for j in range(d):
                sums[s, j] += part[t, s, j]
