"""Preparing a practitioner catalogue: query and label tables plus (query, label) pairs -> a dataset folder.

Input, in CSV/TSV, JSON lines or Parquet (``<name>.csv``, ``.tsv``, ``.jsonl``, ``.parquet``, ...):

- ``queries``: ``id`` (or ``query_id``), ``text`` (or ``title`` [+ ``content``]), optional ``split``
  (``trn``/``train`` or ``tst``/``test``) and an image column (``images``, ``image_urls``, ``image_url``,
  ``image``, ``image_paths``, ``image_path``: one reference, a ``|``-separated text, a JSON list, or a
  list; :mod:`vixml.data.image_cells`).
- ``labels``: ``id`` (or ``label_id``), ``text`` (or ``title`` [+ ``content``]), an image column.
- ``pairs`` with ``query_id``, ``label_id``, optional ``split`` and ``value`` (or ``score``/``relevance``/
  ``rel``; default 1), or ``train_pairs`` + ``test_pairs``.

Other columns are ignored; ``prepare`` reports, per table, which column it used for what (and records it
in ``dataset.json`` under ``columns``). A query's split is its ``split`` column, else the split of its
pairs, else train (a catalogue without any test query prepares without a test split, and says so).
Labels are numbered 0..L-1 in label-file order, points in query-file order within their split;
``{trn,tst,lbl}_ids.txt`` map rows back to the original ids, and ``{trn,tst,lbl}.images.jsonl`` keep
image references (one JSON list per item; relative paths made absolute) for ``vixml images fetch``.
"""

from __future__ import annotations

import array
import json
import logging
import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from vixml.atomic import atomic_open
from vixml.data._problems import MAX_LISTED, ProblemCollector
from vixml.data.image_cells import parse_image_cell
from vixml.data.labels import write_label_matrix
from vixml.data.layout import ID_FILES, IMAGE_REF_FILES, LABEL_STEMS, TEXT_FILES
from vixml.data.tables import find_table, iter_table, no_column, table_suffix
from vixml.data.texts import clean_text, read_texts
from vixml.errors import DataError, Problem

__all__ = ["CatalogueFiles", "find_catalogue", "prepare_catalogue"]

logger = logging.getLogger(__name__)

IMAGE_COLUMNS = ("images", "image_urls", "image_url", "image", "image_paths", "image_path")
VALUE_COLUMNS = ("value", "score", "relevance", "rel")
_KEYS_SEEN = 1000  # records whose columns are collected for the report (JSON lines may vary per record)
_SPLIT_CODES = {"trn": 1, "train": 1, "tst": 2, "test": 2}
_SPLIT_NAMES = {1: "trn", 2: "tst"}
_FLUSH = 8192
_DTYPES = {"q": np.int64, "f": np.float32, "b": np.int8}


@dataclass(frozen=True)
class CatalogueFiles:
    """The tables of a catalogue: ``pairs`` (with an optional ``split`` column) and/or train/test pair files."""

    queries: Path
    labels: Path
    pairs: Path | None = None
    train_pairs: Path | None = None
    test_pairs: Path | None = None


def find_catalogue(directory: str | os.PathLike) -> CatalogueFiles | None:
    """Find ``queries.*``, ``labels.*`` and ``pairs.*`` / ``train_pairs.*`` / ``test_pairs.*`` tables."""
    directory = Path(directory)
    queries = find_table(directory, ("queries",))
    labels = find_table(directory, ("labels",))
    pairs = find_table(directory, ("pairs",))
    train = find_table(directory, ("train_pairs", "trn_pairs"))
    test = find_table(directory, ("test_pairs", "tst_pairs"))
    if queries is None or labels is None or not (pairs or train or test):
        return None
    return CatalogueFiles(queries, labels, pairs, train, test)


