"""Vision: image ingestion (URLs/files -> thumbnail banks) and embedding extraction with HF vision models.

Names load lazily: ``import vixml.vision`` imports neither PIL nor torch nor transformers.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "fetch_images": "vixml.vision.fetch",
    "FetchOptions": "vixml.vision.fetch",
    "FetchResult": "vixml.vision.fetch",
    "load_image_refs": "vixml.vision.image_refs",
    "ImageRefs": "vixml.vision.image_refs",
    "DownloadPolicy": "vixml.vision.download",
    "thumbnail": "vixml.vision.thumbnail",
    "load_vision_model": "vixml.vision.models",
    "VisionEncoder": "vixml.vision.models",
    "DEFAULT_VISION_MODEL": "vixml.vision.models",
    "embed_images": "vixml.vision.embed",
    "embed_bank": "vixml.vision.embed",
    "embed_dataset": "vixml.vision.embed_dataset",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'vixml.vision' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
