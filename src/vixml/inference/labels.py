"""The labels a run searches: the trained ones, plus labels added after training, minus hidden ones.

A :class:`LabelSet` holds the trained label embeddings (possibly a read-only memory map shared by server
workers), the run's :class:`~vixml.inference.overlay.LabelOverlay` and the label texts. Search is exact:
the trained labels are searched with ``k + h`` (h = hidden trained labels, up to a bound; beyond it a
compacted copy is searched) and the hidden ones dropped, the added labels are searched apart, and both
lists are merged by score (ties: lower id first, as :func:`vixml.search.topk` ranks). Edits build a new
immutable view and swap it in, so a search running in another thread always sees one consistent state.

New labels are encoded as trained labels are (:func:`encode_new_labels`): the label side of the dual
encoder over their text (and images); with PRIME, the prototype network over that embedding, a free
vector and a zero centroid, which is what the reference computes for a label without training queries.
The free vector is the one of the cluster whose mean trained label embedding is nearest to the new
label's embedding: the assignment rule of the k-means that made the clusters, applied to a new point.

Labels have a row (0..L-1 trained, then the added ones) and an id of their own: the catalogue's ``id``
(``RUN/label_ids.txt``, kept by training), the one given to an added label, or else the row number as a
string. A label is named by either, with one rule (:meth:`LabelSet.find`): a text that is some label's
own id names that label, ids first, even when it looks like a row number; otherwise a whole number is a
row. Python ints are always rows. Every edit (add, hide, unhide) is logged in the overlay's history.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from vixml.errors import DataError, Problem
from vixml.inference.overlay import LabelOverlay
from vixml.search import to_csr, topk

if TYPE_CHECKING:
    import scipy.sparse as sp

    from vixml.inference.predictor import Predictor

__all__ = [
    "LabelIdTaken",
    "LabelSet",
    "Predictions",
    "add_labels",
    "encode_new_labels",
    "hide_labels",
    "merge_topk",
    "read_label_ids",
    "unhide_labels",
]

logger = logging.getLogger(__name__)

_NO_RUN = "this predictor has no run folder to keep the edits in: load it with Predictor.load(run)"
OVERFETCH_MAX = 1024  # hidden trained labels handled by over-fetching; more -> search a compacted copy
MAX_ID_CHARS = 256


class LabelIdTaken(DataError):
    """A new label's id is already another label's id (the server answers 409)."""


@dataclass(frozen=True)
class Predictions:
    """Top-k labels of n queries.

    Unpacks like :func:`vixml.search.topk`'s result: ``scores, indices = predictor.predict(...)``.

    Attributes:
        scores: (n, k) float32, descending per row (``-inf`` = padding).
        indices: (n, k) int64 label rows (``-1`` = padding).
        texts: per query, the k label texts (None for padding, or when the run has no label texts).
        found: (n, k) bits of the sources that found each label (:mod:`vixml.retrieval`), or None.
        ids: per query, the k labels' own ids (the catalogue's; the row number as a string for a label
            without one; None for padding).
    """

    scores: np.ndarray
    indices: np.ndarray
    texts: list[list[str | None]]
    found: np.ndarray | None = None
    ids: list[list[str | None]] | None = None

    def __iter__(self):
        yield self.scores
        yield self.indices

    def __len__(self) -> int:
        return self.indices.shape[0]

    def records(
        self, queries: Sequence[str] | None = None, query_ids: Sequence[str | None] | None = None
    ) -> list[dict]:
        """One JSON-ready dict per query: ``query_id`` and ``query`` (when given), ``labels`` (rows), ``ids``
        (the labels' own ids), ``texts``, ``scores`` (and ``sources``)."""
        out = []
        for row in range(len(self)):
            keep = self.indices[row] >= 0
            record = {}
            if query_ids is not None and query_ids[row] is not None:
                record["query_id"] = query_ids[row]
            if queries is not None:
                record["query"] = queries[row]
            record["labels"] = self.indices[row][keep].tolist()
            ids = self.ids[row] if self.ids is not None else [str(i) for i in self.indices[row]]
            record["ids"] = [i for i, k in zip(ids, keep, strict=True) if k]
            record["texts"] = [t for t, k in zip(self.texts[row], keep, strict=True) if k]
            record["scores"] = [round(float(s), 6) for s in self.scores[row][keep]]
            if self.found is not None:
                record["sources"] = [source_names(int(f)) for f in self.found[row][keep]]
            out.append(record)
        return out

    def to_csr(self, n_labels: int) -> sp.csr_matrix:
        """(n, n_labels) CSR in the prediction-file format."""
        return to_csr(self.scores, self.indices, n_labels)


def source_names(bits: int) -> list[str]:
    """The sources named by a :class:`~vixml.retrieval.Retrieved` ``found`` value."""
    from vixml.retrieval import FOUND_DENSE, FOUND_R, FOUND_SPARSE

    return [name for bit, name in ((FOUND_DENSE, "dense"), (FOUND_SPARSE, "sparse"), (FOUND_R, "+R")) if bits & bit]


def _row_number(text: str) -> int | None:
    """``text`` as a whole number when it is one (ASCII digits, short enough to convert), else None."""
    return int(text) if 0 < len(text) <= 18 and text.isascii() and text.isdigit() else None


def merge_topk(parts: Sequence[tuple[np.ndarray, np.ndarray]], k: int) -> tuple[np.ndarray, np.ndarray]:
    """Merge several (scores (n, ki), ids (n, ki)) into the top ``k``: score descending, then id ascending."""
    scores = np.concatenate([p[0] for p in parts], axis=1)
    ids = np.concatenate([p[1] for p in parts], axis=1)
    ranked_ids = np.where(ids >= 0, ids, np.iinfo(np.int64).max)
    order = np.lexsort((ranked_ids, -scores.astype(np.float64)), axis=1)[:, :k]
    scores, ids = np.take_along_axis(scores, order, 1), np.take_along_axis(ids, order, 1)
    if scores.shape[1] < k:
        pad = k - scores.shape[1]
        scores = np.pad(scores, ((0, 0), (0, pad)), constant_values=-np.inf)
        ids = np.pad(ids, ((0, 0), (0, pad)), constant_values=-1)
    return scores.astype(np.float32, copy=False), ids


@dataclass(frozen=True)
class _View:
    """One immutable state of the label set (what a search reads)."""

    overlay: LabelOverlay
    hidden_base: np.ndarray  # sorted trained ids that are hidden
    added_ids: np.ndarray  # visible added ids
    added_emb: np.ndarray  # their embeddings
    added_keys: dict  # own id -> row, of every added label
    compact_ids: np.ndarray | None  # visible trained ids when too many are hidden to over-fetch
    compact_emb: np.ndarray | None


class LabelSet:
    """Trained labels + the overlay: exact search over the visible labels, texts, and edits.

    Args:
        base_embeddings: (L, D) trained label embeddings (a read-only memory map is fine).
        base_texts: the L label texts in row order, or None (results then carry no texts).
        overlay: the run's edits (default: none).
        base_ids: the L labels' own ids in row order (a catalogue's), or None: row numbers are their ids.
    """

    def __init__(
        self,
        base_embeddings: np.ndarray,
        base_texts: Sequence[str] | None,
        overlay: LabelOverlay | None = None,
        base_ids: Sequence[str] | None = None,
    ):
        self.base = base_embeddings
        self.base_texts = base_texts
        self.base_ids = base_ids
        self._base_rows: dict[str, int] | None = None  # own id -> row, built at the first lookup
        self._edit = threading.Lock()
        self._view = self._make_view(overlay or LabelOverlay(base_embeddings.shape[0], base_embeddings.shape[1], ""))
        self._cluster_means: np.ndarray | None = None
        self.index = None  # an ANN index over the trained labels (vixml.search.Index), or None: exact search

    def use_index(self, index) -> None:
        """Search the trained labels through ``index`` (built over ``base_embeddings``); added labels stay exact."""
        if index is not None and index.size != self.num_trained:
            raise ValueError(f"the index holds {index.size} vectors, not the {self.num_trained} trained labels")
        self.index = index

    # ------------------------------------------------------------------------------------------ reading
    @property
    def overlay(self) -> LabelOverlay:
        return self._view.overlay

    @property
    def num_trained(self) -> int:
        return self.base.shape[0]

    @property
    def num_labels(self) -> int:
        """Every id in use (hidden ones included): results' ids are below this."""
        return self._view.overlay.num_labels

    @property
    def num_visible(self) -> int:
        return self.num_labels - len(self._view.overlay.hidden)

    def text(self, label: int) -> str | None:
        if label < 0:
            return None
        if label < self.num_trained:
            return None if self.base_texts is None else self.base_texts[label]
        return self._view.overlay.added[label - self.num_trained].text

    def is_hidden(self, label: int) -> bool:
        return label in self._view.overlay.hidden

    def key(self, label: int) -> str | None:
        """The label's own id: the catalogue's, the one it was added with, else its row as a string."""
        if label < 0:
            return None
        if label < self.num_trained:
            return str(label) if self.base_ids is None else self.base_ids[label]
        added = self._view.overlay.added[label - self.num_trained]
        return added.catalogue_id if added.catalogue_id is not None else str(label)

    def row_of_id(self, key: str) -> int | None:
        """The row whose own id is ``key`` (None: no label has it)."""
        if self.base_ids is None:
            base = _row_number(key)
            if base is not None and base < self.num_trained and str(base) == key:
                return base
        else:
            if self._base_rows is None:
                rows: dict[str, int] = {}
                for row, own in enumerate(self.base_ids):
                    rows.setdefault(own, row)
                self._base_rows = rows
            if key in self._base_rows:
                return self._base_rows[key]
        return self._view.added_keys.get(key)

    def find(self, ref) -> int | None:
        """The row a reference names, or None: a Python int is a row; a text is a label's own id first, then
        a whole number 0..num_labels-1 is a row."""
        if isinstance(ref, (int, np.integer)) and not isinstance(ref, bool):
            return int(ref) if 0 <= int(ref) < self.num_labels else None
        text = str(ref).strip()
        row = self.row_of_id(text)
        if row is None:
            number = _row_number(text)
            row = number if number is not None and number < self.num_labels else None
        return row

    def resolve(self, refs: Sequence, source: str = "<labels>") -> list[int]:
        """Rows of ``refs`` (:meth:`find`); one DataError naming every reference that names no label."""
        rows = [self.find(ref) for ref in refs]
        bad = [ref for ref, row in zip(refs, rows, strict=True) if row is None]
        if bad:
            last = self.num_labels - 1
            if self.base_ids is None:
                what = [f"label id {ref} does not exist (ids are 0..{last})" for ref in bad]
            else:
                what = [f"no label has the id {str(ref)!r}, and it is not a row number 0..{last}" for ref in bad]
            raise DataError([Problem(source, message) for message in what])
        return rows

    def free_id(self, row: int, taken: set[str]) -> str:
        """An own id for a label added without one: its row number, made unique with a suffix if needed."""
        candidate, n = str(row), 1
        while candidate in taken or self.row_of_id(candidate) is not None:
            n += 1
            candidate = f"{row}~{n}"
        return candidate

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` visible labels of (n, D) queries: (n, k) float32 scores and int64 ids (-1 = padding)."""
        view = self._view
        h = view.hidden_base.shape[0]
        if view.compact_ids is not None:
            scores, local = topk(queries, view.compact_emb, k)
            parts = [(scores, np.where(local >= 0, view.compact_ids[np.maximum(local, 0)], -1))]
        elif h == 0 and self.index is None:
            parts = [topk(queries, self.base, k)]
        else:
            depth = min(k + h, self.num_trained)
            scores, ids = (
                self.index.search(queries, depth) if self.index is not None else topk(queries, self.base, depth)
            )
            hidden = np.isin(ids, view.hidden_base)
            order = np.argsort(hidden, axis=1, kind="stable")[:, :k]  # visible first, in rank order
            scores = np.where(hidden, -np.inf, scores)
            ids = np.where(hidden, -1, ids)
            parts = [(np.take_along_axis(scores, order, 1), np.take_along_axis(ids, order, 1))]
        if view.added_ids.shape[0]:
            scores, local = topk(queries, view.added_emb, min(k, view.added_ids.shape[0]))
            parts.append((scores, np.where(local >= 0, view.added_ids[np.maximum(local, 0)], -1)))
        if len(parts) == 1 and parts[0][0].shape[1] == k:
            return parts[0]
        return merge_topk(parts, k)

    def score(self, queries: np.ndarray, ids: np.ndarray) -> np.ndarray:
        """(n, c) exact inner products of each query with its candidate ids (``-inf`` for -1 and hidden ids)."""
        from vixml.retrieval.retriever import gather_scores

        view = self._view
        base = ids < self.num_trained
        out = gather_scores(queries, self.base, np.where(base, ids, -1))
        added = (~base) & (ids >= 0)
        if added.any():
            position = np.searchsorted(view.added_ids, ids)
            known = added & (position < view.added_ids.shape[0])
            known &= view.added_ids[np.minimum(position, max(view.added_ids.shape[0] - 1, 0))] == ids
            extra = gather_scores(
                queries, view.added_emb if view.added_emb.shape[0] else self.base[:1], np.where(known, position, -1)
            )
            out = np.where(known, extra, out)
        hidden = np.isin(ids, view.hidden_base) if view.hidden_base.shape[0] else np.zeros(ids.shape, bool)
        return np.where(hidden, -np.inf, out).astype(np.float32)

    def predictions(self, scores: np.ndarray, indices: np.ndarray, found: np.ndarray | None = None) -> Predictions:
        """Attach label texts to search results."""
        texts = [[self.text(int(i)) for i in row] for row in indices]
        ids = [[self.key(int(i)) for i in row] for row in indices]
        return Predictions(scores, indices, texts, found, ids)

    def visible_columns(self) -> np.ndarray:
        """(num_labels,) bool: which ids can appear in results."""
        mask = np.ones(self.num_labels, dtype=bool)
        mask[list(self._view.overlay.hidden)] = False
        return mask

    # ------------------------------------------------------------------------------------------ edits
    def replace_overlay(self, overlay: LabelOverlay) -> None:
        """Swap in a new overlay (searches already running finish on the old one)."""
        self._view = self._make_view(overlay)

    @property
    def edit_lock(self) -> threading.Lock:
        """Held by an editor from reading the overlay to swapping the new one in (edits are serial)."""
        return self._edit

    def _make_view(self, overlay: LabelOverlay) -> _View:
        base = self.num_trained
        if overlay.base_labels != base or overlay.dim != self.base.shape[1]:
            raise DataError(
                Problem("<overlay>", f"made for {overlay.base_labels} x {overlay.dim} labels, not {self.base.shape}")
            )
        hidden = np.array(sorted(overlay.hidden), dtype=np.int64)
        hidden_base = hidden[hidden < base]
        added_visible = np.array([a.id not in overlay.hidden for a in overlay.added], dtype=bool)
        added_ids = np.array([a.id for a in overlay.added], dtype=np.int64)[added_visible]
        compact_ids = compact_emb = None
        if hidden_base.shape[0] > OVERFETCH_MAX:
            compact_ids = np.setdiff1d(np.arange(base, dtype=np.int64), hidden_base)
            compact_emb = np.ascontiguousarray(self.base[compact_ids])
        keys = {a.catalogue_id if a.catalogue_id is not None else str(a.id): a.id for a in overlay.added}
        return _View(
            overlay, hidden_base, added_ids, overlay.embeddings[added_visible], keys, compact_ids, compact_emb
        )

    def cluster_means(self, label_to_free: np.ndarray, num_free: int) -> np.ndarray:
        """(K, D) unit mean trained-label embedding of each free-vector cluster (computed once)."""
        if self._cluster_means is None:
            import scipy.sparse as sp

            sums = np.zeros((num_free, self.base.shape[1]), dtype=np.float64)
            for start in range(0, self.num_trained, 65536):
                block = np.asarray(self.base[start : start + 65536], dtype=np.float64)
                members = label_to_free[start : start + block.shape[0]]
                select = sp.csr_matrix(
                    (np.ones(block.shape[0]), (members, np.arange(block.shape[0]))), shape=(num_free, block.shape[0])
                )
                sums += select @ block
            norms = np.linalg.norm(sums, axis=1, keepdims=True)
            self._cluster_means = (sums / np.maximum(norms, 1e-12)).astype(np.float32)
        return self._cluster_means


def read_label_ids(run, n_labels: int) -> Sequence[str] | None:
    """A run's label ids kept by training (``RUN/label_ids.txt``, lazy), or None: its labels are named by row."""
    from vixml.data import read_texts

    if not run.label_ids.is_file():
        return None
    ids = read_texts(run.label_ids, layout="plain")
    if len(ids) != n_labels:
        raise DataError(Problem(str(run.label_ids), f"has {len(ids)} lines for {n_labels} labels"))
    return ids


def encode_new_labels(
    predictor: Predictor, texts: Sequence[str], images: list | None = None
) -> tuple[np.ndarray, np.ndarray | None]:
    """Embeddings of new labels, encoded as the run's trained labels are, and their free vectors.

    Args:
        predictor: the loaded run.
        texts: the new labels' texts.
        images: None, or one list of images (files or PIL images) per label, for runs with label images.

    Returns:
        ((n, D) float32 unit embeddings to search, (n,) free-vector ids or None without prototypes).
    """
    import torch

    prototypes = predictor.model.prototypes
    if prototypes is None or not len(texts):
        return predictor.encode_labels(list(texts), images), None
    text_emb = predictor.encode_labels(list(texts), images, raw=True)  # what the LPN reads
    label_to_free = prototypes.label_to_free.cpu().numpy()
    means = predictor.labels.cluster_means(label_to_free, prototypes.num_free_vectors)
    unit = text_emb / np.maximum(np.linalg.norm(text_emb, axis=1, keepdims=True), 1e-12)
    _, nearest = topk(unit, means, 1)
    free = nearest[:, 0].astype(np.int64)
    if prototypes.unseen_labels == "text":  # the run searches labels without queries by their text embedding
        return unit.astype(np.float32), free
    with torch.inference_mode():
        emb = prototype_without_centroid(prototypes, torch.from_numpy(text_emb), torch.from_numpy(free))
    return emb.float().cpu().numpy(), free


def prototype_without_centroid(prototypes, text_emb, free_ids):
    """PRIME's prototype of labels without training queries: LPN([u, free vector, 0]) averaged, normalised.

    The same computation as ``LabelPrototypes.forward`` with the centroid token set to zero (docs/method.md 4:
    the reference gives a label without queries a zero centroid), for labels that have no id in its buffers.
    """
    import torch

    was_training = prototypes.training
    prototypes.eval()
    try:
        return prototypes.compose(text_emb, free_ids, torch.zeros_like(text_emb))
    finally:
        prototypes.train(was_training)


def add_labels(
    predictor: Predictor,
    texts: Sequence[str],
    images: list | None = None,
    ids: Sequence[str | None] | None = None,
    *,
    by: str = "python",
    source: str = "<labels>",
) -> list[int]:
    """Encode new labels, persist them in the run's overlay, and make them searchable; returns their rows.

    ``ids``: each new label's own id (None: its row number, made unique); an id already in use, or given
    twice, is refused (:class:`LabelIdTaken`) before anything is encoded. The caller holds the overlay's
    write lock (:meth:`LabelOverlay.lock`). The labels are searchable and the rows returned only once the
    overlay is on disk.
    """
    if predictor.run is None:
        raise DataError(Problem("<labels>", _NO_RUN))
    texts = [str(t) for t in texts]
    given = list(ids) if ids is not None else [None] * len(texts)
    if len(given) != len(texts):
        raise ValueError(f"{len(given)} ids for {len(texts)} labels")
    counts = [len(x) for x in images] if images is not None else [0] * len(texts)
    labels = predictor.labels
    with labels.edit_lock:
        keys = _new_ids(labels, given, source)
        emb, free = encode_new_labels(predictor, texts, images)
        start = labels.num_labels
        overlay = labels.overlay.with_added(texts, emb, free, counts, keys)
        rows = list(range(start, start + len(texts)))
        overlay = overlay.logged("add", rows, keys, by)
        overlay.write(predictor.run)
        labels.replace_overlay(overlay)
    return rows


def check_label_id(value, source: str, index: int | None = None) -> str:
    """A new label's own id, stripped; DataError for an empty one, a control character, or one too long."""
    where = "" if index is None else f"label {index + 1}: "
    key = str(value).strip()
    if not key:
        raise DataError(Problem(source, f"{where}empty id: give a label id, or none", field="id"))
    if any(ord(c) < 32 or ord(c) == 127 for c in key):
        raise DataError(Problem(source, f"{where}id {key!r} holds a control character (a line break?)", field="id"))
    if len(key) > MAX_ID_CHARS:
        raise DataError(Problem(source, f"{where}id of {len(key)} characters; at most {MAX_ID_CHARS}", field="id"))
    return key


def _new_ids(labels: LabelSet, given: list, source: str) -> list[str]:
    """The own ids of labels about to be added: checked, unique, free ones chosen for the labels without."""
    taken: set[str] = set()
    problems, malformed = [], []
    keys: list[str | None] = []
    for i, value in enumerate(given):
        if value is None:
            keys.append(None)
            continue
        try:
            key = check_label_id(value, source, i)
        except DataError as exc:
            malformed += exc.problems
            keys.append(None)
            continue
        row = labels.row_of_id(key)
        if row is not None:
            problems.append(Problem(source, f"label {i + 1}: id {key!r} is taken by label row {row}", field="id"))
        elif key in taken:
            problems.append(Problem(source, f"label {i + 1}: id {key!r} is given twice", field="id"))
        taken.add(key)
        keys.append(key)
    if malformed:
        raise DataError(malformed + problems)
    if problems:
        raise LabelIdTaken(problems)
    start = labels.num_labels
    for i, key in enumerate(keys):
        if key is None:
            keys[i] = labels.free_id(start + i, taken)
            taken.add(keys[i])
    return keys


def hide_labels(predictor: Predictor, ids: Sequence, source: str = "<labels>", *, by: str = "python") -> list[int]:
    """Hide labels (trained or added) from every later result: persisted first, then never returned.

    ``ids``: rows (Python ints) or references (texts: own ids first, then row numbers; :meth:`LabelSet.find`).
    Returns their rows. Hiding a hidden label changes nothing; :func:`unhide_labels` undoes it.
    """
    return _set_hidden(predictor, ids, source, by, hide=True)


def unhide_labels(predictor: Predictor, ids: Sequence, source: str = "<labels>", *, by: str = "python") -> list[int]:
    """Make hidden labels visible again (undo :func:`hide_labels`); returns their rows."""
    return _set_hidden(predictor, ids, source, by, hide=False)


def _set_hidden(predictor: Predictor, refs: Sequence, source: str, by: str, *, hide: bool) -> list[int]:
    if predictor.run is None:
        raise DataError(Problem("<labels>", _NO_RUN))
    labels = predictor.labels
    with labels.edit_lock:
        rows = labels.resolve(list(refs), source)
        overlay = labels.overlay
        changed = sorted({r for r in rows if (r in overlay.hidden) != hide})
        if changed:
            overlay = overlay.with_hidden(changed) if hide else overlay.with_unhidden(changed)
            overlay = overlay.logged("hide" if hide else "unhide", changed, [labels.key(r) for r in changed], by)
            overlay.write(predictor.run, embeddings_changed=False)
            labels.replace_overlay(overlay)
    return rows
