"""``prepare_dataset``: any supported source -> a validated dataset folder, which appears complete or not at all.

Sources, detected in this order:

1. an XC-repository raw folder (``trn.json.gz``, ``lbl.json.gz``, optional ``tst.json.gz``);
2. a practitioner catalogue (``queries.*``, ``labels.*``, ``pairs.*`` or ``train_pairs.*``/``test_pairs.*``);
3. a folder already in the dataset layout (``trn.raw.txt``, ...): copied (its text files transcoded to
   UTF-8), or given a manifest in place when ``out`` is the same folder.

Nothing is written where later commands look until the whole folder is written and validated: the
dataset is built in a hidden sibling ``.<OUT>.preparing-<random>`` (locked while it is built), then
renamed to OUT. Replacing an existing folder (``overwrite``) moves the new files in one by one, manifest
last, behind a marker file (``.vixml-preparing``) that every reader refuses, so a kill at any point never
leaves a folder that reads as complete. A build folder left by a killed prepare is removed by the next
prepare of the same OUT.
"""

from __future__ import annotations

import logging
import os
import secrets
import shutil
from pathlib import Path

from vixml.data._copy import copy_file, copy_image_files
from vixml.data.catalogue import find_catalogue, prepare_catalogue
from vixml.data.encoding import Encoding, check_encoding
from vixml.data.family import Family, dataset_family
from vixml.data.footprint import prepare_need
from vixml.data.layout import (
    FILTER_FILES,
    ID_FILES,
    IMAGE_REF_FILES,
    LABEL_STEMS,
    MANIFEST_NAME,
    PREPARING_MARKER,
    TEXT_FILES,
    dataset_files,
    label_file,
)
from vixml.data.manifest import read_manifest, write_manifest
from vixml.data.rules import check_folder
from vixml.data.texts import read_texts, write_texts
from vixml.data.xc_repo import TextMode, find_xc_json, prepare_xc_repo
from vixml.errors import DataError, Problem, StorageError
from vixml.locking import LockedError, WriteLock
from vixml.memory_fit import require

__all__ = ["prepare_dataset", "detect_source"]

logger = logging.getLogger(__name__)

_BUILD = ".preparing-"
_FIT_HINT = "Use a machine (or a container memory limit) with more memory, or prepare a source with fewer rows."


def detect_source(src: str | os.PathLike) -> str:
    """The kind of source folder: ``"xc-repo"``, ``"catalogue"`` or ``"dataset-folder"``.

    Raises:
        DataError: none of them, saying what was looked for.
    """
    src = Path(src)
    if not src.is_dir():
        raise DataError(
            Problem(str(src), "source folder not found" if not src.exists() else "is a file, not a folder")
        )
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
    encoding: Encoding = "auto",
    family: Family | None = None,
) -> Path:
    """Prepare a dataset folder from ``src`` (see the module docstring for the sources).

    Args:
        src: the source folder.
        out: the dataset folder to write. It must be new or empty unless ``overwrite``; it may be ``src``
            itself for a dataset-layout source (then only the manifest is written).
        text_mode: ``auto`` (title only when the source folder's name contains ``Titles``, as the XC
            tooling does; else title + " " + content), ``title`` or ``title+content``. Catalogues with a
            ``text`` column ignore it.
        trust_pickle: convert released pickled image maps (unpickling runs code from the file; pass True
            only for files you trust). Without it, splits whose maps are pickles are prepared without
            images and the manifest's ``skipped`` lists them.
        overwrite: replace a previous dataset in ``out`` (its manifest and layout files; other files are
            left alone). Refused for a non-empty folder that holds no dataset (a folder of another kind).
        link: hard-link large copied files (embeddings, banks, layout files) instead of copying, when the
            file system allows.
        validate: validate the written folder before it replaces ``out`` (skipping is for trusted re-runs
            of very large data).
        encoding: of the source's text (``*.raw.txt``, CSV/TSV/JSON lines tables, the XC JSON): ``auto``
            (UTF-8; latin-1 only for the known public XC files, :mod:`vixml.data.encoding`), ``utf-8`` or
            ``latin-1``. The written folder is always UTF-8.
        family: the dataset family recorded in the manifest (it picks the propensity A/B of ``vixml
            evaluate``); None takes it from the source folder's name (:func:`vixml.data.dataset_family`).

    Returns:
        ``out`` as a Path.

    Raises:
        DataError: an unrecognised or invalid source (every problem, with file and line), or an ``out``
            that is a file, holds another dataset, or is a folder of another kind.
    """
    src, out = Path(src), Path(out)
    encoding = check_encoding(encoding)
    kind = detect_source(src)
    in_place = out.exists() and out.resolve() == src.resolve()
    if in_place:
        if kind != "dataset-folder":
            raise DataError(Problem(str(out), "the output folder must differ from the source folder"))
        return _prepare_in_place(src, overwrite=overwrite, validate=validate, encoding=encoding, family=family)
    replacing = _check_output(out, overwrite=overwrite)
    _remove_dead_builds(out)
    lock = WriteLock(out, "vixml data prepare") if replacing else None
    if lock is not None:
        lock.acquire()
    try:
        work = _build(src, out, kind, text_mode, trust_pickle, link, validate, encoding, family)
        try:
            _commit(work, out, replacing)
        finally:
            shutil.rmtree(work, ignore_errors=True)
    finally:
        if lock is not None:
            lock.release()
    logger.info("prepared %s -> %s (%s)", src, out, kind)
    return out


