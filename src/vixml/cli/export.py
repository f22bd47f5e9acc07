"""``vixml export RUN --to onnx|sentence-transformers --out DIR``: ship a trained run (README "Deploy")."""

from __future__ import annotations

from pathlib import Path

import typer

from vixml.cli.output import emit_json, err_console

__all__ = ["export"]

TARGETS = ("onnx", "sentence-transformers")


def export(
    run: str = typer.Argument(..., help="A run folder written by vixml train, or its hub id ORG/NAME."),
    to: str = typer.Option("onnx", "--to", help="onnx (served without torch) or sentence-transformers."),
    out: Path = typer.Option(..., "--out", help="The export folder to write (replaced whole if it exists)."),
    int8: bool = typer.Option(False, "--int8", help="ONNX: dynamic int8 quantisation of the encoder's weights."),
    labels: str = typer.Option("fp32", "--labels", help="ONNX: label embeddings stored as fp32 or fp16."),
    as_json: bool = typer.Option(False, "--json", help="Print a summary as one JSON object."),
) -> None:
    """Write the run's query encoder, label embeddings and texts, companion and model card as one folder."""
    import json

    from vixml.inference.export import export_onnx, export_sentence_transformers
    from vixml.run_folder import ExportFolder

    if to not in TARGETS:
        raise typer.BadParameter(f"--to must be one of {', '.join(TARGETS)}, got {to!r}")
    if to != "onnx" and (int8 or labels != "fp32"):
        raise typer.BadParameter("--int8 and --labels apply to --to onnx only")
    path = (
        export_onnx(run, out, int8=int8, label_dtype=labels)
        if to == "onnx"
        else export_sentence_transformers(run, out)
    )
    manifest = json.loads(ExportFolder(path).manifest.read_text(encoding="utf-8"))
    size = sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
    summary = {"out": str(path), "to": to, "precision": manifest.get("precision"), "bytes": size}
    if as_json:
        emit_json(summary)
    else:
        err_console.print(f"wrote {path} ({to}, {size / 2**20:.1f} MiB); its README says how to load it")
