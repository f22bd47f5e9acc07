"""Remove (query, label) pairs from predictions, as the XMC benchmarks require for reciprocal pairs.

Some XC-repository data sets (LF-AmazonTitles-131K, LF-WikiSeeAlso-320K, ...) ship
``filter_labels_test.txt``: (test row, label) pairs where the label *is* the query's own item (or its
reciprocal), which the published numbers exclude from the predictions before ranking. The entries are
removed by position; setting their score to 0 instead would also drop genuine predictions whose score
is 0.0 and would leave the filtered label in the ranking (a stored 0.0 is still a prediction).
:func:`vixml.metrics.evaluate` takes the pairs directly (``filter=``) and skips them inside its kernel
without copying the predictions; this function is for callers that want the filtered predictions.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from vixml.errors import DataError
from vixml.metrics.core import KERNEL_LOCK
from vixml.metrics.inputs import check_filter, check_predictions

__all__ = ["filter_predictions"]


def filter_predictions(pred, pairs):
    """Predictions without the entries named by ``pairs``.

    Args:
        pred: scipy sparse (n, L) of scores, or a pair ``(scores, indices)`` of dense (n, k') arrays
            (label id -1 = padding).
        pairs: (m, 2) integer array of (row, label); pairs that match no prediction are ignored.

    Returns:
        The same form as ``pred``, which is left unchanged: a CSR matrix (n, L) without the filtered
        entries (stored zeros kept); or new ``(scores, indices)`` arrays (n, k') in which each row keeps
        its remaining predictions in their original order, moved to the front, and ends in padding
        (index -1, score -inf).

    Raises:
        DataError: malformed predictions, or a pair whose row or label is out of range.
    """
    from vixml.metrics import _kernels  # numba, lazily

    if sp.issparse(pred):
        shape = tuple(pred.shape)
    else:
        indices = np.asarray(pred[1]) if isinstance(pred, tuple | list) and len(pred) == 2 else np.zeros((0, 0))
        top = int(indices.max()) + 1 if indices.size else 0
        arr = np.asarray(pairs) if pairs is not None else np.zeros((0, 2))
        top = max(top, int(arr[:, 1].max()) + 1 if arr.ndim == 2 and arr.shape[1] == 2 and arr.size else 0)
        shape = (len(indices), top)
    preds, problems = check_predictions(pred, shape)
    filt, more = check_filter(pairs, shape)
    problems += more
    if problems:
        raise DataError(problems)
    with KERNEL_LOCK:
        keep = _kernels.filter_mask(preds.indptr, preds.indices, filt.indptr, filt.indices)
    if sp.issparse(pred):
        csr = pred.tocsr()
        kept_before = np.zeros(keep.size + 1, dtype=np.int64)
        np.cumsum(keep, out=kept_before[1:])
        indptr = kept_before[preds.indptr]  # kept entries before each row's start
        return sp.csr_matrix((csr.data[keep], csr.indices[keep], indptr), shape=shape)
    scores, indices = np.asarray(pred[0]), np.asarray(pred[1])
    keep = keep.reshape(indices.shape) & (indices >= 0)
    order = np.argsort(~keep, axis=1, kind="stable")  # kept entries first, in their original order
    new_indices = np.where(np.take_along_axis(keep, order, axis=1), np.take_along_axis(indices, order, axis=1), -1)
    new_scores = np.take_along_axis(scores, order, axis=1).astype(np.result_type(scores.dtype, np.float32))
    new_scores[new_indices < 0] = -np.inf
    return new_scores, new_indices
