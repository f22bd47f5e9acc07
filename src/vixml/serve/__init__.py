"""The HTTP service over a trained run (FastAPI): predict, runtime label edits, health, metrics, the web page.

Needs the ``serve`` extra (fastapi, uvicorn, prometheus-client, python-multipart, fastapi-offline). Names
load lazily, so ``vixml.serve.run.quiet_openmp`` can run before anything imports torch.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "create_app": "vixml.serve.app",
    "serve": "vixml.serve.run",
    "quiet_openmp": "vixml.serve.run",
    "Limits": "vixml.serve.settings",
    "ServeSettings": "vixml.serve.settings",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'vixml.serve' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
