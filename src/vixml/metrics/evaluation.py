"""``evaluate``: every XMC metric of a prediction matrix in one pass, as a flat dict.

This is the function behind ``vixml evaluate`` and the trainer's evaluation. It equals pyxclib's
``xc_metrics`` (precision, ndcg, psprecision, psndcg, recall) to float precision on the same inputs,
with the ranking order among tied scores fixed (see :mod:`vixml.metrics.core`), and adds MRR and
recall at deeper cutoffs. It is a numba kernel, parallel over queries: 1M queries x top-100 take
seconds on two cores.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

from vixml.metrics.core import compute, load_inputs
from vixml.metrics.inputs import check_k
from vixml.metrics.propensity import check_propensity_params, inverse_propensity

__all__ = ["evaluate", "evaluate_predictions", "test_filter", "RECALL_AT"]

logger = logging.getLogger(__name__)

RECALL_AT: tuple[int, ...] = (10, 20, 50, 100)
"""Recall cutoffs reported beyond k when the predictions are that deep."""


def evaluate(
    true,
    pred,
    train=None,
    k: int = 5,
    A: float = 0.55,
    B: float = 1.5,
    filter=None,
    *,
    recall_at: Sequence[int] = RECALL_AT,
    sources: Mapping[str, str] | None = None,
) -> dict[str, float]:
    """All metrics of ``pred`` against ``true``, as a flat dict of floats in [0, 1].

    Args:
        true: scipy sparse (n, L) true labels (values are relevance gains; 1.0 in the XC data sets).
        pred: scipy sparse (n, L) of scores, whose stored entries are the predictions (any number per
            row, none included; a stored 0.0 is a prediction); or ``(scores, indices)``, dense (n, k')
            arrays, label id -1 = padding. Each label at most once per row.
        train: training labels (n_train, L) whose column sums give the propensities; None uses ``true``
            (then PSP measures against the test distribution, which is *not* the published protocol:
            pass the training labels to compare with papers).
        k: metrics at cutoffs 1..k.
        A, B: propensity parameters; see :data:`vixml.metrics.PROPENSITY_PRESETS` (Amazon 0.6/2.6,
            Wikipedia 0.5/0.4, others 0.55/1.5).
        filter: (m, 2) integer (row, label) pairs removed from the predictions before ranking.
        recall_at: further recall cutoffs, each reported when k < c <= the prediction width
            (k' of the dense form, the longest row of a CSR, before filtering).
        sources: the file each input was read from, by argument (``{"pred": "run/pred.npz", "true": ...}``),
            so that problems name the file instead of the argument.

    Returns:
        Keys ``P@j``, ``nDCG@j``, ``PSP@j``, ``PSnDCG@j``, ``R@j`` for j = 1..k, ``R@c`` for the
        reachable ``recall_at`` cutoffs, and ``MRR`` (over the whole predicted lists).

    Raises:
        DataError: every problem of the inputs at once (shapes, label ids, NaN or infinite scores or
            label values with their rows, filter pairs, labels predicted twice for a query).
        ConfigError: k < 1, or A/B out of range.
    """
    k = check_k(k)
    A, B = check_propensity_params(A, B)
    truth, preds, pairs = load_inputs(true, pred, filter, train, sources)
    weights = inverse_propensity(train if train is not None else true, A, B)
    extra = sorted({int(c) for c in recall_at if k < int(c) <= preds.width})
    totals = compute(truth, preds, k, weights, pairs, extra, pred_name=(sources or {}).get("pred", "pred"))
    out: dict[str, float] = {}
    for name, values in (
        ("P", totals.precision),
        ("nDCG", totals.ndcg),
        ("PSP", totals.psprecision),
        ("PSnDCG", totals.psndcg),
    ):
        out.update({f"{name}@{j + 1}": float(v) for j, v in enumerate(values)})
    out.update({f"R@{c}": v for c, v in totals.recall.items()})
    out["MRR"] = totals.mrr
    logger.info(
        "evaluated %d queries: P@1=%.4f nDCG@%d=%.4f PSP@1=%.4f",
        totals.n_queries,
        out["P@1"],
        k,
        out[f"nDCG@{k}"],
        out["PSP@1"],
    )
    return out


def test_filter(dataset, cfg) -> object:
    """A dataset's test filter pairs when the eval config uses them (``eval.use_filter``); None otherwise or
    when there are none."""
    pairs = dataset.filter_tst if cfg.use_filter else None
    return pairs if pairs is not None and len(pairs) else None


def evaluate_predictions(predictions, dataset, cfg) -> dict[str, float]:
    """Metrics of a dataset's test predictions by the published protocol: propensities from its training
    labels with its family's A/B (``eval.A/B``, ``auto``), its filter pairs removed (``eval.use_filter``).

    Args:
        predictions: (n_test, L) CSR scores.
        dataset: the :class:`~vixml.data.XMCDataset` (test and training labels, filter pairs, folder).
        cfg: the run's :class:`~vixml.config.EvalConfig`.
    """
    from vixml.metrics.propensity import resolve_propensity

    A, B = resolve_propensity(cfg.A, cfg.B, dataset.path)
    pairs = test_filter(dataset, cfg)
    return evaluate(dataset.tst_Y, predictions, train=dataset.trn_Y, k=cfg.k, A=A, B=B, filter=pairs)
