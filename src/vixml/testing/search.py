"""Oracles and data builders for the search tests and benchmark."""

from __future__ import annotations

import numpy as np

__all__ = ["oracle_topk", "integer_data", "clustered", "normalised", "assert_close_topk"]


def oracle_topk(queries, labels, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-k with ties to the lower id, by a full stable sort of every float64 score.

    Exact (not just close) when the inputs are small integers: every product and sum is an integer
    that float32 represents, so any summation order gives the same scores.

    Returns:
        (scores (n, k) float32, ids (n, k) int64), padded with (-inf, -1) when ``k > L``.
    """
    scores = np.asarray(queries, np.float64) @ np.asarray(labels, np.float64).T
    order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    values = np.take_along_axis(scores, order, axis=1).astype(np.float32)
    pad = k - order.shape[1]
    if pad > 0:
        values = np.pad(values, ((0, 0), (0, pad)), constant_values=-np.inf)
        order = np.pad(order, ((0, 0), (0, pad)), constant_values=-1)
    return values, order.astype(np.int64)


def integer_data(n: int, n_labels: int, dim: int, seed: int = 0, high: int = 3):
    """Small-integer float32 queries and labels: exact scores and many ties."""
    rng = np.random.default_rng(seed)
    q = rng.integers(-high, high + 1, size=(n, dim)).astype(np.float32)
    x = rng.integers(-high, high + 1, size=(n_labels, dim)).astype(np.float32)
    return q, x


def normalised(n: int, dim: int, seed: int = 0) -> np.ndarray:
    """Random unit vectors, float32 (n, dim)."""
    x = np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def clustered(n_labels: int, n_queries: int, dim: int, n_clusters: int = 20, noise: float = 0.3, seed: int = 0):
    """Unit vectors around ``n_clusters`` centres (the structure ANN indexes exploit): (labels, queries)."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((n_clusters, dim)).astype(np.float32)

    def draw(n):
        x = centres[rng.integers(0, n_clusters, n)] + noise * rng.standard_normal((n, dim)).astype(np.float32)
        return x / np.linalg.norm(x, axis=1, keepdims=True)

    return draw(n_labels), draw(n_queries)


def assert_close_topk(queries, labels, k: int, scores, ids, atol: float = 1e-4) -> None:
    """Check a top-k of float data against float64 scores, tolerating reorderings within ``atol``.

    Returned ids are distinct per row, their true scores match the returned ones, scores descend,
    and the returned scores equal the true k best scores (so the set is right up to near-ties).
    """
    scores, ids = np.asarray(scores), np.asarray(ids)
    true = np.asarray(queries, np.float64) @ np.asarray(labels, np.float64).T
    best = -np.sort(-true, axis=1)[:, :k]
    valid = ids >= 0
    assert valid.sum(axis=1).tolist() == [min(k, true.shape[1])] * len(ids)
    for row in range(len(ids)):
        got = ids[row][valid[row]]
        assert len(set(got.tolist())) == len(got)
        np.testing.assert_allclose(scores[row][valid[row]], true[row, got], atol=atol)
        np.testing.assert_allclose(scores[row][valid[row]], best[row], atol=atol)
        assert (np.diff(scores[row][valid[row]]) <= atol).all()
    assert np.isneginf(scores[~valid]).all()
