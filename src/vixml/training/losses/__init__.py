"""Ranking losses as pure functions of (scores, targets), and the PRIME / dual-encoder compositions.

Module map (one loss per module):

- ``triplet``: triplet loss with online hard negatives and dynamic margin (the paper's base loss);
- ``infonce``: multi-positive InfoNCE (an alternative base loss);
- ``regularizer``: PRIME's L_r (prototype space must beat the raw space);
- ``composition``: ``prime_loss`` (L_u + L_uv + L_i + 0.1 L_r) and ``dual_encoder_loss`` (L_u [+ L_i]);
- ``objective``: ``Objective``, a run's loss built once from its ``loss`` and ``prototypes`` sections;
- ``registry``: ``LOSSES`` / ``get_loss`` to pick the base loss by name.

Importing this package does not import torch; each function imports it when first called.
"""

from __future__ import annotations

from vixml.training.losses.composition import dual_encoder_loss, prime_loss
from vixml.training.losses.infonce import infonce_loss
from vixml.training.losses.objective import Objective
from vixml.training.losses.registry import LOSSES, LossFn, LossName, get_loss
from vixml.training.losses.regularizer import prime_regularizer
from vixml.training.losses.triplet import triplet_loss

__all__ = [
    "LOSSES",
    "LossFn",
    "LossName",
    "get_loss",
    "triplet_loss",
    "infonce_loss",
    "prime_regularizer",
    "prime_loss",
    "dual_encoder_loss",
    "Objective",
]
