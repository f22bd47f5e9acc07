"""The faiss indexes: ``"faiss-flat"`` (exact, the peer of ``"exact"``), ``"faiss-hnsw"`` and ``"faiss-ivf"``.

faiss is imported on first use through ``vixml.optional.require("faiss", "ann")``. All use the inner
product metric. Saved with ``faiss.write_index`` (faiss's own format, no pickle) as ``faiss.index``.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from vixml.atomic import atomic_path
from vixml.optional import require
from vixml.search.index import Index, register_index

__all__ = ["FaissFlatIndex", "FaissHNSWIndex", "FaissIVFIndex"]

_FILE = "faiss.index"


class _FaissIndex(Index):
    """What the faiss indexes share: search, save, load and reading the vectors back."""

    def __init__(self, **params):
        super().__init__(**params)
        self._index = None

    def vectors(self) -> np.ndarray:
        return np.asarray(self._index.reconstruct_n(0, self.size), dtype=np.float32)

    def _configure(self, k: int) -> None:
        """Set search-time parameters before a search for ``k`` labels."""

    def _search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        found = min(k, self.size)
        self._configure(found)
        scores, ids = self._index.search(queries, found)
        if found < k:
            scores = np.pad(scores, ((0, 0), (0, k - found)), constant_values=-np.inf)
            ids = np.pad(ids, ((0, 0), (0, k - found)), constant_values=-1)
        return scores, ids

    def _save(self, directory: Path) -> None:
        faiss = require("faiss", "ann")
        with atomic_path(directory / _FILE) as tmp:
            faiss.write_index(self._index, str(tmp))

    def _load(self, directory: Path) -> None:
        faiss = require("faiss", "ann")
        self._index = faiss.read_index(str(directory / _FILE))


@register_index("faiss-flat")
class FaissFlatIndex(_FaissIndex):
    """Exact search with faiss ``IndexFlatIP`` (BLAS matmul + heaps): the speed reference for ``"exact"``."""

    def __init__(self):
        super().__init__()

    def _build(self, embeddings: np.ndarray) -> None:
        faiss = require("faiss", "ann")
        self._index = faiss.IndexFlatIP(self.dim)
        self._index.add(embeddings)


@register_index("faiss-hnsw")
class FaissHNSWIndex(_FaissIndex):
    """HNSW graph search with faiss ``IndexHNSWFlat``.

    Args:
        M: graph degree.
        ef_construction: candidate list size while building.
        ef_search: candidate list size while searching (raised to ``k`` when smaller).
    """

    def __init__(self, M: int = 32, ef_construction: int = 200, ef_search: int = 128):
        super().__init__(M=M, ef_construction=ef_construction, ef_search=ef_search)

    def _build(self, embeddings: np.ndarray) -> None:
        faiss = require("faiss", "ann")
        self._index = faiss.IndexHNSWFlat(self.dim, self.params["M"], faiss.METRIC_INNER_PRODUCT)
        self._index.hnsw.efConstruction = self.params["ef_construction"]
        self._index.add(embeddings)

    def _configure(self, k: int) -> None:
        self._index.hnsw.efSearch = max(self.params["ef_search"], k)


@register_index("faiss-ivf")
class FaissIVFIndex(_FaissIndex):
    """Inverted-file search with faiss ``IndexIVFFlat`` (k-means cells, ``nprobe`` of them searched).

    Args:
        nlist: number of cells; None: ``4 * sqrt(L)``, at most ``L / 39`` (faiss's minimum of 39
            training points per cell).
        nprobe: cells searched per query (recall and time grow with it).
        seed: k-means seed.
    """

    def __init__(self, nlist: int | None = None, nprobe: int = 16, seed: int = 1234):
        super().__init__(nlist=nlist, nprobe=nprobe, seed=seed)

    def _build(self, embeddings: np.ndarray) -> None:
        faiss = require("faiss", "ann")
        nlist = self.params["nlist"] or max(1, min(round(4 * math.sqrt(self.size)), self.size // 39))
        quantizer = faiss.IndexFlatIP(self.dim)
        index = faiss.IndexIVFFlat(quantizer, self.dim, nlist, faiss.METRIC_INNER_PRODUCT)
        index.cp.seed = self.params["seed"]
        index.train(embeddings)
        index.add(embeddings)
        self._index = index

    def _configure(self, k: int) -> None:
        self._index.nprobe = min(self.params["nprobe"], self._index.nlist)

    def vectors(self) -> np.ndarray:
        self._index.make_direct_map()
        return super().vectors()
