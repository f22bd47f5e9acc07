"""Peak memory of the commands that load whole label files, estimated from the files' headers and sizes.

Nothing is parsed: a text label file gives its shape on line 1 and its entry count by counting its
``:`` bytes (a pass over the file at disk speed, which also warms the page cache for the parse); a
``.npz`` gives both in the headers of its arrays. The byte counts follow the readers:

- a label matrix held as float32 CSR: ``(4 + index bytes) * nnz + index bytes * (n_rows + 1)`` (int32
  indices below 2**31 entries, int64 above);
- reading it costs, on top, an int64 array of ``n_cols`` (the text parser's duplicate check) or about
  ``5 * nnz`` (a ``.npz``'s finiteness and duplicate checks);
- a text file of a dataset: an int64 offset per line, while it is scanned up to ``2 * 64 MiB`` of chunk
  and ``24`` bytes per line of newline positions;
- ``stats``: the training matrix transposed (CSC) for the label frequencies;
- ``evaluate``: the metric kernels' own arrays, per prediction and per true entry (calibrated).

The constants were compared with the peak anonymous memory of the commands on synthetic data of the
shape of LF-AmazonTitles-1.3M at scales 0.1-1.0 (``benchmarks/bench_scale.py``; figures in
``docs/bad-inputs.md``): the estimates are 1.26-1.56x the peaks. Memory-mapped files (texts, image
embeddings; the label file while the numba parser reads it) are page cache and left out.
"""

from __future__ import annotations

import functools
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vixml.data.layout import FILTER_FILES, TEXT_FILES, label_file
from vixml.memory_fit import BASE_BYTES, require

__all__ = [
    "MatrixShape",
    "matrix_shape",
    "csr_bytes",
    "folder_need",
    "stats_need",
    "prepare_need",
    "evaluate_need",
    "require_folder",
    "require_evaluate",
]

_COUNT_CHUNK = 1 << 22  # bytes read at a time to count the entries of a text file
_SCAN_CHUNK = 1 << 26  # texts._CHUNK
_MAX32 = (1 << 31) - 1
#: evaluate: bytes of the metric kernels' arrays per prediction and per true entry (calibrated).
_EVAL_PER_PRED = 8
_EVAL_PER_TRUE = 8


@dataclass(frozen=True)
class MatrixShape:
    """A label file's shape and entry count, read from its header (``nnz`` counted or stored)."""

    path: Path
    n_rows: int
    n_cols: int
    nnz: int
    kind: str  # "text" or "npz"

    def describe(self) -> str:
        return f"{self.path} ({self.n_rows:,} x {self.n_cols:,}, {_millions(self.nnz)} entries)"


def _millions(n: int) -> str:
    return f"{n / 1e6:.1f}M" if n >= 100_000 else f"{n:,}"


def matrix_shape(path: str | os.PathLike | None) -> MatrixShape | None:
    """The shape of a label file (text format or ``.npz``) without reading it; None when it has no readable
    header (the reader then names the defect) or is of another kind.

    Remembered per file version (size, modification time, inode): a command that checks a folder and then
    loads it through :func:`vixml.data.load_dataset`, which checks again, counts a text file's entries once.
    """
    if path is None:
        return None
    path = Path(path)
    try:
        st = path.stat()
    except OSError:
        return None
    return _shape(path, st.st_size, st.st_mtime_ns, st.st_ino)


@functools.lru_cache(maxsize=64)
def _shape(path: Path, size: int, mtime_ns: int, inode: int) -> MatrixShape | None:
    try:
        with open(path, "rb") as fh:
            magic = fh.read(4)
        if magic == b"PK\x03\x04":
            return _npz_shape(path)
        return _text_shape(path)
    except (OSError, ValueError, zipfile.BadZipFile, KeyError):
        return None


def _text_shape(path: Path) -> MatrixShape | None:
    with open(path, "rb") as fh:
        parts = fh.readline(4096).split()
        if len(parts) != 2 or not all(p.isdigit() for p in parts):
            return None
        nnz = 0
        while chunk := fh.read(_COUNT_CHUNK):
            nnz += chunk.count(b":")
    return MatrixShape(path, int(parts[0]), int(parts[1]), nnz, "text")


def _npz_shape(path: Path) -> MatrixShape | None:
    with zipfile.ZipFile(path) as zf:
        names = set(zf.namelist())
        if not {"indices.npy", "shape.npy"} <= names:
            return None
        with zf.open("shape.npy") as fh:
            shape = np.lib.format.read_array(fh, allow_pickle=False)
        with zf.open("indices.npy") as fh:
            version = np.lib.format.read_magic(fh)
            read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
            entries = read(fh)[0]  # (shape, fortran order, dtype)
    n_rows, n_cols = (int(x) for x in shape[:2])
    return MatrixShape(path, n_rows, n_cols, int(np.prod(entries)), "npz")


def csr_bytes(n_rows: int, n_cols: int, nnz: int) -> int:
    """Bytes of a float32 CSR of that shape as the readers hold it."""
    index = 4 if max(n_rows, n_cols, nnz) < _MAX32 else 8
    return (4 + index) * nnz + index * (n_rows + 1)


def _held(shape: MatrixShape) -> int:
    return csr_bytes(shape.n_rows, shape.n_cols, shape.nnz)


def _reading(shape: MatrixShape) -> int:
    """Transient bytes of reading the file, beyond the matrix it leaves."""
    return 8 * shape.n_cols if shape.kind == "text" else 5 * shape.nnz