def prepare_catalogue(files: CatalogueFiles, out: Path, *, text_mode: str = "auto", encoding: str = "auto") -> dict:
    """Write texts, ids, image references and label matrices of a catalogue into ``out``.

    Args:
        files: the tables.
        out: the dataset folder (exists).
        text_mode: for tables without a ``text`` column: ``title`` or ``title+content`` (``auto``: both).
        encoding: of CSV/TSV/JSON-lines tables: ``auto``/``utf-8`` or ``latin-1``.

    Returns:
        Counts: ``n_labels``, ``n_train``, ``n_test``; ``columns``: per table file name, the column used
        for each role (``id``, ``text``, ``split``, ``images``, ``query_id``, ``label_id``, ``value``) and
        the ``ignored`` ones.

    Raises:
        DataError: every problem with file and line: missing id/text columns, duplicate ids, unknown
            query or label ids in pairs, bad split values, a query with both train and test pairs or
            pairs contradicting its ``split``, non-numeric values.
    """
    problems: list[Problem] = []
    seen: dict[Path, set] = {}
    label_ids, _, _ = _write_items(files.labels, out, "lbl", text_mode, problems, seen, encoding=encoding)
    label_index = {key: i for i, key in enumerate(label_ids)}
    tmp_texts, tmp_refs = out / ".queries.raw.txt.partial", out / ".queries.images.jsonl.partial"
    try:
        query_ids, query_split, query_lines = _write_items(
            files.queries, out, "queries", text_mode, problems, seen, tmp_texts, tmp_refs, encoding
        )
        query_index = {key: i for i, key in enumerate(query_ids)}
        pairs = _read_pairs(files, query_index, label_index, problems, seen, encoding)
        split = _resolve_splits(files, query_ids, query_split, query_lines, pairs, problems)
        if problems:
            raise DataError(problems)
        _route_queries(out, tmp_texts, tmp_refs, query_ids, split)
    finally:
        for tmp in (tmp_texts, tmp_refs):
            tmp.unlink(missing_ok=True)
    counts = {"n_labels": len(label_ids), "n_train": int((split == 1).sum()), "n_test": int((split == 2).sum())}
    for code, name in _SPLIT_NAMES.items():
        if code == 2 and counts["n_test"] == 0:
            continue
        write_label_matrix(out / f"{LABEL_STEMS[name]}.txt", _matrix(pairs, split, code, len(label_ids)))
    columns = {path.name: _roles(path, keys, files) for path, keys in seen.items()}
    for name, roles in columns.items():
        used = ", ".join(f"{role}={column}" for role, column in roles.items() if role != "ignored")
        ignored = f"; ignored: {', '.join(roles['ignored'])}" if roles["ignored"] else ""
        logger.debug("%s: columns %s%s", name, used, ignored)
    return {**counts, "columns": columns}


def _roles(path: Path, keys: set, files: CatalogueFiles) -> dict:
    """Which column of a table was used for what (the first present of each role's names), and the rest."""
    if path in (files.queries, files.labels):
        ids = ("id", "label_id") if path == files.labels else ("id", "query_id")
        roles = {
            "id": ids,
            "text": ("text",),
            "split": ("split",) if path == files.queries else (),
            "images": IMAGE_COLUMNS,
        }
    else:
        roles = {"query_id": ("query_id",), "label_id": ("label_id",), "value": VALUE_COLUMNS}
        roles["split"] = ("split",) if path == files.pairs else ()
    used = {role: next((n for n in names if n in keys), None) for role, names in roles.items()}
    if "text" in used and used["text"] is None and "title" in keys:
        used["text"] = "title+content" if "content" in keys else "title"
    chosen = {role: column for role, column in used.items() if column is not None}
    taken = {c for column in chosen.values() for c in column.split("+")}
    return {**chosen, "ignored": sorted(k for k in keys if k not in taken)}


def column_value(record: dict, names: tuple[str, ...]):
    for name in names:
        if name in record:
            return record[name]
    return None


def record_text(record: dict, text_mode: str) -> str | None:
    """The text of a record (``text``, or ``title`` [+ ``content``]); None when it has none.

    Raises:
        ValueError: a cell that is not text (see :func:`cell_text`), with the message to show.
    """
    text = record.get("text")
    if text is None:
        title = record.get("title")
        if title is None:
            return None
        content = record.get("content") if text_mode != "title" else None
        title = cell_text(title, "title")
        content = cell_text(content, "content") if content is not None else ""
        text = f"{title} {content}".rstrip() if content else title
    return clean_text(cell_text(text, "text"))


