"""Training curves as a PNG: the loss parts (named in words) and the test metrics in % against the epoch."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from vixml.atomic import atomic_path

__all__ = ["LOSS_NAMES", "plot_training_curves", "training_curves_figure"]

METRICS_SHOWN = ("P@1", "P@5", "nDCG@5", "PSP@1", "PSP@5", "R@100")
#: The loss parts (docs/method.md 4; history keys ``train/<part>``) in words.
LOSS_NAMES = {
    "loss": "total (weighted sum)",
    "L_u": "query → label text (L_u)",
    "L_uv": "query → prototype (L_uv)",
    "L_i": "label text → query (L_i)",
    "L_r": "prototype regulariser (L_r)",
}


def plot_training_curves(history: Sequence[dict[str, Any]], path: str | Path, title: str | None = None) -> Path:
    """Draw losses (``train/*`` keys) and metrics (``P@1``...) of every epoch record into ``path``.

    Args:
        history: one dict per epoch with an ``epoch`` key; missing values are skipped.
        path: the PNG to write (atomically).
        title: the figure's title.
    """
    fig = training_curves_figure(history, title)
    path = Path(path)
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    return path


def training_curves_figure(history: Sequence[dict[str, Any]], title: str | None = None):
    """The figure of :func:`plot_training_curves` (a ``matplotlib.figure.Figure``: no pyplot, no global backend)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(11, 4))
    ax_loss, ax_metric = fig.subplots(1, 2)
    parts = {k.removeprefix("train/") for rec in history for k in rec if k.startswith("train/")}
    for part in [p for p in LOSS_NAMES if p in parts] + sorted(parts - set(LOSS_NAMES)):
        points = [(r["epoch"], r[f"train/{part}"]) for r in history if f"train/{part}" in r]
        ax_loss.plot(*zip(*points, strict=True), marker=".", label=LOSS_NAMES.get(part, part))
    ax_loss.set(xlabel="epoch", ylabel="loss", title="training loss")
    for key in METRICS_SHOWN:
        points = [(r["epoch"], 100 * r[key]) for r in history if key in r]
        if points:
            ax_metric.plot(*zip(*points, strict=True), marker="o", label=key)
    ax_metric.set(xlabel="epoch", ylabel="%", title="test metrics in % (epoch 0 = before training)")
    for ax in (ax_loss, ax_metric):
        whole_epochs(ax)
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def whole_epochs(ax) -> None:
    """Ticks on whole epochs only: each epoch plotted when there are few (one point would get 0.95, 1.05, ...),
    else a whole-number locator."""
    from matplotlib.ticker import MaxNLocator

    epochs = sorted({float(x) for line in ax.get_lines() for x in line.get_xdata()})
    whole = [e for e in epochs if e.is_integer()]
    if 0 < len(whole) <= 12:
        ax.set_xticks(whole)
        if len(whole) == 1:
            ax.set_xlim(whole[0] - 0.5, whole[0] + 0.5)
    else:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
