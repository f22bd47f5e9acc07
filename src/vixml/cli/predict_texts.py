"""``vixml predict RUN --texts FILE``: predictions for any texts, as JSON lines or a CSR ``.npz``."""

from __future__ import annotations

from pathlib import Path

import typer

from vixml.cli.output import emit_json, err_console

__all__ = ["predict_texts"]


def predict_texts(
    run: Path,
    texts: Path,
    out: Path,
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

    if out.suffix.lower() not in OUTPUT_SUFFIXES:
        raise typer.BadParameter(f"--out must end in {' or '.join(OUTPUT_SUFFIXES)}, got {out.name}")
    if augment and data is None:
        raise typer.BadParameter("--augment with --texts needs --data DIR: the training queries that vote")
    queries = read_text_input(texts)
    predictor = Predictor.load(run, device=device, index=index)
    images = None
    if queries.images is not None and any(queries.images):
        if predictor.config.images is None or not predictor.model.uses_images("query"):
            err_console.print(f"note: {texts} has image references but the run encodes queries from text only")
        else:
            images = open_images(queries.images, str(texts))
    memory = TrainingQueries.from_dataset(predictor, data) if augment else None
    predictions = predict_texts(predictor, queries.texts, images, k=k, augment=memory, source=source)
    write_predictions(out, predictions, queries.texts, predictor.labels.num_labels, queries.ids)
    summary = {"out": str(out), "queries": len(queries), "labels": predictor.labels.num_visible, "k": k}
    summary["source"] = predictor.retriever.resolve(source)
    summary["index"] = index
    if as_json:
        emit_json(summary)
    else:
        err_console.print(f"wrote {out}: {len(queries)} queries x top-{k} of {summary['labels']} labels")
