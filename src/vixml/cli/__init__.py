"""The ``vixml`` command line (typer): thin commands that parse options and call the library."""

from __future__ import annotations

__all__: list[str] = []
