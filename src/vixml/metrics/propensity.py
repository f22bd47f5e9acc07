"""Inverse label propensities (Jain et al., KDD 2016) for the propensity-scored metrics PSP@k and PSnDCG@k.

A label's propensity is the chance that a relevant label is actually observed in the training data;
rare (tail) labels are missing more often, so propensity-scored metrics weight a correct prediction of
label ``l`` by its inverse propensity

    ``w_l = 1 + C * (N_l + B) ** -A``,  with  ``C = (log(N) - 1) * (B + 1) ** A``,

where ``N_l`` is the sum of column ``l`` of the *training* label matrix (its frequency for binary labels)
and ``N`` the number of training rows. This is exactly pyxclib's ``compute_inv_propesity``
(``xclib/evaluation/xc_metrics.py``), computed in float64.

``A`` and ``B`` depend on the dataset family. The presets below are the ones of Jain et al. and pyxclib:

============  =====  =====  ==========================================
preset        A      B      datasets
============  =====  =====  ==========================================
``amazon``    0.6    2.6    Amazon-*, LF-AmazonTitles-*, MM-Amazon-*
``wikipedia`` 0.5    0.4    Wiki*, LF-WikiSeeAlso*, WikiTitles-*
``default``   0.55   1.5    everything else (EURLex, Delicious, ...)
============  =====  =====  ==========================================

:func:`propensity_preset` picks one by dataset name: the XMC benchmark names carry the family
(``LF-AmazonTitles-131K``), which is the convention of the field and of the published results.
"""

from __future__ import annotations

import logging
import math
import os

import numpy as np
import scipy.sparse as sp

from vixml.data.family import dataset_family
from vixml.errors import ConfigError, DataError, Problem

__all__ = [
    "PROPENSITY_PRESETS",
    "propensity_preset",
    "dataset_propensity",
    "resolve_propensity",
    "inverse_propensity",
    "check_propensity_params",
]

logger = logging.getLogger(__name__)

PROPENSITY_PRESETS: dict[str, tuple[float, float]] = {
    "amazon": (0.6, 2.6),
    "wikipedia": (0.5, 0.4),
    "default": (0.55, 1.5),
}
"""Preset name -> (A, B) of the inverse propensity model (see the module docstring)."""


def propensity_preset(dataset: str) -> tuple[float, float]:
    """The (A, B) propensity parameters for a dataset, chosen by its name.

    Args:
        dataset: a dataset name or path (``"LF-AmazonTitles-131K"``, ``"data/LF-WikiSeeAlso-320K"``) or
            a preset name (``"amazon"``, ``"wikipedia"``, ``"default"``). Case-insensitive.

    Returns:
        ``(A, B)``: ``amazon`` when the name contains "amazon", ``wikipedia`` when it contains "wiki",
        ``default`` otherwise (:func:`vixml.data.family.dataset_family`; the family ``other`` is ``default``).
    """
    name = dataset.lower()
    if name in PROPENSITY_PRESETS:
        return PROPENSITY_PRESETS[name]
    family = dataset_family(name)
    return PROPENSITY_PRESETS[family if family in ("amazon", "wikipedia") else "default"]


def dataset_propensity(folder: str | os.PathLike) -> tuple[float, float, str]:
    """``(A, B, why)`` of a dataset folder: its family in ``dataset.json``, else the family of its folder's
    name, else the default preset (``why`` says which)."""
    from pathlib import Path

    from vixml.data import read_manifest

    folder = Path(folder)
    family, source = None, ""
    try:
        manifest = read_manifest(folder)
    except (OSError, ValueError):
        manifest = None
    if manifest and manifest.get("family"):
        family, source = manifest["family"], f"family {manifest['family']!r} in {folder / 'dataset.json'}"
    elif (named := dataset_family(folder.resolve().name)) is not None:
        family, source = named, f"family {named!r} from the folder name {folder.resolve().name!r}"
    A, B = PROPENSITY_PRESETS.get(family or "default", PROPENSITY_PRESETS["default"])
    if family is None:
        source = "family unknown: the default; pass --A/--B or --data DIR"
    return A, B, source


def resolve_propensity(A: float | str, B: float | str, folder: str | os.PathLike) -> tuple[float, float]:
    """``eval.A`` / ``eval.B`` with ``"auto"`` replaced by the dataset family's value (:func:`dataset_propensity`)."""
    if A != "auto" and B != "auto":
        return float(A), float(B)
    preset_a, preset_b, why = dataset_propensity(folder)
    logger.info("propensity A/B auto: %s, %s (%s)", preset_a, preset_b, why)
    return (preset_a if A == "auto" else float(A)), (preset_b if B == "auto" else float(B))


def check_propensity_params(A: float, B: float) -> tuple[float, float]:
    """``(A, B)`` as floats; ConfigError unless A >= 0 and B > 0 (which keeps ``(N_l + B) ** -A`` finite)."""
    try:
        a, b = float(A), float(B)
    except (TypeError, ValueError):
        raise ConfigError(f"propensity A and B must be numbers (e.g. A=0.55, B=1.5), got A={A!r}, B={B!r}") from None
    if not (math.isfinite(a) and a >= 0):
        raise ConfigError(f"propensity A must be a finite number >= 0 (e.g. 0.55), got {A!r}")
    if not (math.isfinite(b) and b > 0):
        raise ConfigError(f"propensity B must be a finite number > 0 (e.g. 1.5), got {B!r}")
    return a, b


def inverse_propensity(train_Y, A: float = 0.55, B: float = 1.5) -> np.ndarray:
    """Inverse propensity of every label, from the training label matrix.

    Args:
        train_Y: training labels, scipy sparse or dense array of shape (n_train, n_labels). Its column
            sums are the label frequencies (label values are summed, as pyxclib does; for the usual
            binary matrices this is the number of training points of each label).
        A: propensity parameter A (see :data:`PROPENSITY_PRESETS`).
        B: propensity parameter B.

    Returns:
        float64 array of shape (n_labels,): ``1 + C * (freq + B) ** -A``. Labels never seen in training
        get the largest weight ``1 + C * B ** -A``.

    Raises:
        ConfigError: A or B out of range.
        DataError: train_Y is not a 2-D matrix with at least one row.
    """
    A, B = check_propensity_params(A, B)
    if sp.issparse(train_Y):
        freqs = np.asarray(train_Y.sum(axis=0), dtype=np.float64).ravel()
    else:
        arr = np.asarray(train_Y)
        if arr.ndim != 2:
            raise DataError(Problem("train", f"expected a 2-D label matrix, got an array of shape {arr.shape}"))
        freqs = arr.sum(axis=0, dtype=np.float64)
    n = train_Y.shape[0]
    if n < 1:
        raise DataError(Problem("train", "the training label matrix has no rows: propensities need N >= 1"))
    c = (math.log(n) - 1.0) * (B + 1.0) ** A
    weights = 1.0 + c * np.power(freqs + B, -A)
    logger.debug("inverse propensity: N=%d, L=%d, A=%s, B=%s, C=%.4f", n, freqs.size, A, B, c)
    return weights
