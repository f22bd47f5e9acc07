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
    texts: Path = typer.Option(
        ..., "--texts", help="One label per line, or a table with a text column (+ an id column, + images)."
    ),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda, cuda:N."),
    as_json: bool = typer.Option(False, "--json", help="Print the new rows and ids as one JSON object."),
) -> None:
    """Add labels: encoded as trained labels are (PRIME: prototype with a free vector and a zero centroid).

    A table's id column (id or label_id) gives each label its own id; an id another label has is refused.
    """
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
        rows = add_labels(predictor, labels.texts, images, labels.ids, by="vixml labels add", source=str(texts))
    keys = [predictor.labels.key(r) for r in rows]
    if as_json:
        emit_json({"run": str(run), "added": rows, "ids": keys, "labels": predictor.labels.num_visible})
    else:
        err_console.print(f"added {len(rows)} labels to {run} (rows {rows[0]}..{rows[-1]}, ids {', '.join(keys)})")


_REFS = typer.Argument(
    ..., help="Labels by their own id (the catalogue's) or row number; an id is looked up first (see --help)."
)


@app.command("hide")
def hide(
    run: Path = typer.Argument(..., help="A run folder written by vixml train."),
    ids: list[str] = _REFS,
) -> None:
    """Hide labels (trained or added) from every later prediction of the run; `vixml labels unhide` undoes it.

    Each label is named by its own id (a catalogue's `id`, or the id it was added with) or by its row number:
    a name that is some label's id is that label, even when it looks like a number; otherwise a whole number
    is a row. Runs trained on data without ids name labels by row only.
    """
    _edit(run, ids, hide=True)


@app.command("unhide")
def unhide(
    run: Path = typer.Argument(..., help="A run folder written by vixml train."),
    ids: list[str] = _REFS,
) -> None:
    """Show hidden labels again (undo `vixml labels hide`); labels are named as `hide` names them."""
    _edit(run, ids, hide=False)


def _edit(run: Path, refs: list[str], *, hide: bool) -> None:
    from vixml.inference import Predictor
    from vixml.inference.labels import hide_labels, unhide_labels
    from vixml.inference.overlay import LabelOverlay

    command = f"vixml labels {'hide' if hide else 'unhide'}"
    with LabelOverlay.lock(run, command):
        predictor = Predictor.load(run, device="cpu")
        rows = (hide_labels if hide else unhide_labels)(predictor, refs, source="ids", by=command)
    labels = predictor.labels
    for row in rows:
        err_console.print(f"{'hid' if hide else 'showed'} label {labels.key(row)!r} (row {row}): {labels.text(row)}")


@app.command("list")
def list_edits(
    run: Path = typer.Argument(..., help="A run folder written by vixml train."),
) -> None:
    """Print the run's label edits as one JSON object: added labels, hidden ones, and the history of edits.

    ``history`` lists every add, hide and unhide, oldest first: when (UTC), which rows and ids, by whom.
    """
    from vixml.inference.labels import LabelSet, read_label_ids
    from vixml.inference.overlay import LabelOverlay
    from vixml.run_folder import RunFolder

    folder = RunFolder(run).require_finished()
    embeddings = folder.load_label_embeddings(mmap=True)
    overlay = LabelOverlay.read(folder, embeddings)
    labels = LabelSet(embeddings, None, overlay, read_label_ids(folder, embeddings.shape[0]))
    emit_json(
        {
            "trained_labels": overlay.base_labels,
            "label_ids": labels.base_ids is not None,
            "added": [{**a.__dict__, "catalogue_id": labels.key(a.id)} for a in overlay.added],
            "hidden": sorted(overlay.hidden),
            "hidden_ids": [labels.key(r) for r in sorted(overlay.hidden)],
            "history": list(overlay.history),
        }
    )
