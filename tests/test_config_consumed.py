"""Every config key is read by a component at run time (no dead options).

The test records, while two small runs train and predict (an encoder with PRIME, NGAME, images and +R; a
LoRA decoder with InfoNCE and the image prompt), every read of a config field made by vixml code outside
the config package (validation, comparison, printing and warnings do not count). A key that no component
reads fails it, whatever its name: deleting the one line that consumes a key makes this test fail.
"""

from __future__ import annotations

import dataclasses
import sys
import typing
from pathlib import Path

import numpy as np
import pytest

from support_data import make_dataset
from support_vision import coloured_images, tiny_siglip
from vixml.config import RunConfig, apply_overrides
from vixml.config.fields import _Section

SRC = str(Path(__file__).resolve().parents[1] / "src" / "vixml")
CONFIG = str(Path(SRC) / "config")
SECTIONS = str(Path(CONFIG) / "sections.py")
# Keys whose consumer arrives with an open issue; remove them from here as they land.
PENDING: set[str] = set()


def _keys(cls: type, prefix: str = "") -> list[str]:
    keys = []
    hints = typing.get_type_hints(cls)
    for field in dataclasses.fields(cls):
        inner = [a for a in typing.get_args(hints[field.name]) if dataclasses.is_dataclass(a)]
        target = inner[0] if inner else hints[field.name]
        if dataclasses.is_dataclass(target):
            keys += _keys(target, f"{prefix}{field.name}.")
        else:
            keys.append(prefix + field.name)
    return keys


def _reader() -> str | None:
    """Who reads: 'component' (vixml outside config/), or None (config internals, dataclass machinery, tests).

    Methods of the sections (derived values such as ``label_length()``) are transparent: the read counts
    for whoever called the method.
    """
    frame = sys._getframe(2)
    while frame is not None:
        name = frame.f_code.co_filename
        if name == SECTIONS and frame.f_code.co_name not in ("__post_init__", "_check"):
            frame = frame.f_back
            continue
        if name.startswith(SRC) and not name.startswith(CONFIG):
            return "component"
        return None
    return None


@pytest.fixture
def reads(monkeypatch):
    recorded: set[str] = set()
    fields_of: dict[type, dict[str, str]] = {}
    get = object.__getattribute__

    def getattribute(self, name):
        value = get(self, name)
        cls = type(self)
        names = fields_of.get(cls)
        if names is None:
            names = fields_of[cls] = {f.name: f"{cls._key}.{f.name}".lstrip(".") for f in dataclasses.fields(cls)}
        if name in names and not isinstance(value, _Section) and _reader() == "component":
            recorded.add(names[name])
        return value

    monkeypatch.setattr(_Section, "__getattribute__", getattribute)
    return recorded


@pytest.mark.slow
def test_every_config_key_is_read(tmp_path, tiny_bert, qwen_path, reads):
    from vixml.inference import Predictor
    from vixml.training import train

    data = make_dataset(tmp_path / "data", n_train=60, n_test=12, n_labels=10, with_images=True, dim=32)
    siglip = tiny_siglip(tmp_path / "siglip")
    common = [
        "data.max_length=12",
        "data.label_max_length=10",
        f"data.cache_dir={tmp_path / 'cache'}",
        "train.epochs=2",
        "train.batch_size=16",
        "train.warmup_steps=2",
        "train.device=cpu",
        "train.precision=fp32",
        "train.checkpoint_steps=2",
        "train.eval_every=1",
        "images.num_images=2",
        f"images.vision_model={siglip}",
        "images.dropout=0.2",
        "prototypes.lpn_heads=4",
        "prototypes.lpn_ffn=32",
        "mining.cluster_size=4",
        "mining.start_epoch=0",
        "mining.update_every=1",
        "mining.double_at=[1]",
        "eval.topk=5",
        "eval.augment.num_labels=5",
        "eval.augment.num_queries=5",
    ]
    hybrid = ["sparse.trees=1", "sparse.holdout=0.2"]  # a key of a switched-off section switches it on
    encoder = apply_overrides(
        RunConfig(), [f"model.name_or_path={tiny_bert}", "loss.aggressive=true", *hybrid, *common]
    )
    run = train(encoder, data, tmp_path / "encoder")
    predictor = Predictor.load(run)
    predictor.predict_dataset(data, k=5, augment=True)
    files = []
    for i, image in enumerate(coloured_images(2)):
        image.save(tmp_path / f"q{i}.png")
        files.append([tmp_path / f"q{i}.png"])
    predictor.predict(["a query", "another query"], images=files, k=3)

    decoder = apply_overrides(
        RunConfig(),
        [
            f"model.name_or_path={qwen_path}",
            "model.lora.r=4",
            "model.lora.alpha=8",
            "loss.name=infonce",
            *common,
            "prototypes=null",  # the plain dual encoder reads loss.symmetric
        ],
    )
    train(decoder, data, tmp_path / "decoder")

    unread = sorted(set(_keys(RunConfig)) - reads - PENDING)
    assert not unread, f"config keys no component reads (remove them or use them): {unread}"
    assert len(_keys(RunConfig)) > 60


def test_the_recorder_sees_a_component_read_and_ignores_config_internals(reads):
    cfg = apply_overrides(RunConfig(), ["train.epochs=3"])  # validation and copying read every field
    assert not reads
    from vixml.models.split_encoder import SplitEncoder

    encoder = SplitEncoder.__new__(SplitEncoder)
    encoder.config = cfg
    encoder.max_length("lbl")  # data.label_length(): a derived method, read for the component
    assert reads == {"data.label_max_length", "data.max_length"}
    assert np.isfinite(cfg.train.lr)  # a read from a test does not count
    assert "train.lr" not in reads
