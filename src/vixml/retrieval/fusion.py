"""Score fusion of the dense and sparse sources: a convex combination of per-query normalised scores.

Every candidate of a query (the union of the sources' top lists) has a score from every source: the dense
inner product is exact for any label; the sparse ranker scores only what its beam found, and a candidate
it did not find gets its floor, 0 (its scores are probabilities). Each source's scores are normalised per
query over that query's candidates (``zscore``: minus their mean, over their standard deviation; ``none``:
as they are), then ``fused = w * dense + (1 - w) * sparse``. The weight is tuned on queries that neither
model trained on (:func:`tune`), never on training queries: a model scores its own training queries too
well, and the tuned weight would favour it (HYBRID.md).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import scipy.sparse as sp

from vixml.atomic import atomic_open
from vixml.errors import DataError, Problem

__all__ = ["Fusion", "combine", "tune", "GRID"]

Normalization = Literal["zscore", "none"]
GRID = tuple(round(w, 2) for w in np.linspace(0.0, 1.0, 21))  # the dense weights tried by :func:`tune`


@dataclass(frozen=True)
class Fusion:
    """The fusion rule of a run (``fusion.json``).

    Attributes:
        dense_weight: w; the sparse source weighs 1 - w.
        normalization: per-query normalisation of each source's candidate scores.
        tuned_on: how many held-out queries chose ``dense_weight`` (0 = set by hand).
        scores: the held-out metrics of each weight tried (for the report).
    """

    dense_weight: float = 0.5
    normalization: Normalization = "zscore"
    tuned_on: int = 0
    scores: dict = field(default_factory=dict)

    def save(self, path: str | Path) -> None:
        with atomic_open(path) as fh:
            json.dump(asdict(self), fh, indent=2)
            fh.write("\n")

    @classmethod
    def load(cls, path: str | Path) -> Fusion:
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
            return cls(**data)
        except FileNotFoundError:
            raise DataError(Problem(str(path), "missing: the run's fusion weights")) from None
        except (OSError, ValueError, TypeError) as exc:
            raise DataError(Problem(str(path), f"unreadable fusion weights: {exc}")) from None


def normalize(scores: np.ndarray, valid: np.ndarray, how: Normalization) -> np.ndarray:
    """Per-row normalisation of (n, c) scores over the valid candidates (invalid ones come out 0)."""
    scores = np.where(valid, scores, 0.0).astype(np.float64)
    if how == "none":
        return scores
    count = np.maximum(valid.sum(axis=1, keepdims=True), 1)
    mean = scores.sum(axis=1, keepdims=True) / count
    centred = np.where(valid, scores - mean, 0.0)
    std = np.sqrt((centred**2).sum(axis=1, keepdims=True) / count)
    return centred / np.where(std > 0, std, 1.0)


def combine(dense: np.ndarray, sparse: np.ndarray, valid: np.ndarray, fusion: Fusion) -> np.ndarray:
    """Fused (n, c) scores of the candidates (``-inf`` where not ``valid``)."""
    w = fusion.dense_weight
    fused = w * normalize(dense, valid, fusion.normalization) + (1 - w) * normalize(
        sparse, valid, fusion.normalization
    )
    return np.where(valid, fused, -np.inf)


def tune(
    dense: np.ndarray,
    sparse: np.ndarray,
    ids: np.ndarray,
    truth: sp.csr_matrix,
    *,
    normalization: Normalization = "zscore",
    propensity: np.ndarray | None = None,
    k: int = 5,
) -> Fusion:
    """The dense weight of :data:`GRID` that ranks held-out queries best.

    Args:
        dense, sparse: (n, c) each source's score of each candidate (the sparse floor where it found none).
        ids: (n, c) candidate label ids (-1 = none).
        truth: (n, L) the held-out queries' true labels.
        propensity: (L,) inverse propensities for PSP@k (None: precision only).
        k: the cut of the objective.

    The objective is the mean of P@1, P@k and (with propensities) PSP@k, each relative to the best single
    source's: a weight that trades one for another only wins if the sum gains (HYBRID.md: fusion that helps
    P@1 can hurt PSP@k).
    """
    valid = ids >= 0
    results = {}
    for w in GRID:
        fused = combine(dense, sparse, valid, Fusion(w, normalization))
        results[w] = _objective_parts(fused, ids, truth, propensity, k)
    base = {name: max(max(r[name] for r in results.values() if r), 1e-9) for name in results[GRID[0]]}
    scored = {w: float(np.mean([r[name] / base[name] for name in r])) for w, r in results.items()}
    best = max(GRID, key=lambda w: (scored[w], -abs(w - 0.5)))
    table = {
        str(w): {**{n: round(v, 6) for n, v in results[w].items()}, "objective": round(scored[w], 6)} for w in GRID
    }
    return Fusion(float(best), normalization, int(truth.shape[0]), table)


def _objective_parts(fused, ids, truth: sp.csr_matrix, propensity, k: int) -> dict[str, float]:
    order = np.argsort(-fused, axis=1, kind="stable")[:, :k]
    top = np.take_along_axis(ids, order, 1)
    top_valid = np.take_along_axis(fused, order, 1) > -np.inf
    hits = np.zeros(top.shape, dtype=bool)
    for row in range(top.shape[0]):
        true = truth.indices[truth.indptr[row] : truth.indptr[row + 1]]
        hits[row] = np.isin(top[row], true) & top_valid[row]
    parts = {"P@1": float(hits[:, 0].mean()), f"P@{k}": float(hits.mean())}
    if propensity is not None:
        gain = np.where(hits, propensity[np.maximum(top, 0)], 0.0).sum(axis=1)
        best = np.zeros(top.shape[0])
        for row in range(top.shape[0]):
            true = truth.indices[truth.indptr[row] : truth.indptr[row + 1]]
            best[row] = np.sort(propensity[true])[::-1][:k].sum()
        parts[f"PSP@{k}"] = float(gain.sum() / max(best.sum(), 1e-12))
    return parts
