"""``vixml images``: fetch a split's images into an image bank (``fetch``); ``embed`` lives in its own module."""

from __future__ import annotations

from pathlib import Path

import typer

from vixml.cli.output import emit_json, err_console

__all__ = ["app", "fetch"]

app = typer.Typer(help="Fetch images into image banks and embed them.", no_args_is_help=True)


@app.callback()
def _images() -> None:
    """Fetch images into image banks (``fetch``) and embed them (``embed``)."""


_SPLITS = {"trn": "trn", "train": "trn", "tst": "tst", "test": "tst", "lbl": "lbl", "labels": "lbl"}


@app.command("fetch")
def fetch(
    directory: Path = typer.Argument(..., help="Dataset folder to write the bank and map into."),
    split: str = typer.Option(..., "--split", help="trn | tst | lbl: whose images (rows of that split)."),
    urls: Path | None = typer.Option(
        None,
        "--urls",
        help="Table (CSV/TSV/JSONL/Parquet) of item id + image URL or path, or a folder of images named "
        "<item_id>[_<n>].<ext>. Default: the dataset's <split>.images.jsonl.",
    ),
    id_column: str | None = typer.Option(None, "--id-column", help="Id column (default: id, item_id, ...)."),
    url_column: str | None = typer.Option(
        None, "--url-column", help="Reference column (default: url, image_url, ...)."
    ),
    separator: str = typer.Option("|", "--separator", help="Splits a cell into several references ('' : never)."),
    ids: Path | None = typer.Option(
        None, "--ids", help="Row order, one id per line (default: the dataset's <split>_ids.txt, else input order)."
    ),
    num_images: int = typer.Option(3, "--num-images", "-n", help="Images kept per item (N of the file names)."),
    size: int = typer.Option(384, "--size", help="Side of the square, white-padded thumbnails."),
    quality: int = typer.Option(90, "--quality", help="JPEG quality of the stored thumbnails (1-95)."),
    upscale: bool = typer.Option(True, "--upscale/--no-upscale", help="Enlarge small images to fill the square."),
    workers: int = typer.Option(16, "--workers", help="Concurrent downloads."),
    timeout: float = typer.Option(
        10.0, "--timeout", help="Deadline per download attempt in seconds: connection, headers and body."
    ),
    retries: int = typer.Option(3, "--retries", help="Retries after timeouts, connection errors, 5xx, 429."),
    backoff: float = typer.Option(0.5, "--backoff", help="Seconds before the first retry (doubled each time)."),
    max_bytes: int = typer.Option(10_000_000, "--max-bytes", help="Refuse larger downloads and files."),
    max_pixels: int = typer.Option(64_000_000, "--max-pixels", help="Refuse images with more pixels."),
    allow_local: bool = typer.Option(
        False, "--allow-local", help="Read local paths and file:// references even when the table holds URLs."
    ),
    retry_failed: bool = typer.Option(False, "--retry-failed", help="Try again references that failed earlier."),
    restart: bool = typer.Option(False, "--restart", help="Discard an unfinished earlier fetch instead of resuming."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing bank and map."),
    keep_work: bool = typer.Option(False, "--keep-work", help="Keep the resumable work folder after finishing."),
    limit: int | None = typer.Option(None, "--limit", help="Stop after this many references (resume later)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
    as_json: bool = typer.Option(False, "--json", help="Print the counts as one JSON object on stdout."),
) -> None:
    """Download, thumbnail and store the images of one split (resumable: rerun after an interruption)."""
    from vixml.vision.download import DownloadPolicy
    from vixml.vision.fetch import FetchOptions, fetch_images
    from vixml.vision.image_refs import load_image_refs

    if split.lower() not in _SPLITS:
        raise typer.BadParameter(f"expected trn, tst or lbl, got {split!r}", param_hint="--split")
    split = _SPLITS[split.lower()]
    options = FetchOptions(
        size=size,
        num_images=num_images,
        quality=quality,
        upscale=upscale,
        workers=workers,
        download=DownloadPolicy(timeout=timeout, retries=retries, backoff=backoff, max_bytes=max_bytes),
        allow_local=allow_local,
        max_pixels=max_pixels,
        retry_failed=retry_failed,
        restart=restart,
        overwrite=overwrite,
        keep_work=keep_work,
        limit=limit,
    )
    refs = load_image_refs(
        directory,
        split,
        urls,
        ids_file=ids,
        id_column=id_column,
        url_column=url_column,
        separator=separator or None,
    )
    result = fetch_images(directory, split, refs, options, progress=not quiet)
    if as_json:
        emit_json(result.as_dict())
        return
    _print_result(result)


def _print_result(result) -> None:
    from rich.table import Table

    table = Table(title=f"images of {result.split}", show_header=False)
    rows = [
        ("items", result.items),
        ("references (distinct)", f"{result.references} ({result.unique_references})"),
        ("tried in this run", f"{result.attempted} ({result.images_per_s:g} img/s)"),
        ("references with an image", result.ok),
        ("references failed", result.failed),
        *((f"  {reason}", count) for reason, count in result.failed_by_reason.items()),
    ]
    if result.complete:
        rows += [
            ("bank rows", result.images),
            ("items with images", result.items_with_images),
            ("items without any image", result.items_without_image),
            ("items with fewer than N", result.items_short),
        ]
    if result.ignored_items:
        rows.append(("input items not in the split (ignored)", result.ignored_items))
    for name, value in rows:
        table.add_row(name, str(value))
    err_console.print(table)
    if result.complete:
        err_console.print(f"wrote {result.bank}, {result.map} and {result.failures}", markup=False, highlight=False)
    else:
        err_console.print("stopped before the end (--limit): run the same command again to resume")
