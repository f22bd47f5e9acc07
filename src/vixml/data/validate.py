"""``validate_dataset``: check every file of a dataset folder and list every problem, never stopping early."""

from __future__ import annotations

import json
import os
from pathlib import Path

from vixml.data._problems import ProblemCollector
from vixml.data.filters import filter_problems
from vixml.data.image_maps import read_image_map
from vixml.data.images import discover_image_files, embedding_problems, open_embeddings
from vixml.data.labels import label_matrix_problems
from vixml.data.layout import FILTER_FILES, ID_FILES, IMAGE_REF_FILES, TEXT_FILES, label_file
from vixml.data.manifest import manifest_problems
from vixml.data.texts import ID_SEPARATOR, TextStore, read_texts
from vixml.errors import DataError, Problem

__all__ = ["validate_dataset"]


def validate_dataset(directory: str | os.PathLike) -> list[Problem]:
    """Check every file of a dataset folder.

    Checks: required files present; text files readable (UTF-8 or latin-1, no binary data; in an
    ``id->text`` file every non-blank line has its ``->``); label files well formed (every bad token,
    label id out of range, duplicate, non-numeric value, row count vs header, with line numbers); counts
    that disagree between texts, label matrices and the label file; filter files (malformed lines,
    pairs out of range); id and image-reference files' line counts; image embeddings (NaN/inf rows),
    maps (pickled maps not converted, rows out of range, item count vs the split); the manifest's file
    sizes.

    Returns:
        Every problem found; empty when the folder is valid.
    """
    directory = Path(directory)
    if not directory.is_dir():
        return [Problem(str(directory), "dataset folder not found")]
    problems: list[Problem] = []
    counts: dict[str, int | None] = {}
    for split, name in TEXT_FILES.items():
        counts[split] = _check_texts(directory / name, required=split != "tst", problems=problems)
    n_labels = counts["lbl"]
    shapes: dict[str, tuple[int, int] | None] = {}
    for split in ("trn", "tst"):
        path = label_file(directory, split)
        if path is None:
            shapes[split] = None
            if split == "trn" or counts["tst"] is not None:
                problems.append(Problem(str(directory / f"{split}_X_Y.txt"), "required file missing"))
            continue
        matrix, found = label_matrix_problems(path)
        problems += found
        shapes[split] = matrix.shape if matrix is not None else _header_shape(path)
        if split == "tst" and counts["tst"] is None:
            problems.append(Problem(str(directory / TEXT_FILES["tst"]), "required file missing (tst_X_Y exists)"))
        shape = shapes[split]
        if shape is None:
            continue
        if counts[split] is not None and shape[0] != counts[split]:
            problems.append(
                Problem(
                    str(path), f"{shape[0]} rows but {TEXT_FILES[split]} has {counts[split]} lines", field="n_rows"
                )
            )
        if n_labels is not None and shape[1] != n_labels:
            problems.append(
                Problem(
                    str(path), f"{shape[1]} label columns but {TEXT_FILES['lbl']} has {n_labels} lines", field="n_cols"
                )
            )
    if shapes.get("trn") and shapes.get("tst") and shapes["trn"][1] != shapes["tst"][1]:
        problems.append(
            Problem(
                str(label_file(directory, "tst")), "label columns differ from the training matrix's", field="n_cols"
            )
        )
    for split, name in FILTER_FILES.items():
        shape = shapes.get(split)
        rows = shape[0] if shape else counts.get(split)
        problems += filter_problems(directory / name, rows, n_labels if n_labels is not None else None)
    for files in (ID_FILES, IMAGE_REF_FILES):
        for split, name in files.items():
            _check_line_count(directory / name, counts.get(split), problems, json_lines=files is IMAGE_REF_FILES)
    problems += _image_problems(directory, counts)
    problems += manifest_problems(directory)
    return problems


def _check_texts(path: Path, *, required: bool, problems: list[Problem]) -> int | None:
    """Line count of a text file (None when absent or unreadable); notes its problems."""
    if not path.is_file():
        if required:
            problems.append(Problem(str(path), "required file missing"))
        return None
    try:
        store = read_texts(path)
    except DataError as exc:
        problems.extend(exc.problems)
        return None
    if store.has_ids:
        problems += _missing_ids(store)
    return len(store)


def _missing_ids(store: TextStore) -> list[Problem]:
    found = ProblemCollector(store.path)
    for i, line in enumerate(store.raw_lines()):
        if line.strip() and ID_SEPARATOR not in line:
            found.add(f"line without '{ID_SEPARATOR}' in an id->text file", line=i + 1)
    return found.problems


def _header_shape(path: Path) -> tuple[int, int] | None:
    """The ``n_rows n_cols`` header of a text label file, when readable."""
    if path.suffix != ".txt":
        return None
    with open(path, "rb") as fh:
        parts = fh.readline(4096).split()
    if len(parts) == 2 and all(p.isdigit() for p in parts):
        return int(parts[0]), int(parts[1])
    return None


def _check_line_count(path: Path, expected: int | None, problems: list[Problem], json_lines: bool) -> None:
    if not path.is_file():
        return
    try:
        store = read_texts(path, layout="plain")
    except DataError as exc:
        problems.extend(exc.problems)
        return
    if expected is not None and len(store) != expected:
        problems.append(Problem(str(path), f"{len(store)} lines but the split has {expected} items"))
    if json_lines:
        found = ProblemCollector(path)
        for i, line in enumerate(store):
            try:
                refs = json.loads(line)
            except ValueError:
                refs = None
            if not isinstance(refs, list) or not all(isinstance(r, str) for r in refs):
                found.add("expected a JSON list of image references (strings)", line=i + 1)
        problems += found.problems


def _image_problems(directory: Path, counts: dict[str, int | None]) -> list[Problem]:
    problems: list[Problem] = []
    for split, files in discover_image_files(directory).items():
        n_embeddings = None
        if files.embeddings is not None:
            problems += embedding_problems(files.embeddings)
            try:
                n_embeddings = open_embeddings(files.embeddings).shape[0]
            except DataError:
                pass
        if files.map_npz is not None:
            try:
                image_map = read_image_map(files.map_npz)
            except DataError as exc:
                problems += exc.problems
            else:
                problems += image_map.problems(
                    str(files.map_npz), n_embeddings=n_embeddings, n_items=counts.get(split)
                )
        elif files.map_npy is not None:
            problems.append(
                Problem(
                    str(files.map_npy),
                    "pickled image map not converted: run `vixml data prepare --trust-pickle` to convert it once",
                )
            )
        elif files.embeddings is not None:
            problems.append(Problem(str(files.embeddings), "image embeddings without a map file"))
    return problems
