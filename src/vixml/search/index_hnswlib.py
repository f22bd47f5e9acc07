"""The ``"hnswlib"`` index: an HNSW graph from hnswlib (inner-product space), for CPU serving.

hnswlib is imported on first use through ``vixml.optional.require("hnswlib", "ann")``. Its ``"ip"``
space reports ``1 - <q, x>``; scores here are the inner products again.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from vixml.optional import require
from vixml.search.index import Index, register_index

__all__ = ["HnswlibIndex"]

_FILE = "hnsw.bin"


@register_index("hnswlib")
class HnswlibIndex(Index):
    """HNSW graph search (hnswlib).

    Args:
        M: graph degree (memory and recall grow with it).
        ef_construction: candidate list size while building (build time and graph quality).
        ef_search: candidate list size while searching (raised to ``k`` when smaller).
        num_threads: threads for building and searching (-1: all cores).
        seed: random seed of the level assignment.
    """

    def __init__(
        self,
        M: int = 16,
        ef_construction: int = 200,
        ef_search: int = 128,
        num_threads: int = -1,
        seed: int = 100,
    ):
        super().__init__(M=M, ef_construction=ef_construction, ef_search=ef_search, num_threads=num_threads, seed=seed)
        self._index = None

    def vectors(self) -> np.ndarray:
        return np.asarray(self._index.get_items(np.arange(self.size), return_type="numpy"), dtype=np.float32)

    def _build(self, embeddings: np.ndarray) -> None:
        hnswlib = require("hnswlib", "ann")
        index = hnswlib.Index(space="ip", dim=self.dim)
        index.init_index(
            max_elements=self.size,
            ef_construction=self.params["ef_construction"],
            M=self.params["M"],
            random_seed=self.params["seed"],
        )
        index.add_items(embeddings, np.arange(self.size), num_threads=self.params["num_threads"])
        self._index = index

    def _search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        found = min(k, self.size)
        self._index.set_ef(max(self.params["ef_search"], found))
        ids, distances = self._index.knn_query(queries, k=found, num_threads=self.params["num_threads"])
        scores = np.full((len(queries), k), -np.inf, dtype=np.float32)
        labels = np.full((len(queries), k), -1, dtype=np.int64)
        scores[:, :found] = 1.0 - distances
        labels[:, :found] = ids
        return scores, labels

    def _save(self, directory: Path) -> None:
        self._index.save_index(str(directory / _FILE))

    def _load(self, directory: Path) -> None:
        hnswlib = require("hnswlib", "ann")
        index = hnswlib.Index(space="ip", dim=self.dim)
        index.load_index(str(directory / _FILE), max_elements=self.size)
        self._index = index
