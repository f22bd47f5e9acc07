"""Every config key is read by some component (no dead options), except those of open issues listed here."""

from __future__ import annotations

import dataclasses
import re
import typing
from pathlib import Path

from vixml.config import RunConfig

SRC = Path(__file__).resolve().parents[1] / "src" / "vixml"

# Keys whose consumer arrives with an open issue; remove them from here as they land.
PENDING: set[str] = set()
# Keys read through a derived method of their section rather than by name.
DERIVED = {"data.label_max_length": "label_length(", "images.placement": "resolve_placement("}


def _keys(cls: type, prefix: str = "") -> list[str]:
    keys = []
    hints = typing.get_type_hints(cls)
    for field in dataclasses.fields(cls):
        inner = [a for a in typing.get_args(hints[field.name]) if dataclasses.is_dataclass(a)]
        target = inner[0] if inner else hints[field.name]
        if dataclasses.is_dataclass(target):
            keys += _keys(target, f"{prefix}{field.name}.")
        else:
            keys.append(prefix + field.name)
    return keys


def test_every_config_key_is_read():
    source = "\n".join(p.read_text() for p in SRC.rglob("*.py") if p.parent.name != "config")
    unread = []
    for key in _keys(RunConfig):
        if key in PENDING:
            continue
        needle = DERIVED.get(key, None)
        found = needle in source if needle else re.search(rf"\.{key.split('.')[-1]}\b", source)
        if not found:
            unread.append(key)
    assert not unread, f"config keys no component reads (remove them or use them): {unread}"
    assert len(_keys(RunConfig)) > 60
