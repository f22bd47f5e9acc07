"""Tables that fit 80 columns and say their unit; training curves with whole epochs and worded loss parts."""

from __future__ import annotations

import numpy as np
from rich.console import Console

from vixml.reports import comparison_table, metrics_table, units_title
from vixml.reports.plots import plot_training_curves, training_curves_figure


def _metrics(k: int, base: float) -> dict[str, float]:
    found = {f"{f}@{i}": base - i / 1000 for f in ("P", "nDCG", "PSP", "PSnDCG", "R") for i in range(1, k + 1)}
    return {**found, "R@100": 0.9867, "MRR": 0.7267}


def _render(renderable, width: int = 80) -> str:
    console = Console(width=width, record=True, color_system=None)
    console.print(renderable)
    return console.export_text()


def test_evaluate_table_fits_80_columns_with_every_value():
    """@1..@10 and @100 do not fit as columns in 80: the cut-offs become rows; nothing is cut."""
    metrics = _metrics(10, 0.6)
    text = _render(metrics_table({"pred.npz": metrics}, title="pred.npz vs tst_X_Y.txt (A=0.55, B=1.5)"))
    assert max(map(len, text.splitlines())) <= 80 and "…" not in text
    for name, value in metrics.items():
        assert f"{100 * value:.2f}" in text, name
    assert "(%)" in text and "@100" in text and "MRR 72.67" in text


def test_a_table_that_fits_keeps_the_wide_layout():
    text = _render(metrics_table({"pred.npz": _metrics(5, 0.6)}), width=120)
    header = next(line for line in text.splitlines() if "@1 " in line)
    assert "@5" in header and "@100" in header  # cut-offs as columns


def test_two_runs_at_80_columns_are_drawn_one_below_the_other():
    text = _render(metrics_table({"zero-shot": _metrics(5, 0.3), "trained": _metrics(5, 0.6)}))
    assert max(map(len, text.splitlines())) <= 80 and "…" not in text
    assert "metrics (%): zero-shot" in text and "metrics (%): trained" in text
    assert "29.90" in text and "59.90" in text  # P@1 - ... of each run: 0.3 - 0.001, 0.6 - 0.001


def test_many_runs_are_compared_in_even_groups():
    runs = {f"run {i}": _metrics(5, 0.5 + i / 100) for i in range(9)}
    text = _render(comparison_table(runs, title="test metrics"))
    assert max(map(len, text.splitlines())) <= 80 and "…" not in text
    assert text.count("test metrics (%)") == 2  # 5 + 4 runs, each table titled with its unit
    assert all(f"run {i}" in text for i in range(9))


def test_units_are_in_every_title():
    assert units_title("test metrics (%)", 100) == "test metrics (%)"
    assert units_title(None, 100) == "metrics (%)" and units_title("m", 1) == "m (fractions)"


HISTORY = [
    {"epoch": 0, "P@1": 0.28, "R@100": 0.86},
    *(
        {"epoch": e, "train/loss": 1 / e, "train/L_u": 0.5 / e, "train/L_uv": 0.3 / e, "P@1": 0.5 + e / 100}
        for e in (1, 2, 3)
    ),
]


def test_curves_have_whole_epochs_and_loss_parts_in_words(tmp_path):
    fig = training_curves_figure(HISTORY)
    loss_ax, metric_ax = fig.axes
    for ax in (loss_ax, metric_ax):
        ticks = [t for t in ax.get_xticks() if ax.get_xlim()[0] <= t <= ax.get_xlim()[1]]
        assert ticks and np.allclose(ticks, np.round(ticks)), ticks  # no 0.5, 1.5, ...
    assert loss_ax.get_legend_handles_labels()[1] == [
        "total (weighted sum)",
        "query → label text (L_u)",
        "query → prototype (L_uv)",
    ]
    assert "%" in metric_ax.get_ylabel()
    path = plot_training_curves(HISTORY, tmp_path / "curves.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
