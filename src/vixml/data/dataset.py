"""Loading a dataset folder as one validated :class:`XMCDataset`."""

from __future__ import annotations

import functools
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from vixml.data.filters import check_filter, read_filter
from vixml.data.images import ImageBank, discover_image_files
from vixml.data.labels import read_label_matrix
from vixml.data.layout import FILTER_FILES, ID_FILES, TEXT_FILES, label_file
from vixml.data.manifest import fingerprint, read_manifest
from vixml.data.texts import TextStore, read_texts
from vixml.errors import DataError, Problem

__all__ = ["XMCDataset", "load_dataset"]

logger = logging.getLogger(__name__)


@dataclass(eq=False, kw_only=True)
class XMCDataset:
    """A loaded dataset folder: texts (lazy), label matrices, filters and image banks, shapes checked.

    Attributes:
        path: the folder.
        trn_texts, tst_texts, lbl_texts: lazy texts (``tst_texts`` None without a test split).
        trn_Y: float32 CSR (n_train, n_labels); ``tst_Y``: (n_test, n_labels) or None.
        filter_tst, filter_trn: int64 (n_pairs, 2) ``row label`` pairs to drop before scoring (maybe empty).
        images: ``{"trn"|"tst"|"lbl": ImageBank}`` for the splits with embeddings, None when none has.
        manifest: the ``dataset.json`` content, None for a folder ``prepare`` did not write.
    """

    path: Path
    trn_texts: TextStore
    tst_texts: TextStore | None
    lbl_texts: TextStore
    trn_Y: sp.csr_matrix
    tst_Y: sp.csr_matrix | None
    filter_tst: np.ndarray
    filter_trn: np.ndarray
    images: dict[str, ImageBank] | None = None
    manifest: dict | None = field(default=None, repr=False)

    @property
    def n_labels(self) -> int:
        return self.trn_Y.shape[1]

    @property
    def n_train(self) -> int:
        return self.trn_Y.shape[0]

    @property
    def n_test(self) -> int:
        """Test points (0 without a test split)."""
        return 0 if self.tst_Y is None else self.tst_Y.shape[0]

    @functools.cached_property
    def fingerprint(self) -> str:
        """The manifest's data fingerprint, or one computed from the files for a folder without a manifest."""
        if self.manifest and isinstance(self.manifest.get("fingerprint"), str):
            return self.manifest["fingerprint"]
        return fingerprint(self.path)

    def ids(self, split: str) -> TextStore | None:
        """Original ids of a split's items (``trn``/``tst``/``lbl``), when ``prepare`` kept them."""
        path = self.path / ID_FILES[split]
        return read_texts(path, layout="plain") if path.is_file() else None


