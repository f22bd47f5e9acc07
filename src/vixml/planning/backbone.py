"""Backbone shapes without weights: the sizes the memory estimate needs, from a config (docs/method.md 2).

Why here and not a formula: parameters are counted on the model the builder itself makes
(:func:`vixml.models.build.meta_backbone`: ``AutoModel.from_config``, its text model, PEFT's adapters on the
builder's targets), built on the meta device, so the estimate cannot drift from what a run trains. The
paper's hub backbones are known offline by their published ``config.json`` values (a hub name cannot be
read without the network); what stays a formula is what a meta build cannot show: the untied LM head
vixml never loads.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from vixml.errors import ConfigError

if TYPE_CHECKING:
    from vixml.config import LoraConfig
    from vixml.models.architectures import BackboneSpec

__all__ = ["KNOWN_MODELS", "BackboneShape", "backbone_shape", "offline_backbone"]

logger = logging.getLogger(__name__)

# Published config.json values of the paper's backbones (docs/method.md 2) on the Hugging Face hub, so that their
# parameters can be counted offline. Gemma 3's entry is its text tower (Gemma3TextConfig), the part vixml uses.
# AutoModel builds the base model: no LM head (the untied head of Qwen2.5-7B, 545M, is reported apart).
# Columns: model_type, hidden_size, num_hidden_layers, intermediate_size, num_attention_heads,
# num_key_value_heads, head_dim (None = hidden / heads), vocab_size, tie_word_embeddings, max_position_embeddings.
_DECODERS = {
    "Qwen/Qwen2.5-0.5B-Instruct": ("qwen2", 896, 24, 4864, 14, 2, None, 151936, True, 32768),
    "Qwen/Qwen2.5-3B-Instruct": ("qwen2", 2048, 36, 11008, 16, 2, None, 151936, True, 32768),
    "Qwen/Qwen2.5-7B-Instruct": ("qwen2", 3584, 28, 18944, 28, 4, None, 152064, False, 32768),
    "meta-llama/Llama-3.2-3B-Instruct": ("llama", 3072, 28, 8192, 24, 8, 128, 128256, True, 131072),
    "Qwen/Qwen3-4B": ("qwen3", 2560, 36, 9728, 32, 8, 128, 151936, True, 40960),
    "Qwen/Qwen3-Embedding-4B": ("qwen3", 2560, 36, 9728, 32, 8, 128, 151665, True, 40960),
    "google/gemma-3-4b-it": ("gemma3_text", 2560, 34, 10240, 8, 4, 256, 262208, True, 131072),
}
_DECODER_KEYS = (
    "model_type hidden_size num_hidden_layers intermediate_size num_attention_heads num_key_value_heads head_dim "
    "vocab_size tie_word_embeddings max_position_embeddings"
).split()
# Encoders (vocabulary 30522, 512 positions): model_type, hidden size, layers, intermediate size, heads.
_ENCODERS = {
    "sentence-transformers/msmarco-distilbert-base-v4": ("distilbert", 768, 6, 3072, 12),
    "sentence-transformers/paraphrase-MiniLM-L3-v2": ("bert", 384, 3, 1536, 12),
    "intfloat/e5-base-v2": ("bert", 768, 12, 3072, 12),
    "sentence-transformers/all-MiniLM-L6-v2": ("bert", 384, 6, 1536, 12),
}
KNOWN_MODELS: dict[str, dict[str, Any]] = {
    **{
        name: {k: v for k, v in zip(_DECODER_KEYS, row, strict=True) if v is not None}
        for name, row in _DECODERS.items()
    },
    **{
        name: {"model_type": t, "hidden_size": h, "num_hidden_layers": n, "intermediate_size": i}
        | {"num_attention_heads": a, "vocab_size": 30522, "max_position_embeddings": 512}
        for name, (t, h, n, i, a) in _ENCODERS.items()
    },
}
"""Hub name -> the transformers config keys of its published config.json (DistilBERT's are mapped on build)."""
_DISTILBERT_KEYS = {
    "hidden_size": "dim",
    "num_hidden_layers": "n_layers",
    "intermediate_size": "hidden_dim",
    "num_attention_heads": "n_heads",
}


@dataclass(frozen=True)
class BackboneShape:
    """What the estimate needs from a backbone, read from its config and counted on its meta-device model.

    Attributes:
        parameters: parameters of the AutoModel base model (shared tensors once; no LM head).
        lm_head_parameters: the untied LM head of a causal-LM checkpoint (0 when tied): not loaded by vixml.
        linear_parameters: weights of the linear layers (those autocast copies to 16 bits).
        lora_parameters: trainable LoRA parameters, r * (in + out) per adapted linear (0 without LoRA).
        lora_layer_inputs: in_features of the adapted linears of one layer.
        norms_per_layer / head_norms: norms over h in one layer; q/k norms over head_dim (Qwen3, Gemma 3).
        attn_in_linears / mlp_in_linears: linears reading the attention / MLP input (3 and 2 for Llama-style).
        dropout_sites: hidden-state dropouts with p > 0 in one layer (BERT 2, DistilBERT 1, decoders 0).
    """

    name: str
    model_type: str
    decoder: bool
    hidden_size: int
    num_layers: int
    num_heads: int
    num_kv_heads: int
    head_dim: int
    intermediate_size: int
    parameters: int
    lm_head_parameters: int
    linear_parameters: int
    lora_parameters: int = 0
    lora_layer_inputs: tuple[int, ...] = ()
    norms_per_layer: int = 2
    rms_norm: bool = True
    head_norms: bool = False
    gated_mlp: bool = True
    attn_in_linears: int = 3
    mlp_in_linears: int = 2
    dropout_sites: int = 0
    attention_dropout: float = 0.0


def offline_backbone(name_or_path: str, kind: str = "auto") -> BackboneSpec:
    """The :class:`~vixml.models.BackboneSpec` of a local folder (or packaged model), else of the known-name table.

    Never asks the hub: a hub name is read from :data:`KNOWN_MODELS` (``vixml memory`` works offline).
    """
    from transformers import AutoConfig

    from vixml.models.architectures import backbone_spec
    from vixml.models.hub import resolve_pretrained

    local = resolve_pretrained(name_or_path)
    if local != name_or_path or re.match(r"^[./~]", name_or_path):
        try:
            config = AutoConfig.from_pretrained(local)
        except (OSError, ValueError, KeyError) as exc:
            raise ConfigError(f"cannot read the model config in {local}: {exc}") from None
        return backbone_spec(config, name_or_path, local, kind)
    if name_or_path not in KNOWN_MODELS:
        known = "\n".join(f"  - {k}" for k in KNOWN_MODELS)
        raise ConfigError(
            f"model {name_or_path!r} is neither a local folder nor a model whose architecture vixml knows offline; "
            f"set model.name_or_path to a local folder holding its config.json, or use one of:\n{known}"
        )
    spec = dict(KNOWN_MODELS[name_or_path])
    model_type = spec.pop("model_type")
    if model_type == "distilbert":  # DistilBertConfig's own argument names
        spec = {_DISTILBERT_KEYS.get(k, k): v for k, v in spec.items()}
    return backbone_spec(AutoConfig.for_model(model_type, **spec), name_or_path, name_or_path, kind)


def backbone_shape(
    name_or_path: str,
    *,
    lora_r: int | None = None,
    lora_targets: tuple[str, ...] | None = None,
    kind: str = "auto",
    config: Any = None,
    lora: LoraConfig | None = None,
) -> BackboneShape:
    """Build the backbone as a run would, on the meta device (no memory, no download), and read what the
    estimate needs from it.

    Args:
        name_or_path: a local model folder, or a name of :data:`KNOWN_MODELS`.
        lora_r: LoRA rank; None = no adapters (unless ``lora`` is given).
        lora_targets: module names to adapt; None = the builder's default (the architecture's targets, else
            every linear layer).
        kind: ``encoder``/``decoder``, or ``auto`` (the architecture registry's word).
        config: its Hugging Face config when already read (``BackboneSpec.config``); None = read here.
        lora: the run's LoRA section (its rank and targets), instead of ``lora_r``/``lora_targets``.

    Raises:
        ConfigError: the name is unknown offline, or its config cannot be read or built.
    """
    from vixml.config import LoraConfig
    from vixml.models.architectures import backbone_spec
    from vixml.models.build import meta_backbone

    if config is not None:
        resolved = backbone_spec(config, name_or_path, name_or_path, kind)
    else:
        resolved = offline_backbone(name_or_path, kind)
    if lora is None and lora_r is not None:
        lora = LoraConfig(r=lora_r, target_modules=tuple(lora_targets) if lora_targets else None)
    model = meta_backbone(resolved)
    found = _structure(model, resolved)
    if lora is None:
        return found
    from vixml.models.build import attach_backbone_lora
    from vixml.models.lora import count_parameters

    layer0 = _layers(model)[:1]
    lora_log = logging.getLogger("vixml.models.lora")
    level = lora_log.level
    lora_log.setLevel(logging.WARNING)  # its "trainable of" line is the real build's to say, not the estimate's
    try:
        wrapped = attach_backbone_lora(model, resolved, lora)
    finally:
        lora_log.setLevel(level)
    inputs = tuple(int(m.in_features) for layer in layer0 for m in layer.modules() if _is_lora_layer(m))
    return dataclasses.replace(found, lora_parameters=count_parameters(wrapped)[0], lora_layer_inputs=inputs)


def _structure(model: Any, resolved: BackboneSpec) -> BackboneShape:
    """What the activation formula needs, read from the built (meta) model and its config."""
    import torch

    from vixml.models.lora import is_linear

    cfg = model.config
    decoder = resolved.kind == "decoder"
    h, layers = int(cfg.hidden_size), int(cfg.num_hidden_layers)
    heads = int(cfg.num_attention_heads)
    head_dim = int(getattr(cfg, "head_dim", None) or h // heads)
    inter = int(getattr(cfg, "intermediate_size", None) or getattr(cfg, "hidden_dim", None) or 4 * h)
    params = {id(p): p.numel() for p in model.parameters()}
    linears = [m for m in model.modules() if is_linear(m)]
    stack = _layers(model)
    layer_modules = list(stack[0].named_modules()) if stack else []
    norms = [
        m for _, m in layer_modules if "norm" in type(m).__name__.lower() and getattr(m, "weight", None) is not None
    ]
    q_dim, kv_dim = heads * head_dim, int(getattr(cfg, "num_key_value_heads", None) or heads) * head_dim
    layer_linears = [_linear_dims(m) for _, m in layer_modules if is_linear(m)]
    mlp_in = sum(1 for d_in, d_out in layer_linears if d_in == h and d_out in (inter, 2 * inter))
    attn_in = sum(1 for d_in, d_out in layer_linears if d_in == h and d_out in (q_dim, kv_dim))
    dropouts = [m for _, m in layer_modules if isinstance(m, torch.nn.Dropout) and m.p > 0]
    vocab = int(getattr(cfg, "vocab_size", 0) or 0)
    return BackboneShape(
        name=resolved.name_or_path,
        model_type=cfg.model_type,
        decoder=decoder,
        hidden_size=h,
        num_layers=layers,
        num_heads=heads,
        num_kv_heads=kv_dim // head_dim,
        head_dim=head_dim,
        intermediate_size=inter,
        parameters=sum(params.values()),
        # a formula: AutoModel (what vixml loads) has no LM head to count; an untied one is vocab x hidden
        lm_head_parameters=0 if (not decoder or getattr(cfg, "tie_word_embeddings", True)) else vocab * h,
        linear_parameters=sum(math.prod(m.weight.shape) for m in linears),
        norms_per_layer=sum(1 for m in norms if tuple(m.weight.shape) == (h,)) or 2,
        rms_norm=any("rms" in type(m).__name__.lower() for m in norms),
        head_norms=any(tuple(m.weight.shape) == (head_dim,) for m in norms),
        gated_mlp=mlp_in >= 2 or any(n.endswith("gate_up_proj") for n, _ in layer_modules),
        attn_in_linears=max(1, attn_in - (q_dim == h)),  # q_dim == h: the output projection matched too
        mlp_in_linears=max(1, mlp_in),
        dropout_sites=len(dropouts) if decoder else max(0, len(dropouts) - 1),
        attention_dropout=float(getattr(cfg, "attention_probs_dropout_prob", getattr(cfg, "attention_dropout", 0.0))),
    )


def _layers(model: Any) -> Any:
    """The stack of transformer layers: the model's longest ``ModuleList`` (empty list when none)."""
    import torch

    lists = [m for m in model.modules() if isinstance(m, torch.nn.ModuleList)]
    return max(lists, key=len) if lists else []


def _is_lora_layer(module: Any) -> bool:
    import sys

    peft = sys.modules.get("peft")
    return peft is not None and isinstance(module, peft.tuners.lora.LoraLayer)


def _linear_dims(module: Any) -> tuple[int, int]:
    out_f, in_f = module.weight.shape
    return (int(out_f), int(in_f)) if type(module).__name__ == "Conv1D" else (int(in_f), int(out_f))
