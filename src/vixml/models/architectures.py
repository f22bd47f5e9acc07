"""What each architecture needs beyond the generic path, keyed by ``config.model_type`` (PEFT style).

The backbone never tests a model's name: whether a model is a decoder, how it pads, which token ends a
prompt, which modules LoRA adapts and which Liger kernels patch it are read from the
:class:`ArchitectureSpec` registered for its ``config.model_type``. An unknown type runs on generic
defaults (decoder-ness read from transformers' own model registries, right padding, LoRA on every linear
layer), and a warning says which were used.

Padding side of the registered decoders: all pad on the RIGHT. The sequence assembler compacts every row
(real tokens first, then masked slots) and decoders get position ids counted over the mask, so the side
changes no embedding; right padding keeps the last real token at ``length - 1`` and never gives a causal
query row nothing to attend to. Gemma's tokenizer pads left by default but must pad right (docs/method.md 2);
Llama has no pad token and pads with EOS. Left padding stays available by registering a spec.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Literal

from vixml.errors import ConfigError
from vixml.optional import require

__all__ = [
    "ArchitectureSpec",
    "register_architecture",
    "architecture_spec",
    "registered_architectures",
    "is_decoder_type",
    "BackboneSpec",
    "resolve_backbone",
    "backbone_spec",
    "LLAMA_STYLE_LORA_TARGETS",
    "prepare_tokenizer",
    "leading_bos_id",
    "text_model",
    "apply_liger",
]

logger = logging.getLogger(__name__)

LLAMA_STYLE_LORA_TARGETS: tuple[str, ...] = (
    "q_proj",
    "k_proj",
    "v_proj",
    "o_proj",
    "gate_proj",
    "up_proj",
    "down_proj",
)
"""Attention q, k, v, o and MLP gate, up, down projections: the paper's LoRA targets (docs/method.md 2)."""


@dataclass(frozen=True)
class ArchitectureSpec:
    """What one ``config.model_type`` needs beyond the generic path. The defaults ARE the generic path.

    Attributes:
        decoder: causal decoder (gets the prompt, causal attention kept) or encoder; None = read from
            transformers' registries (a type with a causal-LM head and no masked-LM head is a decoder).
        padding_side: force the tokenizer, and the assembled sequences, to pad on this side; None keeps the
            tokenizer's own side and assembles right-padded sequences.
        pad_token_fallback: name of the tokenizer's special token to pad with when it has no pad token
            (Llama: ``"eos_token"``); None means such a tokenizer is an error.
        positions_from_mask: give the model position ids counted over the attention mask (0 at the first
            real token). Masked slots then never shift the real tokens' positions (left padding, masked image
            slots kept in place). Only for types whose position ids are known to start at 0; a wrong offset
            would silently hurt an unknown model.
        compact: move masked slots (missing images, text padding) behind (or, with left padding, before) the
            real tokens, so that every row is one contiguous run of real tokens. Decoders need it (causal
            attention, last-token pooling); encoders whose positions come from the mask may keep masked
            slots in place, which costs no gather.
        eos_token: the token that ``{eos}`` stands for (Qwen: ``<|endoftext|>``, whatever its chat
            tokenizer's EOS is); None = the tokenizer's EOS token.
        lora_targets: module names LoRA adapts by default; None = every linear layer (PEFT's ``all-linear``).
        text_submodule: attribute of the loaded model holding the text model, for multimodal checkpoints
            whose text part is the backbone (Gemma 3: ``language_model``); None = the model itself.
        liger: suffix of the Liger-Kernel patch function (``apply_liger_kernel_to_<liger>``); None = none.
    """

    decoder: bool | None = None
    padding_side: Literal["left", "right"] | None = None
    pad_token_fallback: str | None = "eos_token"
    positions_from_mask: bool = False
    compact: bool = True
    eos_token: str | None = None
    lora_targets: tuple[str, ...] | None = None
    text_submodule: str | None = None
    liger: str | None = None


def _decoder_spec(liger: str | None, **overrides) -> ArchitectureSpec:
    settings = {
        "decoder": True,
        "padding_side": "right",
        "pad_token_fallback": "eos_token",
        "positions_from_mask": True,
        "compact": True,
        "lora_targets": LLAMA_STYLE_LORA_TARGETS,
        "liger": liger,
    }
    settings.update(overrides)
    return ArchitectureSpec(**settings)


_ENCODER_IN_PLACE = ArchitectureSpec(
    decoder=False, padding_side="right", pad_token_fallback=None, positions_from_mask=True, compact=False
)

