"""The text backbone: any Hugging Face model as a sentence encoder with an embedding-level entry point.

ViXML (METHOD.md 2-3) encodes queries and labels with one shared network whose output is the pooled,
L2-normalised last hidden state (no projection head; an optional linear transform may exist). Images enter
as extra input tokens beside the word embeddings, so the backbone exposes its token-embedding layer
(:meth:`TextBackbone.input_embeddings`) and a forward pass over embeddings (:meth:`TextBackbone.forward_embeds`)
besides the plain :meth:`TextBackbone.encode`.

What differs between architectures (pad token, padding side, how position ids are given) lives in a small
registry keyed by ``config.model_type`` (PEFT style), never in tests on the model's name. Unknown types run
on generic defaults, which are logged.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import torch

from vixml.atomic import atomic_open, atomic_path
from vixml.errors import ConfigError, DataError, Problem
from vixml.models.pooling import PoolingMode, check_pooling_mode, pool

if TYPE_CHECKING:
    import os

__all__ = [
    "ArchitectureSpec",
    "register_architecture",
    "architecture_spec",
    "assemble_encoder_inputs",
    "TextBackbone",
]

logger = logging.getLogger(__name__)

HEAD_CONFIG = "vixml_head.json"
HEAD_WEIGHTS = "vixml_head.safetensors"
_FORMAT = "vixml.text_backbone"
_FORMAT_VERSION = 1


@dataclass(frozen=True)
class ArchitectureSpec:
    """What one ``config.model_type`` needs beyond the generic path.

    Attributes:
        padding_side: force the tokenizer to pad on this side (Gemma must pad right); None keeps its own.
        pad_token_fallback: name of the tokenizer's special token to pad with when it has no pad token
            (Llama: ``"eos_token"``); None means such a tokenizer is an error.
        positions_from_mask: give the model position ids counted over the attention mask (0 at the first
            real token). Then masked tokens placed before the text (missing images) do not shift the text's
            positions, and a text encodes the same with or without empty image slots. Only for types whose
            position ids are known to start at 0; a wrong offset would silently hurt an unknown model.
    """

    padding_side: Literal["left", "right"] | None = None
    pad_token_fallback: str | None = "eos_token"
    positions_from_mask: bool = False


_GENERIC = ArchitectureSpec()
_ARCHITECTURES: dict[str, ArchitectureSpec] = {
    "bert": ArchitectureSpec(padding_side="right", pad_token_fallback=None, positions_from_mask=True),
    "distilbert": ArchitectureSpec(padding_side="right", pad_token_fallback=None, positions_from_mask=True),
}


def register_architecture(model_type: str, spec: ArchitectureSpec) -> None:
    """Register (or replace) the behaviour of a ``config.model_type``."""
    _ARCHITECTURES[model_type] = spec


def architecture_spec(model_type: str) -> ArchitectureSpec:
    """The registered behaviour of ``model_type``, or the generic defaults (logged) for an unknown type."""
    spec = _ARCHITECTURES.get(model_type)
    if spec is None:
        logger.info(
            "model_type %r has no registered architecture spec (known: %s); using generic defaults %s",
            model_type,
            ", ".join(sorted(_ARCHITECTURES)),
            _GENERIC,
        )
        return _GENERIC
    return spec


def assemble_encoder_inputs(
    text_embeds: torch.Tensor,
    text_mask: torch.Tensor,
    extra_embeds: torch.Tensor | None = None,
    extra_mask: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Place extra tokens (projected images) BEFORE the text tokens: the encoder layout of METHOD.md 3.

    Kept as one small function so that a sequence assembler (decoder prompts with text segments) can take
    its place without touching the backbone.

    Args:
        text_embeds: (B, T, H) word embeddings of the text.
        text_mask: (B, T) attention mask of the text.
        extra_embeds: (B, N, H) extra token embeddings, or None for text only.
        extra_mask: (B, N) mask of the extra tokens (0 = missing image); None means all present.

    Returns:
        embeds (B, N + T, H) in the text's dtype and mask (B, N + T) in the text mask's dtype.
    """
    if extra_embeds is None:
        return text_embeds, text_mask
    if extra_embeds.dim() != 3 or extra_embeds.shape[0] != text_embeds.shape[0]:
        raise ConfigError(
            f"extra_embeds must be (B, N, H) with B = {text_embeds.shape[0]}; got {tuple(extra_embeds.shape)}"
        )
    if extra_embeds.shape[2] != text_embeds.shape[2]:
        raise ConfigError(
            f"extra_embeds have width {extra_embeds.shape[2]} but the backbone's token embeddings have "
            f"{text_embeds.shape[2]}: project them to the hidden size first"
        )
    if extra_mask is None:
        extra_mask = torch.ones(extra_embeds.shape[:2], dtype=text_mask.dtype, device=text_mask.device)
    elif extra_mask.shape != extra_embeds.shape[:2]:
        raise ConfigError(f"extra_mask must be {tuple(extra_embeds.shape[:2])}; got {tuple(extra_mask.shape)}")
    embeds = torch.cat([extra_embeds.to(text_embeds.dtype), text_embeds], dim=1)
    mask = torch.cat([extra_mask.to(text_mask.dtype), text_mask], dim=1)
    return embeds, mask


