"""The objective of a run: its ``loss`` and ``prototypes`` sections turned, once, into one callable.

``prototypes`` set: PRIME's four-part loss (:func:`prime_loss`); ``null``: the plain dual encoder's
(:func:`dual_encoder_loss`). ``loss.hinge_tie`` reaches every hinge of the objective: the triplet base's and
PRIME's regulariser L_r, whose hinges exist under either base (docs/method.md 8; with InfoNCE it used to be
dropped before L_r, leaving the split gradient whatever the setting said).
"""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING, Any

from vixml.training.losses.composition import dual_encoder_loss, prime_loss

if TYPE_CHECKING:
    import torch

    from vixml.config.sections import LossConfig, PrototypesConfig

__all__ = ["Objective"]


class Objective:
    """``objective(q, u, targets, v=None) -> {"loss", "L_u", ...}``: the run's loss on one batch.

    Args:
        loss: the ``loss`` section.
        prototypes: the ``prototypes`` section, or None for a plain dual encoder.
        generator: the only source of the loss's randomness (its state is checkpointed by the trainer).
    """

    def __init__(self, loss: LossConfig, prototypes: PrototypesConfig | None, *, generator: torch.Generator):
        self.prime = prototypes is not None
        base = _base_kwargs(loss)
        common: dict[str, Any] = {"weights": loss.weights, "base": loss.name, "generator": generator}
        if prototypes is None:
            self._fn = partial(dual_encoder_loss, symmetric=loss.symmetric, **common, **base)
        else:
            self._fn = partial(
                prime_loss,
                reg_margin=prototypes.reg_margin,
                reg_negatives=prototypes.reg_num_negatives,
                **common,
                **{"hinge_tie": loss.hinge_tie, **base},  # L_r's hinges, whatever the base
            )

    def __call__(
        self, q: torch.Tensor, u: torch.Tensor, targets: torch.Tensor, v: torch.Tensor | None = None
    ) -> dict[str, torch.Tensor]:
        """Queries ``q``, label-text embeddings ``u`` and (PRIME) prototypes ``v`` of one batch -> loss parts."""
        if self.prime:
            return self._fn(q, u, v, targets)
        return self._fn(q, u, targets)


def _base_kwargs(loss: LossConfig) -> dict[str, Any]:
    """The hyper-parameters of the base ranking loss ``loss.name``."""
    if loss.name != "triplet":
        return {"temperature": loss.infonce_temperature}
    return {
        "num_negatives": loss.num_negatives,
        "margin_min": loss.margin_min,
        "margin_max": loss.margin_max,
        "dynamic_margin": loss.dynamic_margin,
        "aggressive": loss.aggressive,
        "temperature": loss.temperature,
        "hinge_tie": loss.hinge_tie,
    }
