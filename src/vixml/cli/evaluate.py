"""``vixml evaluate``: score a prediction file against a label file, as the XMC literature does.

Propensity-scored metrics (PSP@k, PSnDCG@k) need the *training* labels and the dataset family's A/B
(Jain et al. 2016; :mod:`vixml.data.family`). Without ``--train`` they are left out (``--propensity-from-test``
computes them from the test labels instead, which is not the published protocol); A/B come from
``--A/--B``, else from the family recorded in the dataset's ``dataset.json`` (``--data DIR``, or the folder
holding ``--true``), else from that folder's name, else 0.55/1.5.
"""

from __future__ import annotations

import logging
from pathlib import Path

import typer

from vixml.cli.output import FRACTION, console, emit_json

__all__ = ["evaluate"]

logger = logging.getLogger(__name__)


def evaluate(
    pred: Path = typer.Option(
        ..., "--pred", help="Predictions: CSR .npz (vixml predict), label text format, or a dense .npy of scores."
    ),
    true: Path | None = typer.Option(None, "--true", help="True labels: *_X_Y.txt or CSR .npz (default: --data's)."),
    train: Path | None = typer.Option(
        None, "--train", help="Training labels (trn_X_Y.txt) for PSP propensities (default: --data's)."
    ),
    filter_path: Path | None = typer.Option(
        None, "--filter", help="(row label) pairs removed from the predictions first (default: --data's)."
    ),
    data: Path | None = typer.Option(
        None, "--data", help="Dataset folder: test/train labels, filter and the family's A/B come from it."
    ),
    a: float | None = typer.Option(None, "--A", help="Propensity A (default: the dataset family's; Amazon 0.6)."),
    b: float | None = typer.Option(None, "--B", help="Propensity B (default: the dataset family's; Amazon 2.6)."),
    from_test: bool = typer.Option(
        False, "--propensity-from-test", help="Without --train, compute PSP propensities from the test labels."
    ),
    k: int = typer.Option(5, "--k", min=1, help="Report metrics @1..@k."),
    as_json: bool = typer.Option(
        False, "--json", help='Print one JSON object on stdout and nothing else (fractions, "units": "fraction").'
    ),
) -> None:
    """Compute P@k, nDCG@k, PSP@k, PSnDCG@k, R@k (and MRR, R@100 when predictions reach 100).

    The table shows percentages; --json gives fractions (0-1), as metrics.json and history.csv do.
    """
    from vixml.data import read_label_matrix
    from vixml.data.filters import filter_problems, read_filter
    from vixml.data.footprint import require_evaluate
    from vixml.data.layout import FILTER_FILES, label_file
    from vixml.data.predictions import DEFAULT_DEPTH, read_predictions
    from vixml.errors import DataError, Problem
    from vixml.metrics import evaluate as evaluate_metrics
    from vixml.reports import metrics_table

    if data is not None and not data.is_dir():
        raise DataError(Problem(str(data), "dataset folder not found" if not data.exists() else "is not a folder"))
    if true is None:
        true = label_file(data, "tst") if data is not None else None
        if true is None:
            raise typer.BadParameter(
                "give the true labels (--true tst_X_Y.txt) or a dataset folder with a test split (--data)"
            )
    if data is not None:
        train = train if train is not None else label_file(data, "trn")
        default_filter = data / FILTER_FILES["tst"]
        filter_path = (
            filter_path if filter_path is not None else (default_filter if default_filter.is_file() else None)
        )
    A, B, why = _propensity(a, b, data if data is not None else true.parent)
    k = _bounded_k(k, true)
    require_evaluate(pred, true, train, max(k, DEFAULT_DEPTH))
    problems: list = []

    def read(reader, path, *args):
        try:
            return reader(path, *args) if path is not None else None
        except DataError as exc:  # every input's problems at once, so that one round of fixes suffices
            problems.extend(exc.problems)

    predictions = read(read_predictions, pred, max(k, DEFAULT_DEPTH), _test_texts(data, true))
    truth, train_y = read(read_label_matrix, true), read(read_label_matrix, train)
    if problems:
        raise DataError(problems)
    pairs = None
    if filter_path is not None:
        if problems := filter_problems(filter_path, truth.shape[0], truth.shape[1]):
            raise DataError(problems)
        pairs = read_filter(filter_path)
    sources = {"pred": str(pred), "true": str(true), "train": str(train), "filter": str(filter_path)}
    propensities = train_y if train_y is not None else truth
    metrics = evaluate_metrics(truth, predictions, train=propensities, k=k, A=A, B=B, filter=pairs, sources=sources)
    title = f"{pred} vs {true} (A={A}, B={B}: {why})"
    if train_y is None and not from_test:
        title = f"{pred} vs {true}"
        metrics = {key: value for key, value in metrics.items() if not key.startswith("PS")}
        logger.warning(
            "PSP@k and PSnDCG@k left out: they need the training labels (--train trn_X_Y.txt, or --data DIR); "
            "--propensity-from-test computes them from the test labels instead (not the published protocol)"
        )
    else:
        logger.info(
            "propensity A=%s, B=%s (%s), from the %s labels", A, B, why, "training" if train_y is not None else "test"
        )
    if as_json:
        emit_json({**metrics, "units": FRACTION})
    else:
        console.print(metrics_table({str(pred.name): metrics}, title=title))


def _propensity(a: float | None, b: float | None, folder: Path) -> tuple[float, float, str]:
    """``(A, B, why)``: the given values, else the dataset family's (its manifest, else its folder's name)."""
    from vixml.metrics import dataset_propensity

    preset_a, preset_b, source = dataset_propensity(folder)
    why = "given" if a is not None and b is not None else source
    return (a if a is not None else preset_a), (b if b is not None else preset_b), why


def _bounded_k(k: int, true: Path) -> int:
    """``k`` at most the label count (read from the header), before anything is sized by it."""
    from vixml.data.footprint import matrix_shape

    shape = matrix_shape(true)
    if shape is not None and k > shape.n_cols:
        logger.warning("--k %d is more than the %d labels of %s: metrics @1..@%d", k, shape.n_cols, true, shape.n_cols)
        return max(1, shape.n_cols)
    return k


def _test_texts(data: Path | None, true: Path):
    """The test queries (to match a JSON-lines prediction file's records against), when the folder has them."""
    from vixml.data.layout import TEXT_FILES
    from vixml.data.texts import read_texts

    path = (data if data is not None else true.parent) / TEXT_FILES["tst"]
    return read_texts(path) if path.is_file() else None