def _check_output(out: Path, *, overwrite: bool) -> bool:
    """Refuse an ``out`` that cannot receive a dataset; True when an existing dataset is to be replaced."""
    if not out.exists():
        return False
    if not out.is_dir():
        raise DataError(Problem(str(out), "output path exists and is a file, not a folder: choose a folder"))
    entries = [p for p in out.iterdir() if p.name != ".vixml.lock"]
    if not entries:
        return False
    looks_like_dataset = (
        (out / MANIFEST_NAME).exists()
        or bool(dataset_files(out))
        or (out / PREPARING_MARKER).exists()
        or (out / ".cache").is_dir()  # a dataset's token cache
    )
    if not overwrite:
        state = (
            "holds a prepared dataset" if (out / MANIFEST_NAME).exists() else "is not empty (an unfinished prepare?)"
        )
        raise DataError(Problem(str(out), f"output folder {state}; pass overwrite=True (--overwrite) to replace it"))
    if not looks_like_dataset:
        raise DataError(
            Problem(
                str(out),
                "output folder is not empty and holds no dataset (no dataset.json, no trn.raw.txt, ...): refusing "
                "to write into a folder of another kind even with --overwrite; choose a new or empty folder",
            )
        )
    return True


def _build(src, out, kind, text_mode, trust_pickle, link, validate, encoding, family) -> Path:
    """Write the whole dataset into a fresh locked sibling of ``out``; returns it (validated, manifest written)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    work = out.parent / f".{out.name}{_BUILD}{secrets.token_hex(4)}"
    work.mkdir()
    lock = WriteLock(_build_lock_target(work), "vixml data prepare (build)")
    lock.acquire()
    try:
        extra = _write(src, work, kind, text_mode, trust_pickle, link, encoding)
        if kind != "dataset-folder":  # converted: the written files say what validating them costs
            need, what, _ = prepare_need(work)
            require(need, what.replace(str(work), str(out)), _FIT_HINT, command="vixml data prepare")
        if validate:
            problems = check_folder(work, deep=True).problems
            if problems:
                raise DataError(_relabel(problems, work, src if kind == "dataset-folder" else out, src, kind))
        counts = _counts_of(work)
        if counts["n_test"] == 0:
            logger.warning(
                "%s has no test split: every query is a training point (n_test = 0); give the catalogue a split "
                "column (trn/tst) or test_pairs.*, or the XC folder a tst.json.gz, to evaluate on held-out queries",
                src,
            )
        extra["family"] = family if family is not None else _family_of(src, kind)
        source = {"kind": kind, "path": str(src.resolve())}
        write_manifest(work, source=source, counts=counts, extra=extra)
    except BaseException as exc:
        lock.release()
        shutil.rmtree(work, ignore_errors=True)
        _build_lock_path(work).unlink(missing_ok=True)
        if isinstance(exc, StorageError):  # name the file where the user asked for it, not the hidden build
            error = StorageError(str(exc).replace(str(work), str(out)))
            error.errno = exc.errno
            raise error from exc
        raise
    lock.release()
    _build_lock_path(work).unlink(missing_ok=True)
    return work


def _build_lock_target(work: Path) -> Path:
    """The lock of a build lives beside it (``.<build>.build.lock``), so the build folder holds only data."""
    return work.with_name(f"{work.name}.build")


def _build_lock_path(work: Path) -> Path:
    return WriteLock(_build_lock_target(work)).path


def _write(src: Path, work: Path, kind: str, text_mode, trust_pickle: bool, link: bool, encoding: str) -> dict:
    """The source's files, converted into ``work``; returns manifest entries (text mode, skipped, columns)."""
    extra: dict = {"text_mode": text_mode, "skipped": []}
    if kind == "xc-repo":
        extra["text_mode"] = prepare_xc_repo(src, work, text_mode=text_mode, encoding=encoding)["text_mode"]
        _copy_filters(src, work, link)
        extra["skipped"] = copy_image_files(src, work, trust_pickle=trust_pickle, link=link)
    elif kind == "catalogue":
        extra["columns"] = prepare_catalogue(find_catalogue(src), work, text_mode=text_mode, encoding=encoding)[
            "columns"
        ]
    else:
        extra["encodings"] = _copy_layout(src, work, link, encoding)
        extra["skipped"] = copy_image_files(src, work, trust_pickle=trust_pickle, link=link)
    return extra


