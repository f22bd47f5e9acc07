"""Reading a prediction file: what ``vixml predict`` writes (CSR ``.npz``), the label text format, or dense scores.

``vixml evaluate --pred FILE`` accepts, told apart by the file's first bytes (:mod:`vixml.data.file_kinds`):

- a scipy sparse ``.npz`` (queries x labels, scores as values): the stored entries of a row are its
  predictions (what ``vixml predict`` writes);
- the sparse text format of label files (``n_rows n_cols`` header, ``label:score`` per row);
- a dense numpy ``.npy`` of scores, shape (n_queries, n_labels), float: the ``depth`` best labels of each
  row are its predictions (``vixml evaluate`` uses ``max(k, 100)``, the depth ``vixml predict`` writes, so
  that R@100 and MRR mean the same for both). It is read in blocks of rows, memory-mapped.

- the JSON lines of ``vixml predict --texts`` (``query``, ``labels``, ``scores`` per record): evaluated only
  when ``texts`` are given and every record's query is the test query of its row (the file then is a
  prediction of the test split, in order); otherwise refused, saying what evaluate needs.

Anything else (a pickle, a gzip, a Parquet table, an integer array) is refused with what it is.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from vixml.data.file_kinds import NUMPY_READ_ERRORS, describe, sniff
from vixml.data.labels import read_label_matrix
from vixml.errors import DataError, Problem
from vixml.finite import nonfinite_problem

__all__ = ["read_predictions", "DEFAULT_DEPTH"]

DEFAULT_DEPTH = 100
_BLOCK_BYTES = 1 << 27


def read_predictions(
    path: str | os.PathLike, depth: int = DEFAULT_DEPTH, texts: Sequence[str] | None = None
) -> sp.csr_matrix | tuple[np.ndarray, np.ndarray]:
    """The predictions in ``path`` (module docstring): CSR, or ``(scores, indices)`` (n, depth) for dense scores.

    Raises:
        DataError: a file of another kind, or a malformed one, saying what it is and what is expected.
    """
    path = Path(path)
    if is_jsonl_predictions(path):
        return read_jsonl_predictions(path, depth, texts)
    if sniff(path) != "npy":
        return read_label_matrix(path)
    try:
        scores = np.load(path, mmap_mode="r", allow_pickle=False)
    except NUMPY_READ_ERRORS as exc:
        raise DataError(Problem(str(path), f"this is {describe(path)}: {exc}")) from exc
    if scores.ndim != 2 or scores.dtype.kind != "f":
        raise DataError(
            Problem(
                str(path),
                f"this is {describe(path)}; a dense prediction file must be a 2-D float array of scores "
                "(n_queries, n_labels), or give a scipy sparse .npz (what vixml predict writes)",
            )
        )
    if (problem := nonfinite_problem(scores, str(path), "rows of scores")) is not None:
        raise DataError(problem)
    return _top(scores, min(depth, scores.shape[1]))


def _top(scores: np.ndarray, depth: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``depth`` best labels of every row (any order within a row), read a block of rows at a time."""
    n, n_labels = scores.shape
    out_scores = np.empty((n, depth), dtype=np.float32)
    out_ids = np.empty((n, depth), dtype=np.int64)
    step = max(1, _BLOCK_BYTES // max(1, n_labels * scores.itemsize))
    for start in range(0, n, step):
        block = np.asarray(scores[start : start + step], dtype=np.float32)
        if depth < n_labels:
            ids = np.argpartition(-block, depth - 1, axis=1)[:, :depth]
        else:
            ids = np.broadcast_to(np.arange(n_labels), block.shape)
        out_ids[start : start + len(block)] = ids
        out_scores[start : start + len(block)] = np.take_along_axis(block, ids, axis=1)
    return out_scores, out_ids


def is_jsonl_predictions(path: Path) -> bool:
    """A text file whose first line is a JSON object (``vixml predict --texts ... --out pred.jsonl``)."""
    if sniff(path) != "text":
        return False
    with open(path, "rb") as fh:
        return fh.readline(4096).lstrip().startswith(b"{")


def read_jsonl_predictions(path: Path, depth: int, texts: Sequence[str] | None) -> tuple[np.ndarray, np.ndarray]:
    """``(scores, labels)`` (n, depth) of ``predict --texts`` JSON lines, padded with -inf / -1, once every
    record's query is checked against ``texts`` (the test queries, in order)."""
    needs = (
        "evaluate needs one prediction row per test query, in the order of the true labels: run "
        "`vixml predict RUN --data DIR --out pred.npz` and evaluate pred.npz"
    )
    what = f"this is the JSON lines of `vixml predict --texts` (one query text and its labels per line); {needs}"
    records = []
    with open(path, encoding="utf-8", errors="replace") as fh:
        for line_no, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
                labels, scores = record["labels"], record["scores"]
                if not all(isinstance(x, int) for x in labels) or len(labels) != len(scores):
                    raise ValueError
            except (ValueError, KeyError, TypeError):
                raise DataError(Problem(str(path), f"{what} (line {line_no} is not such a record)")) from None
            records.append((record.get("query"), labels, scores))
    if texts is None:
        raise DataError(Problem(str(path), f"{what} (no test texts given to match its queries against)"))
    if len(records) != len(texts):
        raise DataError(Problem(str(path), f"{what}: it has {len(records):,} records, the test split {len(texts):,}"))
    for row, ((query, _, _), text) in enumerate(zip(records, texts, strict=True)):
        if query is None or str(query).strip() != str(text).strip():
            raise DataError(
                Problem(
                    str(path),
                    f"{what}: record {row + 1} is the query {str(query)[:60]!r}, test query "
                    f"{row + 1} is {str(text)[:60]!r}",
                    line=row + 1,
                )  # fmt: skip
            )
    width = min(depth, max((len(labels) for _, labels, _ in records), default=0)) or 1
    out_scores = np.full((len(records), width), -np.inf, dtype=np.float32)
    out_ids = np.full((len(records), width), -1, dtype=np.int64)
    for row, (_, labels, scores) in enumerate(records):
        out_ids[row, : len(labels[:width])] = labels[:width]
        out_scores[row, : len(labels[:width])] = scores[:width]
    return out_scores, out_ids
