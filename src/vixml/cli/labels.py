"""``vixml labels``: add labels to a trained run (no retraining), hide labels, list the edits."""

from __future__ import annotations

from pathlib import Path

import typer

from vixml.cli.output import emit_json, err_console

__all__ = ["app"]

app = typer.Typer(help="Edit a trained run's labels (an overlay in the run folder).", no_args_is_help=True)


@app.command("add")
def add(
    run: Path = typer.Argument(..., help="A run folder written by vixml train."),
    texts: Path = typer.Option(..., "--texts", help="One label per line, or a table with a text column (+ images)."),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda, cuda:N."),
    as_json: bool = typer.Option(False, "--json", help="Print the new ids as one JSON object."),
) -> None:
    """Add labels: encoded as trained labels are (PRIME: prototype with a free vector and a zero centroid)."""
    from vixml.data.queries import read_text_input
    from vixml.inference import Predictor
    from vixml.inference.free_input import open_images
    from vixml.inference.labels import add_labels
    from vixml.inference.overlay import LabelOverlay

    labels = read_text_input(texts)
    with LabelOverlay.lock(run, "vixml labels add"):
        predictor = Predictor.load(run, device=device)
        images = None
        if labels.images is not None and any(labels.images):
            if not predictor.model.uses_images("label"):
                err_console.print(f"note: {texts} has image references but the run encodes labels from text only")
            else:
                images = open_images(labels.images, str(texts))
        ids = add_labels(predictor, labels.texts, images)
    if as_json:
        emit_json({"run": str(run), "added": ids, "labels": predictor.labels.num_visible})
    else:
        err_console.print(f"added {len(ids)} labels to {run} (ids {ids[0]}..{ids[-1]})")


@app.command("hide")
def hide(
    run: Path = typer.Argument(..., help="A run folder written by vixml train."),
    ids: list[int] = typer.Argument(..., help="Label ids to hide (they never appear in results again)."),
) -> None:
    """Hide labels (trained or added) from every later prediction of the run."""
    from vixml.inference import Predictor
    from vixml.inference.labels import hide_labels
    from vixml.inference.overlay import LabelOverlay

    with LabelOverlay.lock(run, "vixml labels hide"):
        predictor = Predictor.load(run, device="cpu")
        hide_labels(predictor, ids, source="ids")
    err_console.print(f"hid {len(ids)} label(s) of {run}")


@app.command("list")
def list_edits(
    run: Path = typer.Argument(..., help="A run folder written by vixml train."),
) -> None:
    """Print the run's label edits as one JSON object (added labels, hidden ids)."""
    import numpy as np

    from vixml.inference.overlay import LabelOverlay
    from vixml.run_folder import RunFolder

    folder = RunFolder(run).require_finished()
    overlay = LabelOverlay.read(folder, np.load(folder.label_embeddings, mmap_mode="r"))
    emit_json(
        {
            "trained_labels": overlay.base_labels,
            "added": [a.__dict__ for a in overlay.added],
            "hidden": sorted(overlay.hidden),
        }
    )