def _commit(work: Path, out: Path, replacing: bool) -> None:
    """Put the built folder at ``out``: one rename for a new folder; file by file behind a marker otherwise."""
    if not replacing:
        try:
            if out.is_dir():
                (out / ".vixml.lock").unlink(missing_ok=True)
                out.rmdir()  # empty: rename() cannot replace a folder with content
            os.rename(work, out)
        except OSError as exc:  # another process wrote OUT meanwhile
            message = f"the output folder changed while it was prepared ({exc}): run again"
            raise DataError(Problem(str(out), message)) from exc
        return
    marker = out / PREPARING_MARKER
    marker.write_text("a `vixml data prepare --overwrite` is replacing this folder's files\n")
    (out / MANIFEST_NAME).unlink(missing_ok=True)
    for path in dataset_files(out):
        path.unlink()
    new = sorted(p for p in work.iterdir() if p.name != MANIFEST_NAME)
    for path in [*new, work / MANIFEST_NAME]:
        target = out / path.name
        if target.is_dir() and not path.is_dir():
            shutil.rmtree(target)
        os.replace(path, target)
    marker.unlink()


def _remove_dead_builds(out: Path) -> None:
    """Remove build folders of ``out`` whose prepare was killed (their lock is free)."""
    parent = out.parent
    if not parent.is_dir():
        return
    for path in parent.glob(f".{out.name}{_BUILD}*"):
        if not path.is_dir():
            continue
        lock = WriteLock(_build_lock_target(path))
        try:
            lock.acquire()
        except LockedError:
            continue  # another prepare is building it right now
        try:
            shutil.rmtree(path, ignore_errors=True)
            logger.info("removed %s, left by a prepare that was killed", path)
        finally:
            lock.release()
            lock.path.unlink(missing_ok=True)


