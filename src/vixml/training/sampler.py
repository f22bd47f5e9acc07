"""Training batches of docs/method.md 4: one sampled positive per query, in-batch targets, NGAME cluster batching.

Each batch item is one query and ONE of its positive labels, drawn uniformly or with probability proportional
to the label's inverse propensity (which favours tail labels). The batch's B sampled labels are the candidate
set of every query in the batch, and ``targets[i, j]`` marks each candidate j that is ANY positive of query i
(so duplicates of a label, or a second positive of query i sampled by another query, are not negatives).

NGAME (Dahiya et al., WSDM 2023) fills batches with clusters of similar queries so the in-batch negatives are
hard: :class:`EpochBatchSampler` shuffles the clusters every epoch, concatenates them and cuts the result into
batches; the ``mining`` section (:class:`vixml.config.MiningConfig`) says when to rebuild the clusters and how big
they are.

Everything here is vectorised numpy over the CSR arrays: no Python loop per query, no dense L-wide rows.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from vixml.config.fields import PositiveSampling
from vixml.errors import ConfigError, DataError, Problem

if TYPE_CHECKING:
    import scipy.sparse

__all__ = ["Batch", "EpochBatchSampler", "PositiveSampling", "in_batch_targets"]

logger = logging.getLogger(__name__)

_SAMPLINGS = ("uniform", "inverse_propensity")


@dataclass(frozen=True)
class Batch:
    """One training batch.

    Attributes:
        query_rows: (B,) int64 rows of the training label matrix (the queries).
        label_ids: (B,) label sampled as the positive of each query: the batch's candidate labels.
        targets: (B, B) bool, ``targets[i, j]`` is True when candidate ``label_ids[j]`` is a positive of
            query ``query_rows[i]`` (the diagonal is always True).
    """

    query_rows: np.ndarray
    label_ids: np.ndarray
    targets: np.ndarray

    def __len__(self) -> int:
        return int(self.query_rows.shape[0])


def _row_entries(indptr: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """CSR positions of every entry of ``rows`` (concatenated in ``rows`` order) and each entry's row slot."""
    starts = indptr[rows]
    degrees = indptr[rows + 1] - starts
    slot = np.repeat(np.arange(rows.shape[0], dtype=np.int64), degrees)
    shift = np.repeat(starts - (np.cumsum(degrees) - degrees), degrees)
    return np.arange(slot.shape[0], dtype=np.int64) + shift, slot


def _targets(indptr: np.ndarray, indices: np.ndarray, query_rows: np.ndarray, label_ids: np.ndarray) -> np.ndarray:
    """(B, B) bool in-batch targets from the CSR arrays; see :func:`in_batch_targets`."""
    b = query_rows.shape[0]
    positions, slot = _row_entries(indptr, query_rows)
    positives = indices[positions]  # every positive of every batch query, row slot in ``slot``
    order = np.argsort(label_ids, kind="stable")
    candidates = label_ids[order]
    left = np.searchsorted(candidates, positives, side="left")
    hits = np.searchsorted(candidates, positives, side="right") - left  # >1 where the label is duplicated
    total = int(hits.sum())
    shift = np.repeat(left - (np.cumsum(hits) - hits), hits)
    targets = np.zeros((b, b), dtype=bool)
    targets[np.repeat(slot, hits), order[np.arange(total, dtype=np.int64) + shift]] = True
    return targets


def _as_csr(train_Y: scipy.sparse.spmatrix) -> scipy.sparse.csr_matrix:
    """``train_Y`` as canonical CSR (sorted, no duplicates, no stored zeros); copies only when it must."""
    import scipy.sparse

    if not scipy.sparse.issparse(train_Y):
        raise ValueError(f"train_Y must be a scipy sparse matrix, got {type(train_Y).__name__}")
    y = scipy.sparse.csr_matrix(train_Y)
    if not y.has_canonical_format or (y.data == 0).any():
        y = y.copy()
        y.sum_duplicates()
        y.eliminate_zeros()
    return y


def in_batch_targets(train_Y: scipy.sparse.spmatrix, query_rows: np.ndarray, label_ids: np.ndarray) -> np.ndarray:
    """Mark every (query i, candidate j) where candidate label j is any positive of query i.

    Cost O(P log B) for the P positives of the batch's queries; no dense (B, L) rows.

    Args:
        train_Y: (N, L) scipy sparse training label matrix (its non-zero pattern is used).
        query_rows: (B,) rows of ``train_Y``.
        label_ids: (B,) candidate labels (may repeat).

    Returns:
        (B, B) bool targets.
    """
    y = _as_csr(train_Y)
    query_rows = np.asarray(query_rows, dtype=np.int64)
    label_ids = np.asarray(label_ids)
    if query_rows.shape != label_ids.shape or query_rows.ndim != 1:
        raise ValueError(f"query_rows {query_rows.shape} and label_ids {label_ids.shape} must be equal (B,) arrays")
    return _targets(y.indptr.astype(np.int64), y.indices, query_rows, label_ids)


