"""Build the dual encoder a run configuration describes: one function for training, inference, serving and ranks.

Everything that turns a :class:`~vixml.config.RunConfig` into modules lives here: the backbone kind and its
segment list (decided *before* loading, so nothing patches the prompt afterwards), LoRA, the PRIME
prototypes sized for the label count, the image projection sized for the image banks, and the checks that
the dataset's image banks fit the config (docs/method.md 2-4).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Literal

import torch

from vixml.errors import ConfigError, DataError, Problem, VixmlError
from vixml.models.architectures import BackboneSpec, resolve_backbone, text_model
from vixml.models.assembler import ENCODER_SEGMENTS
from vixml.models.backbone import TextBackbone
from vixml.models.dual_encoder import DualEncoder
from vixml.models.fusion import ImageProjection
from vixml.models.prototypes import LabelPrototypes

if TYPE_CHECKING:
    from vixml.config import LoraConfig, RunConfig
    from vixml.data import XMCDataset
    from vixml.data.images import ImageBank

__all__ = [
    "check_pretrained",
    "segments_for",
    "build_dual_encoder",
    "build_heads",
    "meta_backbone",
    "attach_backbone_lora",
    "load_dual_encoder",
    "image_banks",
]

logger = logging.getLogger(__name__)


def check_pretrained(config: RunConfig) -> BackboneSpec:
    """Before a run folder is made: the model loads and ``data.max_length`` and ``data.label_max_length`` fit
    its positions. Returns the backbone resolved (its Hugging Face config read once: pass it on)."""
    backbone = resolve_backbone(config.model.name_or_path, config.model.kind)
    positions = backbone.max_positions
    if positions is None:
        return backbone
    for key, value in (
        ("data.max_length", config.data.max_length),
        ("data.label_max_length", config.data.label_length()),
    ):
        if value > positions:
            raise ConfigError(
                f"{key}={value}, but {config.model.name_or_path} has {positions} positions "
                f"(max_position_embeddings): set {key} to at most {positions}"
            )
    return backbone


def segments_for(config: RunConfig, kind: Literal["encoder", "decoder"]) -> tuple[str, ...]:
    """The input layout of a backbone of ``kind`` under ``config`` (docs/method.md 2-3).

    Encoders see ``{images} {text}``. Decoders see ``model.prompt``; with ``images.placement=before_text`` the
    images move in front of the prompt's text part (the paper's "images first" ablation).
    """
    ic = config.images
    placement = ic.resolve_placement(kind) if ic is not None else None
    if kind == "encoder":
        if placement == "prompt":
            raise ConfigError("images.placement=prompt needs a decoder backbone; encoders take 'before_text'")
        return ENCODER_SEGMENTS
    prompt = config.model.prompt
    if placement == "before_text":
        return ("{images}", *config.model.prompt_segments(with_images=False))
    return prompt


def build_dual_encoder(
    config: RunConfig,
    *,
    num_labels: int,
    vision_dim: int | None = None,
    device: torch.device | str = "cpu",
    backbone: BackboneSpec | None = None,
) -> DualEncoder:
    """A fresh dual encoder for training: the pretrained backbone, LoRA, prototypes and image projection.

    Args:
        config: the run configuration.
        num_labels: L, the label count (sizes the PRIME prototypes and their free vectors).
        vision_dim: size of one image embedding when the run fuses images (sizes the projection); None =
            text-only even when ``config.images`` is set (no image banks were found).
        device: where the model goes.
        backbone: ``config.model`` resolved already (:func:`check_pretrained`); None = resolved here.

    Random initialisation (LoRA, LPN, free vectors, projection) draws from torch's global RNG in that order:
    seed it first for a reproducible model.
    """
    mc = config.model
    resolved = backbone if backbone is not None else resolve_backbone(mc.name_or_path, mc.kind)
    backbone = TextBackbone.from_pretrained(
        mc.name_or_path,
        pooling=mc.pooling,
        transform_dim=mc.transform,
        normalize=mc.normalize,
        kind=resolved.kind,
        prompt=segments_for(config, resolved.kind),
        image_positions=mc.image_positions,
        imageless_caption=mc.imageless_caption,
        resolved=resolved,
        dtype=None if mc.dtype == "auto" else mc.dtype,
        device=device,
        attn_implementation=mc.attn_implementation,
        gradient_checkpointing=mc.gradient_checkpointing,
        liger=mc.liger,
        load_in_4bit=mc.lora is not None and mc.lora.quantize == "4bit",
    )
    if mc.lora is not None:
        lc = mc.lora
        backbone.add_lora(
            r=lc.r, alpha=lc.alpha, rslora=lc.rslora, dropout=lc.dropout, target_modules=lc.target_modules
        )
    prototypes, projection = build_heads(
        config,
        num_labels=num_labels,
        embedding_dim=backbone.embedding_dim,
        hidden_size=backbone.hidden_size,
        vision_dim=vision_dim,
    )
    sides = config.images.sides if config.images is not None else "both"
    return DualEncoder(backbone, prototypes, projection, sides).to(device)


def build_heads(
    config: RunConfig, *, num_labels: int, embedding_dim: int, hidden_size: int, vision_dim: int | None
) -> tuple[LabelPrototypes | None, ImageProjection | None]:
    """The PRIME prototypes (sized for ``num_labels``) and the image projection (None where not configured).

    One function for the trainer's model and the memory planner's meta-device count
    (:func:`vixml.planning.backbone.model_parameters`), so the two cannot size them differently.
    """
    prototypes = None
    pc = config.prototypes
    if pc is not None:
        prototypes = LabelPrototypes(
            num_labels,
            embedding_dim,
            pc.free_vectors_for(num_labels),
            heads=pc.lpn_heads,
            ffn_dim=pc.lpn_ffn,
            dropout=pc.lpn_dropout,
            lpn_inputs=pc.lpn_inputs,
            unseen_labels=pc.unseen_labels,
        )
    projection = None
    if config.images is not None and vision_dim is not None:
        projection = ImageProjection(vision_dim, hidden_size)
    return prototypes, projection


def meta_backbone(resolved: BackboneSpec) -> torch.nn.Module:
    """The backbone's model as :meth:`TextBackbone.from_pretrained` makes it (``AutoModel``, then its text
    model), built on the meta device: no weights read, no memory used. What the memory planner counts.

    Raises:
        ConfigError: transformers cannot build the config.
    """
    from transformers import AutoModel

    try:
        with torch.device("meta"):
            model = AutoModel.from_config(resolved.config)
    except Exception as exc:  # transformers raises many types for unbuildable configs
        raise ConfigError(
            f"cannot build {resolved.name_or_path!r} ({resolved.model_type}) from its config: {exc}"
        ) from exc
    return text_model(model, resolved.architecture, resolved.model_type)


def attach_backbone_lora(model: torch.nn.Module, resolved: BackboneSpec, lora: LoraConfig) -> torch.nn.Module:
    """``model`` (a :func:`meta_backbone`) wrapped with the adapters :meth:`TextBackbone.add_lora` attaches:
    the same targets (:func:`~vixml.models.lora.lora_targets`) through the same PEFT call, on the meta device."""
    from vixml.models.lora import attach_lora, lora_targets

    targets = lora_targets(lora.target_modules, resolved.lora_targets, resolved.model_type)
    with torch.device("meta"):
        return attach_lora(
            model, targets=targets, r=lora.r, alpha=lora.alpha, rslora=lora.rslora, dropout=lora.dropout
        )


def load_dual_encoder(model_dir, config: RunConfig, *, device: torch.device | str = "cpu") -> DualEncoder:
    """The final model of a run (``RunFolder.model_dir()``), with the run's runtime options, in eval mode.

    Raises:
        DataError: the model files are damaged (truncated weights, broken JSON), naming the folder.
    """
    mc = config.model
    try:
        model = DualEncoder.load(
            model_dir,
            device=device,
            attn_implementation=mc.attn_implementation,
            load_in_4bit=mc.lora is not None and mc.lora.quantize == "4bit",
        )
    except VixmlError:
        raise
    except Exception as exc:  # safetensors' own error type, json, torch and transformers: all mean damaged files
        raise DataError(
            Problem(
                str(model_dir),
                f"unreadable model files ({type(exc).__name__}: {exc}); restore the folder, or delete it and run "
                "`vixml train ... --resume` to write it again from the last checkpoint",
            )
        ) from None
    return model.to(device).eval()


def image_banks(config: RunConfig, dataset: XMCDataset) -> dict[str, ImageBank]:
    """The dataset's image banks per split when the config fuses images (docs/method.md 3), else ``{}``.

    Raises:
        ConfigError: images are configured but the dataset has none, or the banks' sizes disagree.
    """
    ic = config.images
    if ic is None:
        return {}
    banks = dict(dataset.images or {})
    if "trn" not in banks and "lbl" not in banks:
        raise ConfigError(
            f"images are configured but {dataset.path} has no image embeddings "
            "({split}_embs_imgs_<N>_<D>_<model>.npy + map): run `vixml images embed`, or set images=null"
        )
    dims = {bank.dim for bank in banks.values()}
    if len(dims) != 1 or (ic.embedding_dim is not None and dims != {ic.embedding_dim}):
        raise ConfigError(f"image embedding sizes {sorted(dims)} disagree (images.embedding_dim={ic.embedding_dim})")
    for split in ("trn", "tst", "lbl"):
        if split not in banks:
            logger.warning("no image embeddings for split '%s': its items are encoded from text only", split)
    return banks
