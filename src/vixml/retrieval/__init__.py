"""Retrieval: every route's one path from queries to top-k labels (dense, sparse, +R, fused).

The sparse companion (:mod:`vixml.retrieval.sparse`) loads its libraries (scikit-learn, omikuji: the
``sparse`` extra) on first use; importing this package loads neither.
"""

from __future__ import annotations

from vixml.retrieval.augment import augmented_scores
from vixml.retrieval.fusion import Fusion, combine, tune
from vixml.retrieval.retriever import (
    FOUND_DENSE,
    FOUND_R,
    FOUND_SPARSE,
    SOURCES,
    LabelMatrix,
    Memory,
    Retrieved,
    Retriever,
    rows_topk,
)
from vixml.retrieval.sparse import SparseRanker

__all__ = [
    "Retriever",
    "Retrieved",
    "LabelMatrix",
    "Memory",
    "SOURCES",
    "FOUND_DENSE",
    "FOUND_SPARSE",
    "FOUND_R",
    "Fusion",
    "combine",
    "tune",
    "SparseRanker",
    "augmented_scores",
    "rows_topk",
]
