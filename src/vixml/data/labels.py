"""Label matrices: the XC-repository sparse text format (``*_X_Y.txt``) and scipy ``.npz``, as float32 CSR.

The text format is a header line ``n_rows n_cols`` followed by one line per row of space-separated
``label:value`` tokens; a row may be empty. LF-AmazonTitles-1.3M's training file has 2.2M rows and about
50M entries, so well-formed files go through a numba parser that runs at memory speed; a file it
rejects (or a small file, where compiling would cost more than parsing) goes through a careful Python
pass that names every defect with its line, and raises :class:`~vixml.errors.DataError` listing them.
"""

from __future__ import annotations

import array
import itertools
import os
import re
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from vixml.atomic import atomic_open, atomic_path
from vixml.data._problems import ProblemCollector
from vixml.data.file_kinds import NUMPY_READ_ERRORS, describe, sniff
from vixml.errors import DataError, Problem

__all__ = ["read_label_matrix", "write_label_matrix", "label_matrix_problems", "format_value"]

_FAST_MIN_BYTES = 1 << 20  # smaller files take the Python pass: no numba import or compile
_FAST_MIN_NNZ = 1 << 17  # smaller matrices are written by the Python formatter
_WRITE_BLOCK_NNZ = 1 << 22  # entries formatted per block by the numba writer (bounds its buffer)
_MAX_DIM = (1 << 31) - 1
_LABEL = re.compile(rb"-?\d+")
_NUMBER = re.compile(rb"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")
_FLOAT32_MAX = float(np.finfo(np.float32).max)
EXPECTED = (
    "expected a label matrix: the sparse text format (a header 'n_rows n_cols', then one line of "
    "label:value per row) or a scipy sparse .npz (scipy.sparse.save_npz)"
)


def read_label_matrix(path: str | os.PathLike) -> sp.csr_matrix:
    """Read a label matrix as float32 CSR with sorted, unique indices per row.

    Args:
        path: a ``.npz`` written by ``scipy.sparse.save_npz``, or the sparse text format; which one is read
            from the file's first bytes, not its name.

    Returns:
        CSR matrix (n_rows, n_cols), float32.

    Raises:
        DataError: every defect found, each with file and line: missing or bad header, bad token,
            negative label id or one >= n_cols, non-numeric or non-finite value, duplicate label in a
            row, more or fewer rows than the header says; a file of another kind (a dense ``.npy``, a
            gzip, a binary file) or a truncated ``.npz``, saying what it is.
    """
    path = Path(path)
    kind = sniff(path)
    if kind == "npz":
        return _read_npz(path)
    if kind == "missing":
        raise DataError(Problem(str(path), "label matrix file not found"))
    if kind not in ("text", "empty"):
        raise DataError(Problem(str(path), f"this is {describe(path)}; {EXPECTED}"))
    if path.suffix == ".npz":
        raise DataError(
            Problem(str(path), f"this is {describe(path)}, not a zip archive as .npz files are; {EXPECTED}")
        )
    size = path.stat().st_size
    if size >= _FAST_MIN_BYTES:
        header = _read_header(path)
        if header is not None:
            matrix = _parse_fast(path, *header)
            if matrix is not None:
                return matrix
            # the fast parser found a defect: name it without building a matrix that would be thrown away
            # (the careful pass holds 20 bytes per entry, several times the CSR the memory check counted)
            _, problems = _parse_careful(path, keep=False)
            problems.raise_if_any()
    matrix, problems = _parse_careful(path)
    problems.raise_if_any()
    return matrix


def label_matrix_problems(path: str | os.PathLike) -> tuple[sp.csr_matrix | None, list[Problem]]:
    """Read like :func:`read_label_matrix` but return ``(matrix or None, problems)`` instead of raising."""
    try:
        return read_label_matrix(path), []
    except DataError as exc:
        return None, exc.problems


