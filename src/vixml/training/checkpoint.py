"""Complete, atomic checkpoints: everything a killed run needs to end exactly as an uninterrupted one.

A checkpoint is a folder ``checkpoints/ckpt-eEEEE-sSSSSSSSSS`` (completed epochs, optimiser steps: written at
epoch ends and inside epochs) holding ``state.pt`` (weights, optimizer, scheduler,
scaler, every RNG, sampler state, epoch/step, history) and ``bank.npy`` (the query-embedding bank). It is
written under a temporary name and renamed when complete; ``checkpoints/latest`` names the newest one and
is replaced atomically after the rename. Older checkpoints are removed after that. The run folder finds the
newest (:meth:`vixml.run_folder.RunFolder.latest_checkpoint`).
"""

from __future__ import annotations

import logging
import random
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vixml.atomic import atomic_open, atomic_path, refuse_links
from vixml.data.file_kinds import NUMPY_READ_ERRORS, describe
from vixml.errors import DataError, Problem
from vixml.run_folder import CHECKPOINT_POINTER, CHECKPOINT_STATE

__all__ = [
    "save_checkpoint",
    "load_checkpoint",
    "rng_state",
    "set_rng_state",
    "save_array",
]

logger = logging.getLogger(__name__)


def rng_state() -> dict[str, Any]:
    """Every global random state (python, numpy, torch CPU and CUDA) as tensors and plain values."""
    np_state = np.random.get_state()
    state = {
        "python": list(random.getstate()[1]),
        "python_gauss": random.getstate()[2],
        "numpy_keys": torch.from_numpy(np_state[1].astype(np.int64)),
        "numpy_pos": int(np_state[2]),
        "numpy_gauss": [int(np_state[3]), float(np_state[4])],
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what :func:`rng_state` captured."""
    random.setstate((3, tuple(state["python"]), state["python_gauss"]))
    has_gauss, gauss = state["numpy_gauss"]
    np.random.set_state(
        ("MT19937", state["numpy_keys"].numpy().astype(np.uint32), state["numpy_pos"], has_gauss, gauss)
    )
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(
    folder: Path, epoch: int, state: dict[str, Any], bank: np.ndarray | None, *, step: int = 0, keep: int = 1
) -> Path:
    """Write the checkpoint of (``epoch``, ``step``) under ``folder`` atomically and point ``folder/latest`` at it.

    Args:
        folder: the run's ``checkpoints`` folder.
        epoch: the number of completed epochs.
        step: the number of optimiser steps.
        state: tensors, numbers, strings, lists and dicts only (it is read back with ``weights_only=True``).
        bank: the (N, D) query-embedding bank, or None.
        keep: how many of the newest checkpoints to keep.
    """
    refuse_links(folder, folder.parent).mkdir(parents=True, exist_ok=True)  # rmtree below must stay inside
    name = f"ckpt-e{epoch:04d}-s{step:09d}"
    final = folder / name
    tmp = folder / f".{name}.partial"
    for stale in folder.glob(".*.partial"):  # left by a writer killed mid-save (the caller holds the run's lock)
        shutil.rmtree(stale, ignore_errors=True)
    tmp.mkdir()
    torch.save(state, tmp / CHECKPOINT_STATE)
    if bank is not None:
        np.save(tmp / "bank.npy", bank)
    shutil.rmtree(final, ignore_errors=True)
    tmp.rename(final)
    with atomic_open(folder / CHECKPOINT_POINTER) as fh:
        fh.write(name + "\n")
    for old in sorted(p for p in folder.glob("ckpt-*") if p.is_dir())[:-keep]:  # names sort by (epoch, step)
        shutil.rmtree(old, ignore_errors=True)
    logger.info("checkpoint %s written", final)
    return final


def load_checkpoint(path: Path) -> tuple[dict[str, Any], np.ndarray | None]:
    """Read a checkpoint written by :func:`save_checkpoint` (never unpickles arbitrary objects)."""
    try:
        state = torch.load(path / CHECKPOINT_STATE, map_location="cpu", weights_only=True)
    except Exception as exc:  # a truncated or foreign file: say which and why
        raise DataError(Problem(str(path / CHECKPOINT_STATE), f"unreadable checkpoint: {exc}")) from exc
    bank_path = path / "bank.npy"
    try:  # allow_pickle=False: a planted pickle is refused, never run
        bank = np.load(bank_path, allow_pickle=False) if bank_path.exists() else None
    except NUMPY_READ_ERRORS as exc:
        raise DataError(
            Problem(
                str(bank_path),
                f"damaged checkpoint: the query bank is {describe(bank_path)} ({type(exc).__name__}: {exc}); it must "
                "be a plain float array as vixml writes it: restore the checkpoint, or train again into a new --out",
            )
        ) from None
    return state, bank


def save_array(path: Path, array: np.ndarray) -> None:
    """``np.save`` atomically (embeddings written beside a run)."""
    with atomic_path(path, suffix=".npy") as tmp:
        np.save(tmp, array)
