"""Metric tables as people read them: one row per metric family, one column per cut-off k.

Values are shown in percent (the XMC literature's convention) and every title says so; JSON and CSV files
keep fractions. A table never gets cut: each builder returns :class:`FittedTables`, which draws the first
layout that fits the console (all runs side by side, then one table per run, then cut-offs as rows).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence

from rich.console import Console, ConsoleOptions, RenderResult
from rich.measure import Measurement
from rich.table import Table

__all__ = [
    "FittedTables",
    "comparison_table",
    "metrics_table",
    "split_metric_name",
    "units_title",
    "HEADLINE_METRICS",
]

_NAME = re.compile(r"^(?P<family>[A-Za-z]+)@(?P<k>\d+)$")
FAMILY_ORDER = ("P", "nDCG", "PSP", "PSnDCG", "R")
HEADLINE_METRICS = ("P@1", "P@3", "P@5", "nDCG@5", "PSP@1", "PSP@5", "R@10", "R@100", "MRR")
"""The figures papers report (docs/method.md 6 quotes P@1, P@5, PSP@1, R@100), shown when runs are compared."""

Metrics = Mapping[str, float]


class FittedTables:
    """Several layouts of the same figures; the console draws the first whose tables fit its width.

    Args:
        layouts: each layout is a list of tables drawn one below the other, widest layout first; the last
            one is drawn (squeezed if need be) when none fits.
    """

    def __init__(self, layouts: Sequence[Sequence[Table]]):
        if not layouts:
            raise ValueError("at least one layout is needed")
        self.layouts = [list(tables) for tables in layouts]

    def choose(self, console: Console, options: ConsoleOptions) -> list[Table]:
        """The layout drawn at ``options.max_width``: natural widths are measured without that limit."""
        unbounded = options.update_width(1 << 16)
        for tables in self.layouts:
            if all(Measurement.get(console, unbounded, t).maximum <= options.max_width for t in tables):
                return tables
        return self.layouts[-1]

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        yield from self.choose(console, options)

    def __rich_measure__(self, console: Console, options: ConsoleOptions) -> Measurement:
        sizes = [Measurement.get(console, options, t) for t in self.choose(console, options)]
        return Measurement(max(s.minimum for s in sizes), max(s.maximum for s in sizes))

    @property
    def tables(self) -> list[Table]:
        """The widest layout's tables (every figure in as few tables as possible)."""
        return self.layouts[0]


def split_metric_name(name: str) -> tuple[str, int | None]:
    """``"PSP@5"`` -> ``("PSP", 5)``; names without a cut-off (``"MRR"``) -> ``(name, None)``."""
    match = _NAME.match(name)
    return (match["family"], int(match["k"])) if match else (name, None)


def units_title(title: str | None, scale: float) -> str:
    """The title with its unit: ``"test metrics"`` -> ``"test metrics (%)"`` for ``scale=100``."""
    unit = "%" if scale == 100 else "fractions" if scale == 1 else f"x{scale:g}"
    if title and unit in title:
        return title
    return f"{title} ({unit})" if title else f"metrics ({unit})"


def metrics_table(columns: Mapping[str, Metrics], *, scale: float = 100.0, title: str | None = None) -> FittedTables:
    """One or more metric dicts as tables that fit the console.

    Args:
        columns: ``{"zero-shot": {"P@1": 0.3, ...}, "trained": {...}}``; one dict gives one block of columns.
        scale: multiply values by this (100 shows percentages as the XMC literature does); the title says it.
        title: the caption (its unit is appended).

    Returns:
        Layouts, widest first: every dict side by side (rows = metric families, columns = cut-offs); one
        table per dict; one table per dict with the cut-offs as rows.
    """
    heading = units_title(title, scale)
    layouts = [[_wide(columns, scale, heading)]]
    if len(columns) > 1:
        layouts.append([_wide({name: m}, scale, f"{heading}: {name}") for name, m in columns.items()])
    suffix = (lambda name: f"{heading}: {name}") if len(columns) > 1 else (lambda name: heading)
    layouts.append([_tall(m, scale, suffix(name)) for name, m in columns.items()])
    return FittedTables(layouts)