def load_dataset(
    directory: str | os.PathLike,
    *,
    num_images: int | None = None,
    images: bool = True,
    image_model: str | None = None,
) -> XMCDataset:
    """Load a dataset folder; check every shape against the others.

    Args:
        directory: folder in the dataset layout (``trn.raw.txt``, ``lbl.raw.txt``, ``trn_X_Y.txt`` required;
            ``tst.raw.txt`` + ``tst_X_Y.txt`` optional together; filters and image files optional).
        num_images: image slots N per item; None takes the N in the embedding file names.
        images: open image banks (False loads texts and labels only, e.g. for a text-only model).
        image_model: choose among several embedding files by their ``<model>`` tag.

    Returns:
        The dataset.

    Raises:
        DataError: every problem found (missing files, unreadable files, disagreeing counts, label ids
            beyond the label count, filter pairs out of range, image maps that do not fit), at once.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise DataError(Problem(str(directory), "dataset folder not found"))
    problems: list[Problem] = []

    def attempt(fn, *args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except DataError as exc:
            problems.extend(exc.problems)
            return None

    texts: dict[str, TextStore | None] = {}
    for split, name in TEXT_FILES.items():
        path = directory / name
        if path.is_file():
            texts[split] = attempt(read_texts, path)
        else:
            texts[split] = None
            if split != "tst":
                problems.append(Problem(str(path), "required file missing"))
    matrices: dict[str, sp.csr_matrix | None] = {}
    for split in ("trn", "tst"):
        path = label_file(directory, split)
        matrices[split] = attempt(read_label_matrix, path) if path else None
        if path is None and (split == "trn" or (directory / TEXT_FILES["tst"]).is_file()):
            problems.append(Problem(str(directory / f"{split}_X_Y.txt"), "required file missing"))
    if matrices["tst"] is not None and not (directory / TEXT_FILES["tst"]).is_file():
        problems.append(Problem(str(directory / TEXT_FILES["tst"]), "required file missing (tst_X_Y exists)"))
    problems += _shape_problems(directory, texts, matrices)

    filters = {}
    for split, name in FILTER_FILES.items():
        pairs = attempt(read_filter, directory / name)
        filters[split] = pairs if pairs is not None else np.zeros((0, 2), dtype=np.int64)
        y = matrices.get(split)
        if pairs is not None and y is not None:
            problems += check_filter(pairs, y.shape[0], y.shape[1], str(directory / name))

    banks = _open_banks(directory, texts, num_images, image_model, problems) if images else {}
    if problems:
        raise DataError(problems)
    manifest = None
    try:
        manifest = read_manifest(directory)
    except (OSError, ValueError) as exc:
        logger.warning("ignoring unreadable manifest in %s: %s", directory, exc)
    return XMCDataset(
        path=directory,
        trn_texts=texts["trn"],
        tst_texts=texts["tst"],
        lbl_texts=texts["lbl"],
        trn_Y=matrices["trn"],
        tst_Y=matrices["tst"],
        filter_tst=filters["tst"],
        filter_trn=filters["trn"],
        images=banks or None,
        manifest=manifest,
    )


def _shape_problems(directory: Path, texts: dict, matrices: dict) -> list[Problem]:
    """Counts that disagree: texts vs label rows, label columns vs label texts, train vs test columns."""
    problems = []
    lbl = texts.get("lbl")
    for split in ("trn", "tst"):
        y, t = matrices.get(split), texts.get(split)
        if y is None:
            continue
        name = str(label_file(directory, split))
        if t is not None and y.shape[0] != len(t):
            problems.append(
                Problem(name, f"{y.shape[0]} rows but {TEXT_FILES[split]} has {len(t)} lines", field="n_rows")
            )
        if lbl is not None and y.shape[1] != len(lbl):
            problems.append(
                Problem(
                    name, f"{y.shape[1]} label columns but {TEXT_FILES['lbl']} has {len(lbl)} lines", field="n_cols"
                )
            )
    if matrices.get("trn") is not None and matrices.get("tst") is not None:
        if matrices["trn"].shape[1] != matrices["tst"].shape[1]:
            problems.append(
                Problem(
                    str(label_file(directory, "tst")),
                    f"{matrices['tst'].shape[1]} label columns but the training matrix has {matrices['trn'].shape[1]}",
                    field="n_cols",
                )
            )
    return problems


def _open_banks(directory, texts, num_images, image_model, problems: list[Problem]) -> dict[str, ImageBank]:
    banks = {}
    for split, files in discover_image_files(directory, model=image_model).items():
        if files.embeddings is None:
            continue
        if files.map_npz is None:
            hint = (
                "its map is a pickle: convert it with `vixml data prepare --trust-pickle`"
                if files.map_npy is not None
                else "no map file (<train|test|labels>_imgs_<size>_<N>_map.npz) found"
            )
            problems.append(Problem(str(files.embeddings), f"image embeddings unusable: {hint}"))
            continue
        try:
            bank = ImageBank(files.embeddings, files.map_npz, num_images or files.num_images or 1)
        except DataError as exc:
            problems.extend(exc.problems)
            continue
        items = texts.get(split)
        if items is not None and bank.n_items != len(items):
            problems.append(
                Problem(
                    str(files.map_npz),
                    f"the map has {bank.n_items} items but {TEXT_FILES[split]} has {len(items)} lines",
                    field="indptr",
                )
            )
        banks[split] = bank
    return banks
