"""Backbone shapes without weights: the sizes the memory estimate needs, from a config (docs/method.md 2).

Parameters are counted exactly by building the model on the meta device from its config; the paper's hub
backbones are known offline by their published ``config.json`` values.
"""

from __future__ import annotations

import logging
import math
import re
from dataclasses import dataclass
from typing import Any

from vixml.errors import ConfigError

__all__ = ["KNOWN_MODELS", "BackboneShape", "backbone_shape"]

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


def _hf_config(name_or_path: str) -> Any:
    """The transformers config of a local folder (or packaged model), else of the known-name table."""
    from transformers import AutoConfig

    from vixml.models.hub import resolve_pretrained

    local = resolve_pretrained(name_or_path)
    if local != name_or_path or re.match(r"^[./~]", name_or_path):
        try:
            return AutoConfig.from_pretrained(local)
        except (OSError, ValueError, KeyError) as exc:
            raise ConfigError(f"cannot read the model config in {local}: {exc}") from None
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
    return AutoConfig.for_model(model_type, **spec)


def backbone_shape(
    name_or_path: str,
    *,
    lora_r: int | None = None,
    lora_targets: tuple[str, ...] | None = None,
    kind: str = "auto",
    config: Any = None,
) -> BackboneShape:
    """Build the backbone on the meta device (no memory, no download) and read what the estimate needs.

    Args:
        name_or_path: a local model folder, or a name of :data:`KNOWN_MODELS`.
        lora_r: LoRA rank; None = no adapters.
        lora_targets: module names to adapt (suffix match, as PEFT); None = the architecture's defaults
            (``ArchitectureSpec.lora_targets``), every linear layer when it has none (PEFT's ``all-linear``).
        kind: ``encoder``/``decoder``, or ``auto`` to read it from the architecture registry.
        config: its Hugging Face config when already read (``BackboneSpec.config``); None = read here.

    Raises:
        ConfigError: the name is unknown offline, or its config cannot be read or built.
    """
    import torch
    from transformers import AutoModel

    from vixml.models.architectures import architecture_spec, is_decoder_type

    cfg = config if config is not None else _hf_config(name_or_path)
    spec = architecture_spec(cfg.model_type)
    if spec.text_submodule is not None and getattr(cfg, "text_config", None) is not None:
        cfg = cfg.text_config  # multimodal checkpoint (Gemma 3): vixml uses its text model
    decoder = kind == "decoder" or (kind == "auto" and is_decoder_type(cfg.model_type, spec))
    try:
        with torch.device("meta"):
            model = AutoModel.from_config(cfg)
    except Exception as exc:  # transformers raises many types for unbuildable configs
        raise ConfigError(f"cannot build {name_or_path!r} ({cfg.model_type}) from its config: {exc}") from exc
    h, layers = int(cfg.hidden_size), int(cfg.num_hidden_layers)
    heads = int(cfg.num_attention_heads)
    head_dim = int(getattr(cfg, "head_dim", None) or h // heads)
    inter = int(getattr(cfg, "intermediate_size", None) or getattr(cfg, "hidden_dim", None) or 4 * h)
    params = {id(p): p.numel() for p in model.parameters()}
    linears = [(n, m) for n, m in model.named_modules() if _is_linear(m)]
    stack = max((m for m in model.modules() if isinstance(m, torch.nn.ModuleList)), key=len, default=None)
    layer0 = {id(m) for m in stack[0].modules()} if stack is not None and len(stack) else set()
    lora, lora_inputs = 0, []
    if lora_r is not None:
        targets = lora_targets or spec.lora_targets
        for name, module in linears:
            if targets is None or any(name == t or name.endswith("." + t) for t in targets):
                d_in, d_out = _linear_dims(module)
                lora += lora_r * (d_in + d_out)
                if id(module) in layer0:
                    lora_inputs.append(d_in)
    layer_modules = list(stack[0].named_modules()) if layer0 else []
    norms = [
        m for _, m in layer_modules if "norm" in type(m).__name__.lower() and getattr(m, "weight", None) is not None
    ]
    q_dim, kv_dim = heads * head_dim, int(getattr(cfg, "num_key_value_heads", None) or heads) * head_dim
    layer_linears = [_linear_dims(m) for _, m in layer_modules if _is_linear(m)]
    mlp_in = sum(1 for d_in, d_out in layer_linears if d_in == h and d_out in (inter, 2 * inter))
    attn_in = sum(1 for d_in, d_out in layer_linears if d_in == h and d_out in (q_dim, kv_dim))
    dropouts = [m for _, m in layer_modules if isinstance(m, torch.nn.Dropout) and m.p > 0]
    vocab = int(getattr(cfg, "vocab_size", 0) or 0)
    return BackboneShape(
        name=name_or_path,
        model_type=cfg.model_type,
        decoder=decoder,
        hidden_size=h,
        num_layers=layers,
        num_heads=heads,
        num_kv_heads=kv_dim // head_dim,
        head_dim=head_dim,
        intermediate_size=inter,
        parameters=sum(params.values()),
        lm_head_parameters=0 if (not decoder or getattr(cfg, "tie_word_embeddings", True)) else vocab * h,
        linear_parameters=sum(math.prod(m.weight.shape) for _, m in linears),
        lora_parameters=lora,
        lora_layer_inputs=tuple(lora_inputs),
        norms_per_layer=sum(1 for m in norms if tuple(m.weight.shape) == (h,)) or 2,
        rms_norm=any("rms" in type(m).__name__.lower() for m in norms),
        head_norms=any(tuple(m.weight.shape) == (head_dim,) for m in norms),
        gated_mlp=mlp_in >= 2 or any(n.endswith("gate_up_proj") for n, _ in layer_modules),
        attn_in_linears=max(1, attn_in - (q_dim == h)),  # q_dim == h: the output projection matched too
        mlp_in_linears=max(1, mlp_in),
        dropout_sites=len(dropouts) if decoder else max(0, len(dropouts) - 1),
        attention_dropout=float(getattr(cfg, "attention_probs_dropout_prob", getattr(cfg, "attention_dropout", 0.0))),
    )


def _is_linear(module: Any) -> bool:
    import torch

    return isinstance(module, torch.nn.Linear) or type(module).__name__ == "Conv1D"


def _linear_dims(module: Any) -> tuple[int, int]:
    out_f, in_f = module.weight.shape
    return (int(out_f), int(in_f)) if type(module).__name__ == "Conv1D" else (int(in_f), int(out_f))
