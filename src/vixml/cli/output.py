"""How commands print: one JSON object on stdout with ``--json``, rich tables otherwise."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import typer
from rich.console import Console

from vixml.errors import DataError, Problem

__all__ = ["FRACTION", "check_out", "emit_json", "console", "err_console"]

#: The ``"units"`` value of every JSON object holding metrics: fractions in [0, 1] (tables show %).
FRACTION = "fraction"

console = Console()
err_console = Console(stderr=True, soft_wrap=True)


def _clean(value: Any) -> Any:
    """Make numpy scalars and non-finite floats JSON-safe."""
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if hasattr(value, "item") and callable(value.item):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def emit_json(obj: dict) -> None:
    """Print ``obj`` as the only thing on stdout."""
    typer.echo(json.dumps(_clean(obj), indent=2, sort_keys=False))


def check_out(out: Path, option: str = "--out") -> None:
    """Refuse an output file that names a folder before any work is done (not by the final rename after it)."""
    if out.is_dir():
        raise DataError(
            Problem(str(out), f"is a folder: {option} must name a file to write (e.g. {out / 'pred.npz'})")
        )
