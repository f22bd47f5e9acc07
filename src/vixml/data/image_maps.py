"""Item -> image-embedding-row maps, and the one-time conversion of the released pickled maps.

The paper's released maps (``{train,test,labels}_imgs_<size>_<N>_map.npy``) are numpy object arrays:
one entry per item, a list of row indices into the embedding array or the int -1 (no image). Loading
them unpickles, which can run arbitrary code, so vixml reads them only on explicit trust and converts
them once into a pickle-free CSR form (``indptr``, ``indices`` int64 in an ``.npz``) that every other
reader uses.
"""

from __future__ import annotations

import itertools
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vixml.atomic import atomic_path
from vixml.data._problems import ProblemCollector
from vixml.data.file_kinds import NUMPY_READ_ERRORS
from vixml.errors import DataError, Problem

__all__ = ["ImageMap", "convert_image_map", "read_image_map", "write_image_map", "image_map_from_entries"]

_SEQUENCE = (list, tuple, np.ndarray)


@dataclass(frozen=True, eq=False)
class ImageMap:
    """Pickle-free image map: item ``i`` has embedding rows ``indices[indptr[i]:indptr[i + 1]]``, in order.

    Attributes:
        indptr: int64 (n_items + 1,), non-decreasing, ``indptr[0] == 0``.
        indices: int64 (n_refs,), non-negative rows of the embedding array.
    """

    indptr: np.ndarray
    indices: np.ndarray

    @property
    def n_items(self) -> int:
        return len(self.indptr) - 1

    def counts(self) -> np.ndarray:
        """Images per item, int64 (n_items,)."""
        return np.diff(self.indptr)

    def rows_of(self, item: int) -> np.ndarray:
        """Embedding rows of one item (possibly empty)."""
        return self.indices[self.indptr[item] : self.indptr[item + 1]]

    def problems(self, file: str, n_embeddings: int | None = None, n_items: int | None = None) -> list[Problem]:
        """Structural defects, indices >= ``n_embeddings``, and a length other than ``n_items``."""
        found = ProblemCollector(file)
        indptr, indices = self.indptr, self.indices
        if indptr.ndim != 1 or indices.ndim != 1 or len(indptr) == 0:
            found.add("indptr and indices must be non-empty 1-D arrays", field="indptr")
            return found.problems
        if indptr[0] != 0 or indptr[-1] != len(indices) or (np.diff(indptr) < 0).any():
            found.add("indptr must start at 0, never decrease, and end at len(indices)", field="indptr")
        if (indices < 0).any():
            found.add(f"{int((indices < 0).sum())} negative embedding row(s)", field="indices")
        if n_embeddings is not None and len(indices) and (bad := indices >= n_embeddings).any():
            first = int(np.flatnonzero(bad)[0])
            item = int(np.searchsorted(indptr, first, side="right") - 1)
            found.add(
                f"{int(bad.sum())} embedding row(s) out of range [0, {n_embeddings}); the first is "
                f"{int(indices[first])} for item {item}",
                field="indices",
            )
        if n_items is not None and self.n_items != n_items:
            found.add(f"the map has {self.n_items} items but the split has {n_items}", field="indptr")
        return found.problems


def image_map_from_entries(entries, file: str = "<map>") -> ImageMap:
    """Build an :class:`ImageMap` from a released map's entries.

    Args:
        entries: a numpy array or sequence with one entry per item: a list/tuple/array of row indices
            (a -1 inside is padding and skipped), an int (-1: no image; >= 0: one image) or None. A 2-D
            integer array is read as rows padded with -1.
        file: named in problems.

    Raises:
        DataError: entries of another type, non-integer or negative (< -1) indices, naming the item.
    """
    problems = ProblemCollector(file)
    arr = entries if isinstance(entries, np.ndarray) else np.asarray(entries, dtype=object)
    if arr.dtype != object and arr.ndim in (1, 2) and arr.dtype.kind in "iu":
        width = 1 if arr.ndim == 1 else arr.shape[1]
        lengths = np.full(len(arr), width, dtype=np.int64)
        flat = arr.reshape(-1).astype(np.int64)
    elif arr.ndim in (1, 2):  # an object array of equal-length lists may have become 2-D
        items = arr.tolist()
        parts = [_entry(e) for e in items]
        lengths = np.fromiter((len(p) if p is not None else 0 for p in parts), dtype=np.int64, count=len(parts))
        for i in (i for i, p in enumerate(parts) if p is None):
            problems.add(
                f"entry of type {type(items[i]).__name__} is neither a list of rows nor -1", field=f"item {i}"
            )
        flat_list = list(itertools.chain.from_iterable(p for p in parts if p is not None))
        flat = _as_int64(flat_list)
        if flat is None:
            item_of = np.repeat(np.arange(len(parts)), lengths)
            for k, value in enumerate(flat_list):
                if not _is_integral(value):
                    problems.add(f"non-integer embedding row {value!r}", field=f"item {int(item_of[k])}")
            problems.raise_if_any()
    else:
        raise DataError(Problem(file, f"expected one entry per item, got an array of shape {arr.shape}"))
    problems.raise_if_any()
    item_of = np.repeat(np.arange(len(lengths)), lengths)
    for k in np.flatnonzero(flat < -1)[: problems.limit]:
        problems.add(f"negative embedding row {int(flat[k])}", field=f"item {int(item_of[k])}")
    problems.raise_if_any()
    keep = flat >= 0
    counts = np.bincount(item_of[keep], minlength=len(lengths)).astype(np.int64)
    indptr = np.concatenate([np.zeros(1, dtype=np.int64), np.cumsum(counts)])
    return ImageMap(indptr, flat[keep].astype(np.int64))


