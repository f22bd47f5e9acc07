"""End-to-end training: learning on planted data, exact resume, and predict/evaluate agreeing with the run."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from support_data import PLANTED_LABELS
from vixml.data import read_label_matrix
from vixml.errors import ConfigError
from vixml.metrics import evaluate
from vixml.training import train

pytestmark = pytest.mark.slow  # every test here trains a model end to end (make test runs them)

N_LABELS = PLANTED_LABELS


@pytest.fixture
def data_dir(planted_data):
    return planted_data


@pytest.fixture
def tiny_model(tiny_bert):
    return tiny_bert


@pytest.fixture
def config(train_config, tiny_model):
    return lambda *extra: train_config(tiny_model, *extra)


@pytest.mark.parametrize("prototypes", [False, True], ids=["plain", "prime"])
def test_training_learns_planted_structure(tmp_path, data_dir, config, prototypes):
    extra = ["prototypes.lpn_heads=4", "prototypes.lpn_ffn=64", "prototypes.lr=2e-3"] if prototypes else []
    run = train(config(*extra), data_dir, tmp_path / "run")
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


def test_killed_run_resumes_to_identical_result(tmp_path, data_dir, config):
    cfg = config("train.epochs=4", "prototypes.lpn_heads=4", "prototypes.lpn_ffn=64")
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
    np.testing.assert_array_equal(a, b)  # bit for bit
    assert json.loads((full / "metrics.json").read_text()) == json.loads((resumed / "metrics.json").read_text())


def test_predict_and_evaluate_reproduce_the_run(tmp_path, data_dir, config):
    run = train(config("train.epochs=2"), data_dir, tmp_path / "run")
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
def test_mixed_precision_on_cpu_trains(tmp_path, data_dir, config, precision):
    """bf16 autocast, and fp16 autocast with a gradient scaler, run on CPU and still learn."""
    run = train(config(f"train.precision={precision}", "train.epochs=3"), data_dir, tmp_path / "run")
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["final"]["P@1"] > metrics["zero_shot"]["P@1"]


def test_max_steps_stops_inside_an_epoch_and_a_killed_run_resumes_to_the_same_model(tmp_path, data_dir, config):
    cfg = config("train.epochs=4", "train.max_steps=10", "train.checkpoint_steps=3")  # 8 steps an epoch
    full = train(cfg, data_dir, tmp_path / "full")
    history = json.loads((full / "history.json").read_text())
    assert [h["epoch"] for h in history] == [0, 1, 2] and history[-1]["step"] == 10

    def kill(step: int) -> None:
        if step == 9:  # in epoch 2, after the step-6 checkpoint
            raise _Killed

    with pytest.raises(_Killed):
        train(cfg, data_dir, tmp_path / "killed", step_callbacks=[kill])
    resumed = train(cfg, data_dir, tmp_path / "killed", resume=True)
    np.testing.assert_array_equal(np.load(full / "label_embeddings.npy"), np.load(resumed / "label_embeddings.npy"))
    assert json.loads((resumed / "history.json").read_text())[-1]["step"] == 10
