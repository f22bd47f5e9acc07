"""A damaged run folder gives one clear error naming the damaged file, never a traceback."""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest

from vixml.training import train

pytestmark = pytest.mark.slow  # trains one tiny run


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory, planted_data, tiny_bert, train_config):
    cfg = train_config(tiny_bert, "train.epochs=1", "prototypes=null", "mining=null")
    return train(cfg, planted_data, tmp_path_factory.mktemp("run") / "run")


def _predict(run, data, out):
    cmd = [sys.executable, "-m", "vixml.cli.main", "predict", str(run), "--data", str(data), "--out", str(out)]
    return subprocess.run(cmd, capture_output=True, text=True)


def _damaged_copy(run, tmp_path):
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    return copy


def test_truncated_label_embeddings(tmp_path, finished_run, planted_data):
    run = _damaged_copy(finished_run, tmp_path)
    path = run / "label_embeddings.npy"
    path.write_bytes(path.read_bytes()[:100])
    out = _predict(run, planted_data, tmp_path / "pred.npz")
    assert out.returncode == 1 and "Traceback" not in out.stderr
    assert f"{path}: unreadable label embeddings" in out.stderr and "--resume" in out.stderr


def test_corrupt_model_weights(tmp_path, finished_run, planted_data):
    run = _damaged_copy(finished_run, tmp_path)
    weights = next((run / "model" / "backbone").glob("*.safetensors"))
    weights.write_bytes(b"\0" * 64)
    out = _predict(run, planted_data, tmp_path / "pred.npz")
    assert out.returncode == 1 and "Traceback" not in out.stderr
    assert "unreadable model files" in out.stderr and str(run / "model") in out.stderr


def test_a_folder_that_is_not_a_run(tmp_path, planted_data):
    out = _predict(tmp_path, planted_data, tmp_path / "pred.npz")
    assert out.returncode == 1 and "config.yaml: missing" in out.stderr and "Traceback" not in out.stderr