def _entry(value) -> list | None:
    """The rows of one entry as a list, or None for an unusable entry."""
    if isinstance(value, _SEQUENCE):
        return list(np.asarray(value).reshape(-1).tolist()) if isinstance(value, np.ndarray) else list(value)
    if value is None:
        return []
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        return [] if value == -1 else [int(value)]
    return None


def _is_integral(value) -> bool:
    return (
        isinstance(value, (int, np.integer))
        and not isinstance(value, bool)
        or (isinstance(value, (float, np.floating)) and float(value).is_integer())
    )


def _as_int64(values: list) -> np.ndarray | None:
    if not values:
        return np.zeros(0, dtype=np.int64)
    try:
        arr = np.asarray(values)
    except (ValueError, TypeError):
        return None
    if arr.ndim != 1:
        return None
    if arr.dtype.kind in "iu":
        return arr.astype(np.int64)
    if arr.dtype.kind == "f" and np.isfinite(arr).all() and (arr == np.round(arr)).all():
        return arr.astype(np.int64)
    return None


def convert_image_map(src_npy: str | os.PathLike, dst_npz: str | os.PathLike, *, trust_pickle: bool) -> ImageMap:
    """Convert a released map into the pickle-free ``.npz``, written atomically.

    Args:
        src_npy: the released ``*_map.npy`` (a pickled object array), or a plain integer array.
        dst_npz: where to write ``indptr`` / ``indices``.
        trust_pickle: allow unpickling ``src_npy``. Unpickling runs code from the file: pass True only
            for files from a source you trust (the CLI's ``--trust-pickle``).

    Returns:
        The converted map.

    Raises:
        DataError: the file needs unpickling and ``trust_pickle`` is False, cannot be read, or holds
            unusable entries.
    """
    src = Path(src_npy)
    try:
        entries = np.load(src, allow_pickle=False)
    except FileNotFoundError as exc:
        raise DataError(Problem(str(src), "image map not found")) from exc
    except ValueError as exc:
        if "pickle" not in str(exc):
            raise DataError(Problem(str(src), f"not a numpy .npy file: {exc}")) from exc
        if not trust_pickle:
            raise DataError(
                Problem(
                    str(src),
                    "this image map is a pickle, and loading a pickle can run arbitrary code: pass --trust-pickle "
                    "(trust_pickle=True) only if you trust where the file came from; it is then converted once "
                    "into a pickle-free .npz",
                )
            ) from exc
        try:
            entries = np.load(src, allow_pickle=True)
        except Exception as exc2:  # noqa: BLE001 - any unpickling failure is a bad input file
            raise DataError(Problem(str(src), f"cannot unpickle the image map: {exc2}")) from exc2
    if isinstance(entries, np.lib.npyio.NpzFile):
        entries.close()
        raise DataError(Problem(str(src), "expected a .npy map, got an .npz archive"))
    image_map = image_map_from_entries(entries, file=str(src))
    write_image_map(dst_npz, image_map)
    return image_map


def write_image_map(path: str | os.PathLike, image_map: ImageMap) -> None:
    """Write the pickle-free map (``indptr``, ``indices`` int64) as ``.npz``, atomically."""
    with atomic_path(path, suffix=".npz") as tmp:
        np.savez(tmp, indptr=image_map.indptr.astype(np.int64), indices=image_map.indices.astype(np.int64))


def read_image_map(path: str | os.PathLike) -> ImageMap:
    """Read a pickle-free map written by :func:`write_image_map` / :func:`convert_image_map`.

    Raises:
        DataError: the file is a ``.npy`` (a released pickled map: convert it first), is missing keys,
            or is structurally broken.
    """
    path = Path(path)
    if path.suffix == ".npy":
        raise DataError(
            Problem(
                str(path),
                "released image maps are pickles and are not read directly: convert them once with "
                "`vixml data prepare --trust-pickle` (or vixml.data.convert_image_map)",
            )
        )
    try:
        with np.load(path, allow_pickle=False) as archive:
            missing = {"indptr", "indices"} - set(archive.files)
            if missing:
                raise DataError(Problem(str(path), f"missing array(s) {sorted(missing)} in the image map"))
            indptr, indices = archive["indptr"], archive["indices"]
    except FileNotFoundError as exc:
        raise DataError(Problem(str(path), "image map not found")) from exc
    except NUMPY_READ_ERRORS as exc:
        raise DataError(
            Problem(str(path), f"not a readable pickle-free image map (.npz; truncated?): {type(exc).__name__}: {exc}")
        ) from exc
    if indptr.dtype.kind not in "iu" or indices.dtype.kind not in "iu":
        raise DataError(Problem(str(path), "indptr and indices must be integer arrays"))
    image_map = ImageMap(indptr.astype(np.int64), indices.astype(np.int64))
    problems = image_map.problems(str(path))
    if problems:
        raise DataError(problems)
    return image_map
