"""Filter files (``filter_labels_test.txt`` / ``_train``): ``row label`` pairs removed before scoring.

Public LF-* datasets list, per test point, labels that are near-duplicates of the point itself (the
"reciprocal pairs" of the XC repository); metrics drop them from predictions and truth. A file may be
empty or absent: both mean "nothing to filter".
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np

from vixml.atomic import atomic_open
from vixml.data._problems import ProblemCollector
from vixml.errors import DataError, Problem

__all__ = ["read_filter", "write_filter", "filter_problems", "check_filter"]

_WELL_FORMED = re.compile(
    rb"(?:[ \t\r]*(?:\d{1,18}[ \t]+\d{1,18}[ \t\r]*)?\n)*(?:[ \t\r]*\d{1,18}[ \t]+\d{1,18}[ \t\r]*)?"
)


def read_filter(path: str | os.PathLike) -> np.ndarray:
    """Read ``row label`` integer pairs.

    Args:
        path: the filter file; a missing or empty file gives no pairs.

    Returns:
        int64 array (n_pairs, 2): column 0 the row (point), column 1 the label.

    Raises:
        DataError: every malformed line (not two non-negative integers), with its line number.
    """
    pairs, _, problems = _parse(Path(path))
    if problems:
        raise DataError(problems)
    return pairs


def _parse(path: Path) -> tuple[np.ndarray, np.ndarray, list[Problem]]:
    """(pairs (n, 2), 1-based line number of each pair (n,), problems)."""
    empty = np.zeros((0, 2), dtype=np.int64)
    if not path.exists():
        return empty, np.zeros(0, dtype=np.int64), []
    try:
        raw = path.read_bytes()
    except OSError as exc:
        return empty, np.zeros(0, dtype=np.int64), [Problem(str(path), f"cannot read filter file: {exc}")]
    if not raw.strip():
        return empty, np.zeros(0, dtype=np.int64), []
    fast = _parse_fast(raw)
    if fast is not None:
        return fast
    problems = ProblemCollector(path)
    pairs: list[tuple[int, int]] = []
    numbers: list[int] = []
    for lineno, line in enumerate(raw.split(b"\n"), start=1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) != 2 or not all(p.isdigit() for p in parts):
            shown = line.strip().decode("utf-8", "replace")[:60]
            problems.add(f"expected two non-negative integers 'row label', got {shown!r}", line=lineno)
            continue
        pairs.append((int(parts[0]), int(parts[1])))
        numbers.append(lineno)
    array = np.array(pairs, dtype=np.int64).reshape(-1, 2)
    return array, np.array(numbers, dtype=np.int64), problems.problems


def _parse_fast(raw: bytes) -> tuple[np.ndarray, np.ndarray, list[Problem]] | None:
    """Vectorised parse when every non-blank line is exactly two unsigned integers; else None."""
    if not _WELL_FORMED.fullmatch(raw):
        return None
    values = np.array(raw.split()).astype(np.int64).reshape(-1, 2)
    if b"\n\n" not in raw and not raw.startswith(b"\n"):
        numbers = np.arange(1, len(values) + 1, dtype=np.int64)
    else:
        numbers = np.array([i for i, line in enumerate(raw.split(b"\n"), start=1) if line.strip()], dtype=np.int64)
    return values, numbers, []


def check_filter(
    pairs: np.ndarray, n_rows: int | None, n_labels: int | None, file: str, line_numbers: np.ndarray | None = None
) -> list[Problem]:
    """Problems of pairs whose row >= ``n_rows`` or label >= ``n_labels`` (None skips that check)."""
    problems = ProblemCollector(file)
    for column, bound, what in ((0, n_rows, "row"), (1, n_labels, "label")):
        if bound is None or pairs.size == 0:
            continue
        bad = np.flatnonzero((pairs[:, column] >= bound) | (pairs[:, column] < 0))
        for k in bad[: problems.limit]:
            line = int(line_numbers[k]) if line_numbers is not None else int(k) + 1
            problems.add(f"{what} {int(pairs[k, column])} out of range [0, {bound})", line=line, field=what)
    return problems.problems


def filter_problems(path: str | os.PathLike, n_rows: int | None, n_labels: int | None) -> list[Problem]:
    """Every problem of a filter file: malformed lines and pairs out of the matrix's shape."""
    pairs, numbers, problems = _parse(Path(path))
    return problems + check_filter(pairs, n_rows, n_labels, str(path), numbers)


def write_filter(path: str | os.PathLike, pairs: np.ndarray) -> None:
    """Write ``row label`` pairs (n, 2), one per line, atomically (an empty array writes an empty file)."""
    pairs = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
    if (pairs < 0).any():
        raise DataError(Problem(str(path), "refusing to write negative row or label ids in a filter"))
    with atomic_open(path, "w") as fh:
        if len(pairs):
            fh.write("\n".join(f"{r} {c}" for r, c in pairs.tolist()) + "\n")
