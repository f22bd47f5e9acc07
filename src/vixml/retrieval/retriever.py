"""One retrieval path for every route: the sources, their fusion, the filter pairs, hidden and added labels, k.

Training's final predictions, ``vixml predict --data``, ``predict --texts``, the Python ``Predictor`` and the
server all call :meth:`Retriever.search`, so the same run gives the same labels whichever way it is asked.

Sources:
    ``dense``: maximum inner product over the visible labels (trained and added), exact or through an ANN
        index; with ``augment``, the "+R" scores (labels and training-query votes, docs/method.md 5) instead.
    ``sparse``: the TF-IDF label forest of :mod:`vixml.retrieval.sparse` (trained labels only).
    ``fused``: the union of the sources' top-``candidates`` lists, every candidate scored by every source (the
        dense score is exact for any label; the sparse and +R floors where they found none) and combined by the
        run's :class:`~vixml.retrieval.fusion.Fusion` (with ``augment``, +R is a third source beside the two).

Filter pairs (the dataset's reciprocal pairs) are removed before the cut to ``k``, so that every row still
gets ``k`` labels; hidden labels never come back from any source.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

import numpy as np
import scipy.sparse as sp

from vixml.errors import ConfigError
from vixml.retrieval.fusion import Fusion, combine
from vixml.search import topk

__all__ = ["Retriever", "Retrieved", "LabelMatrix", "Source", "SOURCES", "FOUND_DENSE", "FOUND_SPARSE", "FOUND_R"]

Source = Literal["auto", "dense", "sparse", "fused"]
SOURCES = ("auto", "dense", "sparse", "fused")
FOUND_DENSE, FOUND_SPARSE, FOUND_R = 1, 2, 4  # bits of Retrieved.found
_BLOCK = 512  # query rows fused at a time (bounds the (rows, candidates, D) gather)


class DenseLabels(Protocol):
    """What the retriever needs of the dense label side (a :class:`LabelMatrix`, or the inference LabelSet)."""

    num_labels: int

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]: ...

    def score(self, queries: np.ndarray, ids: np.ndarray) -> np.ndarray: ...

    def visible_columns(self) -> np.ndarray: ...


class LabelMatrix:
    """Plain (L, D) label embeddings as a dense source (training's evaluation: no overlay)."""

    def __init__(self, embeddings: np.ndarray):
        self.embeddings = embeddings
        self.num_labels = embeddings.shape[0]

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        return topk(queries, self.embeddings, min(k, self.num_labels), check_finite="queries")

    def score(self, queries: np.ndarray, ids: np.ndarray) -> np.ndarray:
        return gather_scores(queries, self.embeddings, ids)

    def visible_columns(self) -> np.ndarray:
        return np.ones(self.num_labels, dtype=bool)


def gather_scores(queries: np.ndarray, embeddings: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """(n, c) exact inner products of each query with its candidate labels (``-inf`` where id < 0)."""
    safe = np.maximum(ids, 0)
    out = np.einsum(
        "nd,ncd->nc",
        queries.astype(np.float32, copy=False),
        np.asarray(embeddings[safe.ravel()]).reshape(*ids.shape, -1).astype(np.float32, copy=False),
    )
    return np.where(ids >= 0, out, -np.inf).astype(np.float32)


@dataclass(frozen=True)
class Retrieved:
    """Top-k labels of n queries: (n, k) scores (descending, -inf = padding), ids (-1), and which source
    found each (bits :data:`FOUND_DENSE`, :data:`FOUND_SPARSE`, :data:`FOUND_R`)."""

    scores: np.ndarray
    ids: np.ndarray
    found: np.ndarray


@dataclass
class Memory:
    """The "+R" memory: the training queries' embeddings and label rows, and the scoring settings."""

    embeddings: np.ndarray
    labels: sp.csr_matrix
    num_labels: int = 100
    num_queries: int = 100
    temperature: float = 0.05
    label_weight: float = 0.9
    exclude_self: bool = False  # the queries are the training queries themselves: row i never votes for row i


class Retriever:
    """Every route's search: sources, fusion, filter pairs, hidden and added labels, k.

    Args:
        labels: the dense label side (:class:`LabelMatrix`, or the inference LabelSet with its overlay).
        sparse: the run's sparse companion (None: dense only).
        fusion: the run's fusion rule (None with a companion: equal weights, z-scores).
        candidates: each source's list length before fusion.
    """

    def __init__(self, labels: DenseLabels, sparse=None, fusion: Fusion | None = None, *, candidates: int = 100):
        self.labels = labels
        self.sparse = sparse
        self.fusion = fusion or Fusion()
        self.candidates = candidates

    def resolve(self, source: str) -> str:
        """``auto`` -> ``fused`` with a sparse companion, else ``dense``; refuse what the run cannot do."""
        if source not in SOURCES:
            raise ConfigError(f"unknown source {source!r}; valid: {', '.join(SOURCES)}")
        if source == "auto":
            return "fused" if self.sparse is not None else "dense"
        if source in ("sparse", "fused") and self.sparse is None:
            raise ConfigError(
                f"source {source!r} needs a sparse companion, and this run has none: train with "
                "--set sparse={} (configs/hybrid.yaml), or ask for --source dense"
            )
        return source

    def search(
        self,
        queries: np.ndarray | None,
        texts: Sequence[str] | None,
        k: int,
        *,
        source: str = "auto",
        exclude: np.ndarray | None = None,
        memory: Memory | None = None,
    ) -> Retrieved:
        """Top-``k`` visible labels of n queries.

        Args:
            queries: (n, D) query embeddings (None for ``sparse``).
            texts: the n query texts (needed by ``sparse`` and ``fused``).
            k: labels per query.
            source: ``auto``, ``dense``, ``sparse`` or ``fused``.
            exclude: (m, 2) (row, label) pairs never returned (the filter pairs), removed before the cut.
            memory: "+R" scoring of the dense source with these training queries.
        """
        source = self.resolve(source)
        n = len(texts) if queries is None else queries.shape[0]
        if source != "dense" and (texts is None or len(texts) != n):
            raise ConfigError(f"the {source} source reads the query texts: give the {n} texts")
        pairs = _pair_keys(exclude, self.labels.num_labels)
        extra = int(np.bincount(exclude[:, 0]).max()) if exclude is not None and len(exclude) else 0
        out_s = np.full((n, k), -np.inf, dtype=np.float32)
        out_i = np.full((n, k), -1, dtype=np.int64)
        out_f = np.zeros((n, k), dtype=np.uint8)
        for start in range(0, max(n, 1), _BLOCK):
            rows = slice(start, min(start + _BLOCK, n))
            if rows.start >= rows.stop:
                break
            q = None if queries is None else queries[rows]
            t = None if texts is None else list(texts[rows])
            s, i, f = self._block(source, q, t, k, extra, memory, rows.start)
            ids_keys = _keys(i, rows.start, self.labels.num_labels)
            s = np.where((i >= 0) & ~np.isin(ids_keys, pairs), s, -np.inf)
            s, i, f = _cut(s, i, f, k)
            out_s[rows], out_i[rows], out_f[rows] = s, i, f
        return Retrieved(out_s, out_i, out_f)

    # ------------------------------------------------------------------------------------------ sources
    def _block(self, source, q, texts, k, extra, memory, first_row):
        depth = k + extra
        if source == "dense":
            ids, scores = self._dense(q, depth, memory, first_row)
            bit = FOUND_DENSE if memory is None else FOUND_R
            return scores, ids, np.where(ids >= 0, bit, 0).astype(np.uint8)
        if source == "sparse":
            scores, ids = self._sparse(texts, depth)
            return scores, ids, np.where(ids >= 0, FOUND_SPARSE, 0).astype(np.uint8)
        width = max(self.candidates, depth)
        ids, sources, found = self.candidate_scores(q, texts, width, memory, first_row)
        fused = combine(sources, ids >= 0, self.fusion)
        return fused.astype(np.float32), ids, found

    def candidate_scores(self, q, texts, width: int, memory: Memory | None = None, first_row: int = 0):
        """Each query's candidates (the union of the sources' top ``width``) and every source's score of them.

        Returns:
            ids (n, c) (-1 = none); sources: ``dense`` (n, c) exact inner products, ``sparse`` (n, c) scores (0
            where the sparse source did not find the label) and with ``memory`` ``r`` (n, c) +R probability mass
            (0 where it did not reach the label); found (n, c) bits.
        """
        s_scores, s_ids = self._sparse(texts, width)
        depth = max(width, memory.num_labels if memory is not None else 0)
        d_scores, d_ids = self.labels.search(q, min(depth, self.labels.num_labels))  # one search serves +R too
        if memory is None:
            ids = _union(d_ids, s_ids)
            found = _member(ids, d_ids) * FOUND_DENSE
        else:
            hits = (d_scores[:, : memory.num_labels], d_ids[:, : memory.num_labels])
            r_ids, r_scores = self._dense(q, width, memory, first_row, label_hits=hits)
            d_scores, d_ids = d_scores[:, :width], d_ids[:, :width]
            ids = _union(_union(d_ids, r_ids), s_ids)
            found = _member(ids, d_ids) * FOUND_DENSE + _member(ids, r_ids) * FOUND_R
        sources = {"dense": self.labels.score(q, ids).astype(np.float64), "sparse": _lookup(s_ids, s_scores, ids, 0.0)}
        if memory is not None:
            sources["r"] = _lookup(r_ids, r_scores, ids, floor=0.0)
        found = found + _member(ids, s_ids) * FOUND_SPARSE
        return ids, sources, found.astype(np.uint8)

    def _dense(self, q, depth, memory, first_row=0, label_hits=None):
        """Top ``depth`` (ids, scores) by inner product, or with ``memory`` by +R (``label_hits``: its label
        search when the caller already made it)."""
        if memory is None:
            scores, ids = self.labels.search(q, min(depth, self.labels.num_labels))
            return ids, scores
        from vixml.retrieval.augment import augmented_scores

        label_scores, label_ids = label_hits or self.labels.search(q, memory.num_labels)
        query_scores, query_ids = topk(q, memory.embeddings, min(memory.num_queries, memory.embeddings.shape[0]))
        if memory.exclude_self:
            own = np.arange(first_row, first_row + q.shape[0])[:, None]
            query_ids = np.where(query_ids == own, -1, query_ids)
        votes = _visible_columns(memory.labels, self.labels.visible_columns())
        matrix = augmented_scores(
            label_scores,
            label_ids,
            query_scores,
            query_ids,
            votes,
            temperature=memory.temperature,
            label_weight=memory.label_weight,
            k=depth,
        )
        scores, ids = rows_topk(matrix, depth)
        return ids, scores

    def _sparse(self, texts, depth):
        visible = self.labels.visible_columns()
        hidden = int((~visible[: self.sparse.num_labels]).sum())
        scores, ids = self.sparse.search(texts, min(depth + hidden, self.sparse.num_labels))
        shown = (ids >= 0) & visible[np.maximum(ids, 0)]
        scores = np.where(shown, scores, -np.inf).astype(np.float32)
        ids = np.where(shown, ids, -1)
        if hidden:
            order = np.argsort(~shown, axis=1, kind="stable")[:, :depth]
            scores, ids = np.take_along_axis(scores, order, 1), np.take_along_axis(ids, order, 1)
        return scores[:, :depth], ids[:, :depth]


# ---------------------------------------------------------------------------------------------- helpers
def _keys(ids: np.ndarray, first_row: int, num_labels: int) -> np.ndarray:
    rows = np.arange(first_row, first_row + ids.shape[0], dtype=np.int64)[:, None]
    return rows * (num_labels + 1) + ids


def _pair_keys(exclude: np.ndarray | None, num_labels: int) -> np.ndarray:
    if exclude is None or not len(exclude):
        return np.zeros(0, dtype=np.int64)
    pairs = np.asarray(exclude, dtype=np.int64)
    return np.unique(pairs[:, 0] * (num_labels + 1) + pairs[:, 1])


def _cut(scores, ids, found, k):
    """Top ``k`` of each row by score (descending), ties by lower id; padding -inf / -1 / 0."""
    ranked = np.where((ids >= 0) & (scores > -np.inf), ids, np.iinfo(np.int64).max)
    order = np.lexsort((ranked, -scores.astype(np.float64)), axis=1)[:, :k]
    scores = np.take_along_axis(scores, order, 1)
    ids = np.take_along_axis(ids, order, 1)
    found = np.take_along_axis(found, order, 1)
    gone = scores == -np.inf
    ids, found = np.where(gone, -1, ids), np.where(gone, 0, found)
    if scores.shape[1] < k:
        pad = ((0, 0), (0, k - scores.shape[1]))
        scores = np.pad(scores, pad, constant_values=-np.inf)
        ids, found = np.pad(ids, pad, constant_values=-1), np.pad(found, pad)
    return scores.astype(np.float32), ids, found


def _union(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per row, the distinct ids of both lists (sorted; -1 padding at the end)."""
    both = np.sort(np.concatenate([a, b], axis=1), axis=1)
    dup = np.zeros_like(both, dtype=bool)
    dup[:, 1:] = both[:, 1:] == both[:, :-1]
    both = np.where(dup | (both < 0), np.iinfo(np.int64).max, both)
    both = np.sort(both, axis=1)
    return np.where(both == np.iinfo(np.int64).max, -1, both)


def _lookup(src_ids: np.ndarray, src_scores: np.ndarray, ids: np.ndarray, floor: float) -> np.ndarray:
    """Each row's score of ``ids`` in the list (src_ids, src_scores); ``floor`` where the list lacks it."""
    width = max(int(src_ids.max(initial=0)), int(ids.max(initial=0))) + 2
    src_keys = np.arange(src_ids.shape[0], dtype=np.int64)[:, None] * width + src_ids
    src_keys = np.where(src_ids >= 0, src_keys, -1).ravel()
    order = np.argsort(src_keys, kind="stable")
    sorted_keys = src_keys[order]
    keys = np.arange(ids.shape[0], dtype=np.int64)[:, None] * width + ids
    at = np.clip(np.searchsorted(sorted_keys, keys), 0, max(sorted_keys.shape[0] - 1, 0))
    if not sorted_keys.shape[0]:
        return np.full(ids.shape, floor, dtype=np.float64)
    hit = (sorted_keys[at] == keys) & (ids >= 0)
    values = src_scores.ravel()[order][at]
    return np.where(hit & np.isfinite(values), values, floor).astype(np.float64)


def _member(ids: np.ndarray, src_ids: np.ndarray) -> np.ndarray:
    """(n, c) 1 where a row's id is in the same row of ``src_ids``."""
    marker = np.where(src_ids >= 0, 1.0, -np.inf)
    return (_lookup(src_ids, marker, ids, floor=0.0) > 0).astype(np.uint8)


def _visible_columns(train_y: sp.csr_matrix, visible: np.ndarray) -> sp.csr_matrix:
    """``train_y`` widened to every label id in use, with the hidden labels' columns emptied."""
    wide = sp.csr_matrix((train_y.data, train_y.indices, train_y.indptr), shape=(train_y.shape[0], visible.shape[0]))
    if visible.all():
        return wide
    return (wide @ sp.diags(visible.astype(np.float32))).tocsr()


def rows_topk(matrix: sp.csr_matrix, k: int) -> tuple[np.ndarray, np.ndarray]:
    """A CSR with at most k entries per row -> (n, k) scores (descending, ties: lower id) and ids."""
    n = matrix.shape[0]
    scores = np.full((n, k), -np.inf, dtype=np.float32)
    ids = np.full((n, k), -1, dtype=np.int64)
    for row in range(n):
        lo, hi = matrix.indptr[row], matrix.indptr[row + 1]
        cols, vals = matrix.indices[lo:hi], matrix.data[lo:hi]
        order = np.lexsort((cols, -vals.astype(np.float64)))[:k]
        scores[row, : order.shape[0]] = vals[order]
        ids[row, : order.shape[0]] = cols[order]
    return scores, ids
