"""A hybrid run: the sparse companion trained beside the dual encoder, and the fusion weight tuned between them.

With a ``sparse`` section, ``train()`` holds a slice of the training queries out of both models
(:func:`holdout_rows`), trains the companion on the rest before the first step (seconds) and saves it in the
run folder, so a resumed run keeps it; after the last epoch it tunes the fusion weight on the held-out slice,
queries neither model saw (HYBRID.md), and the final predictions are the fused ones.
"""

from __future__ import annotations

import dataclasses
import logging
import time

import numpy as np
import scipy.sparse as sp

from vixml.config import AugmentConfig, RunConfig
from vixml.data import XMCDataset
from vixml.metrics import inverse_propensity, resolve_propensity
from vixml.retrieval import Fusion, LabelMatrix, Memory, Retriever, SparseRanker, tune
from vixml.run_folder import RunFolder

__all__ = ["holdout_rows", "without_rows", "sparse_companion", "tune_fusion", "plus_r_memory"]

logger = logging.getLogger(__name__)


def holdout_rows(dataset: XMCDataset, cfg: RunConfig) -> np.ndarray:
    """Sorted training rows held out of both models to tune the fusion (seeded by ``train.seed``)."""
    sc = cfg.sparse
    labelled = np.flatnonzero(np.diff(dataset.trn_Y.indptr) > 0)
    count = min(int(round(sc.holdout * labelled.shape[0])), sc.holdout_max)
    if count == 0:
        return np.zeros(0, dtype=np.int64)
    rng = np.random.default_rng(cfg.train.seed)
    return np.sort(rng.choice(labelled, size=count, replace=False)).astype(np.int64)


def without_rows(dataset: XMCDataset, rows: np.ndarray) -> XMCDataset:
    """The dataset with the label rows of ``rows`` emptied: the trainer never samples them (no positive), they
    add nothing to PRIME's centroids and vote for nothing under +R."""
    if not rows.shape[0]:
        return dataset
    keep = np.ones(dataset.n_train, dtype=np.float32)
    keep[rows] = 0
    emptied = sp.csr_matrix(sp.diags(keep) @ dataset.trn_Y)
    emptied.eliminate_zeros()
    return dataclasses.replace(dataset, trn_Y=emptied.astype(np.float32))


def sparse_companion(dataset: XMCDataset, cfg: RunConfig, run: RunFolder) -> SparseRanker:
    """The run's companion: read back when a resumed run already saved it, trained and saved otherwise."""
    if run.sparse_complete():
        logger.info("sparse companion: reusing %s", run.sparse)
        return SparseRanker.load(run.sparse)
    started = time.perf_counter()
    texts = dataset.trn_texts[list(range(dataset.n_train))]
    label_texts = dataset.lbl_texts[list(range(dataset.n_labels))]
    ranker = SparseRanker.train(texts, dataset.trn_Y, label_texts, cfg.sparse, run.sparse)
    logger.info(
        "sparse companion: TF-IDF (%d terms) + omikuji forest (%d trees) in %.1f s",
        len(ranker.vectorizer.vocabulary_),
        cfg.sparse.trees,
        time.perf_counter() - started,
    )
    return ranker


def tune_fusion(
    queries: np.ndarray,
    rows: np.ndarray,
    dataset: XMCDataset,
    label_embeddings: np.ndarray,
    sparse: SparseRanker,
    cfg: RunConfig,
    memory: Memory | None = None,
) -> Fusion:
    """The fusion weights that rank the held-out queries best (or the configured one).

    Args:
        queries: (len(rows), D) the held-out queries' embeddings by the final model.
        rows: the held-out training rows.
        dataset: the whole dataset (their true labels; propensities from the rows the models trained on).
        label_embeddings: the final (L, D) label embeddings.
        sparse: the companion.
        cfg: the run's config.
        memory: the "+R" memory (training queries, the held-out ones voting for nothing): its own weight is
            tuned beside the dense and sparse ones (``Fusion.plus_r``).
    """
    sc = cfg.sparse
    if sc.dense_weight != "auto" or not rows.shape[0]:
        weight = 0.5 if sc.dense_weight == "auto" else float(sc.dense_weight)
        if not rows.shape[0] and sc.dense_weight == "auto":
            logger.warning("no held-out queries (sparse.holdout 0): the fusion weighs both sources equally")
        return Fusion(weight, sc.normalization)
    retriever = Retriever(LabelMatrix(label_embeddings), sparse, candidates=sc.candidates)
    texts = dataset.trn_texts[rows.tolist()]
    ids, sources, _ = retriever.candidate_scores(queries, list(texts), sc.candidates, memory)
    truth = dataset.trn_Y[rows]
    trained = without_rows(dataset, rows).trn_Y
    A, B = resolve_propensity(cfg.eval.A, cfg.eval.B, dataset.path)
    propensity = inverse_propensity(trained, A=A, B=B)
    pairs = _rows_pairs(dataset.filter_trn, rows)
    if pairs.shape[0]:
        ids = ids.copy()
        for row, label in pairs:
            ids[row][ids[row] == label] = -1
    fusion = tune(sources, ids, truth, normalization=sc.normalization, propensity=propensity, k=cfg.eval.k)
    best = fusion.scores[str(fusion.dense_weight)]
    logger.info(
        "fusion: dense weight %.2f tuned on %d held-out queries (%s)",
        fusion.dense_weight,
        rows.shape[0],
        ", ".join(f"{k} {100 * v:.2f}" for k, v in best.items() if k != "objective"),
    )
    if fusion.plus_r is not None:
        logger.info("fusion with +R: %s", ", ".join(f"{name} {w:.2f}" for name, w in fusion.plus_r.items()))
    return fusion


def plus_r_memory(embeddings: np.ndarray, dataset: XMCDataset, rows: np.ndarray, cfg: RunConfig) -> Memory:
    """The "+R" memory of a hybrid run: every training query's embedding, the held-out ones voting for nothing
    (their labels are the tuning's answers), with the run's ``eval.augment`` settings."""
    ac = cfg.eval.augment or AugmentConfig()
    labels = without_rows(dataset, rows).trn_Y.tocsr()
    return Memory(embeddings, labels, ac.num_labels, ac.num_queries, ac.temperature, ac.label_weight)


def _rows_pairs(pairs: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Filter pairs of the held-out rows, renumbered to their position among ``rows``."""
    if pairs is None or not len(pairs):
        return np.zeros((0, 2), dtype=np.int64)
    position = np.full(int(max(pairs[:, 0].max(), rows.max(initial=0))) + 1, -1, dtype=np.int64)
    position[rows] = np.arange(rows.shape[0])
    mapped = position[pairs[:, 0]]
    keep = mapped >= 0
    return np.stack([mapped[keep], pairs[keep, 1]], axis=1)
