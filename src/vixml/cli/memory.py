"""``vixml memory``: estimate the peak GPU memory of a training config before downloading anything."""

from __future__ import annotations

from pathlib import Path

import typer

from vixml.cli.output import console, emit_json

__all__ = ["memory"]


def memory(
    config: Path = typer.Argument(..., help="YAML config (see configs/)."),
    overrides: list[str] = typer.Option(
        [], "--set", help="Override a config key, e.g. --set model.lora.r=64 (repeatable)."
    ),
    batch_size: int | None = typer.Option(
        None, "--batch-size", min=2, help="Queries per micro-batch; default: the config's train.batch_size."
    ),
    gpu_gib: float = typer.Option(80.0, "--gpu-gib", min=1.0, help="GPU memory in GiB to fit (80 = A100/H100)."),
    labels: int | None = typer.Option(
        None, "--labels", min=1, help="Label count L: counts PRIME's L x d centroids and caps its free vectors."
    ),
    prompt_tokens: int | None = typer.Option(
        None, "--prompt-tokens", min=0, help="Tokens of the decoder prompt's literal text; default: one per word."
    ),
    nproc: int = typer.Option(
        1, "--nproc", min=1, help="Processes of a torchrun launch (one per GPU): the estimate is then per rank."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object (sizes in bytes) and nothing else."),
) -> None:
    """Estimate peak GPU memory (weights, adapter, optimizer, activations with and without checkpointing).

    Parameter counts are exact (the backbone is built on the meta device from its config: a local folder, or
    one of the paper's hub models known offline); activations are a per-layer estimate. Suggests gradient
    checkpointing first, then a micro-batch and gradient-accumulation steps that fit --gpu-gib.
    """
    from vixml.config import load_config
    from vixml.planning import estimate_memory

    cfg = load_config(config, overrides)
    estimate = estimate_memory(
        cfg, batch_size=batch_size, gpu_gib=gpu_gib, num_labels=labels, prompt_tokens=prompt_tokens, ranks=nproc
    )
    if as_json:
        emit_json(estimate.as_dict())
    else:
        console.print(estimate.table())
