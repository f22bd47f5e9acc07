"""``vixml demo``: the embedded default. Train on the bundled WordNet dataset and show what each part brings.

The demo uses every bundled training query for what is cheap (the sparse companion, the query bank) and
as many dense training steps as fit its time budget on this CPU (``train.max_steps``, decided from whether
the CPU runs bf16 natively, said in the log and kept in the run's config); ``--full`` trains the whole
recipe. It prints one table (zero-shot encoder, sparse companion, trained dual encoder, fused, and fused
with +R) with P@1, P@5, PSP@5 and the time each took, a few test queries with their top labels and the
source that found each, and the next commands to try on the run.
"""

from __future__ import annotations

import math
from importlib import resources
from pathlib import Path

import typer

from vixml.cli.output import FRACTION, console, emit_json, err_console
from vixml.run_folder import RunFolder

__all__ = ["demo", "DEMO_DATA", "DEMO_CONFIG", "dense_budget"]

DEMO_DATA = "wordnet-hypernyms"
DEMO_CONFIG = "demo.yaml"
SET_HELP = "Override a config key, e.g. --set train.epochs=1 (repeatable)."
#: Seconds of dense training the demo allows itself, and the training throughput (queries/s) of its config on
#: a 2-core CPU of each kind (README, "Numbers"): fp32 on an AVX2-only AMD EPYC, measured quiet (42); with
#: native bf16, estimated from the bf16/fp32 step ratio measured on such a CPU (2.5x), not yet measured.
BUDGET = {True: (120.0, 115.0), False: (330.0, 42.0)}
TABLE_KEYS = ("P@1", "P@5", "PSP@5")


def _resource(name: str) -> Path:
    return Path(str(resources.files("vixml") / "resources" / "demo" / name))


def dense_budget(native_bf16: bool, batch_size: int) -> tuple[int, str]:
    """``(max_steps, why)``: the dense steps that fit the demo's time budget on this kind of CPU."""
    seconds, rate = BUDGET[native_bf16]
    steps = max(1, math.ceil(seconds * rate / batch_size))
    kind = "native bf16" if native_bf16 else "no native bf16: fp32"
    return steps, f"{steps} steps of {batch_size} queries, about {seconds:.0f} s at {rate:.0f} queries/s ({kind})"


def demo(
    out: Path = typer.Option(Path("runs/demo"), "--out", help="Folder for the dataset copy and the run."),
    overrides: list[str] = typer.Option([], "--set", help=SET_HELP),
    examples: int = typer.Option(3, "--examples", min=0, help="Test queries shown with their predictions."),
    full: bool = typer.Option(False, "--full", help="Train the whole recipe (every epoch), not the time budget."),
    train_queries: int = typer.Option(0, "--train-queries", min=0, help="Training queries used (of 7,587); 0 = all."),
    test_queries: int = typer.Option(0, "--test-queries", min=0, help="Test queries evaluated (of 1,744); 0 = all."),
    as_json: bool = typer.Option(False, "--json", help="Print every row's metrics as JSON (fractions, 0-1)."),
) -> None:
    """Train on the bundled WordNet noun -> hypernym dataset in a few minutes on 2 CPU cores, any CPU.

    Shows the zero-shot encoder, the sparse companion, the trained dual encoder and their fusion side by
    side, a few predictions, and the next commands. A killed demo resumes from its last checkpoint when run
    again; a finished one shows its results at once.
    """
    import json
    import tempfile

    from vixml.config import load_config
    from vixml.data import load_dataset, prepare_dataset
    from vixml.data.subset import first_queries
    from vixml.devices import native_bf16
    from vixml.errors import TrainingInterrupted
    from vixml.inference.sources import source_rows
    from vixml.models import check_pretrained
    from vixml.training import train

    check_pretrained(load_config(_resource(DEMO_CONFIG), overrides))  # before the dataset copy is written
    data = out / "data"
    sizes = {"trn": train_queries, "tst": test_queries}
    if not (data / "dataset.json").exists() or _demo_sizes(data) != sizes:
        with tempfile.TemporaryDirectory() as staging:
            source = first_queries(_resource(DEMO_DATA), Path(staging) / DEMO_DATA, sizes)
            prepare_dataset(source, data, overwrite=True)
        (data / DEMO_SIZES).write_text(json.dumps(sizes) + "\n", encoding="utf-8")
    used = {split: f"{count:,}" if count else "all" for split, count in sizes.items()}
    cfg = load_config(_resource(DEMO_CONFIG), overrides)
    cap = []
    if not full and cfg.train.max_steps is None:
        steps, why = dense_budget(native_bf16(cfg.train.device), cfg.train.batch_size)
        cap = [f"train.max_steps={steps}"]
        err_console.print(f"demo: the dual encoder trains {why}; `vixml demo --full` trains all its epochs")
        cfg = load_config(_resource(DEMO_CONFIG), [*overrides, *cap])
    err_console.print(
        f"demo: {used['trn']} training and {used['tst']} test queries of the bundled WordNet set; the sparse "
        "companion and the query bank use every training query"
    )
    run_dir = out / ("run-full" if full else "run")
    resume = RunFolder(run_dir).latest_checkpoint() is not None
    try:
        run = train(cfg, data, run_dir, resume=resume)
    except TrainingInterrupted as exc:  # the demo resumes by itself: no --resume to pass
        exc.args = (f"interrupted at epoch {exc.epoch} step {exc.step}; run the demo again to continue ({run_dir})",)
        raise
    rows = source_rows(run, data, TABLE_KEYS)
    if as_json:
        emit_json({"run": str(run), "rows": rows, "units": FRACTION})
        return
    console.print(_table(rows))
    if examples:
        _show_examples(run, load_dataset(data, images=False), examples)
    _next_commands(run)


