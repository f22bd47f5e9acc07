"""``prepare_dataset``: any supported source -> a validated dataset folder, with ``dataset.json`` written last.

Sources, detected in this order:

1. an XC-repository raw folder (``trn.json.gz``, ``lbl.json.gz``, optional ``tst.json.gz``);
2. a practitioner catalogue (``queries.*``, ``labels.*``, ``pairs.*`` or ``train_pairs.*``/``test_pairs.*``);
3. a folder already in the dataset layout (``trn.raw.txt``, ...): copied, or given a manifest in place
   when ``out`` is the same folder.

Every file is written atomically and the manifest only after the written folder validated, so a
prepare killed half-way leaves a folder without ``dataset.json``: it does not look complete, and the
next prepare into it needs ``overwrite=True``.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from vixml.data._copy import copy_file, copy_image_files
from vixml.data.catalogue import find_catalogue, prepare_catalogue
from vixml.data.layout import (
    FILTER_FILES,
    ID_FILES,
    IMAGE_REF_FILES,
    LABEL_STEMS,
    MANIFEST_NAME,
    TEXT_FILES,
    dataset_files,
    label_file,
)
from vixml.data.manifest import write_manifest
from vixml.data.texts import read_texts
from vixml.data.validate import validate_dataset
from vixml.data.xc_repo import TextMode, find_xc_json, prepare_xc_repo
from vixml.errors import DataError, Problem

__all__ = ["prepare_dataset", "detect_source"]

logger = logging.getLogger(__name__)


def detect_source(src: str | os.PathLike) -> str:
    """The kind of source folder: ``"xc-repo"``, ``"catalogue"`` or ``"dataset-folder"``.

    Raises:
        DataError: none of them, saying what was looked for.
    """
    src = Path(src)
    if not src.is_dir():
        raise DataError(Problem(str(src), "source folder not found"))
    if find_xc_json(src, "trn") is not None:
        return "xc-repo"
    if find_catalogue(src) is not None:
        return "catalogue"
    if (src / TEXT_FILES["trn"]).is_file():
        return "dataset-folder"
    raise DataError(
        Problem(
            str(src),
            "unrecognised source: expected trn.json.gz + lbl.json.gz (XC repository), queries.* + labels.* + "
            "pairs.* or train_pairs.*/test_pairs.* (catalogue: csv, tsv, jsonl, parquet), or trn.raw.txt + "
            "trn_X_Y.txt + lbl.raw.txt (dataset folder)",
        )
    )


def prepare_dataset(
    src: str | os.PathLike,
    out: str | os.PathLike,
    *,
    text_mode: TextMode = "auto",
    trust_pickle: bool = False,
    overwrite: bool = False,
    link: bool = False,
    validate: bool = True,
) -> Path:
    """Prepare a dataset folder from ``src`` (see the module docstring for the sources).

    Args:
        src: the source folder.
        out: the dataset folder to write (created). It must be new or empty unless ``overwrite``; it may
            be ``src`` itself for a dataset-layout source (then only the manifest is written).
        text_mode: ``auto`` (title only when the source folder's name contains ``Titles``, as the XC
            tooling does; else title + " " + content), ``title`` or ``title+content``. Catalogues with a
            ``text`` column ignore it.
        trust_pickle: convert released pickled image maps (unpickling runs code from the file; pass True
            only for files you trust). Without it, splits whose maps are pickles are prepared without
            images and the manifest's ``skipped`` lists them.
        overwrite: replace a previous dataset in ``out`` (its manifest and layout files are removed first;
            other files are left alone).
        link: hard-link large copied files (embeddings, banks, layout files) instead of copying, when the
            file system allows.
        validate: validate the written folder before writing the manifest (skipping is for trusted
            re-runs of very large data).

    Returns:
        ``out`` as a Path.

    Raises:
        DataError: an unrecognised or invalid source, or an ``out`` that holds another dataset.
    """
    src, out = Path(src), Path(out)
    kind = detect_source(src)
    in_place = out.exists() and out.resolve() == src.resolve()
    if in_place and kind != "dataset-folder":
        raise DataError(Problem(str(out), "the output folder must differ from the source folder"))
    _clear_output(out, overwrite=overwrite, in_place=in_place)
    out.mkdir(parents=True, exist_ok=True)
    skipped: list[str] = []
    mode: str = text_mode
    if kind == "xc-repo":
        mode = prepare_xc_repo(src, out, text_mode=text_mode)["text_mode"]
        _copy_filters(src, out, link)
        skipped = copy_image_files(src, out, trust_pickle=trust_pickle, link=link)
    elif kind == "catalogue":
        prepare_catalogue(find_catalogue(src), out, text_mode=text_mode)
    elif not in_place:
        _copy_layout(src, out, link)
        skipped = copy_image_files(src, out, trust_pickle=trust_pickle, link=link)
    if validate:
        problems = validate_dataset(out)
        if problems:
            raise DataError(problems)
    counts = _counts_of(out)
    extra = {"text_mode": mode, "skipped": skipped}
    write_manifest(out, source={"kind": kind, "path": str(src.resolve())}, counts=counts, extra=extra)
    logger.info("prepared %s -> %s (%s): %s", src, out, kind, counts)
    return out


def _clear_output(out: Path, *, overwrite: bool, in_place: bool) -> None:
    """Refuse to write over another dataset unless ``overwrite``; then remove its manifest first."""
    if not out.exists():
        return
    if not out.is_dir():
        raise DataError(Problem(str(out), "output path exists and is not a folder"))
    manifest = out / MANIFEST_NAME
    if in_place:
        if manifest.exists() and not overwrite:
            raise DataError(Problem(str(out), "already prepared (dataset.json exists); pass overwrite=True"))
        manifest.unlink(missing_ok=True)
        return
    if any(out.iterdir()) and not overwrite:
        state = "holds a prepared dataset" if manifest.exists() else "is not empty (an unfinished prepare?)"
        raise DataError(Problem(str(out), f"output folder {state}; pass overwrite=True (--overwrite) to replace it"))
    manifest.unlink(missing_ok=True)  # first: from here on the folder no longer looks complete
    for path in dataset_files(out):
        path.unlink()


def _copy_filters(src: Path, out: Path, link: bool) -> None:
    for name in FILTER_FILES.values():
        if (src / name).is_file():
            copy_file(src / name, out / name, link=link)


def _copy_layout(src: Path, out: Path, link: bool) -> None:
    names = [*TEXT_FILES.values(), *FILTER_FILES.values(), *ID_FILES.values(), *IMAGE_REF_FILES.values()]
    for split in LABEL_STEMS:
        path = label_file(src, split)
        if path is not None:
            names.append(path.name)
    for name in names:
        if (src / name).is_file():
            copy_file(src / name, out / name, link=link)


def _counts_of(out: Path) -> dict:
    """Counts of a written folder from its files' line counts / headers (cheap: no label parsing)."""
    counts = {}
    for split, key in (("trn", "n_train"), ("tst", "n_test"), ("lbl", "n_labels")):
        path = out / TEXT_FILES[split]
        counts[key] = len(read_texts(path)) if path.is_file() else 0
    return counts
