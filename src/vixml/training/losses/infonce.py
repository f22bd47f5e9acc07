"""Multi-positive InfoNCE: a softmax contrastive alternative to the triplet loss.

Not part of the paper's recipe (docs/method.md section 4 trains with the triplet loss); offered because it is
the usual baseline for dual encoders and has no margin to tune. In-batch XMC rows often hold several
positives, so the plain cross-entropy (one target per row) is generalised in the way that does not make
positives compete with each other: each positive is contrasted against the row's non-positives only.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from vixml.training.losses._mining import (
    as_compute_dtype,
    check_pair,
    mean_over_rows,
    positive_mask,
    positive_problem,
    raise_problems,
)

if TYPE_CHECKING:
    import torch

__all__ = ["infonce_loss"]


def infonce_loss(
    scores: torch.Tensor,
    targets: torch.Tensor,
    *,
    temperature: float = 0.05,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Mean over rows of the mean over the row's positives of -log softmax, other positives masked out.

    With ``z = scores / temperature``, for row i and positive j, ``N_i`` the row's non-positives::

        l_ij = -log( exp(z_ij) / (exp(z_ij) + sum_{n in N_i} exp(z_in)) )
             = softplus( logsumexp_{n in N_i} z_in - z_ij )

    The row loss averages ``l_ij`` over the row's positives (so a row with many labels weighs as much as
    a row with one); the result averages over rows with at least one positive (others are excluded; with
    none at all the result is a differentiable 0). A row without negatives costs 0. With exactly one
    positive per row this is ``cross_entropy(z, positive_index)``.

    Args:
        scores: (B, C) similarities, typically inner products of L2-normalised embeddings. Half-precision
            input is computed in float32 (exp(s / 0.05) overflows fp16).
        targets: (B, C) relevance; any non-zero entry is a positive.
        temperature: softmax temperature (> 0).
        generator: unused (the loss is deterministic); accepted so that every registered loss shares one
            call signature (see ``vixml.training.losses.registry``).

    Returns:
        A scalar tensor, differentiable w.r.t. ``scores``.

    Raises:
        ValueError: shapes or devices of ``scores`` and ``targets`` differ, or they are not 2-D.
        ConfigError: ``temperature`` is not > 0.
    """
    import torch
    import torch.nn.functional as F

    del generator
    check_pair(scores, targets, where="infonce_loss")
    raise_problems("infonce_loss", [positive_problem(temperature, "temperature")])

    z = as_compute_dtype(scores) / temperature
    pos = positive_mask(targets)
    # finfo.min rather than -inf: a row without negatives then yields softplus(-huge) = 0 with a zero
    # gradient, where -inf would give NaN gradients through logsumexp.
    neg_lse = z.masked_fill(pos, torch.finfo(z.dtype).min).logsumexp(dim=1, keepdim=True)  # (B, 1)
    per_pair = F.softplus(neg_lse - z)  # (B, C), meaningful at positives only
    per_pair = torch.where(pos, per_pair, torch.zeros_like(per_pair))
    n_pos = pos.sum(dim=1)
    per_row = per_pair.sum(dim=1) / n_pos.clamp(min=1).to(per_pair.dtype)
    return mean_over_rows(per_row, n_pos > 0)
