"""Settings of the tiny runs that the serving tests train (tests/serve/conftest.py) and the benchmark reuses."""

from __future__ import annotations

from vixml.config import RunConfig, apply_overrides

__all__ = ["N_LABELS", "NEW_WORDS", "run_config"]

N_LABELS = 16
NEW_WORDS = ["zuzu", "bobo", "dada"]  # words no label of the dataset uses (label_word yields other words)


def run_config(model_path, *extra: str) -> RunConfig:
    return apply_overrides(
        RunConfig(),
        [
            f"model.name_or_path={model_path}",
            "prototypes=null",  # plain unless prototypes.* follow (the empty config is PRIME now)
            "data.max_length=16",
            "train.epochs=3",
            "train.batch_size=32",
            "train.lr=2e-3",
            "train.warmup_steps=5",
            "train.eval_every=0",
            "train.checkpoint_every=0",
            "train.device=cpu",
            "mining=null",
            "eval.topk=10",
            "eval.encode_batch_size=64",
            *extra,
        ],
    )
