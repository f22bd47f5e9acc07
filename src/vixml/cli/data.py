"""``vixml data``: prepare, validate and describe dataset folders."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import typer

from vixml.cli.output import console, emit_json, err_console

__all__ = ["app"]

app = typer.Typer(help="Prepare, validate and describe dataset folders.", no_args_is_help=True)


@app.command("prepare")
def prepare(
    src: Path = typer.Argument(..., help="XC-repository folder (json.gz), a dataset folder, or a catalogue folder."),
    out: Path = typer.Argument(..., help="Dataset folder to write."),
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
    as_json: bool = typer.Option(False, "--json", help="Print the written dataset's stats as JSON."),
) -> None:
    """Convert SRC into a vixml dataset folder OUT (written atomically, validated)."""
    from vixml.data import dataset_stats, prepare_dataset

    if text_mode not in ("auto", "title", "title+content"):
        raise typer.BadParameter(f"expected auto, title or title+content, got {text_mode!r}", param_hint="--text")
    mode: Literal["auto", "title", "title+content"] = text_mode  # type: ignore[assignment]
    written = prepare_dataset(src, out, text_mode=mode, trust_pickle=trust_pickle, overwrite=overwrite, link=link)
    stats = dataset_stats(written)
    if as_json:
        emit_json(stats)
    else:
        err_console.print(f"wrote {written}")
        _print_stats(stats)


@app.command("validate")
def validate(
    directory: Path = typer.Argument(..., help="Dataset folder."),
    as_json: bool = typer.Option(False, "--json", help="Print the problems as JSON."),
) -> None:
    """Check every file of a dataset folder; list every problem; exit 1 on any."""
    from vixml.data import validate_dataset

    problems = validate_dataset(directory)
    if as_json:
        emit_json({"ok": not problems, "problems": [p.__dict__ for p in problems]})
    elif problems:
        for problem in problems:
            err_console.print(f"x {problem}", markup=False, highlight=False)
        err_console.print(f"{len(problems)} problem(s) in {directory}")
    else:
        err_console.print(f"{directory}: ok")
    if problems:
        raise typer.Exit(1)


@app.command("stats")
def stats(
    directory: Path = typer.Argument(..., help="Dataset folder."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object on stdout and nothing else."),
) -> None:
    """Points, labels, labels per point, points per label, label-frequency quantiles, image coverage."""
    from vixml.data import dataset_stats

    result = dataset_stats(directory)
    if as_json:
        emit_json(result)
    else:
        _print_stats(result)


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
