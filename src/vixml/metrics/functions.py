"""The individual metrics, pyxclib-style: each returns its values at cutoffs 1..k.

Each is a pure function of (true labels, predictions); :func:`vixml.metrics.evaluate` computes all of
them in one pass and is what to call for more than one metric. Definitions, ranking order and the
accepted input forms are those of :mod:`vixml.metrics.core` and :mod:`vixml.metrics.inputs`:

- ``true``: scipy sparse (n, L) of label values (binary in the usual data sets).
- ``pred``: scipy sparse (n, L) of scores (stored entries are the predictions), or a pair
  ``(scores, indices)`` of dense (n, k') arrays with label id -1 as padding.
"""

from __future__ import annotations

import numpy as np

from vixml.metrics.core import Totals, check_weights, compute, load_inputs
from vixml.metrics.inputs import check_k

__all__ = ["precision", "ndcg", "psprecision", "psndcg", "recall", "mrr"]


def _totals(true, pred, k: int, inv_psp=None, recall_at=()) -> Totals:
    k = check_k(k)
    truth, preds, pairs = load_inputs(true, pred)
    weights = None if inv_psp is None else check_weights(inv_psp, truth.shape[1])
    return compute(truth, preds, k, weights, pairs, recall_at)


def precision(true, pred, k: int = 5) -> np.ndarray:
    """P@1..P@k: mean over queries of the number (sum of values) of true labels among the top j, over j.

    Returns:
        float64 array of shape (k,).
    """
    return _totals(true, pred, k).precision


def ndcg(true, pred, k: int = 5) -> np.ndarray:
    """nDCG@1..nDCG@k with log2 discounts, normalised per query by the ideal DCG of min(j, #true) hits.

    Returns:
        float64 array of shape (k,).
    """
    return _totals(true, pred, k).ndcg


def psprecision(true, pred, inv_psp, k: int = 5) -> np.ndarray:
    """PSP@1..PSP@k: propensity-weighted hits over the best achievable weighted hits (ratio of means).

    Args:
        true: (n, L) true labels.
        pred: predictions (see the module docstring).
        inv_psp: (L,) inverse propensities, e.g. from :func:`vixml.metrics.inverse_propensity`.
        k: largest cutoff.

    Returns:
        float64 array of shape (k,).
    """
    return _totals(true, pred, k, inv_psp).psprecision


def psndcg(true, pred, inv_psp, k: int = 5) -> np.ndarray:
    """PSnDCG@1..PSnDCG@k: propensity-weighted DCG over the best achievable (ratio of means).

    Returns:
        float64 array of shape (k,).
    """
    return _totals(true, pred, k, inv_psp).psndcg


def recall(true, pred, k: int = 5) -> np.ndarray:
    """R@1..R@k: mean over queries of the share of true labels (by value) found in the top j.

    A query without true labels counts as 0 (denominator 1), as in pyxclib.

    Returns:
        float64 array of shape (k,).
    """
    totals = _totals(true, pred, k)
    return np.array([totals.recall[j] for j in range(1, k + 1)])


def mrr(true, pred) -> float:
    """Mean reciprocal rank: mean over all queries of 1 / rank of the first relevant prediction.

    The whole predicted list of a query counts (not only a top k); a query without any relevant
    prediction, or without true labels, contributes 0. Relevant means a true value > 0.
    """
    return _totals(true, pred, 1).mrr