class TextBackbone(torch.nn.Module):
    """A Hugging Face model as a sentence encoder: token states -> pooled -> optional linear -> L2-normalised.

    Build it with :meth:`from_pretrained` (a hub name or a local folder) or :meth:`load` (a folder written
    by :meth:`save`). Like Hugging Face models it starts in eval mode; call ``.train()`` to fine-tune.

    Attributes:
        model: the Hugging Face base model (``AutoModel``), whose last hidden state is pooled.
        tokenizer: its tokenizer, with the pad token and padding side fixed by the architecture spec.
        model_type: ``config.model_type``, the key of the architecture registry.
        hidden_size: width H of the token states (and of the token embeddings extra tokens must match).
        embedding_dim: width D of the output embeddings (the transform's width, else H).
        pooling: the pooling mode.
        normalize: whether outputs are L2-normalised (inner product = cosine).
        transform: optional ``Linear(H, D)`` applied after pooling.
    """

    def __init__(
        self,
        model: torch.nn.Module,
        tokenizer: Any,
        *,
        pooling: PoolingMode = "mean",
        transform_dim: int | None = None,
        normalize: bool = True,
    ):
        super().__init__()
        self.model = model
        self.model_type: str = model.config.model_type
        self.spec = architecture_spec(self.model_type)
        self.tokenizer = _prepare_tokenizer(tokenizer, self.spec, self.model_type)
        self.hidden_size: int = int(model.config.hidden_size)
        self.pooling: PoolingMode = check_pooling_mode(pooling)
        self.normalize = bool(normalize)
        if transform_dim is not None and transform_dim <= 0:
            raise ConfigError(f"transform_dim must be a positive integer or None; got {transform_dim}")
        self.transform = torch.nn.Linear(self.hidden_size, transform_dim) if transform_dim is not None else None
        self.embedding_dim: int = transform_dim if transform_dim is not None else self.hidden_size

    @classmethod
    def from_pretrained(
        cls,
        name_or_path: str | os.PathLike,
        *,
        pooling: PoolingMode = "mean",
        transform_dim: int | None = None,
        normalize: bool = True,
        dtype: torch.dtype | str | None = None,
        attn_implementation: str | None = None,
        gradient_checkpointing: bool = False,
    ) -> TextBackbone:
        """Load a model and its tokenizer with ``AutoModel`` / ``AutoTokenizer``.

        Args:
            name_or_path: a hub name or a local folder in Hugging Face format.
            pooling: how token states become one vector.
            transform_dim: width of an optional linear transform after pooling (None = no transform).
            normalize: L2-normalise the outputs.
            dtype: weights' dtype (``torch.bfloat16``, ``"bf16"``, ``"float32"``, ``"auto"``...); None = float32.
            attn_implementation: ``"sdpa"``, ``"eager"``, ``"flash_attention_2"``...; None = the library's choice.
            gradient_checkpointing: recompute activations in the backward pass (less memory, ~30% slower).
        """
        from transformers import AutoModel, AutoTokenizer

        check_pooling_mode(pooling)
        kwargs: dict[str, Any] = {}
        if dtype is not None:
            kwargs[_dtype_keyword()] = _resolve_dtype(dtype)
        if attn_implementation is not None:
            kwargs["attn_implementation"] = attn_implementation
        model = AutoModel.from_pretrained(str(name_or_path), **kwargs)
        tokenizer = AutoTokenizer.from_pretrained(str(name_or_path))
        if gradient_checkpointing:
            if not getattr(model, "supports_gradient_checkpointing", False):
                raise ConfigError(f"{type(model).__name__} does not support gradient checkpointing; switch it off")
            _enable_checkpointing(model)
        model.eval()
        return cls(model, tokenizer, pooling=pooling, transform_dim=transform_dim, normalize=normalize)

    @property
    def device(self) -> torch.device:
        """Device of the model's parameters."""
        return next(self.model.parameters()).device

    def tokenize(self, texts: Sequence[str], max_length: int) -> dict[str, torch.Tensor]:
        """Tokenise texts, truncated to ``max_length`` and padded to the longest in the batch.

        Returns:
            ``input_ids`` (B, T) and ``attention_mask`` (B, T), int64 on the CPU.
        """
        batch = self.tokenizer(
            list(texts),
            max_length=max_length,
            truncation=True,
            padding="longest",
            return_attention_mask=True,
            return_tensors="pt",
        )
        return {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"]}

    def input_embeddings(self, input_ids: torch.Tensor) -> torch.Tensor:
        """(B, T) token ids -> (B, T, H) the model's own token embeddings (before positions are added)."""
        return self.model.get_input_embeddings()(input_ids.to(self.device))

    def forward_embeds(self, inputs_embeds: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Run the model on token embeddings.

        Args:
            inputs_embeds: (B, T, H) token embeddings (word embeddings, possibly with extra tokens). The model
                adds its own position (and token-type) embeddings, exactly as it does for ``input_ids``.
            attention_mask: (B, T), 1 for real tokens.

        Returns:
            (B, T, H) last hidden states.
        """
        kwargs: dict[str, Any] = {}
        if self.spec.positions_from_mask:
            kwargs["position_ids"] = _positions_from_mask(attention_mask)
        output = self.model(inputs_embeds=inputs_embeds, attention_mask=attention_mask, **kwargs)
        return output.last_hidden_state

    def pool_states(self, states: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """(B, T, H) token states -> (B, D) float32 embeddings: pooled, transformed, normalised."""
        pooled = pool(states, attention_mask, self.pooling)
        if self.transform is not None:
            pooled = self.transform(pooled.to(self.transform.weight.dtype))
        pooled = pooled.float()
        if self.normalize:
            pooled = torch.nn.functional.normalize(pooled, p=2.0, dim=-1)
        return pooled

    def encode(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        extra_embeds: torch.Tensor | None = None,
        extra_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Encode token ids, optionally with extra tokens (projected images) placed before the text.

        Args:
            input_ids: (B, T) token ids.
            attention_mask: (B, T) text mask.
            extra_embeds: (B, N, H) extra token embeddings in the token-embedding space, or None.
            extra_mask: (B, N), 0 for missing extra tokens; None = all present.

        Returns:
            (B, D) float32 embeddings, L2-normalised when ``normalize``. Mean pooling covers the extra tokens.
        """
        attention_mask = attention_mask.to(self.device)
        text_embeds = self.input_embeddings(input_ids)
        if extra_embeds is not None:
            extra_embeds = extra_embeds.to(self.device)
            extra_mask = extra_mask.to(self.device) if extra_mask is not None else None
        embeds, mask = assemble_encoder_inputs(text_embeds, attention_mask, extra_embeds, extra_mask)
        return self.pool_states(self.forward_embeds(embeds, mask), mask)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, **extra: torch.Tensor) -> torch.Tensor:
        """Same as :meth:`encode` (so that hooks, DDP and ``torch.compile`` see a regular module call)."""
        return self.encode(input_ids, attention_mask, **extra)

    def save(self, directory: str | os.PathLike) -> None:
        """Write the backbone in Hugging Face format plus our head (transform weights and settings).

        The head's JSON is removed first and written last: a folder whose save was interrupted has no
        ``vixml_head.json`` and :meth:`load` refuses it instead of loading a mixture.
        """
        from safetensors.torch import save_file

        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        (directory / HEAD_CONFIG).unlink(missing_ok=True)
        self.model.save_pretrained(directory)
        self.tokenizer.save_pretrained(directory)
        if self.transform is not None:
            tensors = {name: p.detach().cpu().contiguous() for name, p in self.transform.state_dict().items()}
            with atomic_path(directory / HEAD_WEIGHTS) as tmp:
                save_file(tensors, str(tmp), metadata={"format": "pt"})
        else:
            (directory / HEAD_WEIGHTS).unlink(missing_ok=True)
        head = {
            "format": _FORMAT,
            "version": _FORMAT_VERSION,
            "model_type": self.model_type,
            "hidden_size": self.hidden_size,
            "pooling": self.pooling,
            "normalize": self.normalize,
            "transform_dim": self.embedding_dim if self.transform is not None else None,
        }
        with atomic_open(directory / HEAD_CONFIG) as fh:
            json.dump(head, fh, indent=2)
            fh.write("\n")

    @classmethod
    def load(
        cls,
        directory: str | os.PathLike,
        *,
        dtype: torch.dtype | str | None = None,
        attn_implementation: str | None = None,
        gradient_checkpointing: bool = False,
    ) -> TextBackbone:
        """Restore a backbone written by :meth:`save` (runtime options as in :meth:`from_pretrained`)."""
        from safetensors.torch import load_file

        directory = Path(directory)
        head = _read_head(directory / HEAD_CONFIG)
        backbone = cls.from_pretrained(
            directory,
            pooling=head["pooling"],
            transform_dim=head["transform_dim"],
            normalize=head["normalize"],
            dtype=dtype,
            attn_implementation=attn_implementation,
            gradient_checkpointing=gradient_checkpointing,
        )
        if backbone.transform is not None:
            weights = directory / HEAD_WEIGHTS
            if not weights.exists():
                raise DataError(Problem(str(weights), "missing: the head has a transform but no weights were saved"))
            backbone.transform.load_state_dict(load_file(str(weights)))
        return backbone


def _prepare_tokenizer(tokenizer: Any, spec: ArchitectureSpec, model_type: str) -> Any:
    """Apply the architecture's tokenizer fixes: padding side and a pad token where there is none."""
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


def _enable_checkpointing(model: Any) -> None:
    """Non-reentrant activation checkpointing (works with frozen embeddings and ``inputs_embeds``)."""
    if hasattr(model, "activation_checkpointing_enable"):  # transformers >= 5.x; the old name is deprecated
        model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
    else:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})