class EpochBatchSampler:
    """The batches of every epoch, deterministic given ``(seed, epoch)``.

    Queries without any positive label are left out of every epoch (counted in ``num_skipped``). In random
    mode an epoch is a permutation of the other queries; in cluster mode (after :meth:`set_clusters`) the
    clusters are shuffled, concatenated (members keep their order) and cut into batches, so a cluster lies
    inside one batch whenever ``batch_size`` is a multiple of the (equal) cluster sizes.

    Args:
        train_Y: (N, L) scipy sparse training label matrix; its non-zero pattern marks the positives.
        batch_size: queries per batch (B).
        seed: base seed; epoch ``e`` draws from ``numpy.random.default_rng([seed, e])``.
        positive_sampling: ``"uniform"`` over a query's positives, or ``"inverse_propensity"``.
        A: propensity parameter A (docs/method.md 4: 0.6).
        B: propensity parameter B (docs/method.md 4: 2.6).
        drop_last: drop the last batch of an epoch when it has fewer than ``batch_size`` queries.
        source: the training label file, named in errors.

    Raises:
        ConfigError: bad ``batch_size``, ``seed``, ``positive_sampling``, or propensity ``A`` / ``B``.
        DataError: no query has a positive label.
    """

    def __init__(
        self,
        train_Y: scipy.sparse.spmatrix,
        batch_size: int,
        *,
        seed: int = 0,
        positive_sampling: PositiveSampling = "inverse_propensity",
        A: float = 0.6,
        B: float = 2.6,
        drop_last: bool = False,
        source: str = "<train_Y>",
    ) -> None:
        problems = []
        if batch_size < 1:
            problems.append(f"batch_size must be >= 1, got {batch_size}")
        if seed < 0:
            problems.append(f"seed must be >= 0, got {seed}")
        if positive_sampling not in _SAMPLINGS:
            problems.append(f"positive_sampling must be one of {_SAMPLINGS}, got {positive_sampling!r}")
        if problems:
            raise ConfigError("invalid batch sampler settings:\n" + "\n".join(f"  - {p}" for p in problems))
        y = _as_csr(train_Y)
        self.batch_size = batch_size
        self.seed = seed
        self.positive_sampling = positive_sampling
        self.drop_last = drop_last
        self.num_queries, self.num_labels = y.shape
        self._indptr = y.indptr.astype(np.int64)
        self._indices = y.indices
        degrees = np.diff(self._indptr)
        self._has_labels = degrees > 0
        self._rows = np.flatnonzero(self._has_labels).astype(np.int64)
        self.num_skipped = self.num_queries - self._rows.shape[0]
        if self._rows.shape[0] == 0:
            raise DataError(Problem(file=source, message="no training query has a positive label"))
        if self.num_skipped:
            logger.warning("%d of %d training queries have no label and are skipped", self.num_skipped, y.shape[0])
        self._cum_weights: np.ndarray | None = None
        if positive_sampling == "inverse_propensity":
            from vixml.metrics import inverse_propensity  # lazy: importing the metrics package costs ~0.4 s

            binary = type(y)((np.ones(y.nnz, np.float32), y.indices, y.indptr), shape=y.shape)
            # Floored: with N = 1, log N - 1 < 0 makes a weight 0; every positive must stay drawable.
            weights = np.maximum(inverse_propensity(binary, A, B), 1e-12)
            self._cum_weights = np.concatenate(([0.0], np.cumsum(weights[self._indices], dtype=np.float64)))
        self._cluster_order: np.ndarray | None = None
        self._cluster_offsets: np.ndarray | None = None
        self.cluster_size: int | None = None

    @property
    def clustered(self) -> bool:
        """Whether epochs are built from clusters (True after :meth:`set_clusters` with clusters)."""
        return self._cluster_order is not None

    def __len__(self) -> int:
        """Batches per epoch."""
        n = self._rows.shape[0]
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def set_clusters(self, clusters: Sequence[np.ndarray] | Any | None, cluster_size: int | None = None) -> None:
        """Switch to cluster batching (or back to random batches with ``None``).

        Args:
            clusters: a partition of the query rows: a sequence of (n_c,) row arrays, or an object with
                ``order`` (N,) and ``offsets`` (K + 1,) arrays (cluster c = ``order[offsets[c]:offsets[c+1]]``).
                It must hold every query that has a label exactly once; label-less queries may appear.
            cluster_size: the nominal cluster size (checkpointed and logged); defaults to the largest cluster.

        Raises:
            ValueError: the clusters are not such a partition.
        """
        if clusters is None:
            self._cluster_order = self._cluster_offsets = None
            self.cluster_size = None
            return
        if hasattr(clusters, "order") and hasattr(clusters, "offsets"):
            order = np.asarray(clusters.order, dtype=np.int64)
            offsets = np.asarray(clusters.offsets, dtype=np.int64)
        else:
            parts = [np.asarray(c, dtype=np.int64).ravel() for c in clusters]
            order = np.concatenate(parts) if parts else np.zeros(0, np.int64)
            offsets = np.concatenate(([0], np.cumsum([p.shape[0] for p in parts], dtype=np.int64)))
        self._check_partition(order, offsets)
        self._cluster_order, self._cluster_offsets = order, offsets
        sizes = np.diff(offsets)
        self.cluster_size = int(cluster_size) if cluster_size is not None else int(sizes.max(initial=0))

    def _check_partition(self, order: np.ndarray, offsets: np.ndarray) -> None:
        if offsets.ndim != 1 or offsets.shape[0] < 1 or offsets[0] != 0 or offsets[-1] != order.shape[0]:
            raise ValueError("cluster offsets must start at 0 and end at len(order)")
        if (np.diff(offsets) < 0).any():
            raise ValueError("cluster offsets must be non-decreasing")
        if order.shape[0] and (order.min() < 0 or order.max() >= self.num_queries):
            raise ValueError(f"cluster members must be query rows in [0, {self.num_queries})")
        seen = np.bincount(order, minlength=self.num_queries)
        duplicated, missing = int((seen > 1).sum()), int((self._has_labels & (seen == 0)).sum())
        if duplicated or missing:
            raise ValueError(
                f"clusters must partition the training queries: {duplicated} rows appear more than once, "
                f"{missing} labelled rows appear in no cluster"
            )

    def _epoch_order(self, rng: np.random.Generator) -> np.ndarray:
        """(M,) the labelled query rows in this epoch's order."""
        if self._cluster_order is None:
            return rng.permutation(self._rows)
        sizes = np.diff(self._cluster_offsets)
        perm = rng.permutation(sizes.shape[0])
        new_sizes = sizes[perm]
        starts = self._cluster_offsets[:-1][perm]
        gather = np.arange(self._cluster_order.shape[0], dtype=np.int64) + np.repeat(
            starts - (np.cumsum(new_sizes) - new_sizes), new_sizes
        )
        order = self._cluster_order[gather]
        return order[self._has_labels[order]]

    def _sample_positives(self, rng: np.random.Generator) -> np.ndarray:
        """(N,) one sampled positive label per labelled row (rows without labels hold -1)."""
        rows = self._rows  # ascending, so the searchsorted keys below are ascending too (cache-friendly)
        starts = self._indptr[rows]
        ends = self._indptr[rows + 1]
        u = rng.random(rows.shape[0])
        if self._cum_weights is None:
            pos = starts + (u * (ends - starts)).astype(np.int64)
        else:
            lo, hi = self._cum_weights[starts], self._cum_weights[ends]
            pos = np.searchsorted(self._cum_weights, lo + u * (hi - lo), side="right") - 1
        pos = np.clip(pos, starts, ends - 1)  # guards float rounding at the row edges
        labels = np.full(self.num_queries, -1, dtype=np.int64)
        labels[rows] = self._indices[pos]
        return labels

    def epoch_batches(self, epoch: int, start: int = 0) -> Iterator[Batch]:
        """The batches of (0-based) ``epoch``; the same ``(seed, epoch)`` always gives the same batches.

        Every labelled query appears exactly once per epoch (but for the dropped tail with ``drop_last``).
        ``start`` skips the epoch's first batches (a run resumed inside an epoch continues with the same ones).
        """
        if epoch < 0:
            raise ValueError(f"epoch must be >= 0, got {epoch}")
        rng = np.random.default_rng([self.seed, epoch])
        order = self._epoch_order(rng)
        labels = self._sample_positives(rng)[order]
        for first in range(start * self.batch_size, len(self) * self.batch_size, self.batch_size):
            rows = order[first : first + self.batch_size]
            label_ids = labels[first : first + self.batch_size]
            yield Batch(rows, label_ids, _targets(self._indptr, self._indices, rows, label_ids))

    def state_dict(self) -> dict[str, Any]:
        """The sampler's resumable state (torch tensors and plain values: ``torch.load(weights_only=True)``-safe)."""
        import torch

        clustered = self._cluster_order is not None
        return {
            "num_queries": self.num_queries,
            "seed": self.seed,
            "batch_size": self.batch_size,
            "positive_sampling": self.positive_sampling,
            "cluster_size": self.cluster_size,
            "cluster_order": torch.from_numpy(self._cluster_order) if clustered else None,
            "cluster_offsets": torch.from_numpy(self._cluster_offsets) if clustered else None,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` saved (the clusters and their size).

        Raises:
            ValueError: the state belongs to a training matrix with another number of queries.
        """
        if int(state["num_queries"]) != self.num_queries:
            raise ValueError(f"sampler state is for {state['num_queries']} queries, this data has {self.num_queries}")
        for key in ("seed", "batch_size", "positive_sampling"):
            if state.get(key) != getattr(self, key):
                logger.warning("resuming with %s=%r, the checkpoint had %r", key, getattr(self, key), state.get(key))
        if state.get("cluster_order") is None:
            self.set_clusters(None)
            return
        order = np.asarray(state["cluster_order"], dtype=np.int64)
        offsets = np.asarray(state["cluster_offsets"], dtype=np.int64)
        self._check_partition(order, offsets)
        self._cluster_order, self._cluster_offsets = order.copy(), offsets.copy()
        self.cluster_size = None if state.get("cluster_size") is None else int(state["cluster_size"])
