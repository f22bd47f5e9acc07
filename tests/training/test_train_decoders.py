"""Decoder LLM backbones through `train()` with LoRA (docs/method.md 2): tiny random Qwen2, Llama and Gemma 3
learn planted data, the run folder keeps the adapter only, a killed run resumes exactly, and the saved
adapter predicts what the run reported.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from support_data import make_dataset
from support_models import make_tiny_gemma3, make_tiny_llama, make_tiny_qwen2
from vixml.config import RunConfig, apply_overrides
from vixml.data import load_dataset
from vixml.inference import Predictor
from vixml.metrics import evaluate
from vixml.run_folder import RunFolder
from vixml.training import train

pytestmark = pytest.mark.slow  # every test here trains a model end to end (make test runs them)

BUILDERS = {"qwen2": make_tiny_qwen2, "llama": make_tiny_llama, "gemma3": make_tiny_gemma3}


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return make_dataset(tmp_path_factory.mktemp("data"), n_train=200, n_test=50, n_labels=20, max_labels=2)


def _config(model, *extra: str) -> RunConfig:
    return apply_overrides(
        RunConfig(),
        [
            f"model.name_or_path={model}",
            "model.lora.r=8",
            "model.lora.alpha=16",
            "data.max_length=16",
            "train.epochs=6",
            "train.batch_size=40",
            "train.lr=5e-3",
            "train.warmup_steps=3",
            "train.eval_every=0",
            "train.checkpoint_every=1",
            "train.device=cpu",
            "mining.cluster_size=4",
            "mining.double_at=[]",
            "mining.start_epoch=2",
            "mining.update_every=2",
            "eval.topk=10",
            *extra,
        ],
    )


@pytest.mark.parametrize("arch", sorted(BUILDERS))
def test_decoder_with_lora_learns_and_saves_the_adapter_only(tmp_path, data_dir, arch):
    model = BUILDERS[arch](tmp_path / arch)
    run = train(_config(model), data_dir, tmp_path / "run")
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["final"]["P@1"] > metrics["zero_shot"]["P@1"] + 0.15, metrics
    assert metrics["final"]["P@1"] > 4 * 1.5 / 20
    saved = run / "model" / "backbone"
    assert not list(saved.glob("model*.safetensors")), "the base weights must not be copied into the run"
    assert list(saved.glob("adapter*"))

    predictor = Predictor.load(run)
    ds = load_dataset(data_dir)
    pred = predictor.predict_dataset(data_dir, k=10)
    again = evaluate(ds.tst_Y, pred, train=ds.trn_Y, k=5, filter=ds.filter_tst)
    assert again["P@1"] == pytest.approx(metrics["final"]["P@1"], abs=1e-6)


class _Killed(Exception):
    pass


@pytest.mark.parametrize("arch", sorted(BUILDERS))
def test_decoder_run_resumes_to_identical_result(tmp_path, data_dir, arch):
    model = BUILDERS[arch](tmp_path / arch)
    cfg = _config(model, "train.epochs=3", "prototypes.lpn_heads=4", "prototypes.lpn_ffn=32")
    full = train(cfg, data_dir, tmp_path / "full")

    def kill(step: int) -> None:
        if step == 12:  # inside epoch 3 (5 steps per epoch)
            raise _Killed

    with pytest.raises(_Killed):
        train(cfg, data_dir, tmp_path / "killed", step_callbacks=[kill])
    state = RunFolder(tmp_path / "killed").latest_checkpoint() / "state.pt"
    assert state.stat().st_size < 2_000_000, "a LoRA checkpoint holds the trainable tensors, not the base"
    resumed = train(cfg, data_dir, tmp_path / "killed", resume=True)
    np.testing.assert_array_equal(np.load(full / "label_embeddings.npy"), np.load(resumed / "label_embeddings.npy"))


def test_vixml_train_command_with_a_lora_decoder(tmp_path, data_dir):
    import subprocess
    import sys

    model = make_tiny_llama(tmp_path / "llama")
    config = tmp_path / "empty.yaml"
    config.write_text("")
    settings = [f"model.name_or_path={model}", "model.lora.r=4", "train.epochs=1", "train.batch_size=40"]
    settings += ["train.device=cpu", "mining=null", "eval.topk=10", "train.precision=bf16"]
    args = [sys.executable, "-m", "vixml.cli.main", "train", str(config), "--data", str(data_dir)]
    args += ["--out", str(tmp_path / "run"), "--json"] + [a for s in settings for a in ("--set", s)]
    out = subprocess.run(args, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    result = json.loads(out.stdout)
    assert result["final"]["P@1"] >= 0 and (tmp_path / "run" / "model" / "backbone" / "vixml_adapter.json").exists()
