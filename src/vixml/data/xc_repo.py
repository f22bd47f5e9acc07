"""Preparing an XC-repository raw folder: ``{trn,tst,lbl}.json.gz`` JSON lines -> dataset-folder files.

Each line holds ``uid``, ``title``, ``content`` and, for points, ``target_ind`` (label ids = line numbers
of ``lbl.json.gz``, 0-based) and ``target_rel`` (their relevance). Titles datasets (LF-AmazonTitles-*)
use the title as the text; full-text ones ``title + " " + content``. Files are streamed: only the label
ids and values are kept in memory, in compact arrays (12 bytes per entry).
"""

from __future__ import annotations

import array
import gzip
import json
import logging
import math
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

import numpy as np
import scipy.sparse as sp

from vixml.atomic import atomic_open
from vixml.data._problems import ProblemCollector
from vixml.data.encoding import utf8_problem
from vixml.data.labels import write_label_matrix
from vixml.data.layout import ID_FILES, LABEL_STEMS, TEXT_FILES
from vixml.data.texts import clean_text
from vixml.errors import ConfigError, DataError, Problem

__all__ = ["TextMode", "find_xc_json", "resolve_text_mode", "prepare_xc_repo", "iter_json_lines"]

logger = logging.getLogger(__name__)

TextMode = Literal["auto", "title", "title+content"]
_FLUSH = 8192


def find_xc_json(directory: Path, split: str) -> Path | None:
    """``<split>.json.gz`` (or an uncompressed ``<split>.json``) in ``directory``."""
    for name in (f"{split}.json.gz", f"{split}.json"):
        if (directory / name).is_file():
            return directory / name
    return None


def resolve_text_mode(src: Path, text_mode: TextMode) -> Literal["title", "title+content"]:
    """``auto`` -> ``title`` when the folder's name contains ``Titles`` (as the XC tooling decides), else both."""
    if text_mode not in ("auto", "title", "title+content"):
        raise ConfigError(f"text_mode must be 'auto', 'title' or 'title+content', got {text_mode!r}")
    if text_mode != "auto":
        return text_mode
    return "title" if "Titles" in Path(src).resolve().name else "title+content"


def iter_json_lines(path: Path, encoding: str = "auto") -> Iterator[tuple[int, object, str | None]]:
    """Yield ``(line number, parsed object or None, error message or None)`` per non-blank line.

    JSON is UTF-8 (``encoding="latin-1"`` decodes each line as latin-1 instead). A line that does not
    decode, or is not JSON, is one error; a truncated or corrupt gzip stream ends the file with an error
    on the line after the last one read.
    """
    opener = gzip.open if path.suffix == ".gz" else open
    lineno, offset = 0, 0
    try:
        with opener(path, "rb") as fh:
            for lineno, raw in enumerate(fh, start=1):
                start, offset = offset, offset + len(raw)
                if not raw.strip():
                    continue
                try:
                    text = raw.decode("latin-1" if encoding == "latin-1" else "utf-8-sig")
                except UnicodeDecodeError as exc:
                    yield lineno, None, utf8_problem(path, start + exc.start, lineno, raw).message
                    continue
                try:
                    yield lineno, json.loads(text), None
                except ValueError as exc:
                    yield lineno, None, f"not valid JSON: {exc}"
    except (EOFError, OSError, zlib.error) as exc:
        what = "the compressed data ends early" if isinstance(exc, EOFError) else f"unreadable data ({exc})"
        yield (
            lineno + 1,
            None,
            f"{what} after line {lineno}: the file is truncated or corrupt (an interrupted download?); get it again",
        )


def prepare_xc_repo(src: Path, out: Path, *, text_mode: TextMode = "auto", encoding: str = "auto") -> dict:
    """Write texts, ids and label matrices of an XC raw folder into ``out`` (filters/images: the caller).

    Args:
        src, out: the raw folder and the folder to write.
        text_mode: see :func:`resolve_text_mode`.
        encoding: of the JSON lines (``auto``/``utf-8``: UTF-8; ``latin-1`` when asked).

    Returns:
        Counts: ``n_labels``, ``n_train``, ``n_test`` (0 without ``tst.json.gz``), ``text_mode``.

    Raises:
        DataError: every problem of the JSON files (bad JSON or encoding, a truncated file, missing
            title, a repeated uid, bad or out-of-range ``target_ind``, ``target_rel`` of another length),
            with file and line.
    """
    mode = resolve_text_mode(src, text_mode)
    paths = {split: find_xc_json(src, split) for split in ("trn", "tst", "lbl")}
    missing = [Problem(str(src / f"{s}.json.gz"), "required file missing") for s in ("trn", "lbl") if not paths[s]]
    if missing:
        raise DataError(missing)
    problems: list[Problem] = []
    n_labels, _, found = _convert_split(paths["lbl"], out, "lbl", mode, None, encoding)
    problems += found
    matrices = {}
    for split in ("trn", "tst"):
        if paths[split] is None:
            continue
        _, matrices[split], found = _convert_split(paths[split], out, split, mode, n_labels, encoding)
        problems += found
    if problems:
        raise DataError(problems)
    for split, matrix in matrices.items():
        write_label_matrix(out / f"{LABEL_STEMS[split]}.txt", matrix)
    logger.info("prepared %s (%s): %d labels, %s", src, mode, n_labels, {s: m.shape[0] for s, m in matrices.items()})
    return {
        "n_labels": n_labels,
        "n_train": matrices["trn"].shape[0],
        "n_test": matrices["tst"].shape[0] if "tst" in matrices else 0,
        "text_mode": mode,
    }


