"""LoRA adapters through PEFT (docs/method.md 2: rsLoRA r=256 alpha=256 dropout 0 for decoders).

The paper fine-tunes decoder LLMs with low-rank adapters on the attention q, k, v, o and MLP gate, up,
down projections; the base weights stay frozen. This module knows Hugging Face modules and PEFT only:
attach adapters to a model (:func:`attach_lora`), save the adapter alone with a note of its base
(:func:`save_adapter`), attach a saved adapter again (:func:`load_adapter`), and compute the merged weights
(:func:`merged_state_dict`) for an export that serves without PEFT. ``TextBackbone`` calls these; target
modules default to the architecture's names (``ArchitectureSpec.lora_targets``, keyed by ``config.model_type``)
and to PEFT's ``all-linear`` for unknown types (:func:`lora_targets`).

QLoRA (:func:`four_bit_config`, ``TextBackbone.from_pretrained(load_in_4bit=True)``) quantises the frozen base
to NF4 with bitsandbytes: CUDA only.
"""

from __future__ import annotations

import contextlib
import json
import logging
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vixml.atomic import atomic_open
from vixml.errors import ConfigError
from vixml.optional import require

if TYPE_CHECKING:
    import os

    import torch

__all__ = [
    "ADAPTER_META",
    "attach_lora",
    "has_lora",
    "lora_targets",
    "count_parameters",
    "is_linear",
    "save_adapter",
    "load_adapter",
    "merged_state_dict",
    "four_bit_config",
]

logger = logging.getLogger(__name__)

ADAPTER_META = "vixml_adapter.json"
_ADAPTER = "default"


def has_lora(model: Any) -> bool:
    """Whether ``model`` is wrapped by PEFT (never imports peft: an unimported peft wrapped nothing)."""
    peft = sys.modules.get("peft")
    return peft is not None and isinstance(model, peft.PeftModel)


def lora_targets(
    target_modules: Sequence[str] | None, default_targets: Sequence[str] | None, model_type: str = "?"
) -> list[str] | str:
    """The module names to adapt: ``target_modules``, else the architecture's defaults, else ``"all-linear"``."""
    if target_modules:
        return list(target_modules)
    if default_targets:
        return list(default_targets)
    logger.info("no LoRA targets registered for %r: adapting every linear layer", model_type)
    return "all-linear"


def attach_lora(
    model: Any,
    *,
    targets: list[str] | str,
    r: int = 256,
    alpha: float = 256.0,
    rslora: bool = True,
    dropout: float = 0.0,
    gradient_checkpointing: bool = False,
) -> Any:
    """Wrap ``model`` with fresh LoRA adapters and freeze its base weights; returns the ``peft.PeftModel``.

    The update is ``B @ A`` scaled by ``alpha / sqrt(r)`` with rsLoRA, ``alpha / r`` without; B starts at zero,
    so the adapted model starts equal to its base. A 4-bit base (QLoRA) is first prepared by
    ``peft.prepare_model_for_kbit_training``.

    Args:
        model: a Hugging Face model without adapters.
        targets: module names to adapt, or ``"all-linear"`` (see :func:`lora_targets`).
        r: rank of the update. alpha: scaling numerator. rslora: rank-stabilised scaling.
        dropout: dropout on the adapters' input in training.
        gradient_checkpointing: whether the base recomputes activations (QLoRA's preparation keeps it).
    """
    peft = require("peft", "lora")
    if has_lora(model):
        raise ConfigError("this model already has LoRA adapters")
    if getattr(model, "is_loaded_in_4bit", False) or getattr(model, "is_loaded_in_8bit", False):
        model = peft.prepare_model_for_kbit_training(
            model,
            use_gradient_checkpointing=gradient_checkpointing,
            gradient_checkpointing_kwargs={"use_reentrant": False},
        )
    config = peft.LoraConfig(
        r=r, lora_alpha=alpha, lora_dropout=dropout, use_rslora=rslora, target_modules=targets, bias="none"
    )
    try:
        with _quiet_peft():
            wrapped = peft.get_peft_model(model, config)
    except ValueError as exc:  # PEFT's "Target modules ... not found in the base model"
        names = sorted({name.rsplit(".", 1)[-1] for name, m in model.named_modules() if is_linear(m)})
        raise ConfigError(
            f"LoRA targets {targets} do not match the {model.config.model_type!r} model ({exc}); "
            f"its linear modules are named: {', '.join(names)}"
        ) from exc
    trainable, total = count_parameters(wrapped)
    logger.info(
        "LoRA r=%d alpha=%g%s on %s: %d trainable of %d parameters (%.2f%%)",
        r,
        alpha,
        " (rsLoRA)" if rslora else "",
        targets,
        trainable,
        total,
        100.0 * trainable / max(total, 1),
    )
    return wrapped


