"""vixml.metrics: XMC ranking metrics (P@k, nDCG@k, PSP@k, PSnDCG@k, R@k, MRR), propensities, filtering.

Pure numpy/scipy with a numba kernel (imported on first use, so importing this package is cheap).
Definitions equal pyxclib's ``xclib/evaluation/xc_metrics.py`` to float precision; the ranking order
among tied scores is fixed: higher score first, then lower label id. See :mod:`vixml.metrics.core`
for the exact definitions and :mod:`vixml.metrics.propensity` for the propensity presets.

Example:
    >>> from vixml.metrics import evaluate, propensity_preset
    >>> A, B = propensity_preset("LF-AmazonTitles-131K")          # (0.6, 2.6)
    >>> scores = evaluate(tst_Y, pred, train=trn_Y, k=5, A=A, B=B, filter=pairs)  # doctest: +SKIP
    >>> scores["P@1"], scores["PSP@5"]                              # doctest: +SKIP
"""

from __future__ import annotations

from vixml.metrics.evaluation import RECALL_AT, evaluate
from vixml.metrics.filtering import filter_predictions
from vixml.metrics.functions import mrr, ndcg, precision, psndcg, psprecision, recall
from vixml.metrics.propensity import (
    PROPENSITY_PRESETS,
    dataset_propensity,
    inverse_propensity,
    propensity_preset,
    resolve_propensity,
)

__all__ = [
    "evaluate",
    "RECALL_AT",
    "precision",
    "ndcg",
    "psprecision",
    "psndcg",
    "recall",
    "mrr",
    "filter_predictions",
    "inverse_propensity",
    "propensity_preset",
    "PROPENSITY_PRESETS",
    "dataset_propensity",
    "resolve_propensity",
]
