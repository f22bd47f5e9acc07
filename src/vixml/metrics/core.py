"""The one computation behind every metric: validate the inputs, run the kernel, turn sums into means.

Definitions (``y_l``: true value of label ``l`` for the query, 1.0 in binary data; ``r_1, r_2, ...``:
the query's predictions ranked; ``w_l``: inverse propensity; every mean is over *all* n queries, queries
without true labels included, as pyxclib does):

- ranking: score descending, ties broken by the lower label id. Only stored predictions are ranked
  (a stored score of 0.0 is a prediction); a row with fewer than k predictions is padded with misses.
- ``P@k = mean(sum_{t<=k} y_{r_t}) / k``.
- ``nDCG@k = mean(DCG@k / IDCG@k)``, ``DCG@k = sum_{t<=k} y_{r_t} / log2(t + 1)``,
  ``IDCG@k = sum_{t<=min(k, npos)} 1 / log2(t + 1)`` with ``npos = int(sum_l y_l)``; pyxclib's
  ``_cumsum[_total_pos - 1]`` gives a query with ``npos = 0`` the normaliser of k positions (its DCG is
  0 in binary data).
- ``PSP@k = sum_q sum_{t<=k} w_{r_t} y_{r_t} / sum_q best_q@k`` where ``best_q@k`` is the same sum over
  the query's true labels sorted by ``w_l y_l``: a ratio of means, normalised by the best achievable.
- ``PSnDCG@k``: the same ratio of means with the discounted sums divided by each query's ``IDCG@k``.
- ``R@k = mean(sum_{t<=k} y_{r_t} / sum_l y_l)``, the denominator 1 for queries without true labels.
- ``MRR = mean(1 / rank of the first prediction with y > 0)`` over the *whole* predicted list (after
  filtering), 0 for a query with none.

Gains are the true *values*, not binarised, exactly as pyxclib's ``_eval_flags`` reads them.
Where vixml departs from pyxclib (``xclib/evaluation/xc_metrics.py``), on purpose:

- ties: pyxclib ranks with ``np.argsort(data)[::-1]``, whose order among equal scores is unspecified;
  vixml fixes it (score descending, then lower label id), so results are reproducible.
- a ratio with a zero denominator (no true label in any query) is 0.0 where pyxclib gives NaN.
- a label predicted twice for one query, and a negative true value, are input errors (DataError);
  pyxclib would count each stored entry as its own prediction.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from vixml.errors import DataError, Problem
from vixml.metrics.inputs import (
    FilterPairs,
    Predictions,
    Truth,
    check_filter,
    check_predictions,
    check_train,
    check_truth,
)

__all__ = ["Totals", "KERNEL_LOCK", "load_inputs", "check_weights", "compute"]

logger = logging.getLogger(__name__)

_BLOCK = 1024  # queries per parallel work item; fixed, so sums do not depend on the thread count
_SHOWN = 10
# numba's fallback "workqueue" threading layer aborts the process on concurrent parallel calls; metrics
# are fast enough to run one at a time when several Python threads evaluate at once.
KERNEL_LOCK = threading.Lock()


@dataclass(frozen=True)
class Totals:
    """Metric means over every query.

    Attributes:
        precision, ndcg: float64 (k,), entry j is the metric at cutoff j + 1.
        psprecision, psndcg: float64 (k,), or None when no propensities were given.
        recall: cutoff -> R@cutoff.
        mrr: mean reciprocal rank over the whole predicted lists.
        n_queries: number of queries averaged over.
    """

    precision: np.ndarray
    ndcg: np.ndarray
    psprecision: np.ndarray | None
    psndcg: np.ndarray | None
    recall: dict[int, float]
    mrr: float
    n_queries: int


def load_inputs(
    true, pred, filter=None, train=None, sources: Mapping[str, str] | None = None
) -> tuple[Truth, Predictions, FilterPairs]:
    """Validate true labels, predictions, filter pairs (and training labels, when given) together; raise one
    DataError listing every problem. ``sources`` names the file each argument came from (``{"pred": path}``),
    for the messages; an argument without one is named by its role (``pred``, ``true``, ...)."""
    name = {role: (sources or {}).get(role, role) for role in ("true", "pred", "filter", "train")}
    truth, problems = check_truth(true, name["true"])
    if truth is None:
        raise DataError(problems)
    preds, more = check_predictions(pred, truth.shape, name["pred"])
    problems += more
    pairs, more = check_filter(filter, truth.shape, name["filter"])
    problems += more
    if train is not None:
        problems += check_train(train, truth.shape[1], name["train"])
    if problems:
        raise DataError(problems)
    return truth, preds, pairs


def check_weights(inv_psp, n_labels: int) -> np.ndarray:
    """Inverse propensities as a float64 (n_labels,) array; DataError if the length or values are wrong."""
    weights = np.asarray(inv_psp, dtype=np.float64).ravel()
    if weights.size != n_labels:
        raise DataError(
            Problem(
                "inv_psp", f"expected one inverse propensity per label ({n_labels}), got {weights.size}", field="shape"
            )
        )
    if not np.isfinite(weights).all():
        raise DataError(Problem("inv_psp", "inverse propensities must be finite numbers"))
    return weights


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    out = np.zeros_like(num)
    np.divide(num, den, out=out, where=den != 0)
    return out


def compute(
    truth: Truth,
    preds: Predictions,
    k: int,
    weights: np.ndarray | None = None,
    pairs: FilterPairs | None = None,
    recall_at: Sequence[int] = (),
    pred_name: str = "pred",
) -> Totals:
    """Rank every query's predictions once and compute all metrics at cutoffs 1..k (and recall at recall_at).

    Args:
        truth: validated true labels (n, L).
        preds: validated predictions for the same n queries.
        k: largest cutoff of P, nDCG, PSP, PSnDCG (and R: cutoffs 1..k are always included).
        weights: (L,) inverse propensities; None skips PSP and PSnDCG.
        pairs: (row, label) pairs removed from the predictions before ranking.
        recall_at: further recall cutoffs.
        pred_name: the predictions' name (or file) in problem messages.

    Raises:
        DataError: a query's predictions name the same label twice.
    """
    from vixml.metrics import _kernels  # numba, lazily

    n, n_labels = truth.shape
    cutoffs = np.array(sorted(set(range(1, k + 1)) | {int(c) for c in recall_at}), dtype=np.int64)
    if pairs is None:
        pairs, _ = check_filter(None, truth.shape)
    use_weights = weights is not None
    w = weights if use_weights else np.zeros(0)
    start = time.perf_counter()
    max_true = int(np.diff(truth.indptr).max()) if n else 0
    with KERNEL_LOCK:
        sums, dup = _kernels.accumulate(
            truth.indptr, truth.indices, truth.data, preds.indptr, preds.indices, preds.data,
            pairs.indptr, pairs.indices, w, use_weights, k, cutoffs, preds.canonical,
            max(preds.width, 1), max(max_true, 1), _BLOCK,
        )  # fmt: skip
    logger.debug(
        "metrics kernel: %d queries, %d labels, width %d in %.2fs",
        n,
        n_labels,
        preds.width,
        time.perf_counter() - start,
    )
    if dup.any():
        rows = np.flatnonzero(dup)
        problems = [
            Problem(pred_name, "a label is predicted more than once for this query", field=f"row {r}")
            for r in rows[:_SHOWN]
        ]
        if rows.size > _SHOWN:
            problems.append(Problem(pred_name, f"{rows.size} queries predict some label more than once in all"))
        raise DataError(problems)
    total = sums.sum(axis=0)
    denom = max(n, 1)
    nr = cutoffs.size
    ps_p = _ratio(total[2 * k : 3 * k], total[3 * k : 4 * k]) if use_weights else None
    ps_n = _ratio(total[4 * k : 5 * k], total[5 * k : 6 * k]) if use_weights else None
    return Totals(
        precision=total[:k] / denom,
        ndcg=total[k : 2 * k] / denom,
        psprecision=ps_p,
        psndcg=ps_n,
        recall={int(c): float(v) / denom for c, v in zip(cutoffs, total[6 * k : 6 * k + nr], strict=True)},
        mrr=float(total[6 * k + nr]) / denom,
        n_queries=n,
    )
