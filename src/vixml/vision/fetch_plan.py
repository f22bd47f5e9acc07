"""Which references a fetch needs: an item's first N usable references, in order, chosen vectorised.

An item keeps the first ``N`` of its references that gave an image. While some are untried, the ones to
try are those that would complete the first ``N`` if every untried one succeeded; a failure then brings
the item's next reference into the following round. Everything is numpy over the CSR layout of
:class:`vixml.vision.image_refs.ImageRefs`, so planning a million references takes about a second.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from vixml.vision.fetch_journal import FAILED, TODO, url_keys
from vixml.vision.image_refs import ImageRefs

__all__ = ["FetchPlan"]


@dataclass
class FetchPlan:
    """The input of a fetch in index form: the unique references and, per reference slot, its item and reference.

    A slot is one (item, position) of :class:`ImageRefs`; several slots may hold one reference (a shared
    placeholder image, a label image reused by many items), which is then fetched and stored once.
    """

    urls: list[str]  # unique references (n_urls,)
    keys: np.ndarray  # uint64 (n_urls,), sorted
    slot_url: np.ndarray  # int64 (n_refs,)
    slot_item: np.ndarray  # int64 (n_refs,)
    indptr: np.ndarray  # int64 (n_items + 1,)

    @classmethod
    def of(cls, refs: ImageRefs) -> FetchPlan:
        slot_keys = url_keys(refs.refs)
        keys, first, inverse = np.unique(slot_keys, return_index=True, return_inverse=True)
        slot_item = np.repeat(np.arange(len(refs), dtype=np.int64), np.diff(refs.indptr))
        urls = [refs.refs[i] for i in first]
        return cls(urls, keys, inverse.reshape(-1).astype(np.int64), slot_item, refs.indptr.astype(np.int64))

    def first_within_item(self, usable: np.ndarray, n: int) -> np.ndarray:
        """bool (n_refs,): the slots among the first ``n`` usable ones of their item."""
        before = np.concatenate([[0], np.cumsum(usable, dtype=np.int64)])
        rank = before[:-1] - before[self.indptr[self.slot_item]]
        return usable & (rank < n)

    def wanted(self, status: np.ndarray, n: int) -> np.ndarray:
        """Unique references to try next, in item order: the untried ones that would complete an item's
        first ``n`` images if every untried one succeeded."""
        slot_status = status[self.slot_url]
        pick = self.first_within_item(slot_status != FAILED, n) & (slot_status == TODO)
        chosen = self.slot_url[pick]
        _, first = np.unique(chosen, return_index=True)
        return chosen[np.sort(first)]
