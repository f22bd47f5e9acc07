"""Models: text backbones, pooling, PRIME label prototypes and the dual encoder (METHOD.md 2-4)."""

from __future__ import annotations

from vixml.models.amp import Precision, autocast, resolve_device
from vixml.models.backbone import TextBackbone, architecture_spec, register_architecture
from vixml.models.dual_encoder import DualEncoder
from vixml.models.encode import embed_tokens
from vixml.models.hub import resolve_pretrained
from vixml.models.pooling import PoolingMode, pool
from vixml.models.prototypes import LabelPrototypes

__all__ = [
    "DualEncoder",
    "LabelPrototypes",
    "PoolingMode",
    "Precision",
    "TextBackbone",
    "architecture_spec",
    "autocast",
    "embed_tokens",
    "pool",
    "register_architecture",
    "resolve_device",
    "resolve_pretrained",
]
