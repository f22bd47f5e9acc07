"""Registry of the base ranking losses, selectable by name from a config (``LossName``).

Every registered loss is a pure function ``loss(scores (B, C), targets (B, C), *, generator=None,
**hyper_parameters) -> scalar Tensor``, so a composition (``prime_loss``, ``dual_encoder_loss``) can call
any of them the same way.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from vixml.config.fields import LossName
from vixml.errors import ConfigError
from vixml.training.losses.infonce import infonce_loss
from vixml.training.losses.triplet import triplet_loss

if TYPE_CHECKING:
    import torch

__all__ = ["LossName", "LossFn", "LOSSES", "get_loss"]

"""Names accepted by :func:`get_loss` (and by the training config's loss field)."""

LossFn = Callable[..., "torch.Tensor"]
"""``(scores, targets, *, generator=None, **hyper_parameters) -> scalar Tensor``."""

LOSSES: dict[str, LossFn] = {
    "triplet": triplet_loss,
    "infonce": infonce_loss,
}


def get_loss(name: str) -> LossFn:
    """The registered loss called ``name``.

    Raises:
        ConfigError: ``name`` is not registered; the message lists the valid names.
    """
    try:
        return LOSSES[name]
    except (KeyError, TypeError):
        valid = ", ".join(sorted(LOSSES))
        raise ConfigError(f"unknown loss {name!r}; valid names: {valid}") from None
