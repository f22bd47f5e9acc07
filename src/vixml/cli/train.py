"""``vixml train``, ``vixml predict`` and ``vixml config show``."""

from __future__ import annotations

from pathlib import Path

import typer

from vixml.cli.output import FRACTION, check_out, console, emit_json, err_console
from vixml.run_folder import RunFolder

__all__ = ["train", "predict", "config_app"]

config_app = typer.Typer(help="Inspect configurations.", no_args_is_help=True)

SET_HELP = "Override a config key, e.g. --set train.epochs=5 (repeatable; 'null' switches a section off)."


def train(
    config: Path = typer.Argument(..., help="YAML config (an empty file = all defaults; see configs/)."),
    data: Path = typer.Option(..., "--data", help="Dataset folder (vixml data prepare)."),
    out: Path = typer.Option(..., "--out", help="Run folder to write."),
    overrides: list[str] = typer.Option([], "--set", help=SET_HELP),
    resume: bool = typer.Option(False, "--resume", help="Continue from the newest checkpoint in --out."),
    force: bool = typer.Option(
        False, "--force", help="With --resume: continue even though the data differ from the run's (fingerprint)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the final metrics as one JSON object (fractions, 0-1)."),
    nproc: int = typer.Option(
        1, "--nproc", min=1, help="Processes on this machine (GPUs, or CPU ranks): launches torchrun for you."
    ),
) -> None:
    """Train a ViXML dual encoder; writes checkpoints, metrics, plots, the model and test predictions.

    Ctrl-C or SIGTERM stops after the current step with a checkpoint (exit 130); --resume continues.
    Several GPUs: --nproc N, or torchrun --nproc_per_node N -m vixml train ... (several machines: README).
    """
    import json
    import os

    if nproc > 1 and "WORLD_SIZE" not in os.environ:
        args = [str(config), "--data", str(data), "--out", str(out)]
        args += [a for o in overrides for a in ("--set", o)]
        args += ["--resume"] * resume + ["--force"] * force + ["--json"] * as_json
        raise typer.Exit(launch_torchrun(nproc, ["train", *args]))

    from vixml import distributed
    from vixml.training import train as run_training

    run = run_training(config, data, out, overrides=overrides, resume=resume, force=force)
    if not distributed.is_main():  # under torchrun rank 0 writes and reports
        return
    metrics = json.loads(RunFolder(run).metrics.read_text())
    if as_json:
        emit_json({"run": str(run), **metrics, "units": FRACTION})
        return
    print_final_metrics(metrics)
    err_console.print(f"run folder: {run} (README.md, curves.png, history.csv, model/)")
    err_console.print(f"report: vixml report {run} --out {RunFolder(run).report}  (or open / of `vixml serve {run}`)")


def launch_torchrun(nproc: int, args: list[str]) -> int:
    """``torchrun --standalone --nproc_per_node nproc -m vixml ARGS`` on this machine; its exit code."""
    import subprocess
    import sys

    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}"]
    err_console.print(f"launching {nproc} processes: torchrun --standalone --nproc_per_node={nproc} -m vixml ...")
    return subprocess.call([*command, "-m", "vixml", *args])


def print_final_metrics(metrics: dict) -> None:
    from vixml.reports import comparison_table

    trained = metrics.get("sources") or {"trained": metrics.get("final")}
    columns = {name: values for name, values in (("zero-shot", metrics.get("zero_shot")), *trained.items()) if values}
    if columns:
        console.print(comparison_table(columns, title="test metrics (%)"))


def predict(
    run: Path = typer.Argument(..., help="A run folder, an export (vixml export) or a hub id ORG/NAME."),
    text: str | None = typer.Argument(None, help="One query: prints a table of its top labels (no --out needed)."),
    out: Path | None = typer.Option(
        None, "--out", help="Prediction file: CSR .npz, or .jsonl (records with ids and texts; '-': stdout)."
    ),
    data: Path | None = typer.Option(None, "--data", help="Dataset folder (with --texts: the +R training queries)."),
    texts: Path | None = typer.Option(
        None, "--texts", help="Free input: one query per line ('-': stdin), or CSV/JSONL/Parquet with a text column."
    ),
    split: str = typer.Option("tst", "--split", help="tst or trn."),
    k: int = typer.Option(100, "--k", min=1, help="Labels per query."),
    augment: bool = typer.Option(False, "--augment", help="Retrieval-augmented scoring (+R, docs/method.md 5)."),
    source: str = typer.Option(
        "auto", "--source", help="auto (fused when the run has a sparse companion, else dense), dense, sparse, fused."
    ),
    index: str = typer.Option(
        "exact", "--index", help="exact, or hnsw: an hnswlib graph over the labels (recall@100 vs exact is logged)."
    ),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda, cuda:N."),
    as_json: bool = typer.Option(False, "--json", help="Print a summary as one JSON object."),
) -> None:
    """Predict the top-k labels of a dataset split (--data) or of any texts (--texts) with a trained run."""
    from vixml.retrieval import SOURCES

    if source not in SOURCES:
        raise typer.BadParameter(f"--source must be one of {', '.join(SOURCES)}, got {source!r}")
    options = {"k": k, "augment": augment, "device": device, "as_json": as_json, "source": source, "index": index}
    if text is not None or texts is not None:
        from vixml.cli.predict_texts import predict_one, predict_texts

        if text is not None:
            predict_one(run, text, out, texts=texts, data=data, **options)
        else:
            predict_texts(run, texts, out, data=data, **options)
        return
    if data is None or out is None:
        raise typer.BadParameter("give --data DIR --out FILE (a dataset split), --texts FILE (free input) or a TEXT")
    check_out(out)
    import contextlib

    from vixml import distributed
    from vixml.devices import resolve_device
    from vixml.inference import Predictor
    from vixml.inference.free_input import write_split_predictions
    from vixml.locking import WriteLock

    # under torchrun every rank embeds a shard of the split; rank 0 holds the lock, searches and writes
    with distributed.session(resolve_device(device, setting="--device")) as world:
        lock = WriteLock(out, "vixml predict") if world.is_main else contextlib.nullcontext()
        with lock:  # taken first: a second writer of --out is refused before any work
            where = str(distributed.rank_device(resolve_device(device)))
            predictor = Predictor.load(run, device=where, mmap=True, index=index)
            predictions = predictor.predict_dataset(data, split=split, k=k, augment=augment, source=source)
            if predictions is not None:  # .jsonl: records with the queries' and labels' own ids
                write_split_predictions(out, predictor, predictions, data, split)
        if predictions is None:
            return
    summary = {"out": str(out), "queries": predictions.shape[0], "labels": predictions.shape[1], "k": k}
    summary["source"] = predictor.retriever.resolve(source)
    summary["index"] = index
    if predictor.measured_recall is not None:
        summary["index_recall@100"] = round(predictor.measured_recall, 4)
    if as_json:
        emit_json(summary)
    else:
        err_console.print(f"wrote {out}: {summary['queries']} queries x top-{k} of {summary['labels']} labels")


@config_app.command("show")
def show(
    config: Path | None = typer.Argument(None, help="A YAML config; default: every default."),
    overrides: list[str] = typer.Option([], "--set", help=SET_HELP),
) -> None:
    """Print the resolved configuration with every key, its value and its help."""
    from vixml.config import RunConfig, apply_overrides, describe_config, load_config

    cfg = load_config(config) if config is not None else RunConfig()
    if overrides:
        cfg = apply_overrides(cfg, overrides)
    typer.echo(describe_config(cfg))
