"""The rules a dataset folder must satisfy, defined once: the loader applies them, ``validate`` applies them too.

``load_dataset`` and ``validate_dataset`` used to carry two copies of the shape rules, whose messages had
drifted and which disagreed (validate passed folders with no label, the loader later failed). Both now
call :func:`check_folder`, so **validate passes every folder the loader accepts and rejects every folder
the loader rejects, with the same messages**. ``deep=True`` (validate) adds content checks that the loader
skips because they cost a full pass over large files or concern files it does not read; a folder that
fails only those still loads, and the check that matters happens where the file is used:

- ``id->text`` lines without their ``->`` (the loader reads such a line whole, as its text);
- ``<split>_ids.txt`` line counts and repeated ids (read by ``images fetch`` and to map rows to ids);
- ``<split>.images.jsonl`` line counts and JSON (read by ``images fetch``);
- NaN/inf rows of image-embedding files (the loader checks the rows it gathers, when it gathers them);
- image maps of splits without embeddings; the manifest's file sizes.

Rules of both: the folder exists and no ``prepare`` is half-way through replacing it; ``trn.raw.txt``,
``lbl.raw.txt``, ``trn_X_Y`` present (``tst.raw.txt`` and ``tst_X_Y`` together or not at all); every text
file decodes (see :mod:`vixml.data.encoding`); label files parse; rows = text lines, columns = labels,
train and test columns agree; at least one label, one training point and one training label; filter
pairs in range; image embeddings with a pickle-free map that fits them and the split.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from vixml.data._problems import ProblemCollector
from vixml.data.filters import filter_problems, read_filter
from vixml.data.image_maps import read_image_map
from vixml.data.images import ImageBank, discover_image_files, embedding_problems, open_embeddings
from vixml.data.labels import label_matrix_problems
from vixml.data.layout import (
    FILTER_FILES,
    ID_FILES,
    IMAGE_REF_FILES,
    MANIFEST_NAME,
    PREPARING_MARKER,
    TEXT_FILES,
    label_file,
)
from vixml.data.manifest import manifest_problems
from vixml.data.texts import ID_SEPARATOR, TextStore, read_texts
from vixml.errors import DataError, Problem
from vixml.run_folder import RunFolder

__all__ = ["FolderContents", "check_folder", "repeated_ids"]


@dataclass
class FolderContents:
    """What :func:`check_folder` read, and every problem it found.

    Attributes:
        texts: ``{"trn"|"tst"|"lbl": TextStore or None}`` (None: absent or unreadable).
        matrices: ``{"trn"|"tst": CSR or None}``.
        filters: ``{"trn"|"tst": (n, 2) int64 pairs}`` (empty when absent or unreadable).
        banks: ``{split: ImageBank}`` for the splits whose embeddings opened (loader mode only).
        problems: every problem, in file order.
    """

    texts: dict[str, TextStore | None] = field(default_factory=dict)
    matrices: dict[str, sp.csr_matrix | None] = field(default_factory=dict)
    filters: dict[str, np.ndarray] = field(default_factory=dict)
    banks: dict[str, ImageBank] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)

    def count(self, split: str) -> int | None:
        store = self.texts.get(split)
        return len(store) if store is not None else None


def check_folder(
    directory: str | os.PathLike,
    *,
    encoding: str = "auto",
    deep: bool = False,
    images: bool = True,
    num_images: int | None = None,
    image_model: str | None = None,
) -> FolderContents:
    """Read a dataset folder and apply every rule (module docstring); never stops at the first problem.

    Args:
        directory: the folder.
        encoding: of the text files (``auto``, ``utf-8``, ``latin-1``; :mod:`vixml.data.encoding`).
        deep: add validate's content checks.
        images: check (and, outside ``deep``, open) the image-embedding files.
        num_images: image slots N of the banks (None: the N of the file names).
        image_model: choose among several embedding files by their ``<model>`` tag.
    """
    directory = Path(directory)
    found = FolderContents()
    if not directory.is_dir():
        what = "is a file, not a dataset folder" if directory.exists() else "dataset folder not found"
        found.problems.append(Problem(str(directory), what))
        return found
    if (directory / PREPARING_MARKER).exists():
        found.problems.append(
            Problem(
                str(directory),
                "a `vixml data prepare --overwrite` is replacing this folder, or was interrupted doing so: wait "
                "for it, or run it again",
            )
        )
        return found
    other = other_folder_kind(directory)
    if other is not None:  # one hint instead of a list of missing files
        found.problems.append(Problem(str(directory), other))
        return found
    _read_texts(directory, encoding, deep, found)
    _read_matrices(directory, found)
    found.problems += _shape_problems(directory, found)
    _read_filters(directory, found)
    if deep:
        for files in (ID_FILES, IMAGE_REF_FILES):
            for split, name in files.items():
                found.problems += _line_file_problems(directory / name, found.count(split), files is IMAGE_REF_FILES)
    if images:
        found.problems += _image_problems(directory, found, deep, num_images, image_model)
    if deep:
        found.problems += manifest_problems(directory)
    return found


def other_folder_kind(directory: Path) -> str | None:
    """What a folder without any dataset file is instead (a catalogue, an XC source, a run folder), as a hint."""
    if any((directory / name).is_file() for name in (*TEXT_FILES.values(), MANIFEST_NAME)):
        return None
    if label_file(directory, "trn") is not None:
        return None
    from vixml.data.catalogue import find_catalogue

    catalogue = find_catalogue(directory)
    if catalogue is not None:
        tables = ", ".join(p.name for p in (catalogue.queries, catalogue.labels, catalogue.pairs) if p is not None)
        return (
            f"this looks like a catalogue ({tables}), not a prepared dataset folder: run "
            f"`vixml data prepare {directory} OUT` first, then give OUT"
        )
    if (directory / "trn.json.gz").is_file() or (directory / "lbl.json.gz").is_file():
        return (
            "this looks like an XC-repository source (*.json.gz), not a prepared dataset folder: run "
            f"`vixml data prepare {directory} OUT` first, then give OUT"
        )
    run = RunFolder(directory)
    if run.looks_like_run():
        path = run.trained_on()
        given = f"({path}, as its run.json says)" if path else "(its README.md names it)"
        return (
            "this is a run folder (config.yaml, run.json), not a dataset folder: give the dataset folder it was "
            f"trained on {given}"
        )
    return None


def _read_texts(directory: Path, encoding: str, deep: bool, found: FolderContents) -> None:
    for split, name in TEXT_FILES.items():
        path = directory / name
        found.texts[split] = None
        if not path.is_file():
            if split != "tst":
                found.problems.append(Problem(str(path), "required file missing"))
            continue
        try:
            store = read_texts(path, encoding=encoding)  # type: ignore[arg-type]
        except DataError as exc:
            found.problems += exc.problems
            continue
        found.texts[split] = store
        if deep and store.has_ids:
            found.problems += _missing_ids(store)


def _missing_ids(store: TextStore) -> list[Problem]:
    problems = ProblemCollector(store.path)
    for i, line in enumerate(store.raw_lines()):
        if line.strip() and ID_SEPARATOR not in line:
            problems.add(f"line without '{ID_SEPARATOR}' in an id->text file", line=i + 1)
    return problems.problems


def _read_matrices(directory: Path, found: FolderContents) -> None:
    has_tst_texts = (directory / TEXT_FILES["tst"]).is_file()
    for split in ("trn", "tst"):
        path = label_file(directory, split)
        found.matrices[split] = None
        if path is None:
            if split == "trn" or has_tst_texts:
                found.problems.append(Problem(str(directory / f"{split}_X_Y.txt"), "required file missing"))
            continue
        matrix, problems = label_matrix_problems(path)
        found.matrices[split] = matrix
        found.problems += problems + _negative_values(path, matrix)
    if label_file(directory, "tst") is not None and not has_tst_texts:
        found.problems.append(Problem(str(directory / TEXT_FILES["tst"]), "required file missing (tst_X_Y exists)"))


def _negative_values(path: Path, matrix: sp.csr_matrix | None) -> list[Problem]:
    """Relevance is >= 0: training weights positives by it and the metrics refuse a negative one."""
    if matrix is None or not (matrix.data < 0).any():
        return []
    rows = np.unique(np.repeat(np.arange(matrix.shape[0]), np.diff(matrix.indptr))[matrix.data < 0])
    shown = ", ".join(str(r) for r in rows[:5]) + (", ..." if rows.size > 5 else "")
    n = int((matrix.data < 0).sum())
    return [Problem(str(path), f"{n} negative label value(s) in row(s) {shown}: relevance is >= 0 (0 = not relevant)")]


def _shape(directory: Path, found: FolderContents, split: str) -> tuple[int, int] | None:
    """The matrix's shape, or the header of a text label file that did not parse (for the count checks)."""
    matrix = found.matrices.get(split)
    if matrix is not None:
        return matrix.shape
    path = label_file(directory, split)
    if path is None or path.suffix != ".txt":
        return None
    with open(path, "rb") as fh:
        parts = fh.readline(4096).split()
    if len(parts) == 2 and all(p.isdigit() for p in parts):
        return int(parts[0]), int(parts[1])
    return None


