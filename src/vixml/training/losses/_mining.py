"""Selection helpers shared by the margin losses: positive masks, random positives, hardest negatives.

The triplet loss and the PRIME regulariser make the same three choices on a score matrix: which entries
are positives, which ONE positive a row uses, and which k non-positives score highest. Keeping those
choices here means both losses mine identically and a fix applies to both. Everything is vectorised and
free of host synchronisation (no ``.item()``), so a training step never waits on the device here.

torch is imported inside the functions so that importing the package stays cheap (see DESIGN.md).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from vixml.config.fields import HingeTie
from vixml.errors import ConfigError

if TYPE_CHECKING:
    import torch

__all__ = [
    "check_pair",
    "as_compute_dtype",
    "positive_mask",
    "sample_positive",
    "hardest_negatives",
    "mean_over_rows",
    "hinge",
    "HingeTie",
    "raise_problems",
    "int_problem",
    "positive_problem",
    "margin_problem",
]


def check_pair(scores: torch.Tensor, targets: torch.Tensor, *, where: str) -> None:
    """Raise ``ValueError`` unless ``scores`` and ``targets`` are two matching 2-D tensors.

    Args:
        scores: (B, C) similarities.
        targets: (B, C) relevance, any dtype (non-zero means positive).
        where: name of the calling loss, quoted in the message.
    """
    if scores.dim() != 2 or targets.dim() != 2 or scores.shape != targets.shape:
        raise ValueError(
            f"{where}: scores and targets must be 2-D tensors of the same shape (B, C); "
            f"got scores {tuple(scores.shape)} and targets {tuple(targets.shape)}"
        )
    if scores.device != targets.device:
        raise ValueError(f"{where}: scores on {scores.device} but targets on {targets.device}; move them together")


def as_compute_dtype(scores: torch.Tensor) -> torch.Tensor:
    """Return ``scores`` upcast to float32 when stored in a half type (fp16 / bf16), else unchanged.

    Margins of 0.1 and temperatures of 0.05 are too fine for half precision (fp16 overflows exp(s / 0.05)
    and bf16 keeps ~3 significant digits), so the loss arithmetic always runs in at least float32.
    The cast is differentiable: gradients flow back to the half tensor.
    """
    import torch

    if scores.dtype in (torch.float16, torch.bfloat16):
        return scores.float()
    return scores


def positive_mask(targets: torch.Tensor) -> torch.Tensor:
    """(B, C) bool: True where ``targets`` is non-zero (bool, 0/1 float or graded relevance alike)."""
    return targets != 0


def sample_positive(pos: torch.Tensor, generator: torch.Generator | None) -> tuple[torch.Tensor, torch.Tensor]:
    """Pick one positive column per row, uniformly among that row's positives.

    This is what PRIME / NGAME / ViXML do with ``torch.multinomial(target, 1)``; rows without a positive
    (which the reference cannot handle) get an arbitrary column here and are flagged as invalid.

    Args:
        pos: (B, C) bool positive mask.
        generator: the only source of randomness (a torch.Generator on ``pos.device``), so that a resumed
            run replays the same picks; None uses torch's global generator.

    Returns:
        (index, has_pos): index (B, 1) long column of the chosen positive; has_pos (B,) bool, False for
        rows without any positive (their index is meaningless and must be masked by the caller).
    """
    import torch

    has_pos = pos.any(dim=1)
    # Rows without a positive sample from a uniform row instead, so multinomial never sees an all-zero row.
    probs = torch.where(has_pos.unsqueeze(1), pos, torch.ones_like(pos)).float()
    index = torch.multinomial(probs, 1, replacement=False, generator=generator)
    return index, has_pos


def hardest_negatives(scores: torch.Tensor, pos: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The k highest-scoring non-positive columns of every row (online hard-negative mining).

    Positives are excluded by giving them -inf before ``topk``. When a row has fewer than k non-positives
    the surplus slots point at positives; they are returned as invalid rather than scored as negatives
    (the reference code fills positives with -50 and then gathers the real score, so it would silently
    treat a positive as a negative in that case).

    Args:
        scores: (B, C) similarities used for the ranking.
        pos: (B, C) bool positive mask.
        k: negatives wanted per row (>= 1); at most C are taken.

    Returns:
        (index, valid): index (B, k') long columns, hardest first, k' = min(k, C); valid (B, k') bool,
        False where the slot holds no real negative.
    """
    import torch

    k_eff = min(k, scores.shape[1])
    ranked = scores.detach().masked_fill(pos, float("-inf"))
    _, index = torch.topk(ranked, k=k_eff, dim=1, largest=True, sorted=True)
    valid = ~pos.gather(1, index)
    return index, valid


"""Gradient of ``max(0, x)`` at exactly ``x = 0``: ``split`` = 0.5 (``torch.max(zeros, x)`` of the reference), ``zero``
= none (``relu``)."""


def hinge(x: torch.Tensor, tie: HingeTie = "split") -> torch.Tensor:
    """``max(0, x)`` elementwise; ``tie`` picks the gradient at exactly 0 (the values are identical).

    The reference's ``torch.max(torch.zeros_like(x), x)`` gives an entry at exactly 0 half the gradient of a
    violating one. Ties are not rare: with the dynamic margin, a correctly ordered pair whose gap lies in
    [margin_min, margin_max] has ``s_n - s_p + |s_p - s_n| = 0`` exactly (IEEE subtraction is antisymmetric).
    """
    import torch

    if tie == "split":
        return torch.maximum(torch.zeros_like(x), x)
    if tie == "zero":
        return torch.relu(x)
    raise ConfigError(f"hinge_tie must be 'split' or 'zero', got {tie!r}")


def mean_over_rows(per_row: torch.Tensor, row_valid: torch.Tensor) -> torch.Tensor:
    """Mean of ``per_row`` (B,) over rows where ``row_valid`` (B,) is True; 0 (still differentiable) if none."""
    import torch

    per_row = torch.where(row_valid, per_row, torch.zeros_like(per_row))
    count = row_valid.sum().clamp(min=1).to(per_row.dtype)
    return per_row.sum() / count


def raise_problems(where: str, problems: list[str | None]) -> None:
    """Raise one ConfigError naming every hyper-parameter problem found (None entries mean "fine")."""
    found = [p for p in problems if p]
    if found:
        raise ConfigError(f"{where}: " + "; ".join(found))


def int_problem(value: object, name: str) -> str | None:
    """Why ``value`` is not an integer >= 1, or None when it is."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        return f"{name} must be an integer >= 1, got {value!r}"
    return None


def positive_problem(value: object, name: str) -> str | None:
    """Why ``value`` is not a number > 0, or None when it is."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        return f"{name} must be a number > 0, got {value!r}"
    return None


def margin_problem(value: object, name: str) -> str | None:
    """Why ``value`` is not a number >= 0, or None when it is."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
        return f"{name} must be a number >= 0, got {value!r}"
    return None
