"""Help pages that show a flag as a flag: ``--json``, not ``--json <bool>`` as if it took a value.

typer 0.29 prints a type for every option in its rich help, flags included (earlier versions hid "bool").
:func:`flags_take_no_value` gives every command and group of an app a class that clears the type column
of its flags (``--help`` too) before the page is drawn; parsing is unchanged.
"""

from __future__ import annotations

from typing import Any

import typer
from typer.core import TyperCommand, TyperGroup

__all__ = ["flags_take_no_value"]


def _clear_flag_types(command: Any, ctx: Any) -> None:
    for param in command.get_params(ctx):  # the help option included
        if getattr(param, "is_flag", False) and not getattr(param, "count", False) and param.metavar is None:
            param.metavar = ""  # typer and click print the metavar in place of the type


class FlagCommand(TyperCommand):
    """A typer command whose help shows flags without a value type."""

    def format_help(self, ctx: Any, formatter: Any) -> None:
        _clear_flag_types(self, ctx)
        super().format_help(ctx, formatter)


class FlagGroup(TyperGroup):
    """A typer group whose help shows flags without a value type."""

    def format_help(self, ctx: Any, formatter: Any) -> None:
        _clear_flag_types(self, ctx)
        super().format_help(ctx, formatter)


def flags_take_no_value(app: typer.Typer) -> typer.Typer:
    """Give ``app``, its commands and its sub-apps the classes above (a class chosen on purpose is kept)."""
    app.info.cls = _chosen(app.info.cls, TyperGroup) or FlagGroup
    for command in app.registered_commands:
        command.cls = _chosen(command.cls, TyperCommand) or FlagCommand
    for group in app.registered_groups:
        group.cls = _chosen(group.cls, TyperGroup) or FlagGroup
        if group.typer_instance is not None:
            flags_take_no_value(group.typer_instance)
    return app


def _chosen(cls: Any, default: type) -> type | None:
    """``cls`` when someone picked it, None for typer's default (a placeholder, None, or the base class)."""
    return cls if isinstance(cls, type) and cls is not default else None
