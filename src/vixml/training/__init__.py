"""Training: losses, NGAME cluster batching, the sampler, the trainer and checkpoints (docs/method.md 4)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__all__ = ["train", "Trainer", "TrainState"]

if TYPE_CHECKING:
    from vixml.training.run import train
    from vixml.training.state import TrainState
    from vixml.training.trainer import Trainer


def __getattr__(name: str) -> Any:  # lazy: `import vixml.training.losses` must not load transformers
    if name == "train":
        from vixml.training.run import train

        return train
    if name == "Trainer":
        from vixml.training.trainer import Trainer

        return Trainer
    if name == "TrainState":
        from vixml.training.state import TrainState

        return TrainState
    raise AttributeError(name)
