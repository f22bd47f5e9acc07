"""Metric tables as people read them: one row per metric family, one column per cut-off k."""

from __future__ import annotations

import re
from collections.abc import Mapping

from rich.table import Table

__all__ = ["comparison_table", "metrics_table", "split_metric_name", "HEADLINE_METRICS"]

_NAME = re.compile(r"^(?P<family>[A-Za-z]+)@(?P<k>\d+)$")
FAMILY_ORDER = ("P", "nDCG", "PSP", "PSnDCG", "R")
HEADLINE_METRICS = ("P@1", "P@3", "P@5", "nDCG@5", "PSP@1", "PSP@5", "R@10", "R@100", "MRR")
"""The figures papers report (METHOD.md 6 quotes P@1, P@5, PSP@1, R@100), shown when runs are compared."""


def split_metric_name(name: str) -> tuple[str, int | None]:
    """``"PSP@5"`` -> ``("PSP", 5)``; names without a cut-off (``"MRR"``) -> ``(name, None)``."""
    match = _NAME.match(name)
    return (match["family"], int(match["k"])) if match else (name, None)


def metrics_table(
    columns: Mapping[str, Mapping[str, float]], *, scale: float = 100.0, title: str | None = None
) -> Table:
    """Build a table of one or more metric dicts side by side.

    Args:
        columns: ``{"zero-shot": {"P@1": 0.3, ...}, "trained": {...}}``; one dict gives one block of columns.
        scale: multiply values by this (100 shows percentages as the XMC literature does).
        title: the table's caption.
    """
    ks = sorted({k for m in columns.values() for k in (split_metric_name(n)[1] for n in m) if k is not None})
    families = {split_metric_name(n)[0] for m in columns.values() for n in m}
    ordered = [f for f in FAMILY_ORDER if f in families] + sorted(families - set(FAMILY_ORDER))
    table = Table(title=title)
    table.add_column("metric")
    for name in columns:
        for k in ks:
            table.add_column(f"{name} @{k}" if len(columns) > 1 else f"@{k}", justify="right")
    single = [n for m in columns.values() for n in m if split_metric_name(n)[1] is None]
    for family in ordered:
        if family in single:
            continue
        row = [family]
        for metrics in columns.values():
            row += [_fmt(metrics.get(f"{family}@{k}"), scale) for k in ks]
        table.add_row(*row)
    for name in dict.fromkeys(single):
        row = [name]
        for metrics in columns.values():
            row += [_fmt(metrics.get(name), scale)] + [""] * (len(ks) - 1)
        table.add_row(*row)
    return table


def _fmt(value: float | None, scale: float) -> str:
    return "" if value is None else f"{value * scale:.2f}"


def comparison_table(
    columns: Mapping[str, Mapping[str, float]],
    *,
    keys: tuple[str, ...] = HEADLINE_METRICS,
    scale: float = 100.0,
    title: str | None = None,
) -> Table:
    """Metrics of several runs side by side: one row per metric in ``keys``, one column per run."""
    table = Table(title=title)
    table.add_column("metric")
    for name in columns:
        table.add_column(name, justify="right")
    for key in keys:
        if any(key in m for m in columns.values()):
            table.add_row(key, *(_fmt(m.get(key), scale) for m in columns.values()))
    return table