def _shape_problems(directory: Path, found: FolderContents) -> list[Problem]:
    """Counts that disagree (texts vs rows, columns vs labels, train vs test) and empty essentials."""
    problems = []
    n_labels = found.count("lbl")
    shapes = {split: _shape(directory, found, split) for split in ("trn", "tst")}
    for split, shape in shapes.items():
        if shape is None:
            continue
        name = str(label_file(directory, split))
        lines = found.count(split)
        if lines is not None and shape[0] != lines:
            problems.append(
                Problem(name, f"{shape[0]} rows but {TEXT_FILES[split]} has {lines} lines", field="n_rows")
            )
        if n_labels is not None and shape[1] != n_labels:
            problems.append(
                Problem(name, f"{shape[1]} label columns but {TEXT_FILES['lbl']} has {n_labels} lines", field="n_cols")
            )
    if shapes["trn"] and shapes["tst"] and shapes["trn"][1] != shapes["tst"][1]:
        problems.append(
            Problem(
                str(label_file(directory, "tst")),
                f"{shapes['tst'][1]} label columns but the training matrix has {shapes['trn'][1]}",
                field="n_cols",
            )
        )
    if n_labels == 0:
        problems.append(Problem(str(directory / TEXT_FILES["lbl"]), "no label: the file has no line"))
    if found.count("trn") == 0:
        problems.append(Problem(str(directory / TEXT_FILES["trn"]), "no training point: the file has no line"))
    trn = found.matrices.get("trn")
    if trn is not None and trn.shape[0] and trn.nnz == 0:
        problems.append(
            Problem(str(label_file(directory, "trn")), "no training point has a label: nothing to learn from")
        )
    return problems


