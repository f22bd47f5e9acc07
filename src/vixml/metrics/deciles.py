"""Head/tail analysis: P@k and PSP@k split by label-frequency decile (as XMC papers plot it).

Labels are sorted by their training frequency (most frequent first, ties by lower id) and cut into
``n_bins`` groups of (nearly) equal label counts: bin 1 holds the head labels, the last bin the tail. A
bin's figure is its *contribution* to the overall metric: the hits of the top-k predictions whose label
lies in the bin, with the overall metric's own denominator, so the bins add up to P@k and PSP@k exactly:

- ``P@k[b] = sum_q sum_{t<=k} y_{r_t} [bin(r_t) = b] / (n k)``;
- ``PSP@k[b] = sum_q sum_{t<=k} w_{r_t} y_{r_t} [bin(r_t) = b] / sum_q best_q@k`` (best_q@k as in PSP@k).

Ranking as everywhere in :mod:`vixml.metrics`: score descending, then lower label id. Pure numpy.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from vixml.errors import DataError, Problem
from vixml.metrics.propensity import inverse_propensity

__all__ = ["frequency_bins", "metrics_by_decile", "ranked_topk"]


def frequency_bins(train_Y, n_bins: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """Bin of every label by training frequency (0 = most frequent labels) and the frequencies.

    Returns:
        ``(bins (L,) int64 in [0, n_bins), freqs (L,) float64)``; with fewer labels than bins, some bins
        are empty.
    """
    if n_bins < 1:
        raise DataError(Problem("n_bins", f"must be >= 1, got {n_bins}"))
    freqs = np.asarray(sp.csr_matrix(train_Y).astype(bool).sum(axis=0), dtype=np.float64).ravel()
    order = np.lexsort((np.arange(freqs.size), -freqs))  # most frequent first, then lower id
    bins = np.empty(freqs.size, dtype=np.int64)
    for b, members in enumerate(np.array_split(order, n_bins)):
        bins[members] = b
    return bins, freqs


def ranked_topk(pred: sp.spmatrix, k: int) -> np.ndarray:
    """(n, k) label ids of each row's k best predictions (score descending, lower id first); -1 pads."""
    pred = sp.csr_matrix(pred)
    counts = np.diff(pred.indptr)
    rows = np.repeat(np.arange(pred.shape[0]), counts)
    order = np.lexsort((pred.indices, -pred.data.astype(np.float64), rows))
    rank = np.arange(order.size) - np.repeat(pred.indptr[:-1], counts)
    keep = order[rank < k]
    out = np.full((pred.shape[0], k), -1, dtype=np.int64)
    out[rows[keep], rank[rank < k]] = pred.indices[keep]
    return out


def _gains(true: sp.csr_matrix, top: np.ndarray) -> np.ndarray:
    """(n, k) true value of each predicted (row, label), 0 for misses and padding."""
    n_labels = true.shape[1]
    true = sp.csr_matrix(true, copy=True)
    true.sum_duplicates()  # also sorts the indices: the keys below are then sorted
    if not true.nnz:
        return np.zeros(top.shape)
    true_keys = np.repeat(np.arange(true.shape[0], dtype=np.int64), np.diff(true.indptr)) * n_labels + true.indices
    keys = np.arange(top.shape[0], dtype=np.int64)[:, None] * n_labels + np.maximum(top, 0)
    at = np.minimum(np.searchsorted(true_keys, keys), true_keys.size - 1)
    found = (top >= 0) & (true_keys[at] == keys)
    return np.where(found, true.data[at], 0.0)


def metrics_by_decile(
    true,
    pred,
    train,
    *,
    k: int = 5,
    A: float = 0.55,
    B: float = 1.5,
    n_bins: int = 10,
) -> dict:
    """P@k and PSP@k per label-frequency bin (see the module doc); filter predictions beforehand if needed.

    Args:
        true: (n, L) true labels (sparse).
        pred: (n, L) predictions (sparse, scores as values).
        train: (N, L) training labels: the frequencies that order the labels, and the propensities.
        k: the cut-off.
        A, B: propensity parameters.
        n_bins: number of bins (10 = deciles).

    Returns:
        ``{"k", "bins": [{"bin": 1.., "labels", "min_freq", "max_freq", "P@k", "PSP@k"}, ...], "P@k", "PSP@k"}``
        where the totals equal :func:`vixml.metrics.evaluate`'s.
    """
    true = sp.csr_matrix(true)
    pred = sp.csr_matrix(pred)
    if true.shape != pred.shape or sp.csr_matrix(train).shape[1] != true.shape[1]:
        raise DataError(
            Problem("pred", f"shapes differ: true {true.shape}, pred {pred.shape}, train {sp.csr_matrix(train).shape}")
        )
    bins, freqs = frequency_bins(train, n_bins)
    weights = inverse_propensity(train, A=A, B=B)
    top = ranked_topk(pred, k)
    gains = _gains(true, top)
    pred_bins = np.where(top >= 0, bins[np.maximum(top, 0)], -1)
    n = true.shape[0]
    best = _best_weighted(true, weights, k)
    p_contrib = np.bincount(pred_bins.ravel() + 1, weights=gains.ravel(), minlength=n_bins + 1)[1:] / max(n * k, 1)
    weighted = gains * np.where(top >= 0, weights[np.maximum(top, 0)], 0.0)
    psp_num = np.bincount(pred_bins.ravel() + 1, weights=weighted.ravel(), minlength=n_bins + 1)[1:]
    psp_contrib = psp_num / best if best > 0 else np.zeros(n_bins)
    out = []
    for b in range(n_bins):
        members = bins == b
        f = freqs[members]
        out.append(
            {
                "bin": b + 1,
                "labels": int(members.sum()),
                "min_freq": int(f.min()) if f.size else 0,
                "max_freq": int(f.max()) if f.size else 0,
                f"P@{k}": float(p_contrib[b]),
                f"PSP@{k}": float(psp_contrib[b]),
            }
        )
    return {"k": k, "bins": out, f"P@{k}": float(p_contrib.sum()), f"PSP@{k}": float(psp_contrib.sum())}


def _best_weighted(true: sp.csr_matrix, weights: np.ndarray, k: int) -> float:
    """sum_q of the k largest ``w_l y_l`` over the query's true labels (PSP's denominator)."""
    values = true.data * weights[true.indices]
    rows = np.repeat(np.arange(true.shape[0]), np.diff(true.indptr))
    order = np.lexsort((-values, rows))
    rank = np.arange(order.size) - np.repeat(true.indptr[:-1], np.diff(true.indptr))
    return float(values[order][rank < k].sum())
