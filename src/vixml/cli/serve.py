"""``vixml serve RUN``: the HTTP API and the web page over a trained run."""

from __future__ import annotations

from pathlib import Path

import typer

__all__ = ["serve"]


def serve(
    run: Path = typer.Argument(..., help="A run folder, an export (vixml export) or a hub id ORG/NAME."),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to bind (default: this machine only)."),
    port: int = typer.Option(8000, "--port", min=0, max=65535, help="Port."),
    workers: int = typer.Option(1, "--workers", min=1, help="Processes; more than 1 serves read-only (no edits)."),
    token: str | None = typer.Option(
        None, "--token", envvar="VIXML_SERVE_TOKEN", help="Bearer token required by label edits (needed off loopback)."
    ),
    data: Path | None = typer.Option(None, "--data", help="The run's dataset folder: enables augment (+R)."),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda, cuda:N."),
    batch_window_ms: float = typer.Option(2.0, "--batch-window-ms", min=0, help="Wait for more queries (ms)."),
    max_batch: int = typer.Option(64, "--max-batch", min=1, help="Queries per encoder pass."),
    max_queries: int = typer.Option(64, "--max-queries", min=1, help="Queries per request."),
    max_k: int = typer.Option(100, "--max-k", min=1, help="Largest k a request may ask."),
    index: str = typer.Option("exact", "--index", help="exact, or hnsw: an hnswlib graph over the labels."),
) -> None:
    """Serve predictions and label edits over HTTP; the web page is at /, the API docs at /docs."""
    from vixml.serve.run import quiet_openmp

    quiet_openmp()  # before torch loads
    from vixml.serve import Limits, ServeSettings
    from vixml.serve import serve as run_server

    settings = ServeSettings(
        run,
        host=host,
        port=port,
        workers=workers,
        token=token or None,
        data=data,
        device=device,
        batch_window_ms=batch_window_ms,
        max_batch=max_batch,
        limits=Limits(max_queries=max_queries, max_k=max_k),
        index=index,
    )
    run_server(settings)
