"""Image-embedding banks of a dataset: finding the released files and gathering the first N images per item.

Released layout (paper's data): ``{trn,tst,lbl}_embs_imgs_<N>_<D>_<model>.npy`` float32 (n_images_total, D)
with maps ``{train,test,labels}_imgs_<size>_<N>_map.npy`` (pickled; converted once to ``..._map.npz``) and
base64 JPEG banks ``{train,test,labels}_imgs_<size>_<N>.bin``. An item uses its first N images; missing
slots are zero vectors with mask False (the early-fusion input of the paper, section 3).
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vixml.data.file_kinds import NUMPY_READ_ERRORS
from vixml.data.image_maps import ImageMap, read_image_map
from vixml.errors import ConfigError, DataError, Problem
from vixml.finite import nonfinite_problem

__all__ = [
    "ImageBank",
    "ImageFiles",
    "discover_image_files",
    "embedding_problems",
    "open_embeddings",
    "SPLITS",
    "MAP_SPLIT_NAMES",
]

logger = logging.getLogger(__name__)

SPLITS = ("trn", "tst", "lbl")
MAP_SPLIT_NAMES = {"trn": "train", "tst": "test", "lbl": "labels"}
_SPLIT_OF_MAP_NAME = {v: k for k, v in MAP_SPLIT_NAMES.items()}
_EMB = re.compile(r"^(trn|tst|lbl)_embs_imgs_(\d+)_(\d+)_(.+)\.npy$")
_MAP = re.compile(r"^(train|test|labels)_imgs_(\d+)_(\d+)_map\.(npy|npz)$")
_BANK = re.compile(r"^(train|test|labels)_imgs_(\d+)_(\d+)\.bin$")


@dataclass(frozen=True)
class ImageFiles:
    """The image files of one split found in a folder (any of them may be absent).

    Attributes:
        split: ``"trn"``, ``"tst"`` or ``"lbl"``.
        embeddings: ``<split>_embs_imgs_<N>_<D>_<model>.npy``.
        map_npz: the pickle-free map ``<train|test|labels>_imgs_<size>_<N>_map.npz``.
        map_npy: the released pickled map ``..._map.npy`` (needs conversion).
        bank: the base64 JPEG bank ``<train|test|labels>_imgs_<size>_<N>.bin``.
        num_images: N from the embedding file name (else from the map's).
        dim: D from the embedding file name.
        model: the model tag of the embedding file name.
        image_size: ``<size>`` from the map or bank name.
    """

    split: str
    embeddings: Path | None = None
    map_npz: Path | None = None
    map_npy: Path | None = None
    bank: Path | None = None
    num_images: int | None = None
    dim: int | None = None
    model: str | None = None
    image_size: int | None = None


def discover_image_files(directory: str | os.PathLike, model: str | None = None) -> dict[str, ImageFiles]:
    """Find the released image files per split in ``directory``.

    Args:
        directory: a dataset folder or an XC-repository raw folder.
        model: keep only embedding files of this model tag (the ``<model>`` in their names); when several
            embedding files of one split remain, the first by name is taken and a warning logged.

    Returns:
        ``{split: ImageFiles}`` for each split with at least one image file. A map is paired with the
        embedding file of the same N when there is one.
    """
    directory = Path(directory)
    embs: dict[str, list[tuple[str, int, int, str, Path]]] = {}
    maps: dict[str, list[tuple[int, int, str, Path]]] = {}
    banks: dict[str, list[tuple[int, int, Path]]] = {}
    for path in sorted(directory.iterdir()) if directory.is_dir() else []:
        if m := _EMB.match(path.name):
            if model is None or m.group(4) == model:
                embs.setdefault(m.group(1), []).append((path.name, int(m.group(2)), int(m.group(3)), m.group(4), path))
        elif m := _MAP.match(path.name):
            maps.setdefault(_SPLIT_OF_MAP_NAME[m.group(1)], []).append(
                (int(m.group(3)), int(m.group(2)), m.group(4), path)
            )
        elif m := _BANK.match(path.name):
            banks.setdefault(_SPLIT_OF_MAP_NAME[m.group(1)], []).append((int(m.group(3)), int(m.group(2)), path))
    found: dict[str, ImageFiles] = {}
    for split in SPLITS:
        if split not in embs and split not in maps and split not in banks:
            continue
        emb = embs.get(split, [])
        if len(emb) > 1:
            logger.warning("several embedding files for split %s in %s; using %s", split, directory, emb[0][0])
        n = emb[0][1] if emb else None
        candidates = maps.get(split, [])
        same_n = [c for c in candidates if c[0] == n] or candidates
        npz = next((c for c in same_n if c[2] == "npz"), None)
        npy = next((c for c in same_n if c[2] == "npy"), None)
        chosen = npz or npy
        bank_list = [b for b in banks.get(split, []) if b[0] == n] or banks.get(split, [])
        bank = bank_list[0] if bank_list else None
        found[split] = ImageFiles(
            split=split,
            embeddings=emb[0][4] if emb else None,
            map_npz=npz[3] if npz else None,
            map_npy=npy[3] if npy else None,
            bank=bank[2] if bank else None,
            num_images=n if n is not None else (chosen[0] if chosen else (bank[0] if bank else None)),
            dim=emb[0][2] if emb else None,
            model=emb[0][3] if emb else None,
            image_size=chosen[1] if chosen else (bank[1] if bank else None),
        )
    return found


def open_embeddings(path: str | os.PathLike) -> np.ndarray:
    """Memory-map an embedding array (n_images_total, D), never unpickling.

    Raises:
        DataError: missing, not a plain 2-D floating ``.npy``.
    """
    path = Path(path)
    try:
        emb = np.load(path, mmap_mode="r", allow_pickle=False)
    except FileNotFoundError as exc:
        raise DataError(Problem(str(path), "embedding file not found")) from exc
    except NUMPY_READ_ERRORS as exc:
        raise DataError(
            Problem(str(path), f"not a plain numpy .npy array (truncated, or holding Python objects): {exc}")
        ) from exc
    if emb.ndim != 2 or emb.dtype.kind != "f":
        raise DataError(Problem(str(path), f"expected a 2-D float array, got {emb.dtype} of shape {emb.shape}"))
    return emb


def embedding_problems(path: str | os.PathLike) -> list[Problem]:
    """NaN/inf rows of an embedding file (count and first rows), scanned in bounded chunks."""
    try:
        emb = open_embeddings(path)
    except DataError as exc:
        return exc.problems
    problem = nonfinite_problem(emb, str(path), "embedding rows")
    return [problem] if problem is not None else []


class ImageBank:
    """The image embeddings of one split: item -> its first N embedding rows, memory-mapped.

    Args:
        embeddings_path: ``.npy`` float array (n_images_total, D), opened with ``mmap_mode="r"``.
        map_path: the pickle-free map (``.npz``) or an :class:`ImageMap`.
        num_images: N, the image slots per item.

    Raises:
        DataError: unreadable files, or map rows out of the embedding array's range.
    """

    def __init__(self, embeddings_path: str | os.PathLike, map_path: str | os.PathLike | ImageMap, num_images: int):
        if num_images < 1:
            raise ConfigError(f"num_images must be >= 1, got {num_images}")
        self.embeddings_path = Path(embeddings_path)
        self.map_path = None if isinstance(map_path, ImageMap) else Path(map_path)
        self.map = map_path if isinstance(map_path, ImageMap) else read_image_map(map_path)
        self.num_images = int(num_images)
        self._emb: np.ndarray | None = open_embeddings(self.embeddings_path)
        self.n_embeddings, self.dim = self._emb.shape
        problems = self.map.problems(str(self.map_path or "<map>"), n_embeddings=self.n_embeddings)
        if problems:
            raise DataError(problems)

    @property
    def embeddings(self) -> np.ndarray:
        """The memory-mapped array (n_images_total, D)."""
        if self._emb is None:
            self._emb = open_embeddings(self.embeddings_path)
        return self._emb

    @property
    def n_items(self) -> int:
        return self.map.n_items

    def counts(self) -> np.ndarray:
        """Images used per item (at most N), int64 (n_items,)."""
        return np.minimum(self.map.counts(), self.num_images)

    def gather(self, rows) -> tuple[np.ndarray, np.ndarray]:
        """The first N image embeddings of each item.

        Args:
            rows: item indices, int array-like (n,).

        Returns:
            ``(emb, mask)``: emb float32 (n, N, D), zero where there is no image; mask bool (n, N),
            True where a slot holds an image.

        Raises:
            DataError: a gathered embedding row holds NaN or inf (``vixml data validate`` lists them all).
        """
        rows = np.asarray(rows, dtype=np.int64).reshape(-1)
        if rows.size and (rows.min() < 0 or rows.max() >= self.n_items):
            raise IndexError(f"item index out of range [0, {self.n_items})")
        n, slots = rows.size, self.num_images
        starts = self.map.indptr[rows]
        counts = np.minimum(self.map.indptr[rows + 1] - starts, slots)
        slot = np.arange(slots, dtype=np.int64)
        mask = slot[None, :] < counts[:, None]
        emb = np.zeros((n, slots, self.dim), dtype=np.float32)
        positions = (starts[:, None] + slot[None, :])[mask]
        if positions.size:
            wanted = self.map.indices[positions]
            distinct, inverse = np.unique(wanted, return_inverse=True)  # read each row once, in file order
            vectors = np.asarray(self.embeddings[distinct], dtype=np.float32)
            if not np.isfinite(vectors).all():
                bad = distinct[~np.isfinite(vectors).all(axis=1)]
                rows = ", ".join(str(int(r)) for r in bad[:5]) + (", ..." if bad.size > 5 else "")
                raise DataError(
                    Problem(
                        str(self.embeddings_path),
                        f"embedding row(s) {rows} hold NaN or inf values; every value must be a finite number "
                        "(vixml data validate lists every such row)",
                    )
                )
            emb[mask] = vectors[inverse]
        return emb, mask

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_emb"] = None  # a memmap would pickle as a full copy; reopen in the other process instead
        return state

    def __repr__(self) -> str:
        return (
            f"ImageBank({str(self.embeddings_path)!r}, items={self.n_items}, embeddings={self.n_embeddings}, "
            f"dim={self.dim}, num_images={self.num_images})"
        )
