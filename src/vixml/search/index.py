"""One interface for every nearest-neighbour index (exact, hnswlib, faiss), and the registry of them.

An index is built from label embeddings, searched for the ``k`` largest inner products, saved to and
loaded from a folder, and measures its own recall against exact search::

    index = build_index("hnswlib", label_embeddings, M=32, ef_search=200)
    scores, ids = index.search(query_embeddings, k=100)        # (n, k) float32, (n, k) int64
    index.recall(query_embeddings[:1000], k=100)               # fraction of the exact top-k found
    index.save("run/index"); same = Index.load("run/index")    # identical search results

A saved index is a folder: ``index.json`` (backend name, parameters, size) next to the backend's own
file(s). Saving writes a fresh sibling folder and renames it into place, so a reader finds the old
index or the new one, never a mixture. Backends register with :func:`register_index`; an unknown name
raises :class:`~vixml.errors.ConfigError` listing the valid ones.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from abc import ABC, abstractmethod
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import numpy as np

from vixml.errors import ConfigError, DataError, Problem
from vixml.finite import nonfinite_problem

__all__ = [
    "Index",
    "register_index",
    "available_indexes",
    "index_class",
    "build_index",
    "recall_at_k",
    "MANIFEST",
]

#: Name of the description file inside a saved index folder.
MANIFEST = "index.json"
_FORMAT = "vixml-index"
_VERSION = 1

_REGISTRY: dict[str, type[Index]] = {}
_T = TypeVar("_T", bound=type)


def register_index(name: str) -> Callable[[_T], _T]:
    """Class decorator that makes an :class:`Index` subclass buildable and loadable by ``name``."""

    def decorate(cls: _T) -> _T:
        if name in _REGISTRY and _REGISTRY[name] is not cls:
            raise ConfigError(f"index name {name!r} is already registered by {_REGISTRY[name].__qualname__}")
        cls.name = name
        _REGISTRY[name] = cls
        return cls

    return decorate


def available_indexes() -> list[str]:
    """Registered index names, sorted."""
    return sorted(_REGISTRY)


def index_class(name: str) -> type[Index]:
    """The class registered as ``name``; :class:`ConfigError` naming the valid names otherwise."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ConfigError(f"unknown index {name!r}; valid names: {', '.join(available_indexes())}") from None


def build_index(name: str, embeddings, **params: Any) -> Index:
    """Build the index registered as ``name`` over (L, d) ``embeddings`` with backend ``params``."""
    return index_class(name)(**params).build(embeddings)


