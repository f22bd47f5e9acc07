"""File names of a dataset folder (DESIGN.md section 4), in one place."""

from __future__ import annotations

import os
import re
from pathlib import Path

__all__ = [
    "TEXT_FILES",
    "LABEL_STEMS",
    "FILTER_FILES",
    "ID_FILES",
    "IMAGE_REF_FILES",
    "MANIFEST_NAME",
    "PREPARING_MARKER",
    "label_file",
    "is_dataset_file",
    "dataset_files",
]

TEXT_FILES = {"trn": "trn.raw.txt", "tst": "tst.raw.txt", "lbl": "lbl.raw.txt"}
LABEL_STEMS = {"trn": "trn_X_Y", "tst": "tst_X_Y"}
FILTER_FILES = {"tst": "filter_labels_test.txt", "trn": "filter_labels_train.txt"}
ID_FILES = {"trn": "trn_ids.txt", "tst": "tst_ids.txt", "lbl": "lbl_ids.txt"}
IMAGE_REF_FILES = {"trn": "trn.images.jsonl", "tst": "tst.images.jsonl", "lbl": "lbl.images.jsonl"}
MANIFEST_NAME = "dataset.json"
#: Present while ``prepare --overwrite`` replaces a folder's files; a folder holding it is refused by every reader.
PREPARING_MARKER = ".vixml-preparing"

_IMAGE_FILE = re.compile(
    r"^((trn|tst|lbl)_embs_imgs_\d+_\d+_.+\.npy|(train|test|labels)_imgs_\d+_\d+(_map\.(npy|npz)|\.bin))$"
)
_FIXED = (
    set(TEXT_FILES.values())
    | {f"{stem}.{ext}" for stem in LABEL_STEMS.values() for ext in ("txt", "npz")}
    | set(FILTER_FILES.values())
    | set(ID_FILES.values())
    | set(IMAGE_REF_FILES.values())
)


def label_file(directory: str | os.PathLike, split: str) -> Path | None:
    """The label matrix of ``split`` (``"trn"``/``"tst"``): the ``.npz`` when present, else the ``.txt``."""
    directory = Path(directory)
    for ext in (".npz", ".txt"):
        path = directory / f"{LABEL_STEMS[split]}{ext}"
        if path.is_file():
            return path
    return None


def is_dataset_file(name: str) -> bool:
    """Whether a file name belongs to the dataset-folder layout (data files; not the manifest)."""
    return name in _FIXED or bool(_IMAGE_FILE.match(name))


def dataset_files(directory: str | os.PathLike) -> list[Path]:
    """The layout's data files present in ``directory``, sorted by name."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    return sorted(p for p in directory.iterdir() if p.is_file() and is_dataset_file(p.name))
