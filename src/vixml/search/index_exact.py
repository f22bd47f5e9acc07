"""The ``"exact"`` index: blocked exact search (:func:`vixml.search.topk`) behind the :class:`Index` interface.

It is the reference the approximate backends are measured against, and the right choice on a GPU
or for up to a few million labels on CPU. Saved as ``embeddings.npy``, loaded memory-mapped (searching
reads it block by block, so a large label set is never loaded whole).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from vixml.atomic import atomic_path
from vixml.errors import DataError
from vixml.finite import nonfinite_problem
from vixml.search.exact import Precision
from vixml.search.index import Index, register_index

__all__ = ["ExactIndex"]

_FILE = "embeddings.npy"


@register_index("exact")
class ExactIndex(Index):
    """Exact maximum inner product search.

    Args:
        precision: passed to :func:`vixml.search.topk` (``"fp32"`` is exact; ``"bf16-rescore"`` is
            about twice as fast on CPUs with bf16 and recalls >= 0.999 of the exact top-k).
        device: passed to :func:`vixml.search.topk` (None: CUDA when available).
    """

    def __init__(self, precision: Precision = "fp32", device: str | None = None):
        super().__init__(precision=precision, device=device)
        self._embeddings: np.ndarray | None = None

    def vectors(self) -> np.ndarray:
        assert self._embeddings is not None
        return self._embeddings

    def _build(self, embeddings: np.ndarray) -> None:
        self._embeddings = embeddings

    def _search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        from vixml.search.exact import topk

        vectors, params = self.vectors(), self.params  # both checked finite by build/load and search
        return topk(queries, vectors, k, device=params["device"], precision=params["precision"], check_finite="none")

    def _save(self, directory: Path) -> None:
        with atomic_path(directory / _FILE, suffix=".npy") as tmp:
            np.save(tmp, self.vectors(), allow_pickle=False)

    def _load(self, directory: Path) -> None:
        self._embeddings = np.load(directory / _FILE, mmap_mode="r", allow_pickle=False)
        if (problem := nonfinite_problem(self._embeddings, str(directory / _FILE), "label embeddings")) is not None:
            raise DataError(problem)  # searched with check_finite="none": checked once, here
