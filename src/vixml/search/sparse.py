"""Top-k results as a sparse prediction matrix (the ``.npz`` prediction files of ``vixml predict``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from vixml.errors import DataError, Problem

if TYPE_CHECKING:
    import scipy.sparse as sp

__all__ = ["to_csr"]

_BLOCK_ENTRIES = 1 << 20  # predictions sorted at a time (bounds the temporary arrays: about 30 MiB)


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
    n, k = indices.shape
    step = max(1, _BLOCK_ENTRIES // max(1, k))
    # Built a block of rows at a time into arrays of the final size: beyond its inputs it holds the CSR
    # (8 bytes per prediction) and one block's sort order, sorted ids and scores (padding, -1, moved last).
    counts = np.empty(n, dtype=np.int64)
    for a in range(0, n, step):
        counts[a : a + step] = (indices[a : a + step] >= 0).sum(axis=1)
    indptr = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(counts, out=indptr[1:])
    del counts
    index_dtype = np.int32 if max(n_labels, int(indptr[-1])) < 2**31 else np.int64
    data = np.empty(int(indptr[-1]), dtype=np.float32)
    cols = np.empty(int(indptr[-1]), dtype=index_dtype)
    pad = np.iinfo(np.int64).max
    problems = []
    for a in range(0, n, step):
        block = indices[a : a + step]
        b = a + block.shape[0]
        bad_rows = np.flatnonzero((block >= n_labels).any(axis=1)) + a
        problems += [
            Problem("<predictions>", f"row {r}: label id >= n_labels={n_labels}", field="indices") for r in bad_rows
        ]
        order = np.argsort(np.where(block >= 0, block, pad), axis=1, kind="stable")
        ids = np.take_along_axis(block, order, axis=1)
        ids[ids < 0] = pad
        repeated = np.flatnonzero(((ids[:, 1:] == ids[:, :-1]) & (ids[:, 1:] != pad)).any(axis=1)) + a
        problems += [Problem("<predictions>", f"row {r}: a label id appears twice", field="indices") for r in repeated]
        if problems:
            continue  # every problem is listed; nothing more is built
        keep = ids != pad
        data[indptr[a] : indptr[b]] = np.take_along_axis(scores[a:b], order, axis=1)[keep]
        cols[indptr[a] : indptr[b]] = ids[keep]
    if problems:
        raise DataError(problems)
    matrix = sp.csr_matrix((data, cols, indptr.astype(index_dtype, copy=False)), shape=(n, n_labels), copy=False)
    matrix.has_sorted_indices = True
    return matrix


def _numpy(x) -> np.ndarray:
    if hasattr(x, "detach"):
        return x.detach().cpu().numpy()
    return np.asarray(x)
