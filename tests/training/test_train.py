"""End-to-end training: learning on planted data, exact resume, and predict/evaluate agreeing with the run."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from support_data import make_dataset
from support_models import make_tiny_bert
from vixml.config import RunConfig, apply_overrides
from vixml.data import load_dataset, read_label_matrix
from vixml.errors import ConfigError
from vixml.metrics import evaluate
from vixml.training import train

N_LABELS = 24


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return make_dataset(tmp_path_factory.mktemp("data"), n_train=240, n_test=60, n_labels=N_LABELS, max_labels=2)


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory, data_dir):
    ds = load_dataset(data_dir)
    texts = list(ds.trn_texts) + list(ds.lbl_texts) + list(ds.tst_texts)
    return make_tiny_bert(tmp_path_factory.mktemp("bert"), vocab_texts=texts, hidden=32, layers=2, heads=2)


def _config(model_path, *extra: str) -> RunConfig:
    return apply_overrides(
        RunConfig(),
        [
            f"model.name_or_path={model_path}",
            "data.max_length=16",
            "train.epochs=6",
            "train.batch_size=32",
            "train.lr=2e-3",
            "train.warmup_steps=5",
            "train.eval_every=0",
            "train.checkpoint_every=1",
            "train.device=cpu",
            "mining.cluster_size=4",
            "mining.double_at=[]",
            "mining.start_epoch=2",
            "mining.update_every=2",
            "eval.topk=10",
            "eval.encode_batch_size=64",
            *extra,
        ],
    )


@pytest.mark.parametrize("prototypes", [False, True], ids=["plain", "prime"])
def test_training_learns_planted_structure(tmp_path, data_dir, tiny_model, prototypes):
    extra = ["prototypes.lpn_heads=4", "prototypes.lpn_ffn=64", "prototypes.lr=2e-3"] if prototypes else []
    run = train(_config(tiny_model, *extra), data_dir, tmp_path / "run")
    metrics = json.loads((run / "metrics.json").read_text())
    final, zero_shot = metrics["final"], metrics["zero_shot"]
    chance = 1.6 / N_LABELS  # about 1.5 true labels per test point among 24
    assert final["P@1"] > 6 * chance, final
    assert final["P@1"] > zero_shot["P@1"] + 0.2, (zero_shot["P@1"], final["P@1"])
    history = json.loads((run / "history.json").read_text())
    assert [h["epoch"] for h in history] == list(range(0, 7))
    assert history[-1]["train/loss"] < history[1]["train/loss"]
    for name in ("README.md", "curves.png", "history.csv", "label_embeddings.npy", "predictions_tst.npz"):
        assert (run / name).exists(), name


class _Killed(Exception):
    pass


def test_killed_run_resumes_to_identical_result(tmp_path, data_dir, tiny_model):
    cfg = _config(tiny_model, "train.epochs=4", "prototypes.lpn_heads=4", "prototypes.lpn_ffn=64")
    full = train(cfg, data_dir, tmp_path / "full")

    def kill(step: int) -> None:
        if step == 20:  # inside epoch 3 (8 steps per epoch): after the epoch-2 checkpoint
            raise _Killed

    with pytest.raises(_Killed):
        train(cfg, data_dir, tmp_path / "killed", step_callbacks=[kill])
    with pytest.raises(ConfigError, match="--resume"):
        train(cfg, data_dir, tmp_path / "killed")
    resumed = train(cfg, data_dir, tmp_path / "killed", resume=True)
    a = np.load(full / "label_embeddings.npy")
    b = np.load(resumed / "label_embeddings.npy")
    np.testing.assert_allclose(a, b, atol=1e-6)
    assert json.loads((full / "metrics.json").read_text()) == json.loads((resumed / "metrics.json").read_text())


def test_predict_and_evaluate_reproduce_the_run(tmp_path, data_dir, tiny_model):
    run = train(_config(tiny_model, "train.epochs=2"), data_dir, tmp_path / "run")
    pred = tmp_path / "pred.npz"
    cli = [sys.executable, "-m", "vixml.cli.main"]
    subprocess.run(cli + ["predict", str(run), "--data", str(data_dir), "--k", "10", "--out", str(pred)], check=True)
    out = subprocess.run(
        cli
        + ["evaluate", "--pred", str(pred), "--true", str(data_dir / "tst_X_Y.txt")]
        + ["--train", str(data_dir / "trn_X_Y.txt"), "--filter", str(data_dir / "filter_labels_test.txt"), "--json"],
        check=True,
        capture_output=True,
        text=True,
    )
    again = json.loads(out.stdout)
    final = json.loads((run / "metrics.json").read_text())["final"]
    for key, value in final.items():
        assert again[key] == pytest.approx(value, abs=1e-6), key

    augmented = tmp_path / "augmented.npz"
    args = ["predict", str(run), "--data", str(data_dir), "--k", "5", "--augment", "--out", str(augmented)]
    subprocess.run(cli + args, check=True)
    pred = read_label_matrix(augmented)
    assert pred.shape == (60, N_LABELS) and np.diff(pred.indptr).max() <= 5
    assert evaluate(read_label_matrix(data_dir / "tst_X_Y.txt"), pred, k=1)["P@1"] > 0.3


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_mixed_precision_on_cpu_trains(tmp_path, data_dir, tiny_model, precision):
    """bf16 autocast, and fp16 autocast with a gradient scaler, run on CPU and still learn."""
    run = train(_config(tiny_model, f"train.precision={precision}", "train.epochs=3"), data_dir, tmp_path / "run")
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["final"]["P@1"] > metrics["zero_shot"]["P@1"]
