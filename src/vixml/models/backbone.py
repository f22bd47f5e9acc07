"""The text backbone: any Hugging Face encoder or decoder as a sentence encoder with image-token input.

ViXML (docs/method.md 2-3) encodes queries and labels with one shared network whose output is the pooled,
L2-normalised last hidden state (no projection head; an optional linear transform may exist). Encoders
(BERT, DistilBERT...) see ``{images} ⊕ {text}``; decoder LLMs (Qwen2/3, Llama, Gemma 3, Mistral, Phi-3)
see the prompt ``"This product text" ⊕ {text} ⊕ "and its image" ⊕ {images} ⊕ {eos}`` with causal attention
kept. Both layouts come from :class:`~vixml.models.assembler.SequenceAssembler`, driven by a segment list.

What differs between architectures (decoder or not, pad token, padding side, EOS, LoRA targets, Liger
kernels) is read from :mod:`vixml.models.architectures`, keyed by ``config.model_type``. LoRA adapters are
attached by :meth:`TextBackbone.add_lora` (PEFT through :mod:`vixml.models.lora`); a backbone with adapters
saves the adapter only and loads back on its base model.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import torch

from vixml.atomic import atomic_open, atomic_path
from vixml.config.fields import Kind
from vixml.devices import native_bf16, torch_dtype
from vixml.errors import ConfigError, DataError, Problem
from vixml.models.architectures import (
    ArchitectureSpec,
    BackboneSpec,
    apply_liger,
    architecture_spec,
    backbone_spec,
    is_decoder_type,
    leading_bos_id,
    prepare_tokenizer,
    register_architecture,
    text_model,
)
from vixml.models.assembler import (
    Assembled,
    SequenceAssembler,
    default_segments,
    prompt_assemblers,
)
from vixml.models.hub import resolve_pretrained
from vixml.models.pooling import PoolingMode, check_pooling_mode, pool

if TYPE_CHECKING:
    import os

__all__ = [
    "ArchitectureSpec",
    "register_architecture",
    "architecture_spec",
    "default_dtype",
    "TextBackbone",
]

logger = logging.getLogger(__name__)

HEAD_CONFIG = "vixml_head.json"
HEAD_WEIGHTS = "vixml_head.safetensors"
_FORMAT = "vixml.text_backbone"
_FORMAT_VERSION = 1
# what the head records of the constructor's settings (the layouts included: no reconfiguration after loading)
_HEAD_SETTINGS = ("pooling", "transform_dim", "normalize", "kind", "prompt", "image_positions", "imageless_caption")


def default_dtype(decoder: bool, device: torch.device | str | None = None) -> torch.dtype:
    """The weights' dtype when none is asked for: bf16 for decoders on a bf16-capable GPU, float32 otherwise."""
    device = torch.device(device) if device is not None else torch.device("cpu")
    if decoder and device.type == "cuda" and native_bf16(device):
        return torch.bfloat16
    return torch.float32


