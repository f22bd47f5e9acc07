"""``vixml demo``: the embedded default. Train the offline MiniLM on the bundled WordNet dataset and show it."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import typer

from vixml.cli.output import FRACTION, console, emit_json, err_console

__all__ = ["demo", "DEMO_DATA", "DEMO_CONFIG"]

DEMO_DATA = "wordnet-hypernyms"
DEMO_CONFIG = "demo.yaml"
SET_HELP = "Override a config key, e.g. --set train.epochs=1 (repeatable)."


def _resource(name: str) -> Path:
    return Path(str(resources.files("vixml") / "resources" / "demo" / name))


def demo(
    out: Path = typer.Option(Path("runs/demo"), "--out", help="Folder for the dataset copy and the run."),
    overrides: list[str] = typer.Option([], "--set", help=SET_HELP),
    examples: int = typer.Option(5, "--examples", min=0, help="Test queries shown with their predictions."),
    as_json: bool = typer.Option(
        False, "--json", help="Print the zero-shot and trained metrics as JSON (fractions, 0-1)."
    ),
) -> None:
    """Train on the bundled WordNet noun -> hypernym dataset (about 7 minutes on 2 CPU cores).

    Prints the metrics of the zero-shot encoder and of the trained model side by side, a few predictions,
    and where the run folder and plots are. A killed demo resumes from its last checkpoint when run again.
    """
    import json

    from vixml.config import load_config
    from vixml.data import load_dataset, prepare_dataset
    from vixml.training import train

    data = out / "data"
    if not (data / "dataset.json").exists():
        prepare_dataset(_resource(DEMO_DATA), data, overwrite=True)
    cfg = load_config(_resource(DEMO_CONFIG), overrides)
    run_dir = out / "run"
    resume = (run_dir / "checkpoints" / "latest").exists()
    run = train(cfg, data, run_dir, resume=resume)
    metrics = json.loads((run / "metrics.json").read_text())
    if as_json:
        emit_json({"run": str(run), **metrics, "units": FRACTION})
        return
    from vixml.cli.train import print_final_metrics

    print_final_metrics(metrics)
    if examples:
        _show_examples(run, load_dataset(data, images=False), examples)
    err_console.print(f"run folder: {run}  (plots: {run / 'curves.png'}, metrics: {run / 'history.csv'})")


def _show_examples(run: Path, dataset, count: int) -> None:
    from rich.table import Table

    from vixml.inference import Predictor

    predictor = Predictor.load(run)
    rows = list(range(min(count, dataset.n_test)))
    texts = dataset.tst_texts[rows]
    _, indices = predictor.predict(texts, k=3)
    table = Table(title="example test predictions (+ = a true label)")
    table.add_column("query")
    table.add_column("top-3 predicted labels")
    for row, text, labels in zip(rows, texts, indices, strict=True):
        true = set(dataset.tst_Y[row].indices.tolist())
        shown = [f"{'+' if lab in true else '-'} {dataset.lbl_texts[int(lab)].split(':')[0]}" for lab in labels]
        table.add_row(text[:60], "\n".join(shown))
    console.print(table)
