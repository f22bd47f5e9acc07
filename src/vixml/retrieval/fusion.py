"""Score fusion of the sources: a convex combination of per-query normalised scores.

Every candidate of a query (the union of the sources' top lists) has a score from every source: the dense
inner product is exact for any label; the sparse ranker scores only what its beam found, and a candidate
it did not find gets its floor, 0 (its scores are probabilities); so does "+R" (training queries voting for
their labels, docs/method.md 5), whose scores are probability mass too. Each source's scores are normalised per
query over that query's candidates (``zscore``: minus their mean, over their standard deviation; ``none``:
as they are), then ``fused = w * dense + (1 - w) * sparse``, or with +R its own three weights
``w_dense * dense + w_r * r + w_sparse * sparse``. The weights are tuned on queries that neither model
trained on (:func:`tune`), never on training queries: a model scores its own training queries too well, and
the tuned weight would favour it (HYBRID.md).
"""

from __future__ import annotations

import itertools
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
SE_MARGIN = 2.0  # standard errors of the per-query loss within which a point ties the best (:func:`tune`)
PLUS_R = ("dense", "r", "sparse")  # the sources of a fusion with +R, in the order of their weights


@dataclass(frozen=True)
class Fusion:
    """The fusion rule of a run (``fusion.json``).

    Attributes:
        dense_weight: w; the sparse source weighs 1 - w.
        normalization: per-query normalisation of each source's candidate scores.
        tuned_on: how many held-out queries chose the weights (0 = set by hand).
        scores: the held-out metrics of each weight tried (for the report).
        plus_r: with +R, the weights of ``dense``, ``r`` and ``sparse`` (summing to 1); None = not tuned:
            +R's scores then take the dense source's place and weight.
    """

    dense_weight: float = 0.5
    normalization: Normalization = "zscore"
    tuned_on: int = 0
    scores: dict = field(default_factory=dict)
    plus_r: dict | None = None

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

    def weights(self, with_r: bool) -> dict[str, float]:
        """Each source's weight: dense and sparse, or (``with_r``) the tuned +R weights, else +R in dense's place."""
        if not with_r:
            return {"dense": self.dense_weight, "sparse": 1 - self.dense_weight}
        if self.plus_r is not None:
            return {name: float(self.plus_r[name]) for name in PLUS_R}
        return {"r": self.dense_weight, "sparse": 1 - self.dense_weight}


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


def combine(sources: dict[str, np.ndarray], valid: np.ndarray, fusion: Fusion) -> np.ndarray:
    """Fused (n, c) scores of the candidates (``-inf`` where not ``valid``).

    Args:
        sources: each source's (n, c) scores of the candidates: ``dense`` and ``sparse``, and ``r`` with +R.
        valid: (n, c) real candidates.
        fusion: the rule.
    """
    weights = fusion.weights("r" in sources)
    fused = sum(w * normalize(sources[name], valid, fusion.normalization) for name, w in weights.items() if w)
    return np.where(valid, fused, -np.inf)


def tune(
    sources: dict[str, np.ndarray],
    ids: np.ndarray,
    truth: sp.csr_matrix,
    *,
    normalization: Normalization = "zscore",
    propensity: np.ndarray | None = None,
    k: int = 5,
) -> Fusion:
    """The weights that rank held-out queries best: the dense weight of :data:`GRID`, and with an ``r`` source
    also the +R weights (every point of the simplex on the same 0.05 grid).

    Args:
        sources: each source's (n, c) score of each candidate (the floor where it found none): ``dense`` and
            ``sparse``, and ``r`` (+R) when the +R weights are to be tuned too.
        ids: (n, c) candidate label ids (-1 = none).
        truth: (n, L) the held-out queries' true labels.
        propensity: (L,) inverse propensities for PSP@k (None: precision only).
        k: the cut of the objective.

    The objective is the mean of P@1, P@k and (with propensities) PSP@k, each relative to the best of the
    weights tried: a weight that trades one for another only wins if the sum gains (HYBRID.md: fusion that
    helps P@1 can hurt PSP@k). Weights whose objective is within two standard errors of the best one's (of
    the paired per-query differences) are as good as the best, and the most even of them wins (the
    one-standard-error rule of model selection, with two: the best of 21 or 231 noisy points is chosen for
    its noise): a few hundred held-out queries cannot tell 0.85 from 0.5, and even weights bet on no
    noise; a real difference stands.
    """
    valid = ids >= 0
    judge = _Judge(ids, truth, propensity, k)
    z = {name: normalize(scores, valid, normalization) for name, scores in sources.items()}
    pairs = {(w, round(1 - w, 2)): None for w in GRID}
    best, table = _search(pairs, ("dense", "sparse"), z, valid, judge)
    plus_r = None
    if "r" in sources:
        steps = len(GRID) - 1
        points = {
            (a / steps, b / steps, (steps - a - b) / steps): None
            for a, b in itertools.product(range(steps + 1), repeat=2)
            if a + b <= steps
        }
        chosen, r_table = _search(points, PLUS_R, z, valid, judge)
        plus_r = {name: round(w, 2) for name, w in zip(PLUS_R, chosen, strict=True)}
        table["plus_r"] = r_table
    return Fusion(float(best[0]), normalization, int(truth.shape[0]), table, plus_r)


