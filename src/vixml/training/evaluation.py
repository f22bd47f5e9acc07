"""Score a model the way the paper reports (docs/method.md 5-6): the one retrieval path, then the XMC metrics."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from vixml.config import EvalConfig
from vixml.data import XMCDataset
from vixml.metrics.evaluation import evaluate_predictions, test_filter
from vixml.retrieval import LabelMatrix, Retriever
from vixml.search import to_csr

__all__ = ["evaluate_split", "evaluate_predictions", "search_labels", "test_filter"]


def search_labels(queries: np.ndarray, label_emb: np.ndarray, k: int, exclude=None) -> sp.csr_matrix:
    """(n, D) queries x (L, D) labels -> (n, L) CSR of the top-``k`` inner products per query (``exclude``:
    (row, label) pairs removed before the cut)."""
    found = Retriever(LabelMatrix(label_emb)).search(queries, None, k, source="dense", exclude=exclude)
    return to_csr(found.scores, found.ids, label_emb.shape[0])


def evaluate_split(
    queries: np.ndarray, label_emb: np.ndarray, dataset: XMCDataset, cfg: EvalConfig
) -> tuple[dict[str, float], sp.csr_matrix]:
    """Metrics of test-query embeddings against the dataset's test labels, and the predictions.

    The filter pairs of ``filter_labels_test.txt`` are removed before the cut to ``cfg.topk`` when
    ``cfg.use_filter``, as ``vixml predict`` does.
    """
    predictions = search_labels(queries, label_emb, cfg.topk, exclude=test_filter(dataset, cfg))
    return evaluate_predictions(predictions, dataset, cfg), predictions