def _convert_split(
    path: Path, out: Path, split: str, mode: str, n_labels: int | None, encoding: str = "auto"
) -> tuple[int, sp.csr_matrix | None, list[Problem]]:
    """Stream one JSON-lines file into ``<split>.raw.txt`` + ``<split>_ids.txt``; collect its labels."""
    problems = ProblemCollector(path)
    indptr = array.array("q", [0])
    indices = array.array("q")
    values = array.array("f")
    texts: list[str] = []
    ids: list[str] = []
    first_line: dict[str, int] = {}
    count = 0
    with atomic_open(out / TEXT_FILES[split], "wb") as text_fh, atomic_open(out / ID_FILES[split], "wb") as id_fh:
        for lineno, obj, error in iter_json_lines(path, encoding):
            if error is not None or not isinstance(obj, dict):
                problems.add(error or "expected a JSON object", line=lineno)
                obj = {}
            texts.append(_text_of(obj, mode, problems, lineno))
            uid = clean_text(str(obj.get("uid", "")))
            if uid and first_line.setdefault(uid, lineno) != lineno:
                problems.add(
                    f"repeated uid {uid!r} (first on line {first_line[uid]}): every uid names one item; remove or "
                    "rename the repeat",
                    line=lineno,
                    field="uid",
                )
            ids.append(uid)
            if n_labels is not None:
                _labels_of(obj, n_labels, problems, lineno, indices, values)
                indptr.append(len(indices))
            count += 1
            if len(texts) >= _FLUSH:
                _flush(text_fh, texts)
                _flush(id_fh, ids)
        _flush(text_fh, texts)
        _flush(id_fh, ids)
    if n_labels is None:
        return count, None, problems.problems
    matrix = sp.csr_matrix(
        (np.frombuffer(values, np.float32), np.frombuffer(indices, np.int64), np.frombuffer(indptr, np.int64)),
        shape=(count, n_labels),
    )
    return count, matrix, problems.problems


def _flush(fh, lines: list[str]) -> None:
    if lines:
        fh.write(("\n".join(lines) + "\n").encode("utf-8", "replace"))
        lines.clear()


def _text_of(obj: dict, mode: str, problems: ProblemCollector, lineno: int) -> str:
    title = obj.get("title")
    if not isinstance(title, str):
        if obj:
            problems.add("missing or non-string 'title'", line=lineno, field="title")
        title = ""
    if mode == "title":
        return clean_text(title)
    content = obj.get("content")
    content = content if isinstance(content, str) else ""
    return clean_text(f"{title} {content}".rstrip())


def _labels_of(obj: dict, n_labels: int, problems: ProblemCollector, lineno: int, indices, values) -> None:
    if not obj:
        return
    targets = obj.get("target_ind")
    if not isinstance(targets, list):
        problems.add("missing or non-list 'target_ind'", line=lineno, field="target_ind")
        return
    rel = obj.get("target_rel")
    if rel is not None and (not isinstance(rel, list) or len(rel) != len(targets)):
        problems.add(
            f"'target_rel' must be a list as long as 'target_ind' ({len(targets)})", line=lineno, field="target_rel"
        )
        rel = None
    seen = set()
    for k, label in enumerate(targets):
        if not isinstance(label, int) or isinstance(label, bool):
            problems.add(f"label id {label!r} is not an integer", line=lineno, field="target_ind")
            continue
        if not 0 <= label < n_labels:
            problems.add(f"label id {label} out of range [0, {n_labels})", line=lineno, field="target_ind")
            continue
        if label in seen:
            problems.add(f"duplicate label id {label}", line=lineno, field="target_ind")
            continue
        value = 1.0 if rel is None else rel[k]
        if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
            problems.add(f"relevance {value!r} is not a finite number", line=lineno, field="target_rel")
            continue
        seen.add(label)
        indices.append(label)
        values.append(float(value))
