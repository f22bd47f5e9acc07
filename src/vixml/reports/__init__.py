"""Tables and plots: metric tables, training curves."""

from __future__ import annotations

from vixml.reports.plots import plot_training_curves
from vixml.reports.tables import (
    HEADLINE_METRICS,
    FittedTables,
    comparison_table,
    metrics_table,
    split_metric_name,
    units_title,
)

__all__ = [
    "HEADLINE_METRICS",
    "FittedTables",
    "comparison_table",
    "metrics_table",
    "plot_training_curves",
    "split_metric_name",
    "units_title",
]
