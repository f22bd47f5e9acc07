"""``train(config, data_dir, out_dir)``: a complete, traceable run folder from a config and a dataset.

The run folder holds the resolved config, checkpoints, the metrics of every evaluation (CSV and JSON),
training curves (PNG), the final model, the label embeddings, the test predictions and a README that
says how every number was made (versions, git commit, data fingerprint, timings).
"""

from __future__ import annotations

import csv
import io
import json
import logging
import platform
import shutil
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from vixml import __version__
from vixml.atomic import atomic_open
from vixml.config import RunConfig, apply_overrides, load_config, save_config
from vixml.data import load_dataset, write_label_matrix, write_texts
from vixml.errors import ConfigError
from vixml.reports import plot_training_curves
from vixml.run_folder import RunFolder
from vixml.training.checkpoint import latest_checkpoint, save_array
from vixml.training.trainer import EpochEnd, Trainer

__all__ = ["train", "RUN_FILES"]

logger = logging.getLogger(__name__)

RUN_FILES = {
    "config": "config.yaml",
    "model": "model",
    "label_embeddings": "label_embeddings.npy",
    "predictions": "predictions_tst.npz",
    "metrics": "metrics.json",
    "history_csv": "history.csv",
    "history_json": "history.json",
    "curves": "curves.png",
    "readme": "README.md",
}


def train(
    config: RunConfig | str | Path,
    data_dir: str | Path,
    out_dir: str | Path,
    *,
    overrides: Sequence[str] = (),
    resume: bool = False,
    callbacks: Sequence[Callable[[EpochEnd], None]] = (),
    step_callbacks: Sequence[Callable[[int], None]] = (),
) -> Path:
    """Train a ViXML dual encoder and write the run folder.

    Args:
        config: a :class:`RunConfig` or the path of a YAML config.
        data_dir: a dataset folder (see ``vixml data prepare``).
        out_dir: the run folder to write.
        overrides: ``key=value`` settings applied on top of ``config`` (``--set``).
        resume: continue from the newest checkpoint in ``out_dir`` (the run's own config is used).
        callbacks: called after every epoch.
        step_callbacks: called after every optimiser step with the step number.

    Returns:
        ``out_dir``.

    Raises:
        ConfigError: ``out_dir`` already holds a run and ``resume`` is False, or the config differs from
            the one saved in the run being resumed.
    """
    started = time.perf_counter()
    out = Path(out_dir)
    cfg = config if isinstance(config, RunConfig) else load_config(config)
    if overrides:
        cfg = apply_overrides(cfg, overrides)
    has_checkpoint = latest_checkpoint(out / "checkpoints") is not None
    saved = out / RUN_FILES["config"]
    if resume and saved.exists():
        previous = load_config(saved)
        if previous != cfg:
            raise ConfigError(
                f"{saved} differs from the config given; resume a run with its own config (omit changes)"
            )
    elif has_checkpoint and not resume:
        raise ConfigError(f"{out} already holds a run with checkpoints: pass --resume, or choose another folder")
    out.mkdir(parents=True, exist_ok=True)
    save_config(cfg, saved)

    ic = cfg.images
    dataset = load_dataset(
        data_dir,
        images=ic is not None,
        num_images=ic.num_images if ic else None,
        image_model=ic.embedding_model if ic else None,
    )
    trainer = Trainer(cfg, dataset, out, callbacks=callbacks, step_callbacks=step_callbacks)
    if not (resume and trainer.resume()) and dataset.tst_Y is not None:
        metrics = trainer.evaluate()  # epoch 0: the zero-shot encoder, the baseline of every curve
        trainer.progress.history.append({"epoch": 0, "step": 0, **metrics})
    trainer.fit()
    trainer.finalize()

    label_emb = trainer.label_embeddings()
    save_array(out / RUN_FILES["label_embeddings"], label_emb)
    write_texts(RunFolder(out).label_texts, dataset.lbl_texts)  # predictions shown as text, without the data
    _save_model(trainer, out / RUN_FILES["model"])
    final = None
    if dataset.tst_Y is not None:
        final, predictions = trainer.evaluate(label_embeddings=label_emb, return_predictions=True)
        write_label_matrix(out / RUN_FILES["predictions"], predictions)
        trainer.progress.history[-1].update(final)
    _write_history(trainer.progress.history, out)
    dataset_ref = {"path": str(Path(dataset.path).resolve()), "fingerprint": dataset.fingerprint}  # for reports
    summary = {"final": final, "zero_shot": _zero_shot(trainer.progress.history), "dataset": dataset_ref}
    _write_json(out / RUN_FILES["metrics"], summary)
    plot_training_curves(trainer.progress.history, out / RUN_FILES["curves"], title=str(cfg.model.name_or_path))
    _write_readme(out, cfg, dataset, final, time.perf_counter() - started)
    logger.info("run written to %s", out)
    return out


def _save_model(trainer: Trainer, path: Path) -> None:
    """Write the model beside its final place, then swap it in: a reader never sees half a model."""
    partial = path.with_name(path.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    trainer.model.save(partial)
    shutil.rmtree(path, ignore_errors=True)
    partial.rename(path)


def _zero_shot(history: list[dict]) -> dict | None:
    first = history[0] if history else None
    return {k: v for k, v in first.items() if "@" in k or k == "MRR"} if first and first["epoch"] == 0 else None


def _write_json(path: Path, obj: object) -> None:
    with atomic_open(path) as fh:
        json.dump(obj, fh, indent=2)
        fh.write("\n")


def _write_history(history: list[dict], out: Path) -> None:
    _write_json(out / RUN_FILES["history_json"], history)
    keys = list(dict.fromkeys(k for rec in history for k in rec))
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=keys)
    writer.writeheader()
    writer.writerows(history)
    with atomic_open(out / RUN_FILES["history_csv"]) as fh:
        fh.write(buffer.getvalue())


def _git_commit() -> str:
    try:
        result = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent, capture_output=True, text=True, timeout=5
        )
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    return result.stdout.strip() if result.returncode == 0 else "unknown (not a git checkout)"


def _write_readme(out: Path, cfg: RunConfig, dataset, final: dict | None, seconds: float) -> None:
    import torch
    import transformers

    lines = [
        f"# vixml run: {cfg.model.name_or_path}",
        "",
        f"- data: `{dataset.path}` (fingerprint `{dataset.fingerprint}`): {dataset.n_train} train, "
        f"{dataset.n_test} test, {dataset.n_labels} labels",
        f"- vixml {__version__} (git {_git_commit()}), torch {torch.__version__}, "
        f"transformers {transformers.__version__}, python {platform.python_version()}",
        f"- wall time {seconds / 60:.1f} min; epochs {cfg.train.epochs}, batch {cfg.train.batch_size}, "
        f"precision {cfg.train.precision}, seed {cfg.train.seed}",
        "",
        "Reproduce: `vixml train config.yaml --data DATA --out RUN`; predictions again: "
        "`vixml predict RUN --data DATA --out pred.npz`.",
        "",
        "Files: `config.yaml` (the resolved config), `model/` (backbone in Hugging Face format + heads), "
        "`label_embeddings.npy`, `predictions_tst.npz`, `metrics.json`, `history.csv`, `curves.png`, "
        "`checkpoints/`.",
        "",
    ]
    if final:
        lines += ["## Final test metrics (%)", "", "| metric | value |", "|---|---|"]
        lines += [f"| {k} | {100 * v:.2f} |" for k, v in final.items()]
    with atomic_open(out / RUN_FILES["readme"]) as fh:
        fh.write("\n".join(lines) + "\n")
