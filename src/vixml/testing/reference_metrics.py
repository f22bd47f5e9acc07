"""Oracle for vixml.metrics: a transcription of pyxclib's numpy metric definitions.

Source: pyxclib (https://github.com/kunaldahiya/pyxclib), ``xclib/evaluation/xc_metrics.py``
(``compute_inv_propesity``, ``_setup_metric``, ``_eval_flags``, ``precision``/``_precision``,
``ndcg``/``_ndcg``, ``psprecision``, ``psndcg``, ``recall``/``_recall``, ``Metrics.eval``) and
``xclib/utils/sparse.py`` (``topk``/``_topk_nb``), read at commits ae5410f1 and e554bb6c. The arithmetic
is kept line for line (float32 nDCG buffer, the ``_cumsum[_total_pos - 1]`` normaliser, ratios of means
for PSP/PSnDCG, label *values* as gains), with these deliberate changes (only the first can change a value):

- top-k of a CSR row: pyxclib ranks with ``np.argsort(data)[::-1]`` (numba) or ``argsort(-data)``
  (cython), whose order among equal scores is unspecified; here a stable sort on ``-data`` after
  ``sort_indices()``, i.e. score descending then lower label id first -- the order vixml documents.
- scipy's ``np.matrix`` results (``.A1``, ``sum(axis=1)`` of shape (n, 1)) are made explicit with
  ``np.asarray``/``reshape`` so the code also runs on scipy sparse *arrays*.
- the dense ``(scores, indices)`` form is converted to CSR first (pyxclib's dict form has no padding).
- when every row holds the same number (>= k) of predictions, the top-k is one vectorised stable
  argsort over the (n, width) scores (the speed of pyxclib's parallel numba top-k), not a row loop.

Plus simple loop definitions of what pyxclib lacks: MRR and (row, label) filtering.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

__all__ = [
    "compute_inv_propesity",
    "to_csr",
    "topk_indices",
    "precision",
    "ndcg",
    "psprecision",
    "psndcg",
    "recall",
    "all_metrics",
    "mrr",
    "filter_pairs",
]


def compute_inv_propesity(labels, A, B):
    num_instances, _ = labels.shape
    freqs = np.ravel(np.sum(labels, axis=0))
    C = (np.log(num_instances) - 1) * np.power(B + 1, A)
    wts = 1.0 + C * np.power(freqs + B, -A)
    return np.ravel(wts)


def to_csr(pred, n_labels: int) -> sp.csr_matrix:
    """CSR of predictions; the dense (scores, indices) pair with -1 padding becomes stored entries."""
    if sp.issparse(pred):
        return sp.csr_matrix(pred)
    scores, indices = np.asarray(pred[0]), np.asarray(pred[1])
    rows = np.repeat(np.arange(scores.shape[0]), scores.shape[1]).reshape(scores.shape)
    keep = indices >= 0
    return sp.csr_matrix((scores[keep], (rows[keep], indices[keep])), shape=(scores.shape[0], n_labels))


def topk_indices(X, k, pad_ind):
    """xclib.utils.sparse.topk(X, k, pad_ind, 0) with a stable order: (n, k) label ids, padded with pad_ind."""
    X = sp.csr_matrix(X, copy=True)
    X.sort_indices()
    nr = X.shape[0]
    lengths = np.diff(X.indptr)
    if nr and lengths.min() == lengths.max() >= k:  # every row as long: one vectorised sort, same order
        data, indices = X.data.reshape(nr, -1), X.indices.reshape(nr, -1)
        order = np.argsort(-data, axis=1, kind="stable")[:, :k]
        return np.take_along_axis(indices, order, axis=1).astype(np.int64)
    ind = np.full((nr, k), fill_value=pad_ind, dtype=np.int64)
    for i in range(nr):
        s, e = X.indptr[i], X.indptr[i + 1]
        num_el = min(k, e - s)
        temp = np.argsort(-X.data[s:e], kind="stable")[:num_el]
        ind[i, :num_el] = X.indices[s:e][temp]
    return ind


def _setup_metric(X, true_labels, inv_psp=None, k=5):
    true_labels = sp.csr_matrix(true_labels)
    num_instances, num_labels = true_labels.shape
    indices = topk_indices(to_csr(X, num_labels), k, num_labels)
    ps_indices = None
    if inv_psp is not None:
        _mat = sp.spdiags(inv_psp, diags=0, m=num_labels, n=num_labels)
        _psp_wtd = sp.csr_matrix(_mat.dot(true_labels.T).T)
        ps_indices = topk_indices(_psp_wtd, k, num_labels)
        inv_psp = np.hstack([inv_psp, np.zeros(1)])
    true_labels = sp.csr_matrix(
        (true_labels.data, true_labels.indices, true_labels.indptr),
        shape=(num_instances, num_labels + 1),
        dtype=true_labels.dtype,
    )
    return indices, true_labels, ps_indices, inv_psp


def _eval_flags(indices, true_labels, inv_psp=None):
    nr, nc = indices.shape
    rows = np.repeat(np.arange(nr).reshape(-1, 1), nc)
    eval_flags = np.asarray(true_labels[rows, indices.ravel()]).ravel().reshape(nr, nc)
    if inv_psp is not None:
        eval_flags = np.multiply(inv_psp[indices], eval_flags)
    return eval_flags


def _precision(eval_flags, k=5):
    deno = 1 / (np.arange(k) + 1)
    precision = np.mean(np.multiply(np.cumsum(eval_flags, axis=-1), deno), axis=0)
    return np.ravel(precision)


def _ndcg(eval_flags, n, k=5):
    _cumsum = 0
    _dcg = np.cumsum(np.multiply(eval_flags, 1 / np.log2(np.arange(k) + 2)), axis=-1)
    ndcg = np.zeros((1, k), dtype=np.float32)
    for _k in range(k):
        _cumsum += 1 / np.log2(_k + 1 + 1)
        ndcg[0, _k] = np.mean(np.multiply(_dcg[:, _k].reshape(-1, 1), 1 / np.minimum(n, _cumsum)))
    return np.ravel(ndcg)


def _ndcg_normaliser(true_labels, k):
    _total_pos = np.asarray(np.asarray(true_labels.sum(axis=1)).reshape(-1, 1), dtype=np.int32)
    _max_pos = max(np.max(_total_pos), k)
    _cumsum = np.cumsum(1 / np.log2(np.arange(1, _max_pos + 1) + 1))
    return _cumsum[_total_pos - 1]


def precision(X, true_labels, k=5):
    indices, true_labels, _, _ = _setup_metric(X, true_labels, k=k)
    eval_flags = _eval_flags(indices, true_labels, None)
    return _precision(eval_flags, k)


def psprecision(X, true_labels, inv_psp, k=5):
    indices, true_labels, ps_indices, inv_psp = _setup_metric(X, true_labels, inv_psp, k=k)
    eval_flags = _eval_flags(indices, true_labels, inv_psp)
    ps_eval_flags = _eval_flags(ps_indices, true_labels, inv_psp)
    return _precision(eval_flags, k) / _precision(ps_eval_flags, k)


def ndcg(X, true_labels, k=5):
    indices, true_labels, _, _ = _setup_metric(X, true_labels, k=k)
    eval_flags = _eval_flags(indices, true_labels, None)
    n = _ndcg_normaliser(true_labels, k)
    return _ndcg(eval_flags, n, k)


def psndcg(X, true_labels, inv_psp, k=5):
    indices, true_labels, ps_indices, inv_psp = _setup_metric(X, true_labels, inv_psp, k=k)
    eval_flags = _eval_flags(indices, true_labels, inv_psp)
    ps_eval_flags = _eval_flags(ps_indices, true_labels, inv_psp)
    n = _ndcg_normaliser(true_labels, k)
    return _ndcg(eval_flags, n, k) / _ndcg(ps_eval_flags, n, k)


def recall(X, true_labels, k=5):
    indices, true_labels, _, _ = _setup_metric(X, true_labels, k=k)
    deno = np.asarray(true_labels.sum(axis=1), dtype=np.float64).reshape(-1, 1)
    deno[deno == 0] = 1
    deno = 1 / deno
    eval_flags = _eval_flags(indices, true_labels, None)
    return np.ravel(np.mean(np.multiply(np.cumsum(eval_flags, axis=-1), deno), axis=0))


def all_metrics(X, true_labels, inv_psp, k=5):
    """``Metrics(true_labels, inv_psp).eval(X, k)`` (top-k found once) plus recall from the same flags.

    Returns:
        [P, nDCG, PSP, PSnDCG, R], each (k,).
    """
    indices, true_labels, ps_indices, inv_psp_pad = _setup_metric(X, true_labels, inv_psp, k=k)
    n = _ndcg_normaliser(true_labels, k)
    eval_flags = _eval_flags(indices, true_labels, None)
    prec = _precision(eval_flags, k)
    ndcg_ = _ndcg(eval_flags, n, k)
    deno = np.asarray(true_labels.sum(axis=1), dtype=np.float64).reshape(-1, 1)
    deno[deno == 0] = 1
    rec = np.ravel(np.mean(np.multiply(np.cumsum(eval_flags, axis=-1), 1 / deno), axis=0))
    eval_flags = np.multiply(inv_psp_pad[indices], eval_flags)
    ps_eval_flags = _eval_flags(ps_indices, true_labels, inv_psp_pad)
    ps_prec = _precision(eval_flags, k) / _precision(ps_eval_flags, k)
    ps_ndcg = _ndcg(eval_flags, n, k) / _ndcg(ps_eval_flags, n, k)
    return [prec, ndcg_, ps_prec, ps_ndcg, rec]


def mrr(X, true_labels):
    """Mean over all rows of 1 / rank of the first prediction whose true value is > 0 (0 if none)."""
    true_labels = sp.csr_matrix(true_labels)
    X = to_csr(X, true_labels.shape[1])
    width = max(int(np.diff(X.indptr).max()) if X.shape[0] else 0, 1)
    ranked = topk_indices(X, width, -1)
    total = 0.0
    for i in range(true_labels.shape[0]):
        relevant = {int(j) for j, v in zip(true_labels[i].indices, true_labels[i].data, strict=True) if v > 0}
        for rank, label in enumerate(ranked[i], start=1):
            if label in relevant:
                total += 1.0 / rank
                break
    return total / max(true_labels.shape[0], 1)


def filter_pairs(X, pairs, n_labels):
    """CSR predictions without the (row, label) entries listed in pairs (a Python loop over entries)."""
    X = to_csr(X, n_labels).tocoo()
    drop = {(int(r), int(c)) for r, c in np.asarray(pairs).reshape(-1, 2)}
    keep = np.array([(int(r), int(c)) not in drop for r, c in zip(X.row, X.col, strict=True)], dtype=bool)
    return sp.csr_matrix((X.data[keep], (X.row[keep], X.col[keep])), shape=X.shape)
