"""Models: text backbones (encoders and decoders), the sequence assembler, LoRA, image fusion, PRIME label
prototypes and the dual encoder (docs/method.md 2-4)."""

from __future__ import annotations

from vixml.models.amp import Precision, ResolvedPrecision, autocast, resolve_device
from vixml.models.architectures import (
    ArchitectureSpec,
    BackboneSpec,
    architecture_spec,
    register_architecture,
    resolve_backbone,
)
from vixml.models.assembler import ENCODER_SEGMENTS, Assembled, SequenceAssembler
from vixml.models.backbone import TextBackbone, default_dtype
from vixml.models.build import (
    build_dual_encoder,
    check_pretrained,
    image_banks,
    load_dual_encoder,
    segments_for,
)
from vixml.models.dual_encoder import DualEncoder
from vixml.models.encode import embed_tokens
from vixml.models.fusion import ImageProjection, drop_images
from vixml.models.hub import resolve_pretrained
from vixml.models.pooling import PoolingMode, pool
from vixml.models.prototypes import LabelPrototypes
from vixml.models.split_encoder import SplitEncoder

__all__ = [
    "ENCODER_SEGMENTS",
    "ArchitectureSpec",
    "Assembled",
    "DualEncoder",
    "ImageProjection",
    "LabelPrototypes",
    "PoolingMode",
    "Precision",
    "ResolvedPrecision",
    "SequenceAssembler",
    "TextBackbone",
    "BackboneSpec",
    "resolve_backbone",
    "check_pretrained",
    "build_dual_encoder",
    "image_banks",
    "load_dual_encoder",
    "segments_for",
    "SplitEncoder",
    "architecture_spec",
    "autocast",
    "default_dtype",
    "drop_images",
    "embed_tokens",
    "pool",
    "register_architecture",
    "resolve_device",
    "resolve_pretrained",
]