_ARCHITECTURES: dict[str, ArchitectureSpec] = {
    "bert": _ENCODER_IN_PLACE,
    "distilbert": _ENCODER_IN_PLACE,
    "qwen2": _decoder_spec("qwen2", eos_token="<|endoftext|>"),
    "qwen3": _decoder_spec("qwen3", eos_token="<|endoftext|>"),
    "llama": _decoder_spec("llama"),
    "mistral": _decoder_spec("mistral"),
    "gemma3_text": _decoder_spec("gemma3_text"),
    "gemma3": _decoder_spec("gemma3_text", text_submodule="language_model"),
    "phi3": _decoder_spec("phi3", lora_targets=("qkv_proj", "o_proj", "gate_up_proj", "down_proj")),
}


_WARNED: set[str] = set()


def register_architecture(model_type: str, spec: ArchitectureSpec) -> None:
    """Register (or replace) the behaviour of a ``config.model_type``."""
    _ARCHITECTURES[model_type] = spec


def registered_architectures() -> tuple[str, ...]:
    """The model types with a registered spec, sorted."""
    return tuple(sorted(_ARCHITECTURES))


def architecture_spec(model_type: str) -> ArchitectureSpec:
    """The registered behaviour of ``model_type``, or the generic defaults for an unknown type (warned once)."""
    spec = _ARCHITECTURES.get(model_type)
    if spec is None:
        if model_type in _WARNED:
            return ArchitectureSpec()
        _WARNED.add(model_type)
        logger.warning(
            "model_type %r has no registered architecture spec (known: %s); using generic defaults %s",
            model_type,
            ", ".join(registered_architectures()),
            ArchitectureSpec(),
        )
        return ArchitectureSpec()
    return spec


def is_decoder_type(model_type: str, spec: ArchitectureSpec | None = None) -> bool:
    """Whether ``model_type`` is a causal decoder: the spec's word, else transformers' model registries.

    A type that has a causal-LM head class and no masked-LM head class is a decoder (GPT-2, OPT, Falcon...);
    BERT-like types have both and are encoders.
    """
    spec = spec if spec is not None else architecture_spec(model_type)
    if spec.decoder is not None:
        return spec.decoder
    from transformers.models.auto import modeling_auto

    causal = model_type in modeling_auto.MODEL_FOR_CAUSAL_LM_MAPPING_NAMES
    masked = model_type in modeling_auto.MODEL_FOR_MASKED_LM_MAPPING_NAMES
    decoder = causal and not masked
    logger.info(
        "model_type %r read as %s from transformers' registries", model_type, "decoder" if decoder else "encoder"
    )
    return decoder


@dataclass(frozen=True)
class BackboneSpec:
    """A configured backbone resolved once from its Hugging Face config (no weights loaded): what every
    consumer of a run asks (the kind, the sizes, the LoRA targets) without reading the config again.

    Attributes:
        name_or_path: as configured (``model.name_or_path``); recorded in saved models.
        path: where it loads from (a local folder, a packaged model, or the hub name).
        config: the transformers config as read (a multimodal checkpoint's whole config).
        model_type: ``config.model_type``, the key of :attr:`architecture`.
        architecture: the registered :class:`ArchitectureSpec`.
        kind: ``encoder`` or ``decoder`` (``model.kind``, or for ``auto`` the architecture's word).
        hidden_size / num_layers / vocab_size: of the text model (a multimodal checkpoint's text config).
        max_positions: ``max_position_embeddings`` of the config, None when it has none.
    """

    name_or_path: str
    path: str
    config: Any
    model_type: str
    architecture: ArchitectureSpec
    kind: Literal["encoder", "decoder"]
    hidden_size: int
    num_layers: int
    vocab_size: int
    max_positions: int | None

    @property
    def lora_targets(self) -> tuple[str, ...] | None:
        """The modules LoRA adapts when ``model.lora.target_modules`` is null (None = every linear layer)."""
        return self.architecture.lora_targets


def resolve_backbone(name_or_path: str, kind: Literal["auto", "encoder", "decoder"] = "auto") -> BackboneSpec:
    """Read the Hugging Face config of ``name_or_path`` once and resolve what the backbone is.

    Raises:
        ConfigError: the model cannot be found (a clear message at once, without the hub client's retries)
            or its config cannot be read; an unknown ``kind``.
    """
    from transformers import AutoConfig

    from vixml.models.hub import require_pretrained

    path = require_pretrained(str(name_or_path))
    try:
        config = AutoConfig.from_pretrained(path)
    except (OSError, ValueError) as exc:
        raise ConfigError(
            f"model.name_or_path={name_or_path!r} is neither a local model folder nor an installed packaged model, "
            f"and the hub cannot provide it: {str(exc).splitlines()[0]}"
        ) from None
    return backbone_spec(config, name_or_path, path, kind)


