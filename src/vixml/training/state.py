"""Where a run stands: the counters and the history a checkpoint restores, the same on every rank.

The trainer's components (weights, optimiser, scheduler, sampler, random streams) are saved beside it; this is
what the loop itself counts, so that a run resumed from any checkpoint continues bit-identically.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["TrainState"]


@dataclass
class TrainState:
    """The loop's position and record.

    Attributes:
        epoch: completed epochs.
        step: optimiser steps.
        batch: batches done in the current epoch (non-zero for a checkpoint inside an epoch).
        sums: the current epoch's loss sums so far (by part name).
        count: batches in those sums.
        epoch_seconds: training time of the current epoch so far.
        history: one record per evaluation or epoch end (epoch 0: the zero-shot model), as ``history.json``.
    """

    epoch: int = 0
    step: int = 0
    batch: int = 0
    sums: dict[str, float] = field(default_factory=dict)
    count: int = 0
    epoch_seconds: float = 0.0
    history: list[dict[str, Any]] = field(default_factory=list)

    @property
    def fresh(self) -> bool:
        """Nothing trained yet (not a resumed run)."""
        return self.epoch == 0 and self.step == 0

    def record(self, record: dict[str, Any]) -> None:
        """Append one record to the history (an epoch's losses and metrics, or the zero-shot evaluation)."""
        self.history.append(record)

    def update_last(self, values: dict[str, Any]) -> None:
        """Add values to the newest record (the final evaluation's metrics, measured after the last epoch)."""
        self.history[-1].update(values)

    def end_epoch(self) -> None:
        """Forget the finished epoch's partial sums and time (its record holds them)."""
        self.batch, self.sums, self.count, self.epoch_seconds = 0, {}, 0, 0.0

    def state_dict(self) -> dict[str, Any]:
        """Plain values only (a checkpoint is read back with ``weights_only=True``)."""
        return {
            "epoch": self.epoch,
            "step": self.step,
            "batch": self.batch,
            "sums": dict(self.sums),
            "count": self.count,
            "epoch_seconds": self.epoch_seconds,
            "history": [dict(r) for r in self.history],
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned."""
        self.epoch, self.step, self.batch = state["epoch"], state["step"], state["batch"]
        self.sums, self.count = dict(state["sums"]), state["count"]
        self.epoch_seconds = state["epoch_seconds"]
        self.history = [dict(r) for r in state["history"]]