def _text_bytes(path: Path, lines: int | None) -> tuple[int, int]:
    """(held, transient) of a text file's :class:`~vixml.data.texts.TextStore`; lines guessed from its size."""
    size = path.stat().st_size if path.is_file() else 0
    if lines is None:
        lines = size // 8 + 1
    return 8 * (lines + 2), 2 * min(size, _SCAN_CHUNK) + 24 * lines


def folder_need(directory: str | os.PathLike) -> tuple[int, str, list[MatrixShape]]:
    """``(bytes, what, shapes)``: peak memory of checking or loading a dataset folder (``validate``, the loader).

    Texts and both label matrices are held at once; the transient buffers of one reader at a time.
    """
    directory = Path(directory)
    by_split = {split: matrix_shape(label_file(directory, split)) for split in ("trn", "tst")}
    shapes = [s for s in by_split.values() if s is not None]
    lines = {split: s.n_rows for split, s in by_split.items() if s is not None}
    if shapes:
        lines["lbl"] = shapes[0].n_cols
    held, transient = 0, 0
    for split, name in TEXT_FILES.items():
        h, t = _text_bytes(directory / name, lines.get(split))
        held, transient = held + h, max(transient, t)
    for shape in shapes:
        held += _held(shape)
        transient = max(transient, _reading(shape))
    for name in FILTER_FILES.values():
        if (directory / name).is_file():  # at most one (row, label) int64 pair per 4 bytes ("1 2\n")
            held += 4 * (directory / name).stat().st_size
    return BASE_BYTES + held + transient, _what(directory, shapes), shapes


def stats_need(directory: str | os.PathLike) -> tuple[int, str, list[MatrixShape]]:
    """Peak memory of :func:`~vixml.data.dataset_stats` (and of ``prepare``, which ends with it): the folder
    loaded, plus the training matrix transposed and the label frequencies."""
    need, what, shapes = folder_need(directory)
    trn = next((s for s in shapes if s.path.name.startswith("trn_")), None)
    if trn is not None:
        need += csr_bytes(trn.n_cols, trn.n_rows, trn.nnz) + 24 * trn.n_cols
    return need, what, shapes


def prepare_need(directory: str | os.PathLike) -> tuple[int, str, list[MatrixShape]]:
    """Peak memory of ``vixml data prepare``: it validates the folder, then loads it again for its stats;
    what the first pass freed is not all given back at once (a quarter of the matrices more, measured)."""
    need, what, shapes = stats_need(directory)
    return need + sum(_held(s) for s in shapes) // 4, what, shapes


def evaluate_need(
    pred: str | os.PathLike, true: str | os.PathLike | None, train: str | os.PathLike | None, k: int
) -> tuple[int, str]:
    """Peak memory of ``vixml evaluate``: the three matrices held, one reader's transient, the metric arrays."""
    pred_shape, true_shape = _prediction_shape(Path(pred), k), matrix_shape(true)
    shapes = [s for s in (pred_shape, true_shape, matrix_shape(train)) if s is not None]
    need = BASE_BYTES + sum(_held(s) for s in shapes) + max((_reading(s) for s in shapes), default=0)
    if pred_shape is not None:
        need += _EVAL_PER_PRED * pred_shape.nnz
    if true_shape is not None:
        need += _EVAL_PER_TRUE * true_shape.nnz + 8 * true_shape.n_cols
    return need, ("the matrices " + _listing(shapes)) if shapes else f"the evaluation of {pred}"


def _prediction_shape(path: Path, k: int) -> MatrixShape | None:
    """A prediction file's shape: a label file, or a dense ``.npy`` of scores (its top ``max(k, 100)`` kept)."""
    try:
        with open(path, "rb") as fh:
            if fh.read(6) != b"\x93NUMPY":
                return matrix_shape(path)
        scores = np.load(path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError):
        return None
    if scores.ndim != 2:
        return None
    n, n_labels = (int(x) for x in scores.shape)
    return MatrixShape(path, n, n_labels, n * min(n_labels, max(k, 100)), "npz")


def _what(directory: Path, shapes: list[MatrixShape]) -> str:
    if not shapes:
        return f"the texts of {directory}"
    return "the label matrices " + _listing(shapes)


def _listing(shapes: list[MatrixShape]) -> str:
    """``a``, ``a and b``, ``a, b and c``."""
    names = [s.describe() for s in shapes]
    return ", ".join(names[:-1]) + " and " + names[-1] if len(names) > 1 else "".join(names)


_HINT = "Use a machine (or a container memory limit) with more memory, or a dataset folder with fewer rows."


def require_folder(directory: str | os.PathLike, command: str, *, then: str = "load") -> None:
    """Refuse (:class:`~vixml.errors.ResourceError`) a folder whose checking or loading would not fit.

    ``then``: ``"load"`` (validate, the loader), ``"stats"`` or ``"prepare"`` (which ends with the stats).
    """
    need, what, _ = {"load": folder_need, "stats": stats_need, "prepare": prepare_need}[then](directory)
    require(need, what, _HINT, command=command)


def require_evaluate(pred, true, train, k: int, command: str = "vixml evaluate") -> None:
    """Refuse an evaluation whose matrices would not fit."""
    need, what = evaluate_need(pred, true, train, k)
    hint = "Evaluate fewer test rows at a time (the predictions and true labels of a part), or use more memory."
    require(need, what, hint, command=command)
