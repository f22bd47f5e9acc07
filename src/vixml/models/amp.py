"""Mixed precision by name: one place that maps ``auto`` / ``fp32`` / ``bf16`` / ``fp16`` to autocast settings.

The names and the ``auto`` rule live in :mod:`vixml.devices`; callers resolve ``auto`` once with
:func:`vixml.devices.resolve_precision` (and log its reason). These helpers also take ``auto`` and resolve
it on the spot, the same way, so that a config saved with ``auto`` works wherever it is read.
"""

from __future__ import annotations

import contextlib

import torch

from vixml.devices import Precision, ResolvedPrecision, resolve_device, resolve_precision, torch_dtype

__all__ = ["Precision", "ResolvedPrecision", "autocast", "needs_grad_scaler", "resolve_device"]


def autocast(precision: Precision, device: torch.device | str) -> contextlib.AbstractContextManager:
    """Autocast context for ``precision`` on ``device`` (a no-op context for fp32).

    bf16 autocast pays on CPUs with AVX512_BF16/AMX (about 1.85x for a MiniLM step on such a CPU) and
    costs 8-9x where bf16 is emulated: ``auto`` picks fp32 there.
    """
    device = torch.device(device)
    if precision == "auto":
        precision = resolve_precision(precision, device)[0]
    if precision == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=torch_dtype(precision))


def needs_grad_scaler(precision: Precision, device: torch.device | str | None = None) -> bool:
    """fp16 gradients underflow without loss scaling; bf16 and fp32 do not need it.

    ``auto`` is resolved on ``device`` (None: the ``auto`` device, CUDA when available).
    """
    if precision == "auto":
        precision = resolve_precision(precision, resolve_device(device) if device is None else device)[0]
    return precision == "fp16"
