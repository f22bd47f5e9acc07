"""AdamW with the paper's parameter groups and the warm-up/decay schedules (docs/method.md 4)."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping

import torch

__all__ = ["build_optimizer", "build_scheduler", "no_decay"]

_NO_DECAY = re.compile(r"(bias$|norm|LayerNorm|layernorm|ln_|free_vectors$)", re.IGNORECASE)


def no_decay(name: str, param: torch.nn.Parameter) -> bool:
    """Biases, normalisation weights, free vectors and other 1-D parameters get no weight decay."""
    return param.ndim < 2 or bool(_NO_DECAY.search(name))


def build_optimizer(
    model: torch.nn.Module, *, learning_rates: Mapping[str, float], weight_decay: float, eps: float
) -> torch.optim.AdamW:
    """AdamW over the trainable parameters of ``model``.

    Args:
        model: the module to train; frozen parameters (``requires_grad=False``) are left out.
        learning_rates: every trainable parameter's learning rate by name (``DualEncoder.learning_rates``).
        weight_decay: decay of matrices; biases and normalisation weights get none.
        eps: AdamW epsilon.
    """
    groups: dict[tuple[float, bool], list[torch.nn.Parameter]] = {}
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        groups.setdefault((learning_rates[name], no_decay(name, param)), []).append(param)
    param_groups = [
        {"params": params, "lr": group_lr, "weight_decay": 0.0 if nd else weight_decay}
        for (group_lr, nd), params in sorted(groups.items(), key=lambda kv: (kv[0][0], kv[0][1]))
    ]
    return torch.optim.AdamW(param_groups, eps=eps)


def build_scheduler(
    optimizer: torch.optim.Optimizer, *, schedule: str, warmup_steps: int, total_steps: int
) -> torch.optim.lr_scheduler.LambdaLR:
    """Linear warm-up over ``warmup_steps``, then ``linear`` decay to 0, ``cosine`` decay, or ``constant``."""

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        if schedule == "constant":
            return 1.0
        progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
        if schedule == "cosine":
            return 0.5 * (1.0 + math.cos(math.pi * progress))
        return max(0.0, 1.0 - progress)

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
