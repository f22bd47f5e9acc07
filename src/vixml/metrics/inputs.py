"""Validate and normalise the metric inputs (true labels, predictions, filter pairs) into flat CSR arrays.

Every checker returns the normalised value and the list of problems it found, so that the caller can
gather the problems of all its inputs before raising one :class:`~vixml.errors.DataError`.
Normalisation copies only what it must: a CSR prediction matrix of float32/float64 scores and int32/int64
label ids, or a dense ``(scores, indices)`` pair, reaches the kernels without a copy (a 1M x 100
prediction matrix is 800 MB).

``Problem.file`` names the argument (``"true"``, ``"pred"``, ``"train"``, ``"filter"``), or the file it was
read from when the caller says (``evaluate(..., sources={"pred": "run/pred.npz"})``, as ``vixml evaluate``
does); for the filter, ``Problem.line`` is the 1-based pair number.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from vixml.errors import ConfigError, Problem
from vixml.finite import SHOWN

__all__ = [
    "Truth",
    "Predictions",
    "FilterPairs",
    "check_truth",
    "check_predictions",
    "check_filter",
    "check_k",
    "check_train",
]

_SHOWN = 10  # offending entries listed one by one before a count


@dataclass(frozen=True)
class Truth:
    """Canonical CSR true labels: sorted, unique label ids per row.

    Attributes:
        indptr: int64 (n + 1,).
        indices: int64 (nnz,), sorted within each row.
        data: float64 (nnz,), the label values (relevance; 1.0 in the usual binary files).
        shape: (n_queries, n_labels).
    """

    indptr: np.ndarray
    indices: np.ndarray
    data: np.ndarray
    shape: tuple[int, int]


@dataclass(frozen=True)
class Predictions:
    """Prediction lists as flat CSR arrays; entries with a negative label id are padding.

    Attributes:
        indptr: int64 (n + 1,).
        indices: int32 or int64 (nnz,), label ids; -1 marks padding of the dense form.
        data: float32 or float64 (nnz,), scores (higher = better).
        canonical: True when label ids are sorted and unique within each row (a canonical scipy CSR),
            which lets the kernel binary-search the labels instead of hashing them (and checking repeats).
        width: the most predictions a row may hold (``k'`` of the dense form, max row length of a CSR).
        dense_shape: ``(n, k')`` for the dense form (to rebuild it), None for a CSR.
    """

    indptr: np.ndarray
    indices: np.ndarray
    data: np.ndarray
    canonical: bool
    width: int
    dense_shape: tuple[int, int] | None = None


@dataclass(frozen=True)
class FilterPairs:
    """(row, label) pairs to drop from the predictions, as CSR: int64 indptr (n + 1,), sorted int64 indices."""

    indptr: np.ndarray
    indices: np.ndarray

    @property
    def empty(self) -> bool:
        return self.indices.size == 0


def check_k(k: int, name: str = "k") -> int:
    """``k`` as an int >= 1 (raises ConfigError otherwise)."""
    if isinstance(k, bool) or not isinstance(k, int | np.integer) or k < 1:
        raise ConfigError(f"{name} must be an integer >= 1, got {k!r}")
    return int(k)


def _nonfinite_problem(file: str, values: np.ndarray, what: str, indptr: np.ndarray | None = None) -> Problem | None:
    """Non-finite entries of a CSR ``data`` array (``indptr`` names their rows) or of a flat array."""
    bad = ~np.isfinite(values)
    if not bad.any():
        return None
    where = ""
    if indptr is not None:
        rows = np.unique(np.searchsorted(indptr, np.flatnonzero(bad), side="right") - 1)
        shown = ", ".join(str(int(r)) for r in rows[:SHOWN]) + (", ..." if rows.size > SHOWN else "")
        where = f" in {rows.size} row(s) ({shown})"
    return Problem(file, f"{int(bad.sum())} {what} are NaN or infinite{where}; every value must be a finite number")


def check_truth(true, name: str = "true") -> tuple[Truth | None, list[Problem]]:
    """Normalise the true label matrix (sparse of any format, or a dense 2-D array) of shape (n, L).

    Duplicate stored entries are summed (as scipy indexing, hence pyxclib, does). Values must be finite
    and >= 0: they are relevance gains.
    """
    if sp.issparse(true):
        if len(true.shape) != 2:
            return None, [Problem(name, f"expected a 2-D label matrix, got shape {true.shape}")]
        csr = true.tocsr()
    elif isinstance(true, np.ndarray):
        if true.ndim != 2:
            return None, [Problem(name, f"expected a 2-D label matrix, got an array of shape {true.shape}")]
        csr = sp.csr_matrix(true)
    else:
        return None, [
            Problem(name, f"expected a scipy sparse matrix (n_queries, n_labels), got {type(true).__name__}")
        ]
    if not csr.has_canonical_format:
        csr = csr.copy()
        csr.sum_duplicates()
    data = np.asarray(csr.data, dtype=np.float64)
    problems = []
    if csr.shape[0] == 0:
        problems.append(Problem(name, "the true label matrix has no rows: there is no query to evaluate"))
    if (p := _nonfinite_problem(name, data, "label values", csr.indptr)) is not None:
        problems.append(p)
    elif (data < 0).any():
        problems.append(Problem(name, f"{int((data < 0).sum())} label values are negative; relevance must be >= 0"))
    truth = Truth(
        indptr=np.asarray(csr.indptr, dtype=np.int64),
        indices=np.asarray(csr.indices, dtype=np.int64),
        data=data,
        shape=(int(csr.shape[0]), int(csr.shape[1])),
    )
    return truth, problems


def _dense_predictions(pred, shape: tuple[int, int], name: str) -> tuple[Predictions | None, list[Problem]]:
    if len(pred) != 2:
        return None, [Problem(name, f"the dense form is a pair (scores, indices), got a sequence of {len(pred)}")]
    scores, indices = np.asarray(pred[0]), np.asarray(pred[1])
    problems = []
    if scores.ndim != 2 or scores.shape != indices.shape:
        problems.append(
            Problem(
                name,
                f"scores and indices must be 2-D of the same shape (n, k'), got {scores.shape} and {indices.shape}",
                field="shape",
            )
        )
    if not np.issubdtype(indices.dtype, np.integer):
        problems.append(
            Problem(name, f"indices must be integers (label ids, -1 = padding), got {indices.dtype}", field="indices")
        )
    if not (np.issubdtype(scores.dtype, np.floating) or np.issubdtype(scores.dtype, np.integer)):
        problems.append(Problem(name, f"scores must be numbers, got {scores.dtype}", field="scores"))
    if problems:
        return None, problems
    n, width = scores.shape
    if n != shape[0]:
        problems.append(
            Problem(
                name,
                f"predictions have {n} rows but the true label matrix has {shape[0]}: both need one row per query",
                field="shape",
            )
        )
    if indices.size:
        lo, hi = int(indices.min()), int(indices.max())
        if lo < -1 or hi >= shape[1]:
            bad = int(((indices < -1) | (indices >= shape[1])).sum())
            problems.append(
                Problem(
                    name,
                    f"{bad} label ids are outside [0, {shape[1]}) (n_labels = {shape[1]}; -1 marks "
                    f"padding); found ids in [{lo}, {hi}]",
                    field="indices",
                )
            )
    scores = scores if scores.dtype in (np.float32, np.float64) else scores.astype(np.float64)
    if not np.isfinite(scores).all():
        real = np.where(indices >= 0, scores, 0.0)  # padding (-1) may hold -inf or NaN
        rows = np.flatnonzero(~np.isfinite(real).all(axis=1)) if real.ndim == 2 else np.zeros(0, dtype=np.int64)
        if rows.size:
            shown = ", ".join(str(int(r)) for r in rows[:SHOWN]) + (", ..." if rows.size > SHOWN else "")
            problems.append(
                Problem(
                    name,
                    f"{rows.size} row(s) ({shown}) hold NaN or infinite scores of real (non-padding) predictions; "
                    "every score must be a finite number",
                    field="scores",
                )
            )
    indices = indices if indices.dtype in (np.int32, np.int64) else indices.astype(np.int64)
    preds = Predictions(
        indptr=np.arange(n + 1, dtype=np.int64) * width,
        indices=np.ascontiguousarray(indices).reshape(-1),
        data=np.ascontiguousarray(scores).reshape(-1),
        canonical=False,
        width=width,
        dense_shape=(n, width),
    )
    return preds, problems


def check_predictions(pred, shape: tuple[int, int], name: str = "pred") -> tuple[Predictions | None, list[Problem]]:
    """Normalise predictions: a scipy sparse (n, L) matrix of scores, or a dense pair ``(scores, indices)``.

    Args:
        pred: sparse (n, L): the stored entries of a row are its predictions (explicit zeros included:
            a stored score of 0.0 is a prediction). Or ``(scores, indices)``, both (n, k'), index -1 = padding.
        shape: the true label matrix's (n, L).
        name: the argument's name in problem messages.
    """
    if isinstance(pred, tuple | list):
        return _dense_predictions(pred, shape, name)
    if not sp.issparse(pred):
        return None, [
            Problem(
                name,
                f"expected a scipy sparse matrix (n_queries, n_labels) or a pair (scores, indices), got "
                f"{type(pred).__name__}",
            )
        ]
    if tuple(pred.shape) != tuple(shape):
        return None, [
            Problem(
                name,
                f"predictions have shape {tuple(pred.shape)} but the true label matrix has shape "
                f"{tuple(shape)}: both need one row per query and one column per label",
                field="shape",
            )
        ]
    csr = pred.tocsr()
    data = csr.data if csr.data.dtype in (np.float32, np.float64) else csr.data.astype(np.float64)
    problems = []
    if (p := _nonfinite_problem(name, data, "prediction scores", csr.indptr)) is not None:
        problems.append(Problem(p.file, p.message, field="scores"))
    indices = csr.indices if csr.indices.dtype in (np.int32, np.int64) else csr.indices.astype(np.int64)
    indptr = np.asarray(csr.indptr, dtype=np.int64)
    width = int(np.diff(indptr).max()) if shape[0] else 0
    preds = Predictions(
        indptr=indptr, indices=indices, data=data, canonical=bool(csr.has_canonical_format), width=width
    )
    return preds, problems


def check_filter(pairs, shape: tuple[int, int], name: str = "filter") -> tuple[FilterPairs | None, list[Problem]]:
    """Normalise (row, label) filter pairs, an (m, 2) integer array (None or empty = no filter), into CSR."""
    n, n_labels = shape
    if pairs is None:
        arr = np.zeros((0, 2), dtype=np.int64)
    else:
        arr = np.asarray(pairs)
        if arr.size == 0:
            arr = np.zeros((0, 2), dtype=np.int64)
    if arr.ndim != 2 or arr.shape[1] != 2:
        return None, [Problem(name, f"expected (m, 2) (row, label) pairs, got an array of shape {arr.shape}")]
    if not np.issubdtype(arr.dtype, np.integer):
        return None, [Problem(name, f"expected integer (row, label) pairs, got {arr.dtype}")]
    rows, labels = arr[:, 0].astype(np.int64), arr[:, 1].astype(np.int64)
    bad_row = (rows < 0) | (rows >= n)
    bad_label = (labels < 0) | (labels >= n_labels)
    problems = []
    for j in np.flatnonzero(bad_row | bad_label)[:_SHOWN]:
        field = "row" if bad_row[j] else "label"
        limit = n if bad_row[j] else n_labels
        value = rows[j] if bad_row[j] else labels[j]
        problems.append(Problem(name, f"{field} {value} is outside [0, {limit})", line=int(j) + 1, field=field))
    n_bad = int((bad_row | bad_label).sum())
    if n_bad > _SHOWN:
        problems.append(Problem(name, f"{n_bad} pairs out of range in all ({n} rows, {n_labels} labels)"))
    if problems:
        return None, problems
    indptr = np.zeros(n + 1, dtype=np.int64)
    if rows.size == 0:
        return FilterPairs(indptr=indptr, indices=np.zeros(0, dtype=np.int64)), []
    keys = rows * n_labels + labels  # sorted by (row, label), duplicates dropped, below
    if not np.all(keys[1:] > keys[:-1]):  # filter files usually come sorted: skip the sort then
        keys = np.sort(keys)
        keys = keys[np.concatenate(([True], keys[1:] != keys[:-1]))]
    rows, labels = keys // n_labels, keys % n_labels
    np.cumsum(np.bincount(rows, minlength=n), out=indptr[1:])
    return FilterPairs(indptr=indptr, indices=labels.astype(np.int64)), []


def check_train(train, n_labels: int, name: str = "train") -> list[Problem]:
    """Problems of a training label matrix used for propensities: 2-D, one column per label, finite values."""
    if not (sp.issparse(train) or isinstance(train, np.ndarray)):
        return [Problem(name, f"expected a scipy sparse matrix (n_train, n_labels), got {type(train).__name__}")]
    if len(train.shape) != 2:
        return [Problem(name, f"expected a 2-D label matrix, got shape {train.shape}")]
    problems = []
    if train.shape[1] != n_labels:
        problems.append(
            Problem(
                name,
                f"the training label matrix has {train.shape[1]} labels but the true label matrix has "
                f"{n_labels}: both must index the same label set",
                field="shape",
            )
        )
    if train.shape[0] < 1:
        problems.append(Problem(name, "the training label matrix has no rows: propensities need N >= 1"))
    csr = train.tocsr() if sp.issparse(train) else None
    values = csr.data if csr is not None else np.asarray(train, dtype=np.float64).ravel()
    indptr = csr.indptr if csr is not None else None
    if (p := _nonfinite_problem(name, np.asarray(values, dtype=np.float64), "label values", indptr)) is not None:
        problems.append(p)
    return problems