def _read_header(path: Path) -> tuple[int, int, int] | None:
    """``(n_rows, n_cols, offset of the first row)`` when line 1 is a plausible header, else None."""
    with open(path, "rb") as fh:
        first = fh.readline(4096)
    parts = first.split()
    if len(parts) != 2 or not all(p.isdigit() for p in parts):
        return None
    n_rows, n_cols = int(parts[0]), int(parts[1])
    if n_rows > _MAX_DIM or n_cols > _MAX_DIM:
        return None
    return n_rows, n_cols, len(first)


def _parse_fast(path: Path, n_rows: int, n_cols: int, start: int) -> sp.csr_matrix | None:
    """The numba parse of a whole file; None when the file has any defect (the careful pass then names it)."""
    from vixml.data import _label_kernels as kernels

    raw = np.memmap(path, dtype=np.uint8, mode="r")
    try:
        capacity = int(kernels.count_byte(raw, 58))
        dtype = np.int32 if max(capacity, n_cols, n_rows) < _MAX_DIM else np.int64
        indptr = np.empty(n_rows + 1, dtype=dtype)
        indices = np.empty(capacity, dtype=dtype)
        data = np.empty(capacity, dtype=np.float32)
        seen = np.full(n_cols, -1, dtype=np.int64)
        ok, nnz, is_sorted = kernels.parse_rows(raw, start, n_rows, n_cols, indptr, indices, data, seen)
    finally:
        del raw
    if not ok:
        return None
    matrix = sp.csr_matrix((data[:nnz], indices[:nnz], indptr), shape=(n_rows, n_cols), copy=False)
    if not is_sorted:
        matrix.has_sorted_indices = False
        matrix.sort_indices()
    return matrix


class _Discard:
    """A sink for the entries of a pass that only looks for defects."""

    def append(self, value) -> None:
        pass

    def __len__(self) -> int:
        return 0


def _parse_careful(path: Path, keep: bool = True) -> tuple[sp.csr_matrix | None, ProblemCollector]:
    """Line-by-line parse that notes every defect; the matrix is None when there is any (or not ``keep``)."""
    problems = ProblemCollector(path)
    n_rows = n_cols = None
    sink = _Discard()
    indptr = array.array("q", [0]) if keep else sink
    indices = array.array("q") if keep else sink
    data = array.array("f") if keep else sink
    rows = 0
    first_extra = None
    with open(path, "rb") as fh:
        first = fh.readline()
        header = first.split()
        if b":" in first or not first:
            problems.add("missing header line 'n_rows n_cols'", line=1, field="header")
            lines = [first] if first else []
            base = 1
        else:
            if len(header) != 2 or not all(h.isdigit() for h in header):
                problems.add(f"bad header {_show(first.strip())}: expected 'n_rows n_cols'", line=1, field="header")
            else:
                n_rows, n_cols = int(header[0]), int(header[1])
            lines = []
            base = 2
        for lineno, raw in enumerate(itertools.chain(lines, fh), start=base):
            if n_rows is not None and rows >= n_rows:
                if raw.strip() and first_extra is None:
                    first_extra = lineno
                if raw.strip():
                    rows += 1
                continue
            _parse_line(raw, lineno, n_cols, problems, indices, data)
            indptr.append(len(indices))
            rows += 1
    if n_rows is not None and rows < n_rows:
        problems.add(f"the header says {n_rows} rows but the file has {rows}", line=1, field="header")
    if first_extra is not None:
        problems.add(
            f"row(s) beyond the {n_rows} the header announces (the file has {rows} non-blank rows)", line=first_extra
        )
    if problems or n_rows is None or not keep:
        return None, problems
    matrix = sp.csr_matrix(
        (
            np.frombuffer(data, dtype=np.float32),
            np.frombuffer(indices, dtype=np.int64),
            np.frombuffer(indptr, np.int64),
        ),
        shape=(n_rows, n_cols),
    )
    matrix.sort_indices()
    return matrix, problems


