"""One table cell of image references -> the references, defined once for ``prepare`` and ``images fetch``.

A catalogue's image column (``vixml data prepare``) and a URL table (``vixml images fetch --urls``) hold
the same kind of cell; both read it here, so they cannot drift apart:

- empty (None, NaN, ``""``) -> no reference;
- a list (Parquet, JSON lines) -> its items, in order;
- a text starting with ``[`` that parses as a JSON list -> its items;
- a text holding ``separator`` (``|`` by default; None never splits) -> its parts, except a ``data:`` URI,
  which is one reference whatever it holds;
- any other text -> one reference.

Each reference is stripped; empty ones are dropped. URLs (``scheme://...``), ``data:`` URIs and absolute
paths are kept as written; a relative path is resolved against ``base``, the folder of the table that
holds it, so that the reference still works from another working directory.
"""

from __future__ import annotations

import json
import math
import os
import re
from pathlib import Path

import numpy as np

__all__ = ["parse_image_cell", "is_url", "is_local"]

_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


def is_url(ref: str) -> bool:
    """Whether ``ref`` is a ``scheme://`` URL (http, https, file, ...)."""
    return bool(_SCHEME.match(ref))


def is_local(ref: str) -> bool:
    """Whether ``ref`` reads the local file system: a path or a ``file://`` URL (not http(s), not ``data:``)."""
    lowered = ref[:8].lower()
    if lowered.startswith("data:"):
        return False
    return lowered.startswith("file://") or not is_url(ref)


def parse_image_cell(value, base: str | os.PathLike, separator: str | None = "|") -> list[str]:
    """The references of one cell (see the module docstring), relative paths resolved against ``base``."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return []
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            try:
                parsed = json.loads(text)
            except ValueError:
                parsed = None
            value = parsed if isinstance(parsed, list) else [text]
        elif separator and separator in text and text[:5].lower() != "data:":
            value = text.split(separator)
        else:
            value = [text]
    elif isinstance(value, np.ndarray):
        value = value.reshape(-1).tolist()  # a list cell read through numpy
    elif not isinstance(value, (list, tuple)):
        value = [value]
    refs = [str(v).strip() for v in value if v is not None and str(v).strip()]
    root = Path(base).resolve()
    return [
        r if (is_url(r) or r[:5].lower() == "data:" or os.path.isabs(r)) else str((root / r).resolve()) for r in refs
    ]