def backbone_spec(config: Any, name_or_path: str, path: str, kind: str = "auto") -> BackboneSpec:
    """The :class:`BackboneSpec` of a Hugging Face ``config`` already read from ``path``."""
    if kind not in ("auto", "encoder", "decoder"):
        raise ConfigError(f"unknown backbone kind {kind!r}; valid: auto, encoder, decoder")
    architecture = architecture_spec(config.model_type)
    decoder = kind == "decoder" or (kind == "auto" and is_decoder_type(config.model_type, architecture))
    text = config.text_config if architecture.text_submodule and getattr(config, "text_config", None) else config
    positions = getattr(config, "max_position_embeddings", None)
    return BackboneSpec(
        name_or_path=str(name_or_path),
        path=path,
        config=config,
        model_type=config.model_type,
        architecture=architecture,
        kind="decoder" if decoder else "encoder",
        hidden_size=int(text.hidden_size),
        num_layers=int(text.num_hidden_layers),
        vocab_size=int(getattr(text, "vocab_size", 0) or 0),
        max_positions=positions if isinstance(positions, int) else None,
    )


# ---------------------------------------------------------------------------------- applying a spec
def prepare_tokenizer(tokenizer: Any, spec: ArchitectureSpec, model_type: str) -> Any:
    """Apply the spec's tokenizer fixes in place: padding side, and a pad token where there is none."""
    if spec.padding_side is not None:
        tokenizer.padding_side = spec.padding_side
    if tokenizer.pad_token is None:
        fallback = getattr(tokenizer, spec.pad_token_fallback, None) if spec.pad_token_fallback else None
        if fallback is None:
            raise ConfigError(
                f"the tokenizer of this {model_type!r} model has no pad token and no "
                f"{spec.pad_token_fallback or 'fallback'} to pad with; register an ArchitectureSpec for "
                f"{model_type!r} with a pad_token_fallback, or give the tokenizer a pad token"
            )
        tokenizer.pad_token = fallback
        logger.info("%s tokenizer has no pad token: padding with %s %r", model_type, spec.pad_token_fallback, fallback)
    return tokenizer


def leading_bos_id(tokenizer: Any) -> int | None:
    """The BOS id when the tokenizer starts every text with it (Llama, Gemma), else None (Qwen, BERT-less BOS)."""
    bos = tokenizer.bos_token_id
    if bos is None:
        return None
    ids = tokenizer("x")["input_ids"]
    return int(bos) if ids and ids[0] == bos else None


def text_model(model: Any, spec: ArchitectureSpec, model_type: str) -> Any:
    """The part of a loaded model that encodes text: ``spec.text_submodule`` of a multimodal model, else itself."""
    if spec.text_submodule is None:
        return model
    part = getattr(model, spec.text_submodule, None)
    if part is None:
        raise ConfigError(
            f"{model_type!r} model {type(model).__name__} has no {spec.text_submodule!r}; fix its ArchitectureSpec"
        )
    logger.info("%s: using its text model %s (%s)", model_type, spec.text_submodule, type(part).__name__)
    return part


def apply_liger(model: Any, spec: ArchitectureSpec, model_type: str) -> None:
    """Patch ``model`` in place with Liger-Kernel's fused RMSNorm/RoPE/MLP kernels.

    CUDA only: on a machine without CUDA it is skipped with a log line (the kernels are Triton). Needs the
    ``liger`` extra (``liger-kernel``), imported only here.
    """
    import torch

    if not torch.cuda.is_available():
        logger.info("Liger kernels need CUDA; skipped on this machine")
        return
    if spec.liger is None:
        logger.warning("no Liger kernels are registered for %r; running without them", model_type)
        return
    liger = require("liger_kernel.transformers", "liger")
    patch = getattr(liger, f"apply_liger_kernel_to_{spec.liger}", None)
    if patch is None:
        raise ConfigError(f"this liger-kernel has no apply_liger_kernel_to_{spec.liger}; upgrade liger-kernel")
    patch(model=model, cross_entropy=False, fused_linear_cross_entropy=False)
    logger.info("%s patched with Liger kernels (%s)", model_type, spec.liger)