def _show(token: bytes) -> str:
    return repr(token.decode("utf-8", "replace")[:40])


def _parse_line(raw: bytes, lineno: int, n_cols: int | None, problems: ProblemCollector, indices, data) -> None:
    seen: set[int] = set()
    for token in raw.split():
        label_text, sep, value_text = token.partition(b":")
        if not sep or not _LABEL.fullmatch(label_text):
            problems.add(f"bad token {_show(token)}: expected label:value", line=lineno, field="token")
            continue
        label = int(label_text)
        bad = False
        if label < 0:
            problems.add(f"negative label id {label}", line=lineno, field="label")
            bad = True
        elif n_cols is not None and label >= n_cols:
            problems.add(f"label id {label} out of range: the header says {n_cols} labels", line=lineno, field="label")
            bad = True
        if not _NUMBER.fullmatch(value_text):
            try:
                float(value_text)
                problems.add(f"non-finite value in {_show(token)}", line=lineno, field="value")
            except ValueError:
                problems.add(f"non-numeric value in {_show(token)}", line=lineno, field="value")
            bad = True
        elif abs(float(value_text)) > _FLOAT32_MAX:
            problems.add(f"value in {_show(token)} overflows float32", line=lineno, field="value")
            bad = True
        if label in seen:
            problems.add(f"duplicate label {label} in the row", line=lineno, field="label")
            bad = True
        seen.add(label)
        if not bad:
            indices.append(label)
            data.append(float(value_text))


def _read_npz(path: Path) -> sp.csr_matrix:
    problems = ProblemCollector(path)
    try:
        loaded = sp.load_npz(path)
    except FileNotFoundError as exc:
        raise DataError(Problem(str(path), "label matrix file not found")) from exc
    except NUMPY_READ_ERRORS as exc:
        what = describe(path)
        if what.startswith("a truncated"):
            reason = f"this is {what} (.npz files are zip archives); write it again"
        elif "pickle" in str(exc):
            reason = f"this is {what} with Python objects (pickles), which vixml never loads; {EXPECTED}"
        elif what.startswith("a zip archive"):
            reason = f"this is {what}, not a scipy sparse matrix; {EXPECTED}"
        else:
            reason = f"this is {what}, not a scipy sparse matrix ({type(exc).__name__}: {exc}); {EXPECTED}"
        raise DataError(Problem(str(path), reason)) from exc
    matrix = sp.csr_matrix(loaded, dtype=np.float32)
    try:
        matrix.check_format(full_check=True)
    except ValueError as exc:
        raise DataError(Problem(str(path), f"malformed CSR: {exc}")) from exc
    if not np.isfinite(matrix.data).all():
        bad = np.flatnonzero(~np.isfinite(matrix.data))
        rows = np.unique(np.searchsorted(matrix.indptr, bad, side="right") - 1)
        shown = ", ".join(str(int(r)) for r in rows[:5]) + (", ..." if rows.size > 5 else "")
        problems.add(
            f"{bad.size} non-finite (NaN or infinite) value(s) in {rows.size} row(s) ({shown}); every value must "
            "be a finite number",
            field="data",
        )
    matrix.sort_indices()
    _note_duplicates(matrix, problems)
    problems.raise_if_any()
    return matrix


def _note_duplicates(matrix: sp.csr_matrix, problems: ProblemCollector) -> None:
    """Note each duplicate (row, label) of a CSR whose rows are sorted."""
    if matrix.nnz < 2:
        return
    dup = np.diff(matrix.indices) == 0
    starts = matrix.indptr[1:-1]
    starts = starts[(starts > 0) & (starts < matrix.nnz)]
    dup[starts - 1] = False  # neighbours across a row boundary are not duplicates
    for k in np.flatnonzero(dup)[: problems.limit]:
        row = int(np.searchsorted(matrix.indptr, k, side="right") - 1)
        problems.add(f"duplicate label {int(matrix.indices[k])} in row {row}", field="indices")


