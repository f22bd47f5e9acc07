"""Label edits made after training (added and hidden labels), kept as an overlay beside the run's labels.

The trained label embeddings (``label_embeddings.npy``) are never rewritten; edits live in the run's
``labels_overlay/`` folder:

- ``embeddings.npy``: (n_added, D) float32, the added labels' embeddings in id order (rows only grow);
- ``overlay.json``: the commit record: the added labels (row, text, free vector, their own id), the hidden
  rows, the history of edits (what, which labels, when, by whom: every add, hide and unhide, so that each
  can be listed and undone), and a fingerprint of the trained label embeddings the overlay was made for.

Both files are replaced atomically, embeddings first: a reader takes the first ``len(added)`` rows, so a
writer killed between the two files leaves the previous, consistent overlay (its extra rows are unused).
An edit is acknowledged only after both writes returned (the data is fsynced), so a killed writer never
loses an acknowledged edit. One writer at a time: :meth:`LabelOverlay.lock`.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from vixml.atomic import atomic_open, atomic_path, clean_stale_temps, refuse_links
from vixml.errors import DataError, Problem
from vixml.locking import WriteLock
from vixml.run_folder import RunFolder

__all__ = ["AddedLabel", "LabelOverlay", "OVERLAY_FORMAT", "embeddings_fingerprint"]

logger = logging.getLogger(__name__)

OVERLAY_FORMAT = "vixml-label-overlay/1"
_STATE = "overlay.json"
_EMBEDDINGS = "embeddings.npy"
_SAMPLE = 1 << 20  # bytes hashed at each end of the label embeddings file


@dataclass(frozen=True)
class AddedLabel:
    """A label added after training.

    Attributes:
        id: its row (``>=`` the number of trained labels; rows are never reused).
        text: its text.
        free_vector: the PRIME free vector it borrows (None without prototypes).
        images: how many images went into its embedding.
        catalogue_id: its own id, as a catalogue's labels have (given when it was added, or chosen then:
            :meth:`vixml.inference.labels.LabelSet.free_id`); None in overlays written before ids were kept.
    """

    id: int
    text: str
    free_vector: int | None = None
    images: int = 0
    catalogue_id: str | None = None


def embeddings_fingerprint(path: str | Path) -> str:
    """A cheap identity of a label-embeddings file: its size and a hash of its first and last megabyte.

    Enough to notice that a run was retrained under an overlay (every byte changes), without reading GBs.
    """
    path = Path(path)
    size = path.stat().st_size
    digest = hashlib.blake2b(str(size).encode(), digest_size=16)
    with open(path, "rb") as fh:
        digest.update(fh.read(_SAMPLE))
        if size > 2 * _SAMPLE:
            fh.seek(size - _SAMPLE)
            digest.update(fh.read(_SAMPLE))
    return f"{size}:{digest.hexdigest()}"


@dataclass
class LabelOverlay:
    """The edits of one run: what was added (texts and embeddings) and which ids are hidden.

    Attributes:
        base_labels: L, the number of trained labels (added ids start there).
        dim: D, the embedding size.
        fingerprint: :func:`embeddings_fingerprint` of the trained label embeddings.
        added: the added labels in id order.
        embeddings: (len(added), D) float32 embeddings of the added labels.
        hidden: rows that never appear in results (trained or added).
        history: the edits, oldest first: ``{"at": UTC time, "edit": "add"|"hide"|"unhide", "labels": rows,
            "ids": their own ids, "by": who}`` (:meth:`logged`).
    """

    base_labels: int
    dim: int
    fingerprint: str
    added: list[AddedLabel] = field(default_factory=list)
    embeddings: np.ndarray | None = None
    hidden: frozenset[int] = frozenset()
    history: tuple[dict, ...] = ()

    def __post_init__(self) -> None:
        if self.embeddings is None:
            self.embeddings = np.zeros((0, self.dim), dtype=np.float32)

    @property
    def num_labels(self) -> int:
        """Every id ever given: trained plus added (hidden ones included)."""
        return self.base_labels + len(self.added)

    @property
    def empty(self) -> bool:
        return not self.added and not self.hidden

    # ------------------------------------------------------------------------------------------ edits
    def with_added(
        self,
        texts: list[str],
        embeddings: np.ndarray,
        free_vectors: np.ndarray | None,
        images: list[int],
        catalogue_ids: list[str | None] | None = None,
    ) -> LabelOverlay:
        """A new overlay with ``texts`` appended (rows ``num_labels ...``); this one is unchanged."""
        embeddings = np.asarray(embeddings, dtype=np.float32)
        if embeddings.shape != (len(texts), self.dim):
            raise ValueError(f"embeddings must be ({len(texts)}, {self.dim}), got {embeddings.shape}")
        start = self.num_labels
        keys = catalogue_ids or [None] * len(texts)
        new = [
            AddedLabel(
                start + i, text, None if free_vectors is None else int(free_vectors[i]), int(images[i]), keys[i]
            )
            for i, text in enumerate(texts)
        ]
        return replace(self, added=[*self.added, *new], embeddings=np.concatenate([self.embeddings, embeddings]))

    def with_hidden(self, ids: list[int]) -> LabelOverlay:
        """A new overlay where rows ``ids`` are hidden too (they must exist: see :meth:`check_ids`)."""
        return replace(self, hidden=self.hidden | frozenset(int(i) for i in ids))

    def with_unhidden(self, ids: list[int]) -> LabelOverlay:
        """A new overlay where rows ``ids`` are visible again (an edit undone)."""
        return replace(self, hidden=self.hidden - frozenset(int(i) for i in ids))

    def logged(self, edit: str, rows: list[int], ids: list[str], by: str) -> LabelOverlay:
        """A new overlay with one more history entry (``edit`` of ``rows``, known as ``ids``, now, by ``by``)."""
        at = datetime.now(timezone.utc).isoformat(timespec="seconds")
        entry = {"at": at, "edit": edit, "labels": [int(r) for r in rows], "ids": list(ids), "by": by}
        return replace(self, history=(*self.history, entry))

    def check_ids(self, ids: list[int], source: str = "<labels>") -> None:
        """Raise a DataError naming every id that is not a label of this run."""
        bad = [i for i in ids if not 0 <= int(i) < self.num_labels]
        if bad:
            raise DataError(
                [Problem(source, f"label id {i} does not exist (ids are 0..{self.num_labels - 1})") for i in bad]
            )

    # ------------------------------------------------------------------------------------------ files
    @staticmethod
    def folder_of(run: RunFolder | str | Path) -> Path:
        run = run if isinstance(run, RunFolder) else RunFolder(run)
        return run.label_overlay

    @classmethod
    def lock(cls, run: RunFolder | str | Path, purpose: str) -> WriteLock:
        """The overlay's write lock (not yet acquired): one editor (server or ``vixml labels``) at a time."""
        folder = cls.folder_of(run)
        return WriteLock(refuse_links(folder, folder.parent), purpose)

    @classmethod
    def empty_for(cls, run: RunFolder | str | Path, base_embeddings: np.ndarray) -> LabelOverlay:
        run = run if isinstance(run, RunFolder) else RunFolder(run)
        return cls(base_embeddings.shape[0], base_embeddings.shape[1], embeddings_fingerprint(run.label_embeddings))

    @classmethod
    def read(cls, run: RunFolder | str | Path, base_embeddings: np.ndarray) -> LabelOverlay:
        """The run's overlay, or an empty one when no edit was ever made.

        Raises:
            DataError: the overlay is damaged, or it was made for other label embeddings (the run was
                retrained): its texts are listed in ``overlay.json`` to add them again.
        """
        run = run if isinstance(run, RunFolder) else RunFolder(run)
        folder = run.label_overlay
        state_path = folder / _STATE
        if not state_path.is_file():
            return cls.empty_for(run, base_embeddings)
        try:
            state = json.loads(state_path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise DataError(Problem(str(state_path), f"unreadable label overlay: {exc}")) from exc
        if state.get("format") != OVERLAY_FORMAT:
            raise DataError(Problem(str(state_path), f"expected format {OVERLAY_FORMAT!r}", field="format"))
        base, dim = base_embeddings.shape
        fingerprint = embeddings_fingerprint(run.label_embeddings)
        if (state["base_labels"], state["dim"], state["fingerprint"]) != (base, dim, fingerprint):
            raise DataError(
                Problem(
                    str(state_path),
                    f"made for other label embeddings (the run was retrained?): {state['base_labels']} x "
                    f"{state['dim']} vs {base} x {dim} now; move {folder} away and add its labels again "
                    "(their texts are in this file) with `vixml labels add`",
                    field="fingerprint",
                )
            )
        added = [AddedLabel(**entry) for entry in state["added"]]
        embeddings = np.zeros((0, dim), dtype=np.float32)
        if added:
            emb_path = folder / _EMBEDDINGS
            try:
                embeddings = np.load(emb_path)
            except (OSError, ValueError) as exc:
                raise DataError(Problem(str(emb_path), f"unreadable: {exc}")) from exc
            if embeddings.ndim != 2 or embeddings.shape[0] < len(added) or embeddings.shape[1] != dim:
                raise DataError(
                    Problem(str(emb_path), f"expected at least {len(added)} rows of {dim}, got {embeddings.shape}")
                )
            embeddings = np.ascontiguousarray(embeddings[: len(added)], dtype=np.float32)
        expected = list(range(base, base + len(added)))
        if [a.id for a in added] != expected:
            raise DataError(Problem(str(state_path), "added label ids must be consecutive from L", field="added"))
        hidden = frozenset(int(i) for i in state["hidden"])
        return cls(base, dim, fingerprint, added, embeddings, hidden, tuple(state.get("history", ())))

    def write(self, run: RunFolder | str | Path, *, embeddings_changed: bool = True) -> None:
        """Persist atomically (embeddings first, then the commit record); the caller holds :meth:`lock`."""
        folder = self.folder_of(run)
        refuse_links(folder, folder.parent).mkdir(parents=True, exist_ok=True)
        clean_stale_temps(folder)
        if embeddings_changed and self.added:
            with atomic_path(folder / _EMBEDDINGS, suffix=".npy") as tmp:
                np.save(tmp, self.embeddings)
        state = {
            "format": OVERLAY_FORMAT,
            "base_labels": self.base_labels,
            "dim": self.dim,
            "fingerprint": self.fingerprint,
            "added": [a.__dict__ for a in self.added],
            "hidden": sorted(self.hidden),
            "history": list(self.history),
        }
        with atomic_open(folder / _STATE) as fh:
            json.dump(state, fh, ensure_ascii=False)
            fh.write("\n")
        logger.debug("label overlay written: %d added, %d hidden", len(self.added), len(self.hidden))
