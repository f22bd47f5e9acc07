"""Training on several ranks (torchrun, gloo on CPU) is training on one process with the global batch.

Two spawned gloo ranks each encode half of every batch; the embeddings are all-gathered with gradients, so
the loss, its parts, the gradients and the query bank equal those of one process on the whole batch.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from support_data import PLANTED_LABELS
from support_distributed import free_port, one_step, spawn, train_run
from vixml.data import read_label_matrix

pytestmark = pytest.mark.slow  # each test spawns gloo ranks that import torch and transformers


@pytest.fixture
def config(train_config, tiny_bert):
    return lambda *extra: train_config(tiny_bert, *extra)


@pytest.mark.parametrize("prime", [False, True], ids=["plain", "prime"])
def test_two_ranks_step_equals_one_process(tmp_path, planted_data, config, prime):
    extra = ["prototypes.lpn_heads=4", "prototypes.lpn_ffn=64"] if prime else ["prototypes=null"]
    cfg = config("train.batch_size=31", *extra)  # odd: the two shares differ in size
    single = one_step(cfg, planted_data, tmp_path / "one", None)
    spawn(one_step, 2, cfg, planted_data, tmp_path / "two", tmp_path / "two.pt")
    double = torch.load(tmp_path / "two.pt")
    assert single["parts"].keys() == double["parts"].keys()
    for name, value in single["parts"].items():
        assert double["parts"][name] == pytest.approx(value, rel=1e-5, abs=1e-6), name
    assert single["grads"].keys() == double["grads"].keys()
    assert len(single["grads"]) > 10
    for name, grad in single["grads"].items():
        torch.testing.assert_close(double["grads"][name], grad, rtol=1e-4, atol=1e-6, msg=name)
    torch.testing.assert_close(double["bank"], single["bank"], rtol=1e-5, atol=1e-6)
    assert double["norm"] == pytest.approx(single["norm"], rel=1e-5)


def test_fsdp_decoder_step_equals_one_process(tmp_path, planted_data, train_config, qwen_path):
    """(a) with ``train.fsdp``: a LoRA decoder FSDP2-sharded over 2 ranks (base and adapters in the shards, PRIME's
    heads replicated, activations recomputed) gives one process's loss parts, clipped gradients, gradient norm
    and query bank."""
    cfg = train_config(
        qwen_path,
        "model.lora.r=4",
        "model.lora.alpha=8",
        "model.gradient_checkpointing=true",
        "train.fsdp=true",
        "train.batch_size=31",
        "prototypes.lpn_heads=4",
        "prototypes.lpn_ffn=64",
    )
    single = one_step(cfg, planted_data, tmp_path / "one", None, True)  # no dropout in the tiny Qwen2 nor LoRA
    spawn(one_step, 2, cfg, planted_data, tmp_path / "two", tmp_path / "two.pt", True)
    double = torch.load(tmp_path / "two.pt")
    assert double["sharded"] and not single["sharded"]
    for name, value in single["parts"].items():
        assert double["parts"][name] == pytest.approx(value, rel=1e-5, abs=1e-6), name
    assert single["grads"].keys() == double["grads"].keys()
    assert any("lora" in n for n in single["grads"]) and any(n.startswith("prototypes.") for n in single["grads"])
    for name, grad in single["grads"].items():
        torch.testing.assert_close(double["grads"][name], grad, rtol=1e-4, atol=1e-7, msg=name)
    assert double["norm"] == pytest.approx(single["norm"], rel=1e-5)
    torch.testing.assert_close(double["bank"], single["bank"], rtol=1e-5, atol=1e-6)


def test_fsdp_decoder_training_resumes_identically_and_saves_the_full_model(
    tmp_path, planted_data, train_config, qwen_path
):
    """(b, c) with ``train.fsdp``: a 2-rank run of a sharded LoRA decoder learns, a run killed inside an epoch
    resumes to it bit for bit, and its saved model (gathered from the shards) predicts in one process what the
    run wrote."""
    from vixml.data import load_dataset
    from vixml.inference import Predictor
    from vixml.metrics import evaluate

    cfg = train_config(
        qwen_path, "model.lora.r=4", "model.lora.alpha=8", "train.fsdp=true", "train.epochs=4", "train.lr=5e-3"
    )
    full, killed = tmp_path / "full", tmp_path / "killed"
    spawn(train_run, 2, cfg, planted_data, full)
    metrics = json.loads((full / "metrics.json").read_text())
    assert metrics["final"]["P@1"] > metrics["zero_shot"]["P@1"] + 0.15, metrics
    segment = json.loads((full / "run.json").read_text())["segments"][0]
    assert (segment["ranks"], segment["parallel"], segment["backend"]) == (2, "fsdp2", "gloo")
    spawn(train_run, 2, cfg, planted_data, killed, 20)  # inside epoch 3 (8 steps an epoch)
    assert not (killed / "metrics.json").exists()
    spawn(train_run, 2, cfg, planted_data, killed, None, True)
    _same_run(full, killed)

    ds = load_dataset(planted_data)
    pred = Predictor.load(full, device="cpu").predict_dataset(planted_data, k=10)
    again = evaluate(ds.tst_Y, pred, train=ds.trn_Y, k=5, filter=ds.filter_tst)
    assert again["P@1"] == pytest.approx(metrics["final"]["P@1"], abs=1e-6)
    assert again["nDCG@5"] == pytest.approx(metrics["final"]["nDCG@5"], abs=1e-6)


def _same_run(a, b) -> None:
    """Two run folders hold the same trained model: label embeddings, metrics, history and predictions."""
    np.testing.assert_array_equal(np.load(a / "label_embeddings.npy"), np.load(b / "label_embeddings.npy"))
    assert json.loads((a / "metrics.json").read_text()) == json.loads((b / "metrics.json").read_text())
    drop = ("seconds",)
    ha, hb = (
        [{k: v for k, v in h.items() if k not in drop} for h in json.loads((r / "history.json").read_text())]
        for r in (a, b)
    )
    assert ha == hb
    pa, pb = (read_label_matrix(r / "predictions_tst.npz") for r in (a, b))
    assert (pa != pb).nnz == 0


def test_two_rank_training_learns_and_resumes_identically(tmp_path, planted_data, config):
    """(b) a 2-rank run learns the planted data; (c) killed inside an epoch on both ranks, it resumes
    (``resume=True``, 2 ranks) to the uninterrupted 2-rank run, bit for bit; so does a run stopped by a
    SIGTERM that reached one rank only (the ranks agree to stop, with a checkpoint at that step)."""
    cfg = config("train.epochs=4", "prototypes.lpn_heads=4", "prototypes.lpn_ffn=64", "prototypes.lr=2e-3")
    full, killed = tmp_path / "full", tmp_path / "killed"
    spawn(train_run, 2, cfg, planted_data, full)
    metrics = json.loads((full / "metrics.json").read_text())
    chance = 1.6 / PLANTED_LABELS
    assert metrics["final"]["P@1"] > 5 * chance, metrics
    assert metrics["final"]["P@1"] > metrics["zero_shot"]["P@1"] + 0.2, metrics
    assert not list(full.glob("*.tmp*")), "only rank 0 writes, atomically"
    segment = json.loads((full / "run.json").read_text())["segments"][0]
    assert (segment["ranks"], segment["parallel"], segment["backend"]) == (2, "replicas", "gloo")

    spawn(train_run, 2, cfg, planted_data, killed, 20)  # step 20: inside epoch 3, after the epoch-2 checkpoint
    assert not (killed / "metrics.json").exists()
    spawn(train_run, 2, cfg, planted_data, killed, None, True)
    _same_run(full, killed)
    state = json.loads((killed / "run.json").read_text())
    assert len(state["segments"]) == 2 and state["finished"]

    stopped = tmp_path / "stopped"  # SIGTERM reaches rank 1 only: both ranks checkpoint at step 13 and stop
    spawn(train_run, 2, cfg, planted_data, stopped, None, False, (1, 13))
    assert not (stopped / "metrics.json").exists()
    assert any(p.name.endswith("-s000000013") for p in (stopped / "checkpoints").iterdir())
    spawn(train_run, 2, cfg, planted_data, stopped, None, True)
    _same_run(full, stopped)


def test_predict_under_torchrun_equals_one_process(tmp_path, planted_data, config):
    """(d) ``torchrun --nproc_per_node 2 -m vixml predict`` writes the predictions of one process (the run
    itself trained by ``vixml train --nproc 2``, which launches torchrun)."""
    from vixml.cli.main import main
    from vixml.config import save_config

    save_config(config("train.epochs=1", "prototypes=null"), tmp_path / "config.yaml")
    run = tmp_path / "run"
    argv = ["train", str(tmp_path / "config.yaml"), "--data", str(planted_data), "--out", str(run), "--nproc", "2"]
    assert main(argv) == 0
    assert json.loads((run / "metrics.json").read_text())["final"]["P@1"] > 0
    assert main(["predict", str(run), "--data", str(planted_data), "--out", str(tmp_path / "one.npz")]) == 0
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join(sys.path)}
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port"]
    command += [str(free_port()), "-m", "vixml", "predict", str(run), "--data", str(planted_data)]
    command += ["--out", str(tmp_path / "two.npz"), "--device", "cpu"]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    one, two = (read_label_matrix(tmp_path / f"{n}.npz") for n in ("one", "two"))
    assert one.shape == two.shape and one.nnz == two.nnz
    np.testing.assert_array_equal(one.indices, two.indices)
    np.testing.assert_allclose(two.data, one.data, rtol=1e-5, atol=1e-6)
