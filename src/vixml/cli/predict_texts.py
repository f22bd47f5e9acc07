"""``vixml predict RUN --texts FILE`` (predictions for any texts, as JSON lines or a CSR ``.npz``; ``-`` reads
stdin / writes stdout) and ``vixml predict RUN "TEXT"`` (a table of one query's top labels)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import typer

from vixml.cli.output import check_out, console, emit_json, err_console

logger = logging.getLogger(__name__)

__all__ = ["predict_one", "predict_texts"]


def predict_texts(
    run: Path,
    texts: Path,
    out: Path | None,
    *,
    data: Path | None,
    k: int,
    augment: bool,
    device: str,
    as_json: bool,
    source: str = "auto",
    index: str = "exact",
) -> None:
    """Read the queries of ``texts``, predict with the run (its label overlay included), write ``out``."""
    from vixml.data.queries import read_text_input
    from vixml.inference import Predictor
    from vixml.inference.free_input import (
        OUTPUT_SUFFIXES,
        TrainingQueries,
        open_images,
        predict_texts,
        write_predictions,
    )

    if out is None:
        raise typer.BadParameter("--texts needs --out FILE (.jsonl, .npz, or - for JSON lines on stdout)")
    to_stdout = str(out) == "-"
    if not to_stdout and out.suffix.lower() not in OUTPUT_SUFFIXES:
        raise typer.BadParameter(f"--out must end in {' or '.join(OUTPUT_SUFFIXES)}, got {out.name}")
    if augment and data is None:
        raise typer.BadParameter("--augment with --texts needs --data DIR: the training queries that vote")
    if not to_stdout:
        check_out(out)
    queries = read_text_input(texts, skip_blank=True)
    if queries.skipped:
        logger.info("%s: %d blank line(s) skipped, %d queries", texts, queries.skipped, len(queries))
    predictor = Predictor.load(run, device=device, index=index)
    images = None
    if queries.images is not None and any(queries.images):
        if predictor.config.images is None or not predictor.model.uses_images("query"):
            err_console.print(f"note: {texts} has image references but the run encodes queries from text only")
        else:
            images = open_images(queries.images, str(texts))
    memory = TrainingQueries.from_dataset(predictor, data) if augment else None
    predictions = predict_texts(predictor, queries.texts, images, k=k, augment=memory, source=source)
    if to_stdout:
        for record in predictions.records(queries.texts, queries.ids):
            typer.echo(json.dumps(record, ensure_ascii=False))
        return
    write_predictions(out, predictions, queries.texts, predictor.labels.num_labels, queries.ids)
    summary = {"out": str(out), "queries": len(queries), "labels": predictor.labels.num_visible, "k": k}
    summary["source"] = predictor.retriever.resolve(source)
    summary["index"] = index
    if as_json:
        emit_json(summary)
    else:
        err_console.print(f"wrote {out}: {len(queries)} queries x top-{k} of {summary['labels']} labels")


def predict_one(run: Path, text: str, out: Path | None, *, texts: Path | None, data: Path | None, **options) -> None:
    """``vixml predict RUN "TEXT"``: a table of the top labels (``--json``: the record on stdout)."""
    from rich.table import Table

    from vixml.inference import Predictor

    if texts is not None or out is not None or options["augment"] or data is not None:
        raise typer.BadParameter("a TEXT takes no --texts, --out, --data or --augment: use --texts FILE --out FILE")
    predictor = Predictor.load(run, device=options["device"], index=options["index"])
    k = options["k"] if options["k"] != 100 else 10  # --k's default suits files; a glance wants ten
    record = predictor.predict(text, k=k, source=options["source"]).records([text])[0]
    if options["as_json"]:
        emit_json(record)
        return
    table = Table(title=f"top {len(record['labels'])} labels for {text!r}")
    for column in ("rank", "label", "text", "score"):
        table.add_column(column, overflow="fold", justify="right" if column in ("rank", "label", "score") else "left")
    for rank, (label, name, score) in enumerate(
        zip(record["labels"], record["texts"], record["scores"], strict=True), 1
    ):
        table.add_row(str(rank), str(label), name, f"{score:.4f}")
    console.print(table)
