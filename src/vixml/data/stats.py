"""``dataset_stats``: the numbers of a dataset's table row (XC-repository style) plus image coverage."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from vixml.data.dataset import XMCDataset, load_dataset
from vixml.data.image_maps import read_image_map
from vixml.data.images import discover_image_files
from vixml.errors import DataError

__all__ = ["dataset_stats", "QUANTILES"]

QUANTILES = {"min": 0.0, "p25": 0.25, "p50": 0.5, "p75": 0.75, "p90": 0.9, "p99": 0.99, "max": 1.0}


def dataset_stats(data: str | os.PathLike | XMCDataset) -> dict:
    """Statistics of a dataset, as a JSON-serialisable dict nested by split.

    Args:
        data: a dataset folder or a loaded :class:`XMCDataset`.

    Returns:
        ``{"n_labels", "trn": {...}, "tst": {...} (when present), "lbl": {...},
        "label_frequency": {"min", "p25", "p50", "p75", "p90", "p99", "max"},
        "labels_without_train_points"}``. Per split: ``points``, ``nnz``, ``avg_labels_per_point``,
        ``avg_points_per_label`` (nnz / n_labels), ``empty_rows``; with images, ``image_coverage`` (share
        of items with >= 1 image) and ``avg_images_per_item`` (images the map lists, before the N cap).
        Label frequencies count training points per label.

    Raises:
        DataError: the folder does not load (see :func:`~vixml.data.load_dataset`).
    """
    dataset = data if isinstance(data, XMCDataset) else load_dataset(data, images=False)
    n_labels = dataset.n_labels
    result: dict = {"n_labels": int(n_labels)}
    for split, y in (("trn", dataset.trn_Y), ("tst", dataset.tst_Y)):
        if y is not None:
            result[split] = _split_stats(y)
    result["lbl"] = {"points": int(n_labels)}
    freq = np.diff(sp.csc_matrix(dataset.trn_Y).indptr) if dataset.trn_Y.nnz else np.zeros(n_labels, dtype=np.int64)
    if n_labels:
        values = np.quantile(freq, list(QUANTILES.values()))
        result["label_frequency"] = {k: float(v) for k, v in zip(QUANTILES, values, strict=True)}
    else:
        result["label_frequency"] = {k: 0.0 for k in QUANTILES}
    result["labels_without_train_points"] = int((freq == 0).sum())
    for split, counts in _image_counts(dataset).items():
        if split in result:
            result[split]["image_coverage"] = float((counts > 0).mean()) if counts.size else 0.0
            result[split]["avg_images_per_item"] = float(counts.mean()) if counts.size else 0.0
    return result


def _split_stats(y: sp.csr_matrix) -> dict:
    per_row = np.diff(y.indptr)
    n_rows, n_labels = y.shape
    return {
        "points": int(n_rows),
        "nnz": int(y.nnz),
        "avg_labels_per_point": float(y.nnz / n_rows) if n_rows else 0.0,
        "avg_points_per_label": float(y.nnz / n_labels) if n_labels else 0.0,
        "empty_rows": int((per_row == 0).sum()),
    }


def _image_counts(dataset: XMCDataset) -> dict[str, np.ndarray]:
    """Images per item of each split, from the open banks or else from the pickle-free maps on disk."""
    if dataset.images:
        return {split: bank.map.counts() for split, bank in dataset.images.items()}
    counts = {}
    for split, files in discover_image_files(Path(dataset.path)).items():
        if files.map_npz is None:
            continue
        try:
            counts[split] = read_image_map(files.map_npz).counts()
        except DataError:
            continue
    return counts
