"""Score embeddings the way the paper reports (METHOD.md 5-6): exact top-k search, then the XMC metrics."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from vixml.config import EvalConfig
from vixml.data import XMCDataset
from vixml.metrics import evaluate, resolve_propensity
from vixml.search import to_csr, topk

__all__ = ["evaluate_split", "search_labels"]


def search_labels(queries: np.ndarray, label_emb: np.ndarray, k: int) -> sp.csr_matrix:
    """(n, D) queries x (L, D) labels -> (n, L) CSR of the top-``k`` inner products per query."""
    scores, indices = topk(queries, label_emb, k)
    return to_csr(scores, indices, label_emb.shape[0])


def evaluate_split(
    queries: np.ndarray, label_emb: np.ndarray, dataset: XMCDataset, cfg: EvalConfig
) -> tuple[dict[str, float], sp.csr_matrix]:
    """Metrics of test-query embeddings against the dataset's test labels, and the predictions.

    Propensities come from the training labels (the published protocol); the filter pairs of
    ``filter_labels_test.txt`` are removed before ranking when ``cfg.use_filter``.
    """
    predictions = search_labels(queries, label_emb, cfg.topk)
    pairs = dataset.filter_tst if cfg.use_filter else None
    A, B = resolve_propensity(cfg.A, cfg.B, dataset.path)  # auto: the dataset family's
    metrics = evaluate(dataset.tst_Y, predictions, train=dataset.trn_Y, k=cfg.k, A=A, B=B, filter=pairs)
    return metrics, predictions