def _table(rows: dict[str, dict]):
    from rich.table import Table

    best = max(rows, key=lambda name: rows[name]["P@1"])
    table = Table(title="test metrics (%) of each part, and the time it took")
    table.add_column("")
    for key in TABLE_KEYS:
        table.add_column(key, justify="right")
    table.add_column("time", justify="right")
    for name, row in rows.items():
        style = "bold" if name == best else None
        cells = [f"{100 * row[k]:.2f}" for k in TABLE_KEYS]
        table.add_row(name, *cells, f"{row['seconds']:.0f} s", style=style)
    return table


DEMO_SIZES = "demo-sizes.json"


def _demo_sizes(data: Path) -> dict | None:
    import json

    try:
        return json.loads((data / DEMO_SIZES).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _show_examples(run: Path, dataset, count: int) -> None:
    """The first test queries with their top-3 labels: a true one marked +, and which source found each."""
    from rich.table import Table

    from vixml.inference import Predictor
    from vixml.inference.labels import source_names

    predictor = Predictor.load(run)
    rows = list(range(min(count, dataset.n_test)))
    texts = list(dataset.tst_texts[rows])
    found = predictor.predict(texts, k=3)
    table = Table(title="example test predictions (+ = a true label; found by)")
    table.add_column("query")
    table.add_column("top-3 predicted labels")
    for row, text, labels, bits in zip(rows, texts, found.indices, found.found, strict=True):
        true = set(dataset.tst_Y[row].indices.tolist())
        shown = [
            f"{'+' if lab in true else '-'} {dataset.lbl_texts[int(lab)].split(':')[0]}  "
            f"({' + '.join(source_names(int(b)))})"
            for lab, b in zip(labels, bits, strict=True)
        ]
        table.add_row(text[:60], "\n".join(shown))
    console.print(table)


def _next_commands(run: Path) -> None:
    queries = run / "try-queries.txt"
    queries.write_text("\n".join(["golden retriever", "oak tree", "violin"]) + "\n", encoding="utf-8")
    err_console.print(f"run folder: {run}  (README.md, curves.png, metrics.json)\nnext, on this run:")
    for line in (
        f"vixml predict {run} --texts {queries} --k 5 --out {run / 'try.jsonl'}",
        f"vixml predict {run} --texts {queries} --source dense --out {run / 'try-dense.jsonl'}",
        f"vixml serve {run}                # then open http://127.0.0.1:8000/",
        f"vixml report {run} --out {RunFolder(run).report}",
    ):
        console.print(f"  {line}", highlight=False, soft_wrap=True)