class TextBackbone(torch.nn.Module):
    """A Hugging Face model as a sentence encoder: assembled embeddings -> token states -> pooled -> normalised.

    Build it with :meth:`from_pretrained` (a hub name or a local folder) or :meth:`load` (a folder written
    by :meth:`save`). Like Hugging Face models it starts in eval mode; call ``.train()`` to fine-tune.

    Args:
        model: the Hugging Face base model (``AutoModel``), possibly wrapped by PEFT.
        tokenizer: its tokenizer (pad token and padding side are fixed here by the architecture spec).
        pooling: ``mean`` (paper default), ``cls`` or ``last`` (the last real token, on any padding side).
        transform_dim: width of an optional linear transform after pooling (None = none).
        normalize: L2-normalise the outputs.
        kind: ``encoder`` or ``decoder``; ``auto`` reads it from the architecture spec.
        prompt: the decoder's segment list (default: the paper's prompt); None for an encoder means
            ``("{images}", "{text}")``. Items without images use it without ``{images}`` and the literal
            before it (``ModelConfig.prompt_segments``).
        image_positions: encoders with images: ``fixed`` places the text after the N image slots whether or
            not the images exist ([CLS] at position N, as the reference's plain concatenation); ``mask``
            counts positions over the real tokens (``model.image_positions``).
        imageless_caption: decoders: a row without any image keeps the caption before ``{images}``
            (``keep``, the reference) or reads as a text-only item (``drop``) (``model.imageless_caption``).
        name_or_path: where the base weights come from (recorded so that an adapter-only save can reload them).

    Attributes:
        model_type: ``config.model_type``, the key of the architecture registry.
        spec: the architecture spec in force.
        kind: ``"encoder"`` or ``"decoder"``.
        hidden_size: width H of the token states (and of the image tokens).
        embedding_dim: width D of the output embeddings (the transform's width, else H).
    """

    def __init__(
        self,
        model: torch.nn.Module,
        tokenizer: Any,
        *,
        pooling: PoolingMode = "mean",
        transform_dim: int | None = None,
        normalize: bool = True,
        kind: Kind = "auto",
        prompt: Sequence[str] | None = None,
        image_positions: Literal["fixed", "mask"] = "fixed",
        imageless_caption: Literal["keep", "drop"] = "keep",
        name_or_path: str | None = None,
    ):
        super().__init__()
        self.model = model
        self.model_type: str = model.config.model_type
        self.spec = architecture_spec(self.model_type)
        if kind not in ("auto", "encoder", "decoder"):
            raise ConfigError(f"unknown backbone kind {kind!r}; valid: auto, encoder, decoder")
        decoder = kind == "decoder" or (kind == "auto" and is_decoder_type(self.model_type, self.spec))
        self.kind: Literal["encoder", "decoder"] = "decoder" if decoder else "encoder"
        self.tokenizer = prepare_tokenizer(tokenizer, self.spec, self.model_type)
        self.hidden_size: int = int(model.config.hidden_size)
        self.pooling: PoolingMode = check_pooling_mode(pooling)
        self.normalize = bool(normalize)
        if transform_dim is not None and transform_dim <= 0:
            raise ConfigError(f"transform_dim must be a positive integer or None; got {transform_dim}")
        self.transform = torch.nn.Linear(self.hidden_size, transform_dim) if transform_dim is not None else None
        self.embedding_dim: int = transform_dim if transform_dim is not None else self.hidden_size
        self.name_or_path = str(name_or_path or getattr(model.config, "_name_or_path", "") or "")
        if image_positions not in ("fixed", "mask") or imageless_caption not in ("keep", "drop"):
            raise ConfigError(
                f"image_positions must be fixed or mask and imageless_caption keep or drop; "
                f"got {image_positions!r}, {imageless_caption!r}"
            )
        self.image_positions: Literal["fixed", "mask"] = image_positions
        self.imageless_caption: Literal["keep", "drop"] = imageless_caption
        self.prompt: tuple[str, ...] = tuple(prompt) if prompt is not None else default_segments(decoder)
        self._assemblers = prompt_assemblers(  # validates the segment list
            self.prompt,
            self.tokenizer,
            padding_side=self.spec.padding_side or "right",
            compact=self.spec.compact or decoder,
            eos_token=self.spec.eos_token,
            bos_token_id=leading_bos_id(self.tokenizer) if decoder else None,
            keep_caption=imageless_caption == "keep",
        )

    @classmethod
    def from_pretrained(
        cls,
        name_or_path: str | os.PathLike,
        *,
        pooling: PoolingMode = "mean",
        transform_dim: int | None = None,
        normalize: bool = True,
        kind: Kind = "auto",
        prompt: Sequence[str] | None = None,
        image_positions: Literal["fixed", "mask"] = "fixed",
        imageless_caption: Literal["keep", "drop"] = "keep",
        resolved: BackboneSpec | None = None,
        dtype: torch.dtype | str | None = None,
        device: torch.device | str | None = None,
        attn_implementation: str | None = None,
        gradient_checkpointing: bool = False,
        liger: bool = False,
        load_in_4bit: bool = False,
    ) -> TextBackbone:
        """Load a model and its tokenizer with ``AutoModel`` / ``AutoTokenizer``.

        Args:
            name_or_path: a hub name or a local folder (resolved by :func:`vixml.models.hub.resolve_pretrained`).
            pooling, transform_dim, normalize, kind, prompt, image_positions, imageless_caption: as in the
                constructor.
            resolved: ``name_or_path`` already resolved (:func:`~vixml.models.architectures.resolve_backbone`):
                its config is not read again; None = read here.
            dtype: weights' dtype (``torch.bfloat16``, ``"bf16"``, ``"float32"``, ``"auto"``...); None =
                :func:`default_dtype` (bf16 for decoders on a GPU, float32 otherwise).
            device: where to put the model (None = the CPU).
            attn_implementation: ``"sdpa"``, ``"eager"``, ``"flash_attention_2"``...; None = the library's choice.
            gradient_checkpointing: recompute activations in the backward pass (less memory, ~30% slower).
            liger: patch the model with Liger-Kernel's fused RMSNorm/RoPE/SwiGLU (CUDA only; skipped with a log
                line on a machine without CUDA; needs ``pip install 'vixml[liger]'``).
            load_in_4bit: QLoRA's NF4-quantised frozen base (CUDA and bitsandbytes only; LoRA must follow).
        """
        from transformers import AutoConfig, AutoModel, AutoTokenizer

        check_pooling_mode(pooling)
        if resolved is None:
            path = resolve_pretrained(str(name_or_path))
            resolved = backbone_spec(AutoConfig.from_pretrained(path), str(name_or_path), path, kind)
        spec, model_type, decoder = resolved.architecture, resolved.model_type, resolved.kind == "decoder"
        kwargs: dict[str, Any] = {
            "dtype": _resolve_dtype(dtype) if dtype is not None else default_dtype(decoder, device)
        }
        if attn_implementation is not None:
            kwargs["attn_implementation"] = attn_implementation
        if load_in_4bit:
            from vixml.models.lora import four_bit_config

            kwargs["quantization_config"] = four_bit_config(kwargs["dtype"])
            kwargs["device_map"] = {"": torch.device(device or "cuda").index or 0}
        model = AutoModel.from_pretrained(resolved.path, **kwargs)
        model = text_model(model, spec, model_type)
        tokenizer = AutoTokenizer.from_pretrained(resolved.path)
        if device is not None and not load_in_4bit:
            model = model.to(device)
        if liger:
            apply_liger(model, spec, model.config.model_type)
        model.eval()
        backbone = cls(
            model,
            tokenizer,
            pooling=pooling,
            transform_dim=transform_dim,
            normalize=normalize,
            kind=kind,
            prompt=prompt,
            image_positions=image_positions,
            imageless_caption=imageless_caption,
            name_or_path=str(name_or_path),
        )
        if device is not None and backbone.transform is not None:
            backbone.transform.to(device)
        if gradient_checkpointing:
            backbone.set_gradient_checkpointing(True)
        return backbone

    # ---------------------------------------------------------------------------------- properties
    @property
    def device(self) -> torch.device:
        """Device of the model's parameters."""
        return next(self.model.parameters()).device

    @property
    def base_model(self) -> Any:
        """The Hugging Face model itself (under the PEFT wrapper when there are adapters)."""
        from vixml.models.lora import has_lora

        return self.model.get_base_model() if has_lora(self.model) else self.model

    @property
    def has_lora(self) -> bool:
        from vixml.models.lora import has_lora

        return has_lora(self.model)

    def add_lora(
        self,
        *,
        r: int = 256,
        alpha: float = 256.0,
        rslora: bool = True,
        dropout: float = 0.0,
        target_modules: Sequence[str] | None = None,
    ) -> TextBackbone:
        """Attach fresh LoRA adapters in place and freeze the base weights (docs/method.md 2); returns self.

        Afterwards only the adapters (and this backbone's own transform, which is not part of the model) train.
        ``target_modules`` None = the architecture's defaults (``spec.lora_targets``), else every linear layer.
        """
        from vixml.models.lora import attach_lora, has_lora, lora_targets

        if has_lora(self.model):
            raise ConfigError("this backbone already has LoRA adapters")
        targets = lora_targets(target_modules, self.spec.lora_targets, self.model_type)
        self.model = attach_lora(
            self.model,
            targets=targets,
            r=r,
            alpha=alpha,
            rslora=rslora,
            dropout=dropout,
            gradient_checkpointing=self.gradient_checkpointing,
        )
        return self

    def export_merged(self, directory: str | os.PathLike) -> None:
        """Write the model with its LoRA updates merged in Hugging Face format (``AutoModel`` loads it)."""
        self.save(directory, merge_lora=True)

    @property
    def gradient_checkpointing(self) -> bool:
        """Whether activation checkpointing is on (it acts in training mode only, as in transformers)."""
        base = self.base_model
        if hasattr(base, "is_activation_checkpointing"):  # transformers >= 5.x
            return bool(base.is_activation_checkpointing)
        return bool(getattr(base, "is_gradient_checkpointing", False))

    def set_gradient_checkpointing(self, enabled: bool) -> None:
        """Switch activation checkpointing on or off (non-reentrant: works with frozen embeddings and LoRA)."""
        base = self.base_model
        if not enabled:
            if hasattr(base, "activation_checkpointing_disable"):
                base.activation_checkpointing_disable()
            else:
                base.gradient_checkpointing_disable()
            return
        if not getattr(base, "supports_gradient_checkpointing", False):
            raise ConfigError(f"{type(base).__name__} does not support gradient checkpointing; switch it off")
        if hasattr(base, "activation_checkpointing_enable"):  # transformers >= 5.x; the old name is deprecated
            base.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
        else:
            base.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})

    # ---------------------------------------------------------------------------------- encoding
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

    def assembler(self, with_images: bool) -> SequenceAssembler:
        """The assembler of items with images (the full segment list) or without (the text-only list)."""
        return self._assemblers[bool(with_images)]

    def assemble(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        extra_embeds: torch.Tensor | None = None,
        extra_mask: torch.Tensor | None = None,
    ) -> Assembled:
        """The model input for a batch: this backbone's layout (encoder or prompt), with or without images."""
        assembler = self._assemblers[extra_embeds is not None]
        if extra_embeds is not None and not assembler.has_images:
            raise ConfigError(f"image tokens were given but the segment list {self.prompt} has no '{{images}}'")
        device = self.device
        if extra_embeds is not None:
            extra_embeds = extra_embeds.to(device)
            extra_mask = extra_mask.to(device) if extra_mask is not None else None
        return assembler.assemble(
            self.model.get_input_embeddings(),
            input_ids.to(device),
            attention_mask.to(device),
            extra_embeds,
            extra_mask,
        )

    def forward_embeds(
        self, inputs_embeds: torch.Tensor, attention_mask: torch.Tensor, position_ids: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Run the model on (B, T, H) token embeddings with their (B, T) mask -> (B, T, H) last hidden states.

        The model adds its own position (and token-type) embeddings as it does for ``input_ids``; types whose
        spec says so get position ids counted over the mask (or ``position_ids`` when given). Decoders run
        without a KV cache.
        """
        kwargs: dict[str, Any] = {}
        if position_ids is not None:
            kwargs["position_ids"] = position_ids
        elif self.spec.positions_from_mask:
            kwargs["position_ids"] = _positions_from_mask(attention_mask)
        if self.kind == "decoder":
            kwargs["use_cache"] = False
        output = self.model(inputs_embeds=inputs_embeds, attention_mask=attention_mask, **kwargs)
        return output.last_hidden_state

    def pool_states(self, states: torch.Tensor, attention_mask: torch.Tensor, raw: bool = False) -> torch.Tensor:
        """(B, T, H) token states -> (B, D) float32 embeddings: pooled, transformed, normalised (not when ``raw``)."""
        pooled = pool(states, attention_mask, self.pooling)
        if self.transform is not None:
            pooled = self.transform(pooled.to(self.transform.weight.dtype))
        pooled = pooled.float()
        return pooled if raw else self.finish(pooled)

    def finish(self, pooled: torch.Tensor) -> torch.Tensor:
        """The last step of :meth:`encode`: L2 normalisation when ``normalize`` (for a ``raw=True`` output)."""
        if self.normalize:
            pooled = torch.nn.functional.normalize(pooled, p=2.0, dim=-1)
        return pooled

    def encode(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        extra_embeds: torch.Tensor | None = None,
        extra_mask: torch.Tensor | None = None,
        raw: bool = False,
    ) -> torch.Tensor:
        """Encode token ids, optionally with image tokens placed by this backbone's segment list.

        Args:
            input_ids: (B, T) token ids (as the tokenizer or the token cache gives them, either padding side).
            attention_mask: (B, T) text mask.
            extra_embeds: (B, N, H) image tokens in the token-embedding space, or None.
            extra_mask: (B, N), 0 for missing images; None = all present.
            raw: skip the normalisation (the pooled, transformed state: what PRIME's LPN reads).

        Returns:
            (B, D) float32 embeddings, L2-normalised when ``normalize`` and not ``raw``. Mean pooling covers
            every real token of the assembled sequence (prompt words and image tokens included).
        """
        batch = self.assemble(input_ids, attention_mask, extra_embeds, extra_mask)
        positions = None
        layout = self._assemblers[extra_embeds is not None]
        if (
            extra_embeds is not None
            and self.image_positions == "fixed"
            and self.spec.positions_from_mask
            and not layout.compact
            and layout.segments[0] == "{images}"
        ):  # the reference's encoder: images then text, the text's positions start at N whatever the mask
            n = extra_embeds.shape[1]
            mask = batch.attention_mask
            slots = torch.arange(n, device=mask.device).expand(mask.shape[0], n)
            positions = torch.cat((slots, n + _positions_from_mask(mask[:, n:])), dim=1)
        states = self.forward_embeds(batch.inputs_embeds, batch.attention_mask, positions)
        return self.pool_states(states, batch.attention_mask, raw=raw)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, **extra: Any) -> torch.Tensor:
        """Same as :meth:`encode` (so that hooks, DDP and ``torch.compile`` see a regular module call)."""
        return self.encode(input_ids, attention_mask, **extra)

    # ---------------------------------------------------------------------------------- persistence
    def save(self, directory: str | os.PathLike, *, merge_lora: bool = False) -> None:
        """Write the backbone plus our head (transform weights and settings).

        Without adapters: the model in Hugging Face format. With LoRA adapters: the adapter only (PEFT
        format) and a reference to the base model, unless ``merge_lora`` writes the merged model in Hugging
        Face format (loadable with ``AutoModel``). The head's JSON is removed first and written last: a
        folder whose save was interrupted has no ``vixml_head.json`` and :meth:`load` refuses it.
        """
        from safetensors.torch import save_file

        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        (directory / HEAD_CONFIG).unlink(missing_ok=True)
        adapter_only = self.has_lora and not merge_lora
        if adapter_only:
            from vixml.models.lora import save_adapter

            save_adapter(self.model, directory, base_model=self.name_or_path)
        elif self.has_lora:
            from vixml.models.lora import merged_state_dict

            self.base_model.save_pretrained(directory, state_dict=merged_state_dict(self.model))
        else:
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
            "kind": self.kind,
            "hidden_size": self.hidden_size,
            "pooling": self.pooling,
            "normalize": self.normalize,
            "transform_dim": self.embedding_dim if self.transform is not None else None,
            "prompt": list(self.prompt),
            "image_positions": self.image_positions,
            "imageless_caption": self.imageless_caption,
            "lora": adapter_only,
            "base_model": self.name_or_path,
        }
        with atomic_open(directory / HEAD_CONFIG) as fh:
            json.dump(head, fh, indent=2)
            fh.write("\n")

    @classmethod
    def load(cls, directory: str | os.PathLike, *, trainable: bool = False, **options: Any) -> TextBackbone:
        """Restore a backbone written by :meth:`save`.

        An adapter-only save reloads its base from the recorded ``base_model`` (through
        :func:`~vixml.models.hub.resolve_pretrained`) and attaches the adapter (frozen unless ``trainable``).

        Args:
            directory: the saved folder.
            trainable: keep LoRA adapters trainable (to continue training).
            options: runtime options of :meth:`from_pretrained` (``dtype``, ``device``, ``attn_implementation``,
                ``gradient_checkpointing``, ``liger``, ``load_in_4bit``).
        """
        from safetensors.torch import load_file

        directory = Path(directory)
        head = _read_head(directory / HEAD_CONFIG)
        settings = {key: head[key] for key in _HEAD_SETTINGS}
        if head.get("lora"):
            from vixml.models.lora import load_adapter

            backbone = cls.from_pretrained(head["base_model"], **settings, **options)
            backbone.model = load_adapter(backbone.model, directory, trainable=trainable)
        else:
            backbone = cls.from_pretrained(directory, **settings, **options)
        if backbone.transform is not None:
            weights = directory / HEAD_WEIGHTS
            if not weights.exists():
                raise DataError(Problem(str(weights), "missing: the head has a transform but no weights were saved"))
            backbone.transform.load_state_dict(load_file(str(weights)))
        return backbone


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
    missing = [key for key in _HEAD_SETTINGS if key not in head]
    if missing:
        raise DataError(Problem(str(path), f"lacks {missing}: written by a pre-release vixml; train the run again"))
    return head


def _resolve_dtype(dtype: torch.dtype | str) -> torch.dtype | str:
    """A torch dtype, ``"auto"`` (the checkpoint's own dtype), or a name from :func:`vixml.devices.torch_dtype`."""
    if isinstance(dtype, torch.dtype) or dtype == "auto":
        return dtype
    try:
        return torch_dtype(dtype)
    except ConfigError as exc:
        raise ConfigError(f"{exc} (or auto, or a torch.dtype)") from None