def _relabel(problems: list[Problem], work: Path, target: Path, src: Path, kind: str) -> list[Problem]:
    """Problems found in the build folder, named after the files they come from."""
    prefix = str(work)
    relabelled = [
        Problem(str(target) + p.file[len(prefix) :], p.message, p.line, p.field) if p.file.startswith(prefix) else p
        for p in problems
    ]
    if kind != "dataset-folder":
        relabelled.append(
            Problem(str(src), f"converting this {kind} source gives the invalid dataset above; nothing was written")
        )
    return relabelled


def _prepare_in_place(src: Path, *, overwrite: bool, validate: bool, encoding: str, family) -> Path:
    """A dataset-layout folder given its manifest where it is (its text files must read without ``latin-1``)."""
    manifest = src / MANIFEST_NAME
    if manifest.exists() and not overwrite:
        raise DataError(Problem(str(src), "already prepared (dataset.json exists); pass overwrite=True"))
    with WriteLock(src, "vixml data prepare"):
        found = check_folder(src, encoding=encoding, deep=validate)
        if found.problems:
            raise DataError(found.problems)
        asked = [s.path.name for s in found.texts.values() if s is not None and s.encoding_reason.endswith("(asked)")]
        if asked:
            raise DataError(
                Problem(
                    str(src),
                    f"{', '.join(asked)} are latin-1: prepare into another folder, which gets UTF-8 copies (in "
                    "place, every later reader would have to be told the encoding)",
                )
            )
        manifest.unlink(missing_ok=True)
        extra = {"text_mode": "auto", "skipped": [], "family": family if family is not None else _family_of(src, "")}
        write_manifest(
            src, source={"kind": "dataset-folder", "path": str(src.resolve())}, counts=_counts_of(src), extra=extra
        )
    return src


def _copy_filters(src: Path, out: Path, link: bool) -> None:
    for name in FILTER_FILES.values():
        if (src / name).is_file():
            copy_file(src / name, out / name, link=link)


def _copy_layout(src: Path, out: Path, link: bool, encoding: str) -> dict[str, str]:
    """Copy a dataset folder's layout files; text files not in UTF-8 are transcoded. Returns their encodings."""
    problems: list[Problem] = []
    stores = {}
    for name in TEXT_FILES.values():
        if (src / name).is_file():
            try:
                stores[name] = read_texts(src / name, encoding=encoding)  # type: ignore[arg-type]
            except DataError as exc:
                problems += exc.problems
    if problems:
        raise DataError(problems)  # before anything is copied
    names = [*FILTER_FILES.values(), *ID_FILES.values(), *IMAGE_REF_FILES.values()]
    for split in LABEL_STEMS:
        path = label_file(src, split)
        if path is not None:
            names.append(path.name)
    for name, store in stores.items():
        if store.encoding == "utf-8":
            copy_file(src / name, out / name, link=link)
        else:
            write_texts(out / name, store.raw_lines())
            logger.info("%s: read as %s, written as UTF-8", src / name, store.encoding_reason)
        store.close()
    for name in names:
        if (src / name).is_file():
            copy_file(src / name, out / name, link=link)
    return {name: store.encoding_reason for name, store in stores.items()}


def _family_of(src: Path, kind: str) -> Family | None:
    """The family of a source: a dataset folder's recorded one, else from the folder's name."""
    try:
        previous = read_manifest(src) if kind in ("", "dataset-folder") else None
    except (OSError, ValueError):
        previous = None
    if previous and previous.get("family") is not None:
        return previous["family"]
    return dataset_family(src.resolve().name)


def _counts_of(out: Path) -> dict:
    """Counts of a written folder from its files' line counts (cheap: no label parsing)."""
    counts = {}
    for split, key in (("trn", "n_train"), ("tst", "n_test"), ("lbl", "n_labels")):
        path = out / TEXT_FILES[split]
        counts[key] = len(read_texts(path)) if path.is_file() else 0
    return counts
