"""Loading a dataset folder as one validated :class:`XMCDataset`."""

from __future__ import annotations

import functools
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from vixml.data.encoding import Encoding
from vixml.data.footprint import require_folder
from vixml.data.images import ImageBank
from vixml.data.layout import ID_FILES
from vixml.data.manifest import fingerprint, read_manifest
from vixml.data.rules import check_folder
from vixml.data.texts import TextStore, read_texts
from vixml.errors import DataError

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
    encoding: Encoding = "auto",
) -> XMCDataset:
    """Load a dataset folder; check every shape against the others.

    Args:
        directory: folder in the dataset layout (``trn.raw.txt``, ``lbl.raw.txt``, ``trn_X_Y.txt`` required;
            ``tst.raw.txt`` + ``tst_X_Y.txt`` optional together; filters and image files optional).
        num_images: image slots N per item; None takes the N in the embedding file names.
        images: open image banks (False loads texts and labels only, e.g. for a text-only model).
        image_model: choose among several embedding files by their ``<model>`` tag.
        encoding: of the text files: ``auto`` (UTF-8; latin-1 only for the known public XC files, see
            :mod:`vixml.data.encoding`), ``utf-8`` or ``latin-1``.

    Returns:
        The dataset.

    Raises:
        DataError: every problem found, at once, by the rules of :mod:`vixml.data.rules` (the ones
            ``validate`` applies): missing or unreadable files, disagreeing counts, label ids beyond the
            label count, no label or no training label, filter pairs out of range, image maps that do
            not fit.
        ResourceError: the texts and label matrices would not fit in the memory available (estimated from
            the files' headers before reading them; ``VIXML_SKIP_MEMORY_CHECK=1`` skips the check).
    """
    directory = Path(directory)
    require_folder(directory, "load_dataset")
    found = check_folder(directory, encoding=encoding, images=images, num_images=num_images, image_model=image_model)
    if found.problems:
        raise DataError(found.problems)
    manifest = None
    try:
        manifest = read_manifest(directory)
    except (OSError, ValueError) as exc:
        logger.warning("ignoring unreadable manifest in %s: %s", directory, exc)
    return XMCDataset(
        path=directory,
        trn_texts=found.texts["trn"],
        tst_texts=found.texts["tst"],
        lbl_texts=found.texts["lbl"],
        trn_Y=found.matrices["trn"],
        tst_Y=found.matrices["tst"],
        filter_tst=found.filters["tst"],
        filter_trn=found.filters["trn"],
        images=found.banks or None,
        manifest=manifest,
    )
