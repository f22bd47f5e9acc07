"""Tables and plots: metric tables, training curves, metrics by label-frequency decile."""

from __future__ import annotations

from vixml.reports.tables import metrics_table, split_metric_name

__all__ = ["metrics_table", "split_metric_name"]