def _read_filters(directory: Path, found: FolderContents) -> None:
    n_labels = found.count("lbl")
    for split, name in FILTER_FILES.items():
        path = directory / name
        shape = _shape(directory, found, split)
        rows = shape[0] if shape else found.count(split)
        cols = shape[1] if shape else n_labels
        problems = filter_problems(path, rows, cols)
        found.problems += problems
        found.filters[split] = np.zeros((0, 2), dtype=np.int64) if problems else read_filter(path)


def repeated_ids(ids: list[str], file: str | os.PathLike) -> list[Problem]:
    """One problem per id that repeats an earlier one (naming both lines): ids name items, so they are unique."""
    first: dict[str, int] = {}
    problems = ProblemCollector(file)
    for line, key in enumerate(ids, start=1):
        if key in first:
            problems.add(f"repeated id {key!r} (first on line {first[key]}); every id names one item", line=line)
        else:
            first[key] = line
    return problems.problems


def _line_file_problems(path: Path, expected: int | None, json_lines: bool) -> list[Problem]:
    """An ids file (line count, repeated ids) or an image-reference file (line count, JSON lists)."""
    if not path.is_file():
        return []
    try:
        store = read_texts(path, layout="plain")
    except DataError as exc:
        return exc.problems
    problems = []
    if expected is not None and len(store) != expected:
        problems.append(Problem(str(path), f"{len(store)} lines but the split has {expected} items"))
    if not json_lines:
        return problems + repeated_ids([line.strip() for line in store], path)
    found = ProblemCollector(path)
    for i, line in enumerate(store):
        try:
            refs = json.loads(line)
        except ValueError:
            refs = None
        if not isinstance(refs, list) or not all(isinstance(r, str) for r in refs):
            found.add("expected a JSON list of image references (strings)", line=i + 1)
    return problems + found.problems


def _image_problems(
    directory: Path, found: FolderContents, deep: bool, num_images: int | None, image_model: str | None
) -> list[Problem]:
    problems: list[Problem] = []
    for split, files in discover_image_files(directory, model=None if deep else image_model).items():
        items = found.count(split)
        if files.embeddings is None:
            if deep and files.map_npz is not None:  # a map alone (e.g. beside a bank): check it fits the split
                try:
                    problems += read_image_map(files.map_npz).problems(str(files.map_npz), n_items=items)
                except DataError as exc:
                    problems += exc.problems
            elif deep and files.map_npy is not None:
                problems.append(
                    Problem(
                        str(files.map_npy),
                        "pickled image map not converted: run `vixml data prepare --trust-pickle` to convert it once",
                    )
                )
            continue
        if files.map_npz is None:
            hint = (
                "its map is a pickle: convert it with `vixml data prepare --trust-pickle`"
                if files.map_npy is not None
                else "no map file (<train|test|labels>_imgs_<size>_<N>_map.npz) found"
            )
            problems.append(Problem(str(files.embeddings), f"image embeddings unusable: {hint}"))
            continue
        if deep:
            problems += embedding_problems(files.embeddings)
        try:
            image_map = read_image_map(files.map_npz)
            rows = open_embeddings(files.embeddings).shape[0]
        except DataError as exc:
            problems += exc.problems
            continue
        fit = image_map.problems(str(files.map_npz), n_embeddings=rows, n_items=items)
        problems += fit
        if not deep and not fit:
            found.banks[split] = ImageBank(files.embeddings, files.map_npz, num_images or files.num_images or 1)
    return problems
