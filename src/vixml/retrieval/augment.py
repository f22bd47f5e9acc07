"""Retrieval-augmented scoring ("+R", docs/method.md 5): labels found directly and through similar training queries.

For each query, the top labels and the top training queries are retrieved; all their scores go through one
softmax with a low temperature; a label hit keeps ``label_weight`` of its probability and a training-query
hit gives ``1 - label_weight`` of its probability to every label of that training query, times the label's
value in the training matrix (1 in the XC files), as the reference multiplies by ``trn_X_Y`` (``eval_mm.py``).
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

__all__ = ["augmented_scores"]


def augmented_scores(
    label_scores: np.ndarray,
    label_indices: np.ndarray,
    query_scores: np.ndarray,
    query_indices: np.ndarray,
    train_Y: sp.csr_matrix,
    *,
    temperature: float = 0.05,
    label_weight: float = 0.9,
    k: int = 100,
    exclude: np.ndarray | None = None,
) -> sp.csr_matrix:
    """Combine label hits and training-query hits into one (n, L) score matrix, top-``k`` per row.

    Args:
        label_scores: (n, kl) inner products with the retrieved labels.
        label_indices: (n, kl) their label ids (-1 = padding).
        query_scores: (n, kq) inner products with the retrieved training queries.
        query_indices: (n, kq) their row ids in ``train_Y`` (-1 = padding).
        train_Y: (N, L) training label matrix; a training query votes for its labels (its non-zeros),
            each vote weighted by the entry's value.
        temperature: softmax temperature over the kl + kq scores of a query.
        label_weight: lambda; label hits weigh lambda, training-query hits 1 - lambda.
        k: labels kept per query.
        exclude: (m, 2) (row, label) pairs removed from the fused scores BEFORE the top-``k`` cut (the
            dataset's reciprocal-pair filter), as the reference fuses, filters, then ranks; None = none.

    Returns:
        (n, L) CSR with at most ``k`` scores per row (probability mass, larger is better).
    """
    n = label_scores.shape[0]
    n_labels = train_Y.shape[1]
    logits = np.concatenate([label_scores, query_scores], axis=1).astype(np.float64) / temperature
    valid = np.concatenate([label_indices, query_indices], axis=1) >= 0
    logits = np.where(valid, logits, -np.inf)
    logits -= logits.max(axis=1, keepdims=True, initial=-np.inf, where=valid)
    probs = np.where(valid, np.exp(logits), 0.0)
    probs /= np.maximum(probs.sum(axis=1, keepdims=True), 1e-300)
    kl = label_scores.shape[1]
    rows = np.repeat(np.arange(n), kl)
    keep = label_indices.ravel() >= 0
    direct = sp.csr_matrix(
        (label_weight * probs[:, :kl].ravel()[keep], (rows[keep], label_indices.ravel()[keep])), shape=(n, n_labels)
    )
    kq = query_scores.shape[1]
    rows = np.repeat(np.arange(n), kq)
    keep = query_indices.ravel() >= 0
    to_queries = sp.csr_matrix(
        ((1 - label_weight) * probs[:, kl:].ravel()[keep], (rows[keep], query_indices.ravel()[keep])),
        shape=(n, train_Y.shape[0]),
    )
    votes = sp.csr_matrix(train_Y, dtype=np.float64)
    combined = (direct + to_queries @ votes).tocsr()
    if exclude is not None and len(exclude):
        from vixml.metrics import filter_predictions

        combined = filter_predictions(combined, exclude)
        combined.eliminate_zeros()
    return _top_k_per_row(combined, k)


def _top_k_per_row(matrix: sp.csr_matrix, k: int) -> sp.csr_matrix:
    """Keep the ``k`` largest entries of each row (ties: lower label id first), vectorised over rows."""
    counts = np.diff(matrix.indptr)
    rows = np.repeat(np.arange(matrix.shape[0]), counts)
    order = np.lexsort((matrix.indices, -matrix.data, rows))  # by row, then score descending, then label id
    rank = np.arange(order.shape[0]) - np.repeat(matrix.indptr[:-1], counts)
    keep = order[rank < k]
    return sp.csr_matrix(
        (matrix.data[keep].astype(np.float32), (rows[keep], matrix.indices[keep])), shape=matrix.shape
    )
