"""Predicting for any texts (not a dataset split): image references, "+R" scoring, and the output files.

``vixml predict RUN --texts FILE`` and the server go through here. Retrieval-augmented scoring needs the
training queries: :class:`TrainingQueries` embeds them once from the run's dataset folder (``--data``);
their votes go to visible labels only (hidden labels' columns are removed from the training matrix).
"""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import scipy.sparse as sp

from vixml.atomic import atomic_open
from vixml.errors import DataError, Problem
from vixml.inference.labels import Predictions
from vixml.retrieval import Memory

if TYPE_CHECKING:
    from vixml.inference.predictor import Predictor

__all__ = [
    "TrainingQueries",
    "predict_texts",
    "open_images",
    "write_predictions",
    "write_split_predictions",
    "OUTPUT_SUFFIXES",
]

logger = logging.getLogger(__name__)

OUTPUT_SUFFIXES = (".jsonl", ".npz")


@dataclass(frozen=True)
class TrainingQueries:
    """The training queries of a run's dataset, embedded by the run's model (the "+R" memory).

    Attributes:
        embeddings: (N, D) float32.
        labels: (N, L) CSR training label matrix.
    """

    embeddings: np.ndarray
    labels: sp.csr_matrix

    @classmethod
    def from_dataset(cls, predictor: Predictor, data_dir: str | Path) -> TrainingQueries:
        """Embed the training split of ``data_dir`` (which must have the run's labels)."""
        dataset = predictor.load_dataset(data_dir)
        embeddings = predictor.encoder(dataset).embed_split("trn", progress="embedding training queries")
        return cls(embeddings, dataset.trn_Y.tocsr())


def predict_texts(
    predictor: Predictor,
    texts: Sequence[str],
    images=None,
    *,
    k: int = 10,
    augment: TrainingQueries | None = None,
    source: str = "auto",
) -> Predictions:
    """Top-``k`` visible labels of free texts; with ``augment``, retrieval-augmented scores (docs/method.md 5)."""
    texts = [str(t) for t in texts]
    needs_embedding = predictor.retriever.resolve(source) != "sparse"
    queries = predictor.encode(texts, images) if needs_embedding else None
    return predict_embeddings(predictor, queries, texts, k=k, augment=augment, source=source)


def predict_embeddings(
    predictor: Predictor,
    queries: np.ndarray | None,
    texts: Sequence[str],
    *,
    k: int = 10,
    augment: TrainingQueries | None = None,
    source: str = "auto",
) -> Predictions:
    """As :func:`predict_texts`, from (n, D) query embeddings already computed (the server's batches)."""
    memory = None
    if augment is not None:
        from vixml.config import AugmentConfig

        ac = predictor.config.eval.augment or AugmentConfig()
        memory = Memory(
            augment.embeddings, augment.labels, ac.num_labels, ac.num_queries, ac.temperature, ac.label_weight
        )
    found = predictor.retriever.search(queries, list(texts), k, source=source, memory=memory)
    return predictor.labels.predictions(found.scores, found.ids, found.found)


def open_images(refs: list[list[str]], source: str) -> list[list]:
    """Image references of a query file (paths, URLs, ``data:`` URIs) -> PIL images, every failure listed."""
    from vixml.optional import require
    from vixml.vision.download import FetchFailure, read_reference

    image_module = require("PIL.Image", "vision")
    problems, out = [], []
    for row, items in enumerate(refs):
        loaded = []
        for ref in items:
            try:
                loaded.append(image_module.open(io.BytesIO(read_reference(ref))))
            except (FetchFailure, OSError) as exc:
                problems.append(Problem(source, f"item {row + 1}: image {ref[:80]!r}: {exc}", field="images"))
        out.append(loaded)
    if problems:
        raise DataError(problems)
    return out


def write_predictions(
    path: str | Path,
    predictions: Predictions,
    queries: Sequence[str],
    n_labels: int,
    query_ids: Sequence[str | None] | None = None,
) -> Path:
    """Write ``.jsonl`` (one record per query: its id when given, the query, labels' rows and own ids, texts,
    scores: :meth:`Predictions.records`) or ``.npz`` (CSR, rows only), atomically."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".npz":
        from vixml.data import write_label_matrix

        write_label_matrix(path, predictions.to_csr(n_labels))
    elif suffix == ".jsonl":
        with atomic_open(path) as fh:
            for record in predictions.records(list(queries), query_ids):
                fh.write(json.dumps(record, ensure_ascii=False) + "\n")
    else:
        raise DataError(Problem(str(path), f"unknown output format; expected one of {', '.join(OUTPUT_SUFFIXES)}"))
    return path


def write_split_predictions(
    path: str | Path, predictor: Predictor, predictions: sp.csr_matrix, data_dir: str | Path, split: str
) -> Path:
    """Write a dataset split's predictions: ``.jsonl`` records carrying each query's own id and text and each
    label's row, own id, text and score (:meth:`Predictions.records`); any other suffix as a label matrix."""
    from vixml.data import read_texts, write_label_matrix
    from vixml.data.layout import ID_FILES, TEXT_FILES

    path = Path(path)
    if path.suffix.lower() != ".jsonl":
        write_label_matrix(path, predictions)
        return path
    csr = predictions.tocsr()
    width = max(int(np.diff(csr.indptr).max(initial=0)), 1)
    scores = np.full((csr.shape[0], width), -np.inf, dtype=np.float32)
    indices = np.full((csr.shape[0], width), -1, dtype=np.int64)
    for row in range(csr.shape[0]):
        a, b = csr.indptr[row], csr.indptr[row + 1]
        order = np.lexsort((csr.indices[a:b], -csr.data[a:b].astype(np.float64)))  # score, then row, as search
        scores[row, : b - a] = csr.data[a:b][order]
        indices[row, : b - a] = csr.indices[a:b][order]
    texts = read_texts(Path(data_dir) / TEXT_FILES[split])
    ids_path = Path(data_dir) / ID_FILES[split]
    query_ids = list(read_texts(ids_path, layout="plain")) if ids_path.is_file() else None
    result = predictor.labels.predictions(scores, indices)
    with atomic_open(path) as fh:
        for record in result.records(list(texts), query_ids):
            fh.write(json.dumps(record, ensure_ascii=False) + "\n")
    return path