def _search(points: dict, names: tuple[str, ...], z: dict, valid: np.ndarray, judge: _Judge):
    """The chosen point (weights of ``names``; see :func:`tune`) and the table of every point."""
    per_query = {}
    for point in points:
        fused = sum(w * z[name] for name, w in zip(names, point, strict=True) if w)
        per_query[point] = judge.per_query(np.where(valid, fused, -np.inf))
    results = {p: {m: float(v.mean()) for m, v in parts.items()} for p, parts in per_query.items()}
    metrics = next(iter(results.values())).keys()
    base = {m: max(max(r[m] for r in results.values()), 1e-9) for m in metrics}
    objective = {p: np.mean([per_query[p][m] / base[m] for m in metrics], axis=0) for p in points}
    scored = {p: float(o.mean()) for p, o in objective.items()}
    best = max(points, key=scored.get)
    tied = [p for p in points if _ties_best(objective[best] - objective[p])]
    chosen = min(tied, key=lambda p: (float(np.ptp(p)), -scored[p]))
    key = (lambda p: str(p[0])) if len(names) == 2 else (lambda p: "/".join(f"{w:.2f}" for w in p))
    table = {
        key(p): {**{m: round(v, 6) for m, v in results[p].items()}, "objective": round(scored[p], 6)} for p in points
    }
    return chosen, table


def _ties_best(loss: np.ndarray) -> bool:
    """Whether a per-query loss against the best point is within :data:`SE_MARGIN` standard errors of none."""
    if loss.shape[0] < 2:
        return not loss.any()
    return float(loss.mean()) <= SE_MARGIN * float(loss.std(ddof=1)) / np.sqrt(loss.shape[0])


class _Judge:
    """P@1, P@k and PSP@k of fused candidate scores against held-out truth (relevance looked up once)."""

    def __init__(self, ids: np.ndarray, truth: sp.csr_matrix, propensity, k: int):
        self.k = k
        truth = sp.csr_matrix(truth)
        self.relevant = np.zeros(ids.shape, dtype=bool)
        for row in range(ids.shape[0]):
            true = truth.indices[truth.indptr[row] : truth.indptr[row + 1]]
            self.relevant[row] = np.isin(ids[row], true) & (ids[row] >= 0)
        self.gain = self.ideal = None
        if propensity is not None:
            self.gain = np.where(self.relevant, propensity[np.maximum(ids, 0)], 0.0)
            self.ideal = sum(
                np.sort(propensity[truth.indices[truth.indptr[r] : truth.indptr[r + 1]]])[::-1][:k].sum()
                for r in range(ids.shape[0])
            )

    def per_query(self, fused: np.ndarray) -> dict[str, np.ndarray]:
        """Each query's share of P@1, P@k and PSP@k (their means are the metrics)."""
        order = np.argsort(-fused, axis=1, kind="stable")[:, : self.k]
        shown = np.take_along_axis(fused, order, 1) > -np.inf
        hits = np.take_along_axis(self.relevant, order, 1) & shown
        parts = {"P@1": hits[:, 0].astype(np.float64), f"P@{self.k}": hits.mean(axis=1)}
        if self.gain is not None:
            gain = np.where(shown, np.take_along_axis(self.gain, order, 1), 0.0).sum(axis=1)
            parts[f"PSP@{self.k}"] = gain * hits.shape[0] / max(self.ideal, 1e-12)
        return parts
