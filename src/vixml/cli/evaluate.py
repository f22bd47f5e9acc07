"""``vixml evaluate``: score a prediction file against a label file, as the XMC literature does."""

from __future__ import annotations

from pathlib import Path

import typer

from vixml.cli.output import FRACTION, console, emit_json

__all__ = ["evaluate"]


def evaluate(
    pred: Path = typer.Option(..., "--pred", help="Predictions: CSR .npz (queries x labels), scores as values."),
    true: Path = typer.Option(..., "--true", help="True labels: *_X_Y.txt or CSR .npz."),
    train: Path | None = typer.Option(
        None, "--train", help="Training labels (trn_X_Y.txt) for propensities; default: the true labels."
    ),
    filter_path: Path | None = typer.Option(
        None, "--filter", help="(row label) pairs removed from the predictions first (filter_labels_test.txt)."
    ),
    a: float = typer.Option(0.55, "--A", help="Propensity A (Amazon 0.6, Wikipedia 0.5, others 0.55)."),
    b: float = typer.Option(1.5, "--B", help="Propensity B (Amazon 2.6, Wikipedia 0.4, others 1.5)."),
    k: int = typer.Option(5, "--k", min=1, help="Report metrics @1..@k."),
    as_json: bool = typer.Option(
        False, "--json", help='Print one JSON object on stdout and nothing else (fractions, "units": "fraction").'
    ),
) -> None:
    """Compute P@k, nDCG@k, PSP@k, PSnDCG@k, R@k (and MRR, R@100 when predictions reach 100).

    The table shows percentages; --json gives fractions (0-1), as metrics.json and history.csv do.
    """
    from vixml.data import read_filter, read_label_matrix
    from vixml.metrics import evaluate as evaluate_metrics
    from vixml.reports import metrics_table

    predictions = read_label_matrix(pred)
    truth = read_label_matrix(true)
    train_y = read_label_matrix(train) if train is not None else None
    pairs = read_filter(filter_path) if filter_path is not None else None
    metrics = evaluate_metrics(truth, predictions, train=train_y, k=k, A=a, B=b, filter=pairs)
    if as_json:
        emit_json({**metrics, "units": FRACTION})
    else:
        console.print(metrics_table({str(pred.name): metrics}, title=f"{pred} vs {true} (A={a}, B={b})"))
