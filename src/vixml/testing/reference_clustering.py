"""Oracles for balanced hierarchical 2-means: a plain numpy port of the reference ``b_kmeans_dense``.

Used by tests/training/test_clustering.py (step-by-step oracle of one split) and by
benchmarks/bench_clustering.py (the node-by-node peer).
"""

from __future__ import annotations

import numpy as np

__all__ = ["normalise", "reference_split", "reference_balanced_kmeans", "planted_groups", "mean_cosine"]


def normalise(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit L2 norm (zero rows stay zero), like sklearn's ``normalize``."""
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.where(norms > 0, norms, 1.0)


def reference_split(
    x: np.ndarray, i0: int, i1: int, n_left: int, tol: float = 1e-4, max_iter: int | None = None
) -> tuple[np.ndarray, np.ndarray, int]:
    """One balanced 2-means split as the reference does it, from the given start pair.

    Args:
        x: (n, d) points (any norm).
        i0, i1: rows of the two starting centroids.
        n_left: size of side 0 (the reference uses ``ceil(n / 2)`` via ``np.array_split``).
        tol: stop once the mean similarity improves by less than this.
        max_iter: optional step cap (the reference has none).

    Returns:
        (side-0 rows, side-1 rows, steps); ties in the sort keep row order (stable argsort).
    """
    x = normalise(x)
    n = x.shape[0]
    c = x[[i0, i1]]
    sim = x @ c.T
    old, new, steps = -1e6, -2.0, 0
    while new - old >= tol:
        order = np.argsort(sim[:, 1] - sim[:, 0], kind="stable")
        left, right = order[:n_left], order[n_left:]
        c = normalise(np.vstack([x[left].mean(axis=0), x[right].mean(axis=0)]))
        sim = x @ c.T
        old, new = new, (sim[left, 0].sum() + sim[right, 1].sum()) / n
        steps += 1
        if max_iter is not None and steps >= max_iter:
            break
    return left, right, steps


def reference_balanced_kmeans(x: np.ndarray, cluster_size: int, seed: int = 0) -> list[np.ndarray]:
    """The reference tree, node by node: split every cluster until ``2 ** ceil(log2(N / size))`` clusters.

    Returns:
        The clusters, each an array of row ids of ``x``.
    """
    rng = np.random.default_rng(seed)
    n = x.shape[0]
    k = 1
    while k * cluster_size < n:
        k *= 2
    clusters = [np.arange(n)]
    while len(clusters) < k:
        nxt = []
        for ids in clusters:
            if ids.shape[0] < 2:
                nxt.append(ids)
                continue
            i0, i1 = rng.choice(ids.shape[0], size=2, replace=False)
            left, right, _ = reference_split(x[ids], int(i0), int(i1), (ids.shape[0] + 1) // 2)
            nxt += [ids[left], ids[right]]
        clusters = nxt
    return clusters


def planted_groups(
    n_groups: int, group_size: int, dim: int, noise: float, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Points around ``n_groups`` random unit directions, ``group_size`` each, shuffled.

    Returns:
        x (n_groups * group_size, dim) float32 and group (n,) int64, the planted group of each row.
    """
    rng = np.random.default_rng(seed)
    centres = normalise(rng.standard_normal((n_groups, dim)))
    group = rng.permutation(np.repeat(np.arange(n_groups), group_size))
    x = centres[group] + noise * rng.standard_normal((group.shape[0], dim)) / np.sqrt(dim)
    return x.astype(np.float32), group.astype(np.int64)


def mean_cosine(x: np.ndarray, clusters: list[np.ndarray]) -> float:
    """Mean cosine similarity of every point to its cluster's normalised mean (higher = tighter)."""
    xn = normalise(x.astype(np.float64))
    total = 0.0
    for ids in clusters:
        c = xn[ids].mean(axis=0)
        norm = np.linalg.norm(c)
        if norm > 0:
            total += float((xn[ids] @ (c / norm)).sum())
    return total / x.shape[0]
