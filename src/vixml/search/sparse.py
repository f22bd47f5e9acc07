"""Top-k results as a sparse prediction matrix (the ``.npz`` prediction files of ``vixml predict``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from vixml.errors import DataError, Problem

if TYPE_CHECKING:
    import scipy.sparse as sp

__all__ = ["to_csr", "to_csr_memory"]


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
    n, _ = indices.shape
    problems = []
    bad_rows = np.flatnonzero((indices >= n_labels).any(axis=1))
    problems += [
        Problem("<predictions>", f"row {r}: label id >= n_labels={n_labels}", field="indices") for r in bad_rows
    ]
    # Built row-major, one (n, k) array at a time (about 30 bytes per prediction at the peak, not the 80 of
    # a COO detour): ids sorted within rows, padding (-1) moved to each row's end, then the real entries.
    pad = np.iinfo(np.int64).max
    order = np.argsort(np.where(indices >= 0, indices, pad), axis=1, kind="stable")
    ids = np.take_along_axis(indices, order, axis=1)
    ids[ids < 0] = pad
    repeated = np.flatnonzero(((ids[:, 1:] == ids[:, :-1]) & (ids[:, 1:] != pad)).any(axis=1))
    problems += [Problem("<predictions>", f"row {r}: a label id appears twice", field="indices") for r in repeated]
    if problems:
        raise DataError(problems)
    values = np.take_along_axis(scores, order, axis=1)
    del order
    keep = ids != pad
    indptr = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(keep.sum(axis=1), out=indptr[1:])
    index_dtype = np.int32 if max(n_labels, int(indptr[-1])) < 2**31 else np.int64
    data, cols = values[keep], ids[keep].astype(index_dtype)
    del values, ids, keep
    matrix = sp.csr_matrix((data, cols, indptr.astype(index_dtype, copy=False)), shape=(n, n_labels), copy=False)
    matrix.has_sorted_indices = True
    return matrix


def to_csr_memory(n_queries: int, k: int) -> int:
    """Bytes :func:`to_csr` (and writing its result) holds beyond its inputs at its peak: the sort order, the
    sorted ids and scores, the mask of real entries and the CSR's arrays (measured: about 30 per prediction)."""
    return 40 * n_queries * k


def _numpy(x) -> np.ndarray:
    if hasattr(x, "detach"):
        return x.detach().cpu().numpy()
    return np.asarray(x)
