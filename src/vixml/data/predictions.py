"""Reading a prediction file: what ``vixml predict`` writes (CSR ``.npz``), the label text format, or dense scores.

``vixml evaluate --pred FILE`` accepts, told apart by the file's first bytes (:mod:`vixml.data.file_kinds`):

- a scipy sparse ``.npz`` (queries x labels, scores as values): the stored entries of a row are its
  predictions (what ``vixml predict`` writes);
- the sparse text format of label files (``n_rows n_cols`` header, ``label:score`` per row);
- a dense numpy ``.npy`` of scores, shape (n_queries, n_labels), float: the ``depth`` best labels of each
  row are its predictions (``vixml evaluate`` uses ``max(k, 100)``, the depth ``vixml predict`` writes, so
  that R@100 and MRR mean the same for both). It is read in blocks of rows, memory-mapped.

Anything else (a pickle, a gzip, a Parquet table, an integer array) is refused with what it is.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from vixml.data.file_kinds import NUMPY_READ_ERRORS, describe, sniff
from vixml.data.labels import read_label_matrix
from vixml.errors import DataError, Problem
from vixml.finite import nonfinite_problem

__all__ = ["read_predictions", "DEFAULT_DEPTH"]

DEFAULT_DEPTH = 100
_BLOCK_BYTES = 1 << 27


def read_predictions(
    path: str | os.PathLike, depth: int = DEFAULT_DEPTH
) -> sp.csr_matrix | tuple[np.ndarray, np.ndarray]:
    """The predictions in ``path`` (module docstring): CSR, or ``(scores, indices)`` (n, depth) for dense scores.

    Raises:
        DataError: a file of another kind, or a malformed one, saying what it is and what is expected.
    """
    path = Path(path)
    if sniff(path) != "npy":
        return read_label_matrix(path)
    try:
        scores = np.load(path, mmap_mode="r", allow_pickle=False)
    except NUMPY_READ_ERRORS as exc:
        raise DataError(Problem(str(path), f"this is {describe(path)}: {exc}")) from exc
    if scores.ndim != 2 or scores.dtype.kind != "f":
        raise DataError(
            Problem(
                str(path),
                f"this is {describe(path)}; a dense prediction file must be a 2-D float array of scores "
                "(n_queries, n_labels), or give a scipy sparse .npz (what vixml predict writes)",
            )
        )
    if (problem := nonfinite_problem(scores, str(path), "rows of scores")) is not None:
        raise DataError(problem)
    return _top(scores, min(depth, scores.shape[1]))


def _top(scores: np.ndarray, depth: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``depth`` best labels of every row (any order within a row), read a block of rows at a time."""
    n, n_labels = scores.shape
    out_scores = np.empty((n, depth), dtype=np.float32)
    out_ids = np.empty((n, depth), dtype=np.int64)
    step = max(1, _BLOCK_BYTES // max(1, n_labels * scores.itemsize))
    for start in range(0, n, step):
        block = np.asarray(scores[start : start + step], dtype=np.float32)
        if depth < n_labels:
            ids = np.argpartition(-block, depth - 1, axis=1)[:, :depth]
        else:
            ids = np.broadcast_to(np.arange(n_labels), block.shape)
        out_ids[start : start + len(block)] = ids
        out_scores[start : start + len(block)] = np.take_along_axis(block, ids, axis=1)
    return out_scores, out_ids
