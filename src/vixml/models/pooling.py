"""Pooling: token states (B, T, H) and their mask (B, T) -> one vector per sequence (B, H).

The paper pools encoders and decoders alike by the mean over the attention mask, image tokens included
(docs/method.md 2-3); last-token pooling is the decoder alternative it reports as slightly worse, and CLS pooling
is what some encoders were trained with. Every mode reads the positions from the mask, never from the
tokenizer's padding side, so the same code serves right-padded encoders and left-padded decoders.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, get_args

from vixml.config.fields import PoolingMode
from vixml.errors import ConfigError

if TYPE_CHECKING:
    import torch

__all__ = ["PoolingMode", "POOLING_MODES", "check_pooling_mode", "pool"]

"""``mean``: average of the unmasked states; ``cls``: the first unmasked state; ``last``: the last unmasked one."""

POOLING_MODES: tuple[str, ...] = get_args(PoolingMode)


def check_pooling_mode(mode: str) -> PoolingMode:
    """Return ``mode`` if it is a valid :data:`PoolingMode`, else raise a ConfigError that lists the valid ones."""
    if mode not in POOLING_MODES:
        raise ConfigError(f"unknown pooling mode {mode!r}; valid modes: {', '.join(POOLING_MODES)}")
    return mode  # type: ignore[return-value]


def pool(hidden: torch.Tensor, mask: torch.Tensor, mode: PoolingMode) -> torch.Tensor:
    """Pool token states into one vector per sequence.

    Args:
        hidden: (B, T, H) token states, any float dtype.
        mask: (B, T) attention mask, 1 (or True) for real tokens and 0 for padding, on either side.
        mode: ``mean`` sums in float32 (bf16/fp16 sums of hundreds of tokens lose digits) and divides by the
            number of real tokens; ``cls`` takes the first real position (position 0 under right padding);
            ``last`` takes the last real position, found from the mask so that right and left padding agree.

    Returns:
        (B, H) pooled states in ``hidden``'s dtype. A row whose mask is all zero pools to zeros under
        ``mean`` and to position 0 under ``cls``/``last``; callers never pass such rows on purpose.
    """
    import torch

    check_pooling_mode(mode)
    if hidden.dim() != 3 or mask.shape != hidden.shape[:2]:
        raise ConfigError(
            f"pool expects hidden (B, T, H) and mask (B, T); got {tuple(hidden.shape)}, {tuple(mask.shape)}"
        )
    if mode == "mean":
        weights = mask.to(torch.float32).unsqueeze(-1)  # (B, T, 1)
        total = (hidden.to(torch.float32) * weights).sum(dim=1)  # (B, H)
        count = weights.sum(dim=1).clamp(min=1.0)  # (B, 1)
        return (total / count).to(hidden.dtype)
    positions = torch.arange(mask.shape[1], device=mask.device)  # (T,)
    real = mask.bool()
    if mode == "last":
        index = torch.where(real, positions, -1).amax(dim=1).clamp(min=0)  # (B,)
    else:  # cls: first real position
        index = torch.where(real, positions, mask.shape[1]).amin(dim=1) % mask.shape[1]  # (B,)
    rows = torch.arange(hidden.shape[0], device=hidden.device)
    return hidden[rows, index.to(hidden.device)]
