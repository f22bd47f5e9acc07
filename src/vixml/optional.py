"""Lazy imports of optional dependencies, failing with the pip extra to install."""

from __future__ import annotations

import importlib
from types import ModuleType

from vixml.errors import MissingExtraError

__all__ = ["require"]


def require(module: str, extra: str) -> ModuleType:
    """Import ``module`` or raise a :class:`MissingExtraError` naming ``pip install 'vixml[extra]'``."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingExtraError(
            f"'{module}' is needed for this feature but is not installed: pip install 'vixml[{extra}]'"
        ) from exc
