"""PRIME's regulariser L_r: the prototype space must rank better than the raw label-text space.

Reference followed: ``RegLoss`` in the ViXML code (``DiegoOrtego/vixml``, loss.py), identical to PRIME /
NGAME's ``RegLoss``, called as ``RegLoss(k=num_negatives)(sim_i, sim_f, Y)`` with ``sim_i`` the raw
scores (query x label-text embedding) and ``sim_f`` the prototype scores (docs/method.md section 4).
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
    positive_mask,
    raise_problems,
    sample_positive,
)

if TYPE_CHECKING:
    import torch

__all__ = ["prime_regularizer"]


def prime_regularizer(
    raw_scores: torch.Tensor,
    proto_scores: torch.Tensor,
    targets: torch.Tensor,
    *,
    margin: float = 0.1,
    num_negatives: int = 10,
    hinge_tie: HingeTie = "split",
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Push a positive higher, and hard negatives lower, in prototype space than in raw space.

    Per row i with at least one positive (rows without one are skipped):

    - positive part: one positive p drawn uniformly among the row's positives (an independent draw from
      the triplet losses', as in the reference), ``l_p = max(0, raw_ip - proto_ip + margin)``;
    - negative part: the ``num_negatives`` non-positives with the highest PROTOTYPE scores (those the
      prototypes currently confuse), ``l_n = max(0, proto_in - raw_in + margin)``; fewer if fewer exist.

    Each part is averaged over its violating entries only (``sum / count(l > 0)``, 0 when nothing
    violates: satisfied pairs do not dilute the signal; a part without any violation is a constant 0, as in
    the reference, so its ties send no gradient), and ``L_r = (part_p + part_n) / 2``. Both score
    matrices receive gradient (nothing is detached, as in the reference).

    Args:
        raw_scores: (B, C) query x label-text-embedding scores (``sim_i`` in the reference).
        proto_scores: (B, C) query x prototype scores (``sim_f``).
        targets: (B, C) relevance; any non-zero entry is a positive.
        margin: required advantage of the prototype space (paper: 0.1).
        num_negatives: k hardest negatives per row (paper: 10).
        hinge_tie: gradient of the hinges at exactly 0 (see ``triplet_loss``).
        generator: source of the positive picks (see ``triplet_loss``).

    Returns:
        A scalar tensor, differentiable w.r.t. both score matrices.

    Raises:
        ValueError: the three matrices do not share one 2-D shape / device.
        ConfigError: ``margin`` < 0 or ``num_negatives`` < 1.
    """
    import torch

    check_pair(raw_scores, targets, where="prime_regularizer")
    check_pair(proto_scores, targets, where="prime_regularizer")
    raise_problems(
        "prime_regularizer", [margin_problem(margin, "margin"), int_problem(num_negatives, "num_negatives")]
    )

    raw = as_compute_dtype(raw_scores)
    proto = as_compute_dtype(proto_scores)
    pos = positive_mask(targets)

    pos_index, has_pos = sample_positive(pos, generator)
    loss_p = hinge(raw.gather(1, pos_index) - proto.gather(1, pos_index) + margin, hinge_tie).squeeze(1)  # (B,)
    loss_p = torch.where(has_pos, loss_p, torch.zeros_like(loss_p))

    neg_index, neg_valid = hardest_negatives(proto, pos, num_negatives)
    loss_n = hinge(proto.gather(1, neg_index) - raw.gather(1, neg_index) + margin, hinge_tie)  # (B, k')
    loss_n = torch.where(neg_valid & has_pos.unsqueeze(1), loss_n, torch.zeros_like(loss_n))

    return (_mean_of_violations(loss_p) + _mean_of_violations(loss_n)) / 2


def _mean_of_violations(loss: torch.Tensor) -> torch.Tensor:
    """Sum of ``loss`` divided by its number of positive entries; a constant 0 (no gradient) when there are none."""
    import torch

    count = (loss > 0).sum()
    total = loss.sum()
    return torch.where(count > 0, total / count.clamp(min=1).to(loss.dtype), total.detach() * 0)
