"""Settings that a configuration makes ineffective: said aloud instead of silently ignored.

A value changed from its default that nothing will read (the prototype weights of a plain dual encoder,
the aggressive temperature of a plain triplet loss, propensities under uniform sampling, a schedule that
starts after the last epoch...) is almost always a mistake in a recipe; :func:`ineffective_settings` names
each one, and training logs them as warnings before it starts.
"""

from __future__ import annotations

from typing import Any

from vixml.config.sections import LossConfig, LossWeights, ModelConfig, RunConfig, TrainConfig

__all__ = ["ineffective_settings"]


def _changed(section: Any, default: Any, *names: str) -> list[str]:
    """The fields among ``names`` whose value differs from the section's default."""
    return [n for n in names if getattr(section, n) != getattr(default, n)]


def ineffective_settings(cfg: RunConfig) -> list[str]:
    """One sentence per setting of ``cfg`` that has no effect, with the reason (empty when every one counts)."""
    out: list[str] = []
    loss, train = cfg.loss, cfg.train
    if cfg.prototypes is None:
        for name in _changed(loss.weights, LossWeights(), "uv", "r"):
            out.append(f"loss.weights.{name}={getattr(loss.weights, name)} has no effect without prototypes")
        if not loss.symmetric and loss.weights.i != LossWeights().i:
            out.append("loss.weights.i has no effect without prototypes unless loss.symmetric (L_u alone otherwise)")
    elif loss.symmetric:
        out.append("loss.symmetric has no effect with prototypes (PRIME always trains L_i)")
    if loss.name == "triplet":
        if not loss.aggressive and loss.temperature != LossConfig().temperature:
            out.append("loss.temperature has no effect without loss.aggressive (it weights violating negatives)")
        if loss.infonce_temperature != LossConfig().infonce_temperature:
            out.append("loss.infonce_temperature has no effect with loss.name=triplet")
    else:
        triplet_only = ("num_negatives", "margin_min", "margin_max", "dynamic_margin", "aggressive")
        if cfg.prototypes is None:  # with prototypes L_r's hinges read it under any base
            triplet_only += ("hinge_tie",)
        for name in _changed(loss, LossConfig(), *triplet_only):
            out.append(f"loss.{name} has no effect with loss.name={loss.name} (a triplet-loss setting)")
    if train.sampling == "uniform":
        for name in _changed(train, TrainConfig(), "propensity_A", "propensity_B"):
            out.append(f"train.{name} has no effect with train.sampling=uniform")
    if cfg.model.kind == "encoder" and cfg.model.prompt != ModelConfig().prompt:
        out.append("model.prompt has no effect on an encoder backbone (encoders see images then text)")
    epochs = train.epochs
    if cfg.mining is not None and _int(cfg.mining.start_epoch) >= epochs:
        out.append(
            f"mining.start_epoch={cfg.mining.start_epoch} >= train.epochs={epochs}: NGAME cluster batches never start"
        )
    for name in ("eval_every", "checkpoint_every"):
        value = _int(getattr(train, name))
        if 0 < epochs < value:
            out.append(f"train.{name}={value} > train.epochs={epochs}: it never fires before the last epoch")
    return out


def _int(value: Any) -> int:
    """An integer setting, or -1 for a derived one (``None``/``auto``: it is computed to fit the run)."""
    return value if isinstance(value, int) and not isinstance(value, bool) else -1
