"""Training curves as a PNG: the loss parts and the test metrics against the epoch."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from vixml.atomic import atomic_path

__all__ = ["plot_training_curves"]

METRICS_SHOWN = ("P@1", "P@5", "nDCG@5", "PSP@1", "PSP@5", "R@100")


def plot_training_curves(history: Sequence[dict[str, Any]], path: str | Path, title: str | None = None) -> Path:
    """Draw losses (``train/*`` keys) and metrics (``P@1``...) of every epoch record into ``path``.

    Args:
        history: one dict per epoch with an ``epoch`` key; missing values are skipped.
        path: the PNG to write (atomically).
        title: the figure's title.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_loss, ax_metric) = plt.subplots(1, 2, figsize=(11, 4))
    loss_keys = sorted({k for rec in history for k in rec if k.startswith("train/")})
    for key in loss_keys:
        points = [(r["epoch"], r[key]) for r in history if key in r]
        if points:
            ax_loss.plot(*zip(*points, strict=True), marker=".", label=key.removeprefix("train/"))
    ax_loss.set(xlabel="epoch", ylabel="loss", title="training loss")
    for key in METRICS_SHOWN:
        points = [(r["epoch"], 100 * r[key]) for r in history if key in r]
        if points:
            ax_metric.plot(*zip(*points, strict=True), marker="o", label=key)
    ax_metric.set(xlabel="epoch", ylabel="%", title="test metrics (epoch 0 = before training)")
    for ax in (ax_loss, ax_metric):
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    path = Path(path)
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
    return path
