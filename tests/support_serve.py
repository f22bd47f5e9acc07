"""Settings of the tiny runs that the serving tests train (tests/serve/conftest.py) and the benchmark reuses."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from support_data import label_word, write_table
from vixml.config import RunConfig, apply_overrides

__all__ = ["LABEL_IDS", "N_LABELS", "NEW_WORDS", "NUMERIC_ROW", "make_id_catalogue", "run_config"]

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


FILLER = ["the", "with", "for", "new", "set", "pack"]
NUMERIC_ROW = 3  # the label whose own id is "7", which is also another label's row number
LABEL_IDS = ["7" if j == NUMERIC_ROW else f"uitoolkit::{label_word(j)}" for j in range(N_LABELS)]


def make_id_catalogue(directory: Path, n_train: int = 96, n_test: int = 24, seed: int = 0) -> Path:
    """A catalogue with its own ids: queries.csv (``Q-0000``...), labels.jsonl (:data:`LABEL_IDS`, in row
    order; texts ``"<word> item"`` as the serving data's), pairs.csv; queries carry a split column."""
    rng = np.random.default_rng(seed)
    directory.mkdir(parents=True, exist_ok=True)
    labels = [{"id": LABEL_IDS[j], "text": f"{label_word(j)} item"} for j in range(N_LABELS)]
    queries, pairs = [], []
    for i in range(n_train + n_test):
        qid, split = f"Q-{i:04d}", "trn" if i < n_train else "tst"
        chosen = rng.choice(N_LABELS, size=int(rng.integers(1, 3)), replace=False)
        words = [label_word(int(j)) for j in chosen] + list(rng.choice(FILLER, size=2))
        queries.append({"id": qid, "text": " ".join(words), "split": split})
        pairs += [{"query_id": qid, "label_id": LABEL_IDS[int(j)]} for j in chosen]
    write_table(directory / "labels.jsonl", labels)
    write_table(directory / "queries.csv", queries)
    write_table(directory / "pairs.csv", pairs)
    return directory
