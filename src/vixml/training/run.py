"""``train(config, data_dir, out_dir)``: a complete, traceable run folder from a config and a dataset.

The run folder (:class:`vixml.run_folder.RunFolder`) holds the config as given, checkpoints, the metrics of
every evaluation (CSV and JSON), training curves (PNG), the final model, the label embeddings and texts,
the test predictions, ``run.json`` (data fingerprint, precision, wall time of every segment) and a README that
says how every number was made. One writer at a time (a lock naming its holder); the inputs are checked
before anything is written; a killed run resumes from its last checkpoint (``resume=True``) and ends
bit-identical to an uninterrupted one; a finished run asked to resume returns at once.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import io
import json
import logging
import platform
import random
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from vixml import __version__, distributed
from vixml.atomic import atomic_open
from vixml.config import RunConfig, apply_overrides, ineffective_settings, load_config, save_config
from vixml.data import XMCDataset, load_dataset, write_label_matrix, write_texts
from vixml.data.footprint import require_folder
from vixml.devices import resolve_device, resolve_precision
from vixml.errors import ConfigError, DataError, Problem, TrainingInterrupted
from vixml.planning import training_plan
from vixml.reports import plot_training_curves
from vixml.reports.card import card_front_matter, hardware_line, run_card_sections
from vixml.run_folder import RunFolder, RunState
from vixml.training.checkpoint import save_array
from vixml.training.hybrid import holdout_rows, plus_r_memory, sparse_companion, tune_fusion, without_rows
from vixml.training.parallel import full_weights
from vixml.training.trainer import EpochEnd, Trainer

__all__ = ["train"]

logger = logging.getLogger(__name__)


def train(
    config: RunConfig | str | Path,
    data_dir: str | Path,
    out_dir: str | Path,
    *,
    overrides: Sequence[str] = (),
    resume: bool = False,
    force: bool = False,
    callbacks: Sequence[Callable[[EpochEnd], None]] = (),
    step_callbacks: Sequence[Callable[[int], None]] = (),
) -> Path:
    """Train a ViXML dual encoder and write the run folder.

    Args:
        config: a :class:`RunConfig` or the path of a YAML config.
        data_dir: a dataset folder (see ``vixml data prepare``).
        out_dir: the run folder to write.
        overrides: ``key=value`` settings applied on top of ``config`` (``--set``).
        resume: continue from the newest checkpoint in ``out_dir`` (with the run's own config and data).
        force: resume even though the dataset's fingerprint differs from the one the run was trained on.
        callbacks: called after every epoch.
        step_callbacks: called after every optimiser step with the step number.

    Returns:
        ``out_dir``.

    Raises:
        ConfigError: ``out_dir`` holds a run and ``resume`` is False; the config or the data differ from the
            run being resumed.
        LockedError: another process writes ``out_dir``.
        TrainingInterrupted: SIGINT/SIGTERM stopped the run after a checkpoint (``resume=True`` continues).
    """
    cfg = _as_config(config, overrides)
    run = RunFolder(out_dir)
    if run.path.exists() and not run.path.is_dir():
        raise DataError(Problem(str(run.path), "exists and is not a folder: --out must name a run folder"))
    from vixml.models import build_dual_encoder, check_pretrained, image_banks

    backbone = check_pretrained(cfg)  # loads, holds data.max_length positions: before anything is read or written
    ic = cfg.images
    require_folder(data_dir, "vixml train")  # named for the command; load_dataset checks it again, remembered
    dataset = load_dataset(  # every input is checked before anything is written
        data_dir,
        images=ic is not None,
        num_images=ic.num_images if ic else None,
        image_model=ic.embedding_model if ic else None,
    )
    if cfg.sparse is not None:
        from vixml.retrieval.sparse import require_libraries

        require_libraries()  # the sparse extra is installed (before anything is written)
    holdout = holdout_rows(dataset, cfg) if cfg.sparse is not None else np.zeros(0, dtype=np.int64)
    if holdout.shape[0]:
        logger.info(
            "sparse: %d training queries held out of both models to tune the fusion (sparse.holdout); "
            "they count below as queries without a label",
            holdout.shape[0],
        )
    device = resolve_device(cfg.train.device)
    precision, reason = resolve_precision(cfg.train.precision, device)
    _require_training_fits(cfg, dataset, Path(data_dir), device, backbone)
    banks = image_banks(cfg, dataset)
    for warning in ineffective_settings(cfg):
        logger.warning("%s", warning)
    with distributed.session(device) as world, _rank_zero_lock(run, world):
        device = distributed.rank_device(device)
        state = run.read_state()
        _check_resumable(run, cfg, dataset, state, resume=resume, force=force)
        if resume and state.finished and not run.missing():
            logger.info("%s has already finished training: nothing to do", run.path)
            return run.path
        if world.is_main:
            save_config(cfg, run.config)

        def save_state() -> None:  # rank 0 is the one writer
            if world.is_main:
                run.write_state(state.stamp())

        state.begin(str(Path(dataset.path).resolve()), dataset.fingerprint, precision, reason)
        save_state()
        logger.info("precision %s (%s)", precision, reason)
        if world.distributed:
            logger.info("rank %d of %d: each rank encodes 1/%d of every batch", world.rank, world.size, world.size)
        _seed_everything(cfg.train.seed)
        sparse = None
        trained_on = without_rows(dataset, holdout)  # the held-out queries' rows emptied (both models)
        if cfg.sparse is not None and world.is_main:  # before the first step: a resumed run keeps it
            started = time.perf_counter()
            sparse = sparse_companion(trained_on, cfg, run)
            if state.sparse_seconds is None:  # a resumed run keeps the first build's time
                state.sparse_seconds = round(time.perf_counter() - started, 1)
        vision_dim = next(iter(banks.values())).dim if banks else None
        model = build_dual_encoder(
            cfg, num_labels=dataset.n_labels, vision_dim=vision_dim, device=device, backbone=backbone
        )
        trainer = Trainer(
            cfg,
            trained_on,
            model,
            run.path,
            images=banks,
            precision=precision,
            callbacks=[*callbacks, lambda _: save_state()],
            step_callbacks=step_callbacks,
        )
        if cfg.sparse is not None and trainer.sharded:
            raise ConfigError("sparse: a hybrid run cannot shard its model (FSDP2) yet; set train.fsdp=false")
        layout = "fsdp2" if trainer.sharded else "replicas" if world.distributed else "one process"
        state.segments[-1].update(ranks=world.size, parallel=layout, backend=distributed.backend())
        try:
            with _stop_on_signals(trainer):
                if not (resume and trainer.resume()) and dataset.tst_Y is not None:
                    logger.info("zero-shot evaluation: the untrained model on %d test queries", dataset.n_test)
                    trainer.evaluate_zero_shot()
                trainer.fit()
                _finish(trainer, run, dataset, cfg, state, _Hybrid(sparse, holdout))
        finally:
            if state.end() and world.is_main:
                run.write_state(state)
    logger.info("run written to %s", run.path)
    return run.path


def _require_training_fits(cfg: RunConfig, dataset: XMCDataset, data_dir: Path, device, backbone) -> None:
    """Refuse a run whose host memory would not fit this machine (:func:`vixml.planning.training_plan`)."""
    plan = training_plan(cfg, dataset, data_dir, device, backbone)
    if plan is not None:
        plan.require()


@contextlib.contextmanager
def _rank_zero_lock(run: RunFolder, world: distributed.World) -> Iterator[None]:
    """The run folder's write lock, held by rank 0 only (the one writer); the others wait until it has it."""
    if not world.distributed:
        with run.lock("vixml train"):
            run.clean_stale()
            yield
        return
    lock = run.lock(f"vixml train (rank 0 of {world.size})") if world.is_main else contextlib.nullcontext()
    with lock:
        if world.is_main:
            run.clean_stale()
        distributed.barrier()
        yield


def _as_config(config: Any, overrides: Sequence[str]) -> RunConfig:
    if isinstance(config, RunConfig):
        cfg = config
    elif isinstance(config, str | Path):
        cfg = load_config(config)
    else:
        raise ConfigError(
            f"train() takes a RunConfig or the path of a YAML config, not a {type(config).__name__}: "
            "build one with vixml.config.RunConfig(...) or apply_overrides(RunConfig(), ['key=value', ...])"
        )
    return apply_overrides(cfg, overrides) if overrides else cfg


def _check_resumable(run: RunFolder, cfg: RunConfig, dataset: XMCDataset, state: RunState, *, resume, force) -> None:
    """Refuse to mix runs: a second run into a used folder, or a resume with another config or dataset."""
    has_checkpoint = run.latest_checkpoint() is not None
    if not resume:
        if has_checkpoint:
            raise ConfigError(
                f"{run.path} already holds a run with checkpoints: pass --resume, or choose another folder"
            )
        return
    if run.config.exists() and load_config(run.config) != cfg:
        raise ConfigError(f"{run.config} differs from the config given; resume a run with its own config")
    recorded = state.fingerprint
    if recorded and recorded != dataset.fingerprint and has_checkpoint:
        message = (
            f"{run.path} was trained on data with fingerprint {recorded} ({state.data_path}), but "
            f"{dataset.path} has fingerprint {dataset.fingerprint}: resume with the run's own data"
        )
        if not force:
            raise ConfigError(message + ", or pass --force to continue on this data")
        logger.warning("%s; continuing because of --force", message)


class _Hybrid(NamedTuple):
    """A hybrid run's companion and held-out rows (None and empty without a ``sparse`` section)."""

    sparse: Any
    holdout: np.ndarray


def _finish(
    trainer: Trainer, run: RunFolder, dataset: XMCDataset, cfg: RunConfig, state: RunState, hybrid: _Hybrid
) -> None:
    """The final model, its label embeddings and texts, test predictions, metrics, curves and README.

    A hybrid run also tunes its fusion weight on the held-out queries (``fusion.json``); its test predictions
    and final metrics are the fused ones, with each source's metrics beside them."""

    def stop_if_requested() -> None:  # the last epoch's checkpoint exists: a stop loses only this final work
        if trainer.stop_requested:
            raise TrainingInterrupted(trainer.state.epoch, trainer.state.step, run.path)

    logger.info("final evaluation: label embeddings, test predictions, metrics")
    main = distributed.is_main()  # every rank embeds its shard; rank 0 writes
    trainer.finalize()
    trainer.sync_stop()
    stop_if_requested()
    label_emb = trainer.label_embeddings()
    with full_weights(trainer.model):  # an FSDP-sharded decoder is gathered on every rank, saved by rank 0
        if main:
            save_array(run.label_embeddings, label_emb)
            run.replace_model(trainer.model.save)
    if main:
        write_texts(run.label_texts, dataset.lbl_texts)  # predictions shown as text, without the data
        _keep_ids(run, dataset)
    final = sources = fusion = memory = None
    history = trainer.state.history
    if hybrid.sparse is not None and main:
        started = time.perf_counter()
        held_out = None
        if cfg.eval.augment is not None:  # +R is fused as a third source: its weight is tuned too
            memory = plus_r_memory(trainer.encoder.embed_split("trn"), dataset, hybrid.holdout, cfg)
            held_out = memory.embeddings[hybrid.holdout] if hybrid.holdout.shape[0] else None
        elif hybrid.holdout.shape[0]:
            held_out = trainer.encoder.embed_split("trn", rows=hybrid.holdout)
        fusion = tune_fusion(held_out, hybrid.holdout, dataset, label_emb, hybrid.sparse, cfg, memory)
        fusion.save(run.fusion)
        tuning_seconds = round(time.perf_counter() - started, 1)
    if dataset.tst_Y is not None:
        trainer.sync_stop()
        stop_if_requested()
        queries = trainer.embed_test()  # every rank embeds its shard; rank 0 predicts and writes
        if main:
            sources, predictions = _sources(queries, dataset, cfg, label_emb, hybrid.sparse, fusion, memory)
            trainer.state.update_last(sources["dense"])
            final = sources["fused" if fusion is not None else "dense"]
            write_label_matrix(run.predictions, predictions)
    distributed.barrier()
    if not main:
        return
    _write_history(history, run)
    record = {"final": final, "zero_shot": _zero_shot(history)}
    if fusion is not None and sources is not None:
        tuned = {"dense_weight": fusion.dense_weight, "tuned_on": fusion.tuned_on, "seconds": tuning_seconds}
        if fusion.plus_r is not None:
            tuned["plus_r"] = fusion.plus_r
        record.update(sources=sources, fusion=tuned)
    _write_json(run.metrics, record)
    plot_training_curves(history, run.curves, title=str(cfg.model.name_or_path))
    state.finished = True
    run.write_state(state.stamp())  # rank 0 only: the other ranks returned above
    _write_readme(run, cfg, dataset, final, state)


def _plus_r_sentence(weights: dict) -> str:
    """How +R (training queries voting for their labels) is fused, for the run README and the report."""
    parts = ", ".join(f"{name} {w:.2f}" for name, w in weights.items())
    return f"With +R (`--augment`), +R is a third fused source; the weights tuned on the same queries: {parts}."


def _sources(queries, dataset: XMCDataset, cfg: RunConfig, label_emb, sparse, fusion, memory=None):
    """Test metrics of each source through the one retrieval path (dense; with a companion also sparse and
    fused; with the +R memory also dense + R and fused + R) and the predictions of the run's answer (fused
    with a companion, else dense)."""
    from vixml.retrieval import LabelMatrix, Retriever
    from vixml.search import to_csr
    from vixml.training.evaluation import evaluate_predictions, test_filter

    hybrid = fusion is not None
    texts = list(dataset.tst_texts[list(range(dataset.n_test))]) if hybrid else None
    candidates = cfg.sparse.candidates if hybrid else 100
    retriever = Retriever(LabelMatrix(label_emb), sparse if hybrid else None, fusion, candidates=candidates)
    asked = [("dense", None)] + ([("sparse", None), ("fused", None)] if hybrid else [])
    if memory is not None:  # the test queries are scored with every training query's labels
        memory = dataclasses.replace(memory, labels=dataset.trn_Y.tocsr())
        asked += [("dense", memory), ("fused", memory)]
    metrics, answer = {}, None
    for source, with_r in asked:
        found = retriever.search(
            queries, texts, cfg.eval.topk, source=source, exclude=test_filter(dataset, cfg.eval), memory=with_r
        )
        predictions = to_csr(found.scores, found.ids, dataset.n_labels)
        metrics[source if with_r is None else f"{source} + R"] = evaluate_predictions(predictions, dataset, cfg.eval)
        if with_r is None and source == ("fused" if hybrid else "dense"):
            answer = predictions
    logger.info("test P@1: %s", ", ".join(f"{s} {100 * m['P@1']:.2f}" for s, m in metrics.items()))
    return metrics, answer


# ---------------------------------------------------------------------------------------------- signals
@contextlib.contextmanager
def _stop_on_signals(trainer: Trainer) -> Iterator[None]:
    """SIGINT / SIGTERM ask the trainer to stop after its current step (it checkpoints first); a second one
    stops at once. Only in the main thread (signal handlers cannot be installed elsewhere)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: Any) -> None:
        if trainer.stop_requested:
            raise KeyboardInterrupt
        trainer.stop_requested = signal.Signals(signum).name
        logger.warning(
            "%s: stopping after the current step, with a checkpoint (again: stop at once)", trainer.stop_requested
        )

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


# ---------------------------------------------------------------------------------------------- files
def _seed_everything(seed: int) -> None:
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _zero_shot(history: list[dict]) -> dict | None:
    first = history[0] if history else None
    return {k: v for k, v in first.items() if "@" in k or k == "MRR"} if first and first["epoch"] == 0 else None


def _write_json(path: Path, obj: object) -> None:
    """Indented JSON, atomically (the metrics and the history)."""
    with atomic_open(path) as fh:
        json.dump(obj, fh, indent=2)
        fh.write("\n")


def _keep_ids(run: RunFolder, dataset: XMCDataset) -> None:
    """The dataset's own label ids and test query ids, kept in the run (outputs carry them beside row numbers);
    a copy left by an earlier training on data without ids is removed."""
    for split, path in (("lbl", run.label_ids), ("tst", run.test_ids)):
        ids = dataset.ids(split)
        if ids is not None:
            write_texts(path, ids)
        else:
            path.unlink(missing_ok=True)


def _write_history(history: list[dict], run: RunFolder) -> None:
    _write_json(run.history_json, history)
    keys = list(dict.fromkeys(k for rec in history for k in rec))
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=keys)
    writer.writeheader()
    writer.writerows(history)
    with atomic_open(run.history_csv) as fh:
        fh.write(buffer.getvalue())


def _git_commit() -> str:
    try:
        result = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent, capture_output=True, text=True, timeout=5
        )
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    return result.stdout.strip() if result.returncode == 0 else "unknown (not a git checkout)"


def _ranks(segments: list[dict]) -> str:
    last = segments[-1] if segments else {}
    return f" on {last['ranks']} ranks ({last['parallel']})" if last.get("ranks", 1) > 1 else ""


def _write_readme(run: RunFolder, cfg: RunConfig, dataset: XMCDataset, final: dict | None, state: RunState) -> None:
    import torch
    import transformers

    segments = state.segments
    precision = state.precision
    lines = [
        f"# vixml run: {cfg.model.name_or_path}",
        "",
        f"- data: `{dataset.path}` (fingerprint `{dataset.fingerprint}`): {dataset.n_train} train, "
        f"{dataset.n_test} test, {dataset.n_labels} labels",
        f"- vixml {__version__} (git {_git_commit()}), torch {torch.__version__}, "
        f"transformers {transformers.__version__}, python {platform.python_version()}",
        f"- wall time {state.seconds / 60:.1f} min in {len(segments)} segment(s){_ranks(segments)}; "
        f"epochs {cfg.train.epochs}, batch {cfg.train.batch_size}, precision {precision.get('value')} "
        f"({precision.get('reason')}), seed {cfg.train.seed}",
        "",
        f"Reproduce: `vixml train {run.config.name} --data DATA --out RUN`; predictions again: "
        "`vixml predict RUN --data DATA --out pred.npz`.",
        "",
        "Files: " + ", ".join(f"`{name}` ({what})" for name, what in run.describe_files(cfg.sparse is not None)) + ".",
        "",
    ]
    if cfg.sparse is not None and run.fusion.is_file():
        fusion = json.loads(run.fusion.read_text(encoding="utf-8"))
        weight = fusion["dense_weight"]
        lines += [
            f"Hybrid run: predictions fuse the dual encoder (weight {weight:.2f}) and the sparse companion "
            f"(weight {1 - weight:.2f}), the weight tuned on {fusion['tuned_on']} held-out training queries; "
            f"the final metrics are the fused ones (each source's are in `{run.metrics.name}`).",
            "",
        ]
        if fusion.get("plus_r"):
            lines += [_plus_r_sentence(fusion["plus_r"]), ""]
    if final:
        lines += ["## Final test metrics (%)", "", "| metric | value |", "|---|---|"]
        lines += [f"| {k} | {100 * v:.2f} |" for k, v in final.items()]
        lines.append("")
    shape = (
        f"{dataset.n_train} training and {dataset.n_test} test queries, {dataset.n_labels} labels "
        f"(`{dataset.path.name}`)"
    )
    lines += run_card_sections(cfg, data_shape=shape, hardware=hardware_line(state), final=final)
    lines += [
        "## Load and predict",
        "",
        "```",
        "vixml predict RUN --texts queries.txt --out predictions.jsonl   # RUN: this folder or its hub id ORG/NAME",
        "vixml serve RUN",
        "vixml export RUN --to onnx --out EXPORT [--int8]   # serve without torch: pip install 'vixml[serve-onnx]'",
        "```",
        "",
        "From Python: `vixml.inference.Predictor.load(RUN).predict(['a query'], k=10)`. Push to the Hugging Face "
        f"Hub with `huggingface-cli upload ORG/NAME RUN . --exclude '{run.checkpoints.name}/*'`.",
    ]
    front = card_front_matter(cfg, final, dataset.path.name)
    with atomic_open(run.readme) as fh:
        fh.write(front + "\n".join(lines) + "\n")
