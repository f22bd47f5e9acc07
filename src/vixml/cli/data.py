"""``vixml data``: prepare, validate and describe dataset folders."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import typer

from vixml.cli.output import console, emit_json, err_console

__all__ = ["app"]

app = typer.Typer(help="Prepare, validate and describe dataset folders.", no_args_is_help=True)


_ENCODING_HELP = (
    "Text encoding: auto (UTF-8; latin-1 only for the public LF-Amazon* *.raw.txt files) | utf-8 | latin-1."
)


@app.command("prepare")
def prepare(
    src: Path = typer.Argument(..., help="XC-repository folder (json.gz), a dataset folder, or a catalogue folder."),
    out: Path = typer.Argument(..., help="Dataset folder to write (new or empty; appears only once complete)."),
    text_mode: str = typer.Option(
        "auto", "--text", help="auto | title | title+content (auto: title only for *Titles* datasets)."
    ),
    trust_pickle: bool = typer.Option(
        False,
        "--trust-pickle",
        help="Allow unpickling the released image maps once, to convert them (they can run code).",
    ),
    overwrite: bool = typer.Option(
        False, "--overwrite", help="Replace a non-empty OUT (e.g. one left by a killed run)."
    ),
    link: bool = typer.Option(False, "--link", help="Hard-link large files instead of copying them."),
    encoding: str = typer.Option("auto", "--encoding", help=_ENCODING_HELP + " OUT is always UTF-8."),
    family: str | None = typer.Option(
        None, "--family", help="amazon | wikipedia | other: picks the PSP A/B of evaluate (default: from SRC's name)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the written dataset's stats as JSON."),
) -> None:
    """Convert SRC into a vixml dataset folder OUT (validated; OUT appears only once complete).

    \b
    Catalogue tables (csv, tsv, jsonl, parquet; .gz too), other columns ignored:
      queries.*  id or query_id; text, or title [+ content];
                 split: trn/train or tst/test; an image column
      labels.*   id or label_id; text, or title [+ content]; an image column
      pairs.*    query_id; label_id; split; value, score, relevance or rel
                 (default 1); or train_pairs.* + test_pairs.*
    Image columns: images, image_urls, image_url, image, image_paths,
    image_path. A cell holds one reference, a|b|c, a JSON list or a list
    (http(s) URL, file:// URL, data: URI or a path).
    """
    from vixml.data import dataset_stats, prepare_dataset, read_manifest

    for value, allowed, hint in (
        (text_mode, ("auto", "title", "title+content"), "--text"),
        (encoding, ("auto", "utf-8", "latin-1"), "--encoding"),
        (family or "other", ("amazon", "wikipedia", "other"), "--family"),
    ):
        if value not in allowed:
            raise typer.BadParameter(f"expected one of {', '.join(allowed)}, got {value!r}", param_hint=hint)
    mode: Literal["auto", "title", "title+content"] = text_mode  # type: ignore[assignment]
    _check_prepare_fits(src)
    written = prepare_dataset(
        src, out, text_mode=mode, trust_pickle=trust_pickle, overwrite=overwrite, link=link,
        encoding=encoding, family=family,  # type: ignore[arg-type]
    )  # fmt: skip
    stats = dataset_stats(written)
    if as_json:
        emit_json(stats)
        return
    manifest = read_manifest(written) or {}
    for table, roles in (manifest.get("columns") or {}).items():
        used = ", ".join(f"{role}={column}" for role, column in roles.items() if role != "ignored")
        ignored = f" (ignored: {', '.join(roles['ignored'])})" if roles.get("ignored") else ""
        err_console.print(f"{table}: {used}{ignored}", markup=False, highlight=False)
    err_console.print(f"wrote {written} (family: {manifest.get('family') or 'unknown'})")
    _print_stats(stats)


@app.command("validate")
def validate(
    directory: Path = typer.Argument(..., help="Dataset folder."),
    encoding: str = typer.Option("auto", "--encoding", help=_ENCODING_HELP),
    as_json: bool = typer.Option(False, "--json", help="Print the problems as JSON."),
) -> None:
    """Check every file of a dataset folder (the loaders' rules and more); list every problem; exit 1 on any."""
    from vixml.data.validate import validation_report

    if encoding not in ("auto", "utf-8", "latin-1"):
        raise typer.BadParameter(f"expected auto, utf-8 or latin-1, got {encoding!r}", param_hint="--encoding")
    from vixml.data.footprint import require_folder

    require_folder(directory, "vixml data validate")
    report = validation_report(directory, encoding=encoding)  # type: ignore[arg-type]
    problems = report.problems
    if as_json:
        emit_json({"ok": report.ok, "encodings": report.encodings, "problems": [p.__dict__ for p in problems]})
    else:
        for name, how in report.encodings.items():
            err_console.print(f"  {name}: {how}", markup=False, highlight=False)
        for problem in problems:
            err_console.print(f"x {problem}", markup=False, highlight=False)
        err_console.print(f"{len(problems)} problem(s) in {directory}" if problems else f"{directory}: ok")
    if problems:
        raise typer.Exit(1)


@app.command("stats")
def stats(
    directory: Path = typer.Argument(..., help="Dataset folder."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object on stdout and nothing else."),
) -> None:
    """Points, labels, labels per point, points per label, label-frequency quantiles, image coverage."""
    from vixml.data import dataset_stats
    from vixml.data.footprint import require_folder

    require_folder(directory, "vixml data stats", then="stats")
    result = dataset_stats(directory)
    if as_json:
        emit_json(result)
    else:
        _print_stats(result)


def _check_prepare_fits(src: Path) -> None:
    """A dataset-folder source: refuse it now if validating and describing it would not fit. Other sources
    (XC JSON, catalogues) are checked once converted, before their validation (:func:`prepare_dataset`)."""
    from vixml.data.footprint import require_folder
    from vixml.data.prepare import detect_source
    from vixml.errors import DataError

    try:
        kind = detect_source(src)
    except DataError:
        return  # prepare_dataset names what is wrong
    if kind == "dataset-folder":
        require_folder(src, "vixml data prepare", then="prepare")


def _print_stats(result: dict) -> None:
    from rich.table import Table

    table = Table(title="dataset statistics")
    table.add_column("statistic")
    table.add_column("value", justify="right")
    for key, value in _flatten(result):
        table.add_row(key, f"{value:,.4g}" if isinstance(value, float) else str(value))
    console.print(table)


def _flatten(obj: dict, prefix: str = "") -> list[tuple[str, object]]:
    rows: list[tuple[str, object]] = []
    for key, value in obj.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            rows += _flatten(value, name + ".")
        else:
            rows.append((name, value))
    return rows