def _positions_from_mask(attention_mask: torch.Tensor) -> torch.Tensor:
    """(B, T) mask -> (B, T) position ids: 0, 1, ... over the real tokens; masked slots get 0 (never attended)."""
    mask = attention_mask.long()
    return ((mask.cumsum(dim=1) - 1) * mask).clamp(min=0)


def _read_head(path: Path) -> dict[str, Any]:
    if not path.exists():
        raise DataError(
            Problem(str(path), "missing: not a folder written by TextBackbone.save, or its save did not complete")
        )
    head = json.loads(path.read_text(encoding="utf-8"))
    if head.get("format") != _FORMAT or head.get("version") != _FORMAT_VERSION:
        raise DataError(
            Problem(
                str(path),
                f"format {head.get('format')!r} version {head.get('version')!r}; "
                f"expected {_FORMAT!r} version {_FORMAT_VERSION}",
            )
        )
    return head


_DTYPES = {
    "float32": torch.float32,
    "fp32": torch.float32,
    "bfloat16": torch.bfloat16,
    "bf16": torch.bfloat16,
    "float16": torch.float16,
    "fp16": torch.float16,
}


def _resolve_dtype(dtype: torch.dtype | str) -> torch.dtype | str:
    if isinstance(dtype, torch.dtype) or dtype == "auto":
        return dtype
    if dtype not in _DTYPES:
        raise ConfigError(f"unknown dtype {dtype!r}; valid: auto, {', '.join(_DTYPES)} or a torch.dtype")
    return _DTYPES[dtype]


def _dtype_keyword() -> str:
    """``from_pretrained``'s dtype argument: ``dtype`` since transformers 4.56, ``torch_dtype`` before."""
    import transformers

    major, minor = (int(part) for part in transformers.__version__.split(".")[:2])
    return "dtype" if (major, minor) >= (4, 56) else "torch_dtype"