def cell_text(value, column: str) -> str:
    """A table cell as text, decided rather than ``str()``-ed into a Python repr: a string as it is, a number
    as written, a list of strings joined with spaces (tags: ``["red", "shoe"]`` -> ``red shoe``); a JSON object,
    a nested list or a boolean is refused (ValueError)."""
    if isinstance(value, str):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return " ".join(v.strip() for v in value if v.strip())
    kind = {dict: "a JSON object", list: "a list of non-strings", bool: "a boolean"}.get(
        type(value), type(value).__name__
    )
    raise ValueError(f"{column} is {kind}: expected a string (a number, or a list of strings joined with spaces)")


def _write_items(
    path: Path,
    out: Path,
    kind: str,
    text_mode: str,
    problems: list[Problem],
    seen: dict[Path, set],
    texts_path: Path | None = None,
    refs_path: Path | None = None,
    encoding: str = "auto",
) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Stream a queries/labels table into texts, ids (labels only) and image references.

    Returns:
        ``(ids, split code per item (int8: 0 none, 1 trn, 2 tst), line of each item)``.
    """
    found = ProblemCollector(path)
    id_columns = ("id", "label_id") if kind == "lbl" else ("id", "query_id")
    texts_path = texts_path or out / TEXT_FILES["lbl"]
    refs_path = refs_path or out / IMAGE_REF_FILES["lbl"]
    ids: list[str] = []
    first_line: dict[str, int] = {}
    splits = array.array("b")
    lines = array.array("q")
    any_refs = False
    texts: list[str] = []
    refs: list[str] = []
    keys = seen.setdefault(path, set())
    missing: dict[str, list[int]] = {"id": [], "text": []}  # lines, named one by one unless every record lacks it
    with atomic_open(texts_path, "wb") as text_fh, atomic_open(refs_path, "wb") as ref_fh:
        for line, record in iter_table(path, found, encoding):
            if len(ids) < _KEYS_SEEN:
                keys.update(record)
            key = column_value(record, id_columns)
            try:
                text = record_text(record, text_mode)
            except ValueError as exc:
                found.add(str(exc), line=line, field="text")
                text = ""
            if isinstance(key, (dict, list, bool)):
                found.add(f"id is {type(key).__name__}: expected a string or a number", line=line, field="id")
                key = f"<bad id at line {line}>"
            if key is None or str(key).strip() == "":
                missing["id"].append(line)
                key = f"<missing id at line {line}>"
            key = clean_text(str(key)).strip()
            if key in first_line:
                found.add(f"duplicate id {key!r} (first on line {first_line[key]})", line=line, field="id")
            first_line.setdefault(key, line)
            if text is None:
                missing["text"].append(line)
                text = ""
            code = 0
            if kind != "lbl" and record.get("split") not in (None, ""):
                code = _SPLIT_CODES.get(str(record["split"]).strip().lower(), -1)
                if code < 0:
                    found.add(f"unknown split {record['split']!r} (trn/train or tst/test)", line=line, field="split")
                    code = 0
            cell = column_value(record, IMAGE_COLUMNS)
            any_refs |= cell is not None
            ids.append(key)
            splits.append(code)
            lines.append(line)
            texts.append(text)
            refs.append(json.dumps(parse_image_cell(cell, path.parent), ensure_ascii=False))
            if len(texts) >= _FLUSH:
                _flush(text_fh, texts)
                _flush(ref_fh, refs)
        _flush(text_fh, texts)
        _flush(ref_fh, refs)
    problems.extend(_missing_cells(path, missing, len(ids), keys, id_columns, encoding))
    problems.extend(found.problems)
    if not any_refs:
        refs_path.unlink(missing_ok=True)
    if kind == "lbl":
        with atomic_open(out / ID_FILES["lbl"], "wb") as fh:
            for start in range(0, len(ids), _FLUSH):
                _flush(fh, ids[start : start + _FLUSH])
    return ids, np.frombuffer(splits, dtype=np.int8), np.frombuffer(lines, dtype=np.int64)


def _missing_cells(path: Path, missing: dict, n: int, keys: set, id_columns: tuple, encoding: str) -> list[Problem]:
    """One problem for a column no record has (the columns found listed), else one per record lacking it."""
    text = "utf-8-sig" if encoding != "latin-1" else "latin-1"
    wanted = {"id": f"id ({' or '.join(id_columns)})", "text": "text (text, or title [+ content])"}
    out = []
    for role, lines in missing.items():
        if lines and len(lines) == n:
            out.append(no_column(path, wanted[role], sorted(keys), text))
        else:
            out += [
                Problem(str(path), f"missing {wanted[role]}", line=line, field=role) for line in lines[:MAX_LISTED]
            ]
    return out


def _flush(fh, lines: list[str]) -> None:
    if lines:
        fh.write(("\n".join(lines) + "\n").encode("utf-8", "replace"))
        if isinstance(lines, list):
            lines.clear()


@dataclass
class _Pairs:
    query: np.ndarray  # int64 (n,), query index in the queries file
    label: np.ndarray  # int64 (n,)
    value: np.ndarray  # float32 (n,)
    split: np.ndarray  # int8 (n,), 0 = from the query
    file: list[str]  # file of each pair source, indexed by source
    source: np.ndarray  # int8 (n,), index into ``file``
    line: np.ndarray  # int64 (n,)


def _read_pairs(
    files: CatalogueFiles, queries: dict, labels: dict, problems: list[Problem], seen: dict, encoding: str
) -> _Pairs:
    cols = {k: array.array(t) for k, t in (("q", "q"), ("l", "q"), ("v", "f"), ("s", "b"), ("src", "b"), ("ln", "q"))}
    sources = [(files.pairs, 0), (files.train_pairs, 1), (files.test_pairs, 2)]
    names: list[str] = []
    for path, fixed in sources:
        if path is None:
            continue
        names.append(str(path))
        src = len(names) - 1
        found = ProblemCollector(path)
        keys = seen.setdefault(path, set())
        for n, (line, record) in enumerate(iter_table(path, found, encoding)):
            if n < _KEYS_SEEN:
                keys.update(record)
            q_key, l_key = record.get("query_id"), record.get("label_id")
            q = queries.get(clean_text(str(q_key)).strip()) if q_key is not None else None
            lab = labels.get(clean_text(str(l_key)).strip()) if l_key is not None else None
            uniform = not str(table_suffix(path)).startswith((".jsonl", ".ndjson"))  # every record has the header's
            if n == 0 and uniform and (q_key is None or l_key is None):  # a header without the column: one message
                lacking = " and ".join(c for c, k in (("query_id", q_key), ("label_id", l_key)) if k is None)
                problems.append(
                    no_column(path, lacking, list(record), "latin-1" if encoding == "latin-1" else "utf-8-sig")
                )
                break
            for key, index, column in ((q_key, q, "query_id"), (l_key, lab, "label_id")):
                if index is None:
                    what = f"unknown {column[:-3]} id {key!r}" if key is not None else f"missing column {column}"
                    found.add(what, line=line, field=column)
            code = fixed
            if fixed == 0 and record.get("split") not in (None, ""):
                code = _SPLIT_CODES.get(str(record["split"]).strip().lower(), -1)
                if code < 0:
                    found.add(f"unknown split {record['split']!r} (trn/train or tst/test)", line=line, field="split")
            raw_value = column_value(record, VALUE_COLUMNS)
            try:
                value = 1.0 if raw_value in (None, "") else float(raw_value)
                if not math.isfinite(value):
                    raise ValueError
            except (TypeError, ValueError):
                found.add(f"value {raw_value!r} is not a finite number", line=line, field="value")
                value = math.nan
            if value < 0:
                found.add(f"value {raw_value!r} is negative: relevance is >= 0 (0 = not relevant)", line=line,
                          field="value")  # fmt: skip
                value = math.nan
            if q is None or lab is None or code < 0 or math.isnan(value):
                continue
            for key, item in (("q", q), ("l", lab), ("v", value), ("s", code), ("src", src), ("ln", line)):
                cols[key].append(item)
        problems.extend(found.problems)
    arr = {k: np.frombuffer(v, dtype=_DTYPES[v.typecode]) for k, v in cols.items()}
    return _Pairs(arr["q"], arr["l"], arr["v"], arr["s"], names, arr["src"], arr["ln"])


def _resolve_splits(
    files: CatalogueFiles,
    query_ids: list[str],
    query_split: np.ndarray,
    query_lines: np.ndarray,
    pairs: _Pairs,
    problems: list[Problem],
) -> np.ndarray:
    """Split code (1 trn, 2 tst) of every query; notes contradictions."""
    n = len(query_ids)
    has = {code: np.zeros(n, dtype=bool) for code in (1, 2)}
    for code in (1, 2):
        has[code][pairs.query[pairs.split == code]] = True
    for q in np.flatnonzero(has[1] & has[2] & (query_split == 0))[:MAX_LISTED]:
        message = f"query {query_ids[q]!r} has both train and test pairs"
        problems.append(Problem(str(files.queries), message, line=int(query_lines[q]), field="split"))
    split = np.where(query_split > 0, query_split, np.where(has[2], 2, 1)).astype(np.int8)
    clash = np.flatnonzero((pairs.split > 0) & (pairs.split != split[pairs.query]))
    for k in clash[:MAX_LISTED]:
        q = pairs.query[k]
        message = (
            f"pair in split {_SPLIT_NAMES[int(pairs.split[k])]} but query {query_ids[q]!r} is in "
            f"{_SPLIT_NAMES[int(split[q])]}"
        )
        problems.append(Problem(pairs.file[pairs.source[k]], message, line=int(pairs.line[k]), field="split"))
    return split


def _route_queries(out: Path, tmp_texts: Path, tmp_refs: Path, query_ids: list[str], split: np.ndarray) -> None:
    """Copy each query's text, id and image refs into its split's files, in query-file order."""
    texts = read_texts(tmp_texts, encoding="utf-8", layout="plain")
    refs = read_texts(tmp_refs, encoding="utf-8", layout="plain") if tmp_refs.is_file() else None
    for code in (1, 2) if (split == 2).any() else (1,):
        name = _SPLIT_NAMES[code]
        rows = np.flatnonzero(split == code)
        with atomic_open(out / TEXT_FILES[name], "wb") as text_fh, atomic_open(out / ID_FILES[name], "wb") as id_fh:
            for start in range(0, len(rows), _FLUSH):
                block = rows[start : start + _FLUSH]
                _flush(text_fh, texts[block])
                _flush(id_fh, [query_ids[i] for i in block])
        if refs is not None:
            with atomic_open(out / IMAGE_REF_FILES[name], "wb") as ref_fh:
                for start in range(0, len(rows), _FLUSH):
                    _flush(ref_fh, refs[rows[start : start + _FLUSH]])
    texts.close()
    if refs is not None:
        refs.close()


def _matrix(pairs: _Pairs, split: np.ndarray, code: int, n_labels: int) -> sp.csr_matrix:
    """CSR of one split's pairs; a repeated (query, label) pair keeps its first value."""
    rows_of = np.full(len(split), -1, dtype=np.int64)
    members = np.flatnonzero(split == code)
    rows_of[members] = np.arange(len(members))
    keep = split[pairs.query] == code
    rows, labels, values = rows_of[pairs.query[keep]], pairs.label[keep], pairs.value[keep]
    key = rows * max(n_labels, 1) + labels
    _, first = np.unique(key, return_index=True)
    if len(first) < len(key):
        logger.warning("%d repeated (query, label) pair(s) in split %s: kept the first", len(key) - len(first), code)
    return sp.csr_matrix((values[first], (rows[first], labels[first])), shape=(len(members), n_labels))