class Index(ABC):
    """A searchable set of label embeddings (maximum inner product).

    Subclasses take their parameters as keyword arguments (recorded in ``self.params`` and the saved
    manifest) and implement :meth:`_build`, :meth:`_search`, :meth:`_save`, :meth:`_load` and
    :meth:`vectors`.
    """

    name: ClassVar[str] = ""

    def __init__(self, **params: Any):
        self.params: dict[str, Any] = params
        self.size = 0
        self.dim = 0

    # -- public interface --------------------------------------------------------------------------

    def build(self, embeddings) -> Index:
        """Index (L, d) label embeddings (row i is label i); returns ``self``.

        Raises:
            DataError: not a 2-D numeric array, or rows with NaN/inf values (a NaN label is never found).
        """
        array = as_matrix(embeddings, "embeddings")
        if (problem := nonfinite_problem(array, "<embeddings>", "label embeddings")) is not None:
            raise DataError(problem)
        self.size, self.dim = array.shape
        self._build(array)
        return self

    def search(self, queries, k: int) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` best labels per query.

        Args:
            queries: (n, d) float array.
            k: labels per query; when ``k`` exceeds what the index returns, the rest is padding
                (score ``-inf``, id ``-1``).

        Returns:
            (scores (n, k) float32, descending; ids (n, k) int64).

        Raises:
            DataError: queries of another width, or rows with NaN/inf values.
        """
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
            raise ConfigError(f"k must be an integer >= 1, got {k!r}")
        array = as_matrix(queries, "queries")
        if self.size == 0:
            raise ConfigError(f"the {self.name!r} index is empty: call build() or load() first")
        if array.shape[1] != self.dim:
            raise DataError(Problem("<queries>", f"width {array.shape[1]} differs from the index's {self.dim}"))
        if (problem := nonfinite_problem(array, "<queries>", "query embeddings")) is not None:
            raise DataError(problem)
        scores, ids = self._search(array, int(k))
        scores = np.asarray(scores, dtype=np.float32)
        ids = np.asarray(ids, dtype=np.int64)
        missing = ids < 0
        scores[missing] = -np.inf
        return scores, ids

    def recall(self, queries, k: int, embeddings=None) -> float:
        """Mean recall@k of :meth:`search` against exact search on a sample of queries.

        Args:
            queries: (n, d) sample of queries.
            k: cutoff.
            embeddings: the indexed (L, d) embeddings; read back from the index when omitted.
        """
        from vixml.search.exact import topk

        vectors = self.vectors() if embeddings is None else embeddings
        _, exact = topk(as_matrix(queries, "queries"), vectors, k, device="cpu")
        return recall_at_k(self.search(queries, k)[1], exact)

    def save(self, directory: str | os.PathLike) -> Path:
        """Write the index to ``directory`` atomically (replacing an index already there)."""
        if self.size == 0:
            raise ConfigError(f"nothing to save: the {self.name!r} index is empty")
        directory = Path(directory)
        manifest = {"format": _FORMAT, "version": _VERSION, "backend": self.name, "params": self.params}
        manifest |= {"size": self.size, "dim": self.dim}
        with _atomic_dir(directory) as tmp:
            self._save(tmp)
            _write_synced(tmp / MANIFEST, (json.dumps(manifest, indent=2, sort_keys=True) + "\n").encode())
        return directory

    @classmethod
    def load(cls, directory: str | os.PathLike) -> Index:
        """Load a saved index; on :class:`Index` itself the backend is read from the manifest."""
        directory = Path(directory)
        manifest = _read_manifest(directory)
        target = index_class(manifest["backend"])
        if cls is not Index and not issubclass(target, cls):
            raise ConfigError(f"{directory} holds a {manifest['backend']!r} index, not {cls.name!r}")
        index = target(**manifest["params"])
        index.size, index.dim = int(manifest["size"]), int(manifest["dim"])
        index._load(directory)
        return index

    @abstractmethod
    def vectors(self) -> np.ndarray:
        """The indexed embeddings, (size, dim) float32 (as stored: they may be reconstructions)."""

    # -- backend hooks -----------------------------------------------------------------------------

    @abstractmethod
    def _build(self, embeddings: np.ndarray) -> None:
        """Index (L, d) float32 C-contiguous embeddings."""

    @abstractmethod
    def _search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(scores, ids), each (n, k); ids ``-1`` where fewer than ``k`` were found."""

    @abstractmethod
    def _save(self, directory: Path) -> None:
        """Write the backend's files into ``directory`` (an empty folder)."""

    @abstractmethod
    def _load(self, directory: Path) -> None:
        """Read the backend's files (``size``, ``dim`` and ``params`` are already set)."""

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.params.items())
        return f"{type(self).__name__}({args}; size={self.size}, dim={self.dim})"


def recall_at_k(approx_indices, exact_indices) -> float:
    """Mean over rows of |approx ∩ exact| / |exact|, ignoring ``-1`` padding.

    Args:
        approx_indices: (n, ka) int label ids from an approximate search.
        exact_indices: (n, ke) int label ids of the exact top-k (rows without any label are skipped).

    Returns:
        Recall in [0, 1] (1.0 when no row has an exact label).
    """
    approx = np.asarray(approx_indices, dtype=np.int64)
    exact = np.asarray(exact_indices, dtype=np.int64)
    if approx.ndim != 2 or exact.ndim != 2 or approx.shape[0] != exact.shape[0]:
        raise DataError(
            Problem("<indices>", f"need two 2-D arrays with equal rows, got {approx.shape} and {exact.shape}")
        )
    hits = np.zeros(exact.shape[0])
    step = max(1, (1 << 24) // max(1, approx.shape[1] * exact.shape[1]))
    for a in range(0, exact.shape[0], step):
        e, p = exact[a : a + step], approx[a : a + step]
        found = (e[:, :, None] == p[:, None, :]).any(axis=2) & (e >= 0)
        hits[a : a + step] = found.sum(axis=1)
    valid = (exact >= 0).sum(axis=1)
    rows = valid > 0
    return float(np.mean(hits[rows] / valid[rows])) if rows.any() else 1.0


def as_matrix(x, name: str) -> np.ndarray:
    """(n, d) float32 C-contiguous numpy copy-or-view of a numpy array / torch tensor; DataError otherwise."""
    if hasattr(x, "detach"):  # torch tensor: avoid importing torch for numpy callers
        x = x.detach().cpu().float().numpy()
    array = np.asarray(x)
    if array.ndim != 2 or array.dtype.kind not in "fiu":
        raise DataError(Problem(f"<{name}>", f"expected a 2-D numeric array, got {array.ndim}-D {array.dtype}"))
    return np.ascontiguousarray(array, dtype=np.float32)


def _read_manifest(directory: Path) -> dict:
    path = directory / MANIFEST
    if not path.is_file():
        raise DataError(Problem(str(path), "no saved index here (index.json is missing)"))
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise DataError(Problem(str(path), f"not valid JSON: {exc.msg}", line=exc.lineno)) from None
    problems = []
    if manifest.get("format") != _FORMAT:
        problems.append(
            Problem(str(path), f"format is {manifest.get('format')!r}, expected {_FORMAT!r}", field="format")
        )
    if manifest.get("version") != _VERSION:
        problems.append(Problem(str(path), f"version {manifest.get('version')!r} is not {_VERSION}", field="version"))
    for key in ("backend", "params", "size", "dim"):
        if key not in manifest:
            problems.append(Problem(str(path), "missing", field=key))
    if problems:
        raise DataError(problems)
    return manifest


def _write_synced(path: Path, data: bytes) -> None:
    with open(path, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())


class _atomic_dir:
    """Context manager yielding an empty sibling folder that replaces ``target`` on success.

    The swap is two renames (old out of the way, new into place); a crash between them leaves the old
    index under a hidden ``.<name>.old-*`` sibling and no ``target``, never a half-written one.
    """

    def __init__(self, target: Path):
        self.target = target

    def __enter__(self) -> Path:
        self.target.parent.mkdir(parents=True, exist_ok=True)
        self.tmp = Path(tempfile.mkdtemp(prefix=f".{self.target.name}.tmp-", dir=self.target.parent))
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(self.tmp, 0o777 & ~umask)  # mkdtemp makes 0700 folders; give the index the usual mode
        return self.tmp

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:
            shutil.rmtree(self.tmp, ignore_errors=True)
            return
        for path in self.tmp.iterdir():  # backends write with their own writers: make them durable
            with open(path, "rb") as fh:
                os.fsync(fh.fileno())
        old = None
        if self.target.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{self.target.name}.old-", dir=self.target.parent))
            os.replace(self.target, old / "index")
        os.replace(self.tmp, self.target)
        _fsync_dir(self.target.parent)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory fds
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