def count_parameters(module: torch.nn.Module) -> tuple[int, int]:
    """(trainable, total) parameter counts of ``module`` (shared tensors counted once)."""
    seen: dict[int, tuple[int, bool]] = {}
    for p in module.parameters():
        seen[id(p)] = (p.numel(), p.requires_grad)
    return sum(n for n, g in seen.values() if g), sum(n for n, _ in seen.values())


def save_adapter(model: Any, directory: str | os.PathLike, *, base_model: str) -> None:
    """Write the adapter only (PEFT's ``adapter_config.json`` + ``adapter_model.safetensors``) and its base.

    ``vixml_adapter.json`` records the base model exactly as it was named (a hub name stays a hub name, so the
    loading machine resolves it through ``resolve_pretrained``) and the adapter's hyperparameters.
    """
    if not has_lora(model):
        raise ConfigError("this model has no LoRA adapters to save")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(directory))
    config = model.peft_config[_ADAPTER]
    meta = {
        "base_model": base_model,
        "model_type": model.get_base_model().config.model_type,
        "r": config.r,
        "alpha": config.lora_alpha,
        "rslora": config.use_rslora,
        "dropout": config.lora_dropout,
        "target_modules": sorted(config.target_modules)
        if not isinstance(config.target_modules, str)
        else config.target_modules,
    }
    with atomic_open(directory / ADAPTER_META) as fh:
        json.dump(meta, fh, indent=2)
        fh.write("\n")


def load_adapter(model: Any, directory: str | os.PathLike, *, trainable: bool = False) -> Any:
    """``model`` (the adapter's base, without adapters) wrapped with the adapter saved in ``directory``.

    Args:
        model: a Hugging Face model built from the adapter's base.
        directory: a folder written by :func:`save_adapter`.
        trainable: keep the adapter trainable (else it is frozen, for inference).
    """
    peft = require("peft", "lora")
    if has_lora(model):
        raise ConfigError("this model already has LoRA adapters")
    was_training = model.training
    with _quiet_peft():
        wrapped = peft.PeftModel.from_pretrained(model, str(directory), is_trainable=trainable)
    wrapped.train(was_training)
    return wrapped


def merged_state_dict(model: Any) -> dict[str, torch.Tensor]:
    """The base model's state dict with every LoRA update merged in, in the base's own key names.

    Nothing is modified: each adapted weight is ``W + delta`` computed by the layer's ``get_delta_weight``
    (its scaling included), so the model keeps training or serving with its adapters afterwards.
    """
    peft = require("peft", "lora")
    if not has_lora(model):
        raise ConfigError("the model has no LoRA adapters to merge")
    base = model.get_base_model()
    if getattr(base, "is_loaded_in_4bit", False) or getattr(base, "is_loaded_in_8bit", False):
        raise ConfigError(
            "cannot merge adapters into a quantised base: load the base in bf16 (load_in_4bit=False), "
            "attach the saved adapter with TextBackbone.load, then export"
        )
    state: dict[str, torch.Tensor] = {}
    for key, value in base.state_dict().items():
        if any(part.startswith("lora_") for part in key.split(".")):
            continue
        state[key.replace(".base_layer.", ".")] = value
    for name, module in base.named_modules():
        if isinstance(module, peft.tuners.lora.LoraLayer) and _ADAPTER in module.lora_A:
            weight = module.get_base_layer().weight
            delta = module.get_delta_weight(_ADAPTER)
            state[f"{name}.weight"] = (weight.float() + delta.float()).to(weight.dtype).detach()
    return state


def four_bit_config(compute_dtype: Any = None) -> Any:
    """``BitsAndBytesConfig`` of QLoRA's NF4 base (double quantisation, bf16 compute). CUDA only.

    Not exercised by the test suite (no GPU there).
    """
    import torch

    if not torch.cuda.is_available():
        raise ConfigError("a 4-bit (QLoRA) base needs a CUDA GPU and bitsandbytes; switch 4-bit loading off on CPU")
    require("bitsandbytes", "qlora")
    from transformers import BitsAndBytesConfig

    compute = compute_dtype if isinstance(compute_dtype, torch.dtype) else torch.bfloat16
    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_use_double_quant=True,
        bnb_4bit_compute_dtype=compute,
    )


@contextlib.contextmanager
def _quiet_peft():
    """PEFT reads transformers' deprecated ``is_gradient_checkpointing``: silence that one FutureWarning."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
        yield


def is_linear(module: Any) -> bool:
    """A linear layer as PEFT's ``all-linear`` sees one: ``nn.Linear``, its 4/8-bit forms, GPT-2's ``Conv1D``.

    The one test of it: LoRA's error message and the memory planner's count of autocast copies use it.
    """
    import torch

    return isinstance(module, torch.nn.Linear) or type(module).__name__ in ("Linear4bit", "Linear8bitLt", "Conv1D")
