"""Top-k results as a sparse prediction matrix (the ``.npz`` prediction files of ``vixml predict``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from vixml.errors import DataError, Problem

if TYPE_CHECKING:
    import scipy.sparse as sp

__all__ = ["to_csr"]


def to_csr(scores, indices, n_labels: int) -> sp.csr_matrix:
    """(n, n_labels) CSR matrix with ``scores[i, j]`` at column ``indices[i, j]``; ``-1`` padding dropped.

    Args:
        scores: (n, k) float scores (numpy or torch).
        indices: (n, k) int label ids; ``-1`` marks padding (as :func:`vixml.search.topk` returns).
        n_labels: number of columns.

    Returns:
        float32 CSR matrix in canonical form (column ids sorted within rows, no duplicates).

    Raises:
        DataError: shapes differ, an id is out of range, or a row repeats an id.
    """
    import scipy.sparse as sp

    scores = _numpy(scores).astype(np.float32, copy=False)
    indices = _numpy(indices).astype(np.int64, copy=False)
    if scores.shape != indices.shape or scores.ndim != 2:
        raise DataError(
            Problem("<predictions>", f"scores {scores.shape} and indices {indices.shape} must be equal 2-D")
        )
    keep = indices >= 0
    problems = []
    bad_rows = np.flatnonzero(((indices >= n_labels) & keep).any(axis=1))
    problems += [
        Problem("<predictions>", f"row {r}: label id >= n_labels={n_labels}", field="indices") for r in bad_rows
    ]
    ordered = np.sort(np.where(keep, indices, -1), axis=1)
    repeated = np.flatnonzero(((ordered[:, 1:] == ordered[:, :-1]) & (ordered[:, 1:] >= 0)).any(axis=1))
    problems += [Problem("<predictions>", f"row {r}: a label id appears twice", field="indices") for r in repeated]
    if problems:
        raise DataError(problems)
    rows = np.broadcast_to(np.arange(indices.shape[0])[:, None], indices.shape)
    matrix = sp.csr_matrix((scores[keep], (rows[keep], indices[keep])), shape=(indices.shape[0], n_labels))
    matrix.sort_indices()
    return matrix


def _numpy(x) -> np.ndarray:
    if hasattr(x, "detach"):
        return x.detach().cpu().numpy()
    return np.asarray(x)
