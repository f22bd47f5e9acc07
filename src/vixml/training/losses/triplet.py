"""Triplet loss with online hard negatives and a dynamic margin (PRIME / NGAME / ViXML, docs/method.md section 4).

Reference followed: ``ATripletMarginLossOHNMDM`` in the ViXML code (``DiegoOrtego/vixml``, loss.py) with
the options of its published run scripts (``--reduction custom --num-negatives 10 --margin_min 0.1
--margin_max 0.3 --agressive-loss``), itself NGAME's ``TripletMarginLossOHNM``. Differences, all on
inputs the reference cannot handle: rows without a positive are skipped instead of crashing
``torch.multinomial``; when a row has fewer than k non-positives only the real ones are used (the
reference would score positives as negatives); randomness comes from an explicit generator.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from vixml.training.losses._mining import (
    HingeTie,
    as_compute_dtype,
    check_pair,
    hardest_negatives,
    hinge,
    int_problem,
    margin_problem,
    mean_over_rows,
    positive_mask,
    positive_problem,
    raise_problems,
    sample_positive,
)

if TYPE_CHECKING:
    import torch

__all__ = ["triplet_loss"]


def triplet_loss(
    scores: torch.Tensor,
    targets: torch.Tensor,
    *,
    num_negatives: int = 10,
    margin_min: float = 0.1,
    margin_max: float = 0.3,
    dynamic_margin: bool = True,
    aggressive: bool = False,
    temperature: float = 0.1,
    hinge_tie: HingeTie = "split",
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Triplet margin loss of each row's random positive against its k hardest in-batch negatives.

    Per row i with at least one positive:

    1. ``s_p``: the score of ONE positive drawn uniformly among the row's positives (a fresh draw per
       call; this spreads the gradient over all of a query's labels across steps).
    2. ``s_n``: the ``num_negatives`` highest scores among the row's non-positives (online hard-negative
       mining; the ranking itself carries no gradient). Fewer are used when fewer exist.
    3. margin ``m = clamp(|s_p - s_n|, margin_min, margin_max)`` computed on detached scores (dynamic), or
       ``m = margin_max`` when ``dynamic_margin`` is False (the reference's fixed ``margin``). With the
       dynamic margin a correctly ordered pair costs nothing once it is ``margin_min`` apart, while a
       wrongly ordered pair is pushed by up to ``margin_max``.
    4. per-negative loss ``l_n = max(0, s_n - s_p + m)``; at exactly 0 (a correctly ordered pair whose gap
       lies in [margin_min, margin_max]: the dynamic margin makes it a tie by construction) the gradient is
       split (0.5, as ``torch.max`` in the reference) or zero (``relu``), per ``hinge_tie``.
    5. ``aggressive``: ``l_n *= softmax(s_n / temperature)`` taken over the violating negatives only
       (``l_n > 0``), which focuses the row on its worst violators. As in the reference the weights are
       not detached, so gradient also flows through them.
    6. row loss = sum over its negatives; result = mean over rows that have a positive (rows without a
       positive are excluded from the mean; if no row has one the result is a differentiable 0).

    Args:
        scores: (B, C) similarities, typically inner products of L2-normalised embeddings (so in [-1, 1],
            the scale the margins assume). Half-precision input is computed in float32.
        targets: (B, C) relevance; any non-zero entry (True, 1.0, a graded value) is a positive.
        num_negatives: k, hardest negatives per row (paper: 10).
        margin_min: lower clamp of the dynamic margin (paper: 0.1).
        margin_max: upper clamp of the dynamic margin, and the fixed margin when ``dynamic_margin`` is
            False (paper: 0.3).
        dynamic_margin: use the clamped per-pair margin (True) or the fixed ``margin_max``.
        aggressive: weight each row's violating negatives by a softmax of their scores.
        temperature: softmax temperature of the aggressive weighting (paper: 0.1).
        hinge_tie: gradient of the hinge at exactly 0: ``"split"`` (reference) or ``"zero"``.
        generator: the only source of randomness (positive picks); pass a seeded ``torch.Generator`` on
            ``scores.device`` for reproducible, resumable training. None uses torch's global RNG.

    Returns:
        A scalar tensor (float32, or float64 for float64 scores), differentiable w.r.t. ``scores``.

    Raises:
        ValueError: shapes or devices of ``scores`` and ``targets`` differ, or they are not 2-D.
        ConfigError: an out-of-range hyper-parameter.
    """
    import torch

    check_pair(scores, targets, where="triplet_loss")
    _check_hyper(num_negatives, margin_min, margin_max, temperature)
    raise_problems("triplet_loss", [_tie_problem(hinge_tie)])

    s = as_compute_dtype(scores)
    pos = positive_mask(targets)
    pos_index, has_pos = sample_positive(pos, generator)
    s_p = s.gather(1, pos_index)  # (B, 1)
    neg_index, neg_valid = hardest_negatives(s, pos, num_negatives)
    s_n = s.gather(1, neg_index)  # (B, k')

    if dynamic_margin:
        margin = torch.clamp((s_p - s_n).abs().detach(), min=margin_min, max=margin_max)
    else:
        margin = margin_max
    loss = hinge(s_n - s_p + margin, hinge_tie)
    loss = torch.where(neg_valid, loss, torch.zeros_like(loss))  # (B, k')

    if aggressive:
        violating = loss > 0
        logits = (s_n / temperature).masked_fill(~violating, torch.finfo(s_n.dtype).min)
        loss = loss * torch.softmax(logits, dim=1)

    return mean_over_rows(loss.sum(dim=1), has_pos)


def _tie_problem(tie: object) -> str | None:
    """Why ``tie`` is not a valid ``hinge_tie``, or None."""
    return None if tie in ("split", "zero") else f"hinge_tie must be 'split' or 'zero', got {tie!r}"


def _check_hyper(num_negatives: int, margin_min: float, margin_max: float, temperature: float) -> None:
    """Raise ConfigError listing every out-of-range hyper-parameter of :func:`triplet_loss`."""
    problems = [
        int_problem(num_negatives, "num_negatives"),
        positive_problem(temperature, "temperature"),
        margin_problem(margin_min, "margin_min"),
        margin_problem(margin_max, "margin_max"),
    ]
    if not any(problems[2:]) and margin_min > margin_max:
        problems.append(f"margin_min ({margin_min}) must not exceed margin_max ({margin_max})")
    raise_problems("triplet_loss", problems)