def format_value(value: float) -> str:
    """Shortest text that reads back as the same float32 (``1`` for 1.0, ``0.1`` for float32 0.1)."""
    v = np.float32(value)
    if float(v).is_integer() and abs(v) < 1e15:
        return str(int(v))
    if 1e-4 <= abs(v) < 1e15:
        return np.format_float_positional(v, unique=True, trim="-")
    return np.format_float_scientific(v, unique=True, trim="-")


def _canonical(matrix) -> sp.csr_matrix:
    csr = sp.csr_matrix(matrix, dtype=np.float32)
    if not csr.has_canonical_format:
        csr = csr.copy()
        csr.sum_duplicates()
    return csr


def write_label_matrix(path: str | os.PathLike, matrix) -> None:
    """Write a label matrix atomically: ``.npz`` (scipy CSR) by suffix, the sparse text format otherwise.

    Args:
        path: destination; its suffix picks the format.
        matrix: anything ``scipy.sparse.csr_matrix`` accepts, (n_rows, n_cols). Duplicate entries are summed.

    Raises:
        DataError: the matrix holds NaN or infinite values.
    """
    path = Path(path)
    csr = _canonical(matrix)
    if not np.isfinite(csr.data).all():
        raise DataError(Problem(str(path), "refusing to write non-finite label values", field="data"))
    if path.suffix == ".npz":
        with atomic_path(path, suffix=".npz") as tmp:
            sp.save_npz(tmp, csr, compressed=True)
        return
    distinct, value_ids = np.unique(csr.data, return_inverse=True)
    texts = [format_value(v) for v in distinct]
    with atomic_open(path, "wb") as fh:
        fh.write(f"{csr.shape[0]} {csr.shape[1]}\n".encode())
        if csr.nnz < _FAST_MIN_NNZ:
            _write_rows_python(fh, csr, value_ids, texts)
        else:
            _write_rows_fast(fh, csr, value_ids, texts)


def _write_rows_python(fh, csr: sp.csr_matrix, value_ids: np.ndarray, texts: list[str]) -> None:
    indptr, indices = csr.indptr, csr.indices.tolist()
    ids = value_ids.tolist()
    lines = []
    for r in range(csr.shape[0]):
        a, b = indptr[r], indptr[r + 1]
        lines.append(" ".join(f"{indices[k]}:{texts[ids[k]]}" for k in range(a, b)))
        if len(lines) >= 65536:
            fh.write(("\n".join(lines) + "\n").encode())
            lines = []
    if lines:
        fh.write(("\n".join(lines) + "\n").encode())


def _write_rows_fast(fh, csr: sp.csr_matrix, value_ids: np.ndarray, texts: list[str]) -> None:
    from vixml.data import _label_kernels as kernels

    encoded = [t.encode() for t in texts]
    value_len = np.array([len(e) for e in encoded], dtype=np.int64)
    value_off = np.concatenate([[0], np.cumsum(value_len)]).astype(np.int64)
    value_bytes = np.frombuffer(b"".join(encoded), dtype=np.uint8)
    indptr, indices = csr.indptr.astype(np.int64), csr.indices
    value_ids = value_ids.astype(np.int64)
    n_rows = csr.shape[0]
    r0 = 0
    while r0 < n_rows:
        r1 = int(np.searchsorted(indptr, indptr[r0] + _WRITE_BLOCK_NNZ, side="right")) - 1
        r1 = min(max(r1, r0 + 1), n_rows)
        size = kernels.row_bytes(indptr, indices, value_ids, value_len, r0, r1)
        out = np.empty(size, dtype=np.uint8)
        written = kernels.format_rows(indptr, indices, value_ids, value_bytes, value_off, r0, r1, out)
        fh.write(out[:written].tobytes())
        r0 = r1
