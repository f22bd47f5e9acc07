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
#: Training and test queries the demo uses (of 7,587 and 1,744; the files are shuffled, so the first rows are
#: a random sample): sized with demo.yaml to run in a few minutes on 2 AVX2-only cores (README, "Numbers").
DEMO_TRAIN_QUERIES = 2000
DEMO_TEST_QUERIES = 600


def _resource(name: str) -> Path:
    return Path(str(resources.files("vixml") / "resources" / "demo" / name))


def demo(
    out: Path = typer.Option(Path("runs/demo"), "--out", help="Folder for the dataset copy and the run."),
    overrides: list[str] = typer.Option([], "--set", help=SET_HELP),
    examples: int = typer.Option(5, "--examples", min=0, help="Test queries shown with their predictions."),
    train_queries: int = typer.Option(
        DEMO_TRAIN_QUERIES, "--train-queries", min=0, help="Training queries used (of 7,587); 0 = all."
    ),
    test_queries: int = typer.Option(
        DEMO_TEST_QUERIES, "--test-queries", min=0, help="Test queries evaluated (of 1,744); 0 = all."
    ),
    as_json: bool = typer.Option(
        False, "--json", help="Print the zero-shot and trained metrics as JSON (fractions, 0-1)."
    ),
) -> None:
    """Train on the bundled WordNet noun -> hypernym dataset (about 7 minutes on 2 CPU cores).

    Prints the metrics of the zero-shot encoder and of the trained model side by side, a few predictions,
    and where the run folder and plots are. A killed demo resumes from its last checkpoint when run again.
    """
    import json
    import tempfile

    from vixml.config import load_config
    from vixml.data import load_dataset, prepare_dataset
    from vixml.errors import TrainingInterrupted
    from vixml.training import train

    data = out / "data"
    sizes = {"trn": train_queries, "tst": test_queries}
    if not (data / "dataset.json").exists() or _demo_sizes(data) != sizes:
        with tempfile.TemporaryDirectory() as staging:
            source = _subset(_resource(DEMO_DATA), Path(staging) / DEMO_DATA, sizes)
            prepare_dataset(source, data, overwrite=True)
        (data / DEMO_SIZES).write_text(json.dumps(sizes) + "\n", encoding="utf-8")
    used = {split: f"{count:,}" if count else "all" for split, count in sizes.items()}
    err_console.print(
        f"demo: {used['trn']} training and {used['tst']} test queries of the bundled WordNet set "
        "(--train-queries 0 --test-queries 0 for all of them)"
    )
    cfg = load_config(_resource(DEMO_CONFIG), overrides)
    run_dir = out / "run"
    resume = (run_dir / "checkpoints" / "latest").exists()
    try:
        run = train(cfg, data, run_dir, resume=resume)
    except TrainingInterrupted as exc:  # the demo resumes by itself: no --resume to pass
        exc.args = (f"interrupted at epoch {exc.epoch} step {exc.step}; run the demo again to continue ({run_dir})",)
        raise
    metrics = json.loads((run / "metrics.json").read_text())
    if as_json:
        emit_json({"run": str(run), **metrics, "units": FRACTION})
        return
    from vixml.cli.train import print_final_metrics

    print_final_metrics(metrics)
    if examples:
        _show_examples(run, load_dataset(data, images=False), examples)
    err_console.print(f"run folder: {run}  (plots: {run / 'curves.png'}, metrics: {run / 'history.csv'})")


DEMO_SIZES = "demo-sizes.json"


def _demo_sizes(data: Path) -> dict | None:
    import json

    try:
        return json.loads((data / DEMO_SIZES).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _subset(src: Path, staging: Path, sizes: dict[str, int]) -> Path:
    """A copy of the bundled dataset with the first ``sizes[split]`` queries of each split (0 = all).

    Query texts, label rows and reciprocal-pair filters are cut together; labels are kept whole, so the
    label ids and the test metrics' label space do not change.
    """
    import shutil

    staging.mkdir(parents=True, exist_ok=True)
    for path in src.iterdir():
        if path.name.startswith(("trn", "tst", "filter_labels_")):
            continue
        shutil.copy2(path, staging / path.name)
    for split, filter_name in (("trn", "filter_labels_train.txt"), ("tst", "filter_labels_test.txt")):
        texts = (src / f"{split}.raw.txt").read_text(encoding="utf-8").splitlines()
        header, *rows = (src / f"{split}_X_Y.txt").read_text(encoding="utf-8").splitlines()
        keep = min(sizes[split] or len(texts), len(texts))
        n_labels = header.split()[1]
        (staging / f"{split}.raw.txt").write_text("\n".join(texts[:keep]) + "\n", encoding="utf-8")
        (staging / f"{split}_X_Y.txt").write_text(
            "\n".join([f"{keep} {n_labels}", *rows[:keep]]) + "\n", encoding="utf-8"
        )
        if (src / filter_name).exists():
            pairs = (src / filter_name).read_text(encoding="utf-8").splitlines()
            kept = [pair for pair in pairs if pair.strip() and int(pair.split()[0]) < keep]
            (staging / filter_name).write_text("".join(f"{pair}\n" for pair in kept), encoding="utf-8")
    return staging


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
