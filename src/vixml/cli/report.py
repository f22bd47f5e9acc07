"""``vixml report RUN [RUN ...] --out report.html``: one self-contained HTML page on one or several runs."""

from __future__ import annotations

from pathlib import Path

import typer

from vixml.cli.output import emit_json, err_console

__all__ = ["report"]


def report(
    runs: list[Path] = typer.Argument(..., help="Run folders written by vixml train (several: side by side)."),
    out: Path = typer.Option(..., "--out", help="The HTML file to write."),
    data: Path | None = typer.Option(None, "--data", help="Dataset folder (default: the one each run recorded)."),
    title: str | None = typer.Option(None, "--title", help="Page title."),
    as_json: bool = typer.Option(False, "--json", help="Print a summary as one JSON object."),
) -> None:
    """Training curves, final metrics, P@k/PSP@k by label-frequency decile, sample predictions, comparison."""
    from vixml.reports.html import write_report

    for run in runs:
        if not run.is_dir():
            raise typer.BadParameter(f"{run} is not a folder (expected a run folder)")
    path = write_report(runs, out, data=data, title=title)
    if as_json:
        emit_json({"out": str(path), "runs": [str(r) for r in runs], "bytes": path.stat().st_size})
    else:
        err_console.print(f"wrote {path} ({len(runs)} run(s)); open it in a browser")