def _cutoffs(columns: Mapping[str, Metrics]) -> list[int]:
    return sorted({k for m in columns.values() for k in (split_metric_name(n)[1] for n in m) if k is not None})


def _families(columns: Mapping[str, Metrics]) -> tuple[list[str], list[str]]:
    """(families with cut-offs in display order, metrics without a cut-off)."""
    names = [n for m in columns.values() for n in m]
    single = list(dict.fromkeys(n for n in names if split_metric_name(n)[1] is None))
    families = {split_metric_name(n)[0] for n in names if split_metric_name(n)[1] is not None}
    return [f for f in FAMILY_ORDER if f in families] + sorted(families - set(FAMILY_ORDER)), single


def _wide(columns: Mapping[str, Metrics], scale: float, title: str) -> Table:
    """Rows = metric families, columns = (dict, cut-off)."""
    ks = _cutoffs(columns)
    families, single = _families(columns)
    table = Table(title=title)
    table.add_column("metric", no_wrap=True)
    for name in columns:
        for k in ks:
            table.add_column(f"{name} @{k}" if len(columns) > 1 else f"@{k}", justify="right", no_wrap=True)
    for family in families:
        row = [family]
        for metrics in columns.values():
            row += [_fmt(metrics.get(f"{family}@{k}"), scale) for k in ks]
        table.add_row(*row)
    for name in single:
        row = [name]
        for metrics in columns.values():
            row += [_fmt(metrics.get(name), scale)] + [""] * (len(ks) - 1)
        table.add_row(*row)
    return table


def _tall(metrics: Metrics, scale: float, title: str) -> Table:
    """Rows = cut-offs, columns = metric families; metrics without a cut-off in the caption."""
    families, single = _families({"": metrics})
    caption = ", ".join(f"{name} {_fmt(metrics.get(name), scale)}" for name in single) or None
    table = Table(title=title, caption=caption)
    table.add_column("k", justify="right", no_wrap=True)
    for family in families:
        table.add_column(family, justify="right", no_wrap=True)
    for k in _cutoffs({"": metrics}):
        table.add_row(f"@{k}", *(_fmt(metrics.get(f"{family}@{k}"), scale) for family in families))
    return table


def _fmt(value: float | None, scale: float) -> str:
    return "" if value is None else f"{value * scale:.2f}"


def comparison_table(
    columns: Mapping[str, Metrics],
    *,
    keys: tuple[str, ...] = HEADLINE_METRICS,
    scale: float = 100.0,
    title: str | None = None,
) -> FittedTables:
    """Metrics of several runs side by side: one row per metric in ``keys``, one column per run.

    When the runs do not fit the console side by side they are drawn in groups (each table repeats the
    metric names).
    """
    heading = units_title(title, scale)
    names = list(columns)
    layouts = [
        [_comparison({n: columns[n] for n in group}, keys, scale, heading) for group in _groups(names, count)]
        for count in range(1, len(names) + 1)
    ]
    return FittedTables(layouts or [[_comparison({}, keys, scale, heading)]])


def _groups(names: list[str], count: int) -> Iterator[list[str]]:
    """``names`` in ``count`` groups of nearly equal size (9 runs in 2 groups: 5 + 4, not 8 + 1)."""
    size = -(-len(names) // count)
    for start in range(0, len(names), size):
        yield names[start : start + size]


def _comparison(columns: Mapping[str, Metrics], keys: tuple[str, ...], scale: float, title: str) -> Table:
    table = Table(title=title)
    table.add_column("metric", no_wrap=True)
    for name in columns:
        table.add_column(name, justify="right")
    for key in keys:
        if any(key in m for m in columns.values()):
            table.add_row(key, *(_fmt(m.get(key), scale) for m in columns.values()))
    return table
