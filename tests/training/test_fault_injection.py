"""Fault injection: a run killed at each dangerous point resumes to the uninterrupted run, bit for bit.

The kill points: inside an epoch (after a mid-epoch checkpoint), right after an epoch's checkpoint, while the
final label embeddings, the model and the test predictions are written, and a real ``kill -9`` of a
``vixml train`` process at whatever step it has reached. Every resume is compared bit for bit with one
uninterrupted run, and no temporary file may be left in the run folder.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from vixml.config import save_config
from vixml.run_folder import RunFolder
from vixml.training import train

pytestmark = pytest.mark.slow  # every test trains end to end (make test runs them)

# 240 planted queries, batch 32: 8 steps per epoch, 3 epochs, a checkpoint every 3 steps and every epoch.
SHORT = (
    "train.epochs=3",
    "prototypes.lpn_heads=4",
    "prototypes.lpn_ffn=64",
    "train.checkpoint_every=1",
    "train.checkpoint_steps=3",
)


class _Killed(Exception):
    pass


@pytest.fixture(scope="module")
def cfg(tiny_bert, train_config):
    return train_config(tiny_bert, *SHORT)


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory, planted_data, cfg):
    return train(cfg, planted_data, tmp_path_factory.mktemp("full") / "run")


def _assert_resumed_identically(reference, resumed) -> None:
    np.testing.assert_array_equal(
        np.load(reference / "label_embeddings.npy"), np.load(resumed / "label_embeddings.npy")
    )
    assert json.loads((reference / "metrics.json").read_text()) == json.loads((resumed / "metrics.json").read_text())
    strip = [
        [{k: v for k, v in rec.items() if k != "seconds"} for rec in json.loads((run / "history.json").read_text())]
        for run in (reference, resumed)
    ]
    assert strip[0] == strip[1]
    from vixml.data import read_label_matrix

    a, b = (read_label_matrix(run / "predictions_tst.npz") for run in (reference, resumed))
    assert (a != b).nnz == 0
    leftovers = [
        p.name
        for p in resumed.rglob("*")
        if (p.name.startswith(".") and p.name != ".vixml.lock") or p.name.endswith((".partial", ".old"))
    ]
    assert not leftovers, f"temporary files left: {leftovers}"


def test_killed_inside_an_epoch(tmp_path, planted_data, cfg, uninterrupted):
    def kill(step: int) -> None:
        if step == 11:  # after the mid-epoch checkpoint of step 9
            raise _Killed

    with pytest.raises(_Killed):
        train(cfg, planted_data, tmp_path / "run", step_callbacks=[kill])
    assert RunFolder(tmp_path / "run").latest_checkpoint().name == "ckpt-e0001-s000000009"
    _assert_resumed_identically(uninterrupted, train(cfg, planted_data, tmp_path / "run", resume=True))


def test_killed_right_after_an_epoch_checkpoint(tmp_path, planted_data, cfg, uninterrupted):
    def kill(end) -> None:
        if end.epoch == 2:
            raise _Killed

    with pytest.raises(_Killed):
        train(cfg, planted_data, tmp_path / "run", callbacks=[kill])
    assert RunFolder(tmp_path / "run").latest_checkpoint().name == "ckpt-e0002-s000000016"
    _assert_resumed_identically(uninterrupted, train(cfg, planted_data, tmp_path / "run", resume=True))


def _dies_while_writing(monkeypatch, module, name: str):
    """Patch ``module.name`` (a writer taking the path first) to leave a half-written temp file and die."""
    real = getattr(module, name)

    def half_written(path, *args, **kwargs):
        from pathlib import Path

        path = Path(path)
        (path.parent / f".{path.name}.abcd1234{path.suffix or '.tmp'}").write_bytes(b"half")  # what kill -9 leaves
        raise _Killed

    monkeypatch.setattr(module, name, half_written)
    return real


@pytest.mark.parametrize("writer", ["save_array", "write_label_matrix"], ids=["embeddings", "predictions"])
def test_killed_while_writing_the_final_files(tmp_path, planted_data, cfg, uninterrupted, monkeypatch, writer):
    import vixml.training.run as run_module

    real = _dies_while_writing(monkeypatch, run_module, writer)
    with pytest.raises(_Killed):
        train(cfg, planted_data, tmp_path / "run")
    monkeypatch.setattr(run_module, writer, real)
    _assert_resumed_identically(uninterrupted, train(cfg, planted_data, tmp_path / "run", resume=True))


def test_killed_while_writing_the_model(tmp_path, planted_data, cfg, uninterrupted, monkeypatch):
    from vixml.models.dual_encoder import DualEncoder

    real = DualEncoder.save

    def dies_half_way(self, directory):
        real(self, directory)
        (directory / "dual_encoder.json").unlink()  # the completion marker is written last: not yet
        raise _Killed

    monkeypatch.setattr(DualEncoder, "save", dies_half_way)
    with pytest.raises(_Killed):
        train(cfg, planted_data, tmp_path / "run")
    monkeypatch.setattr(DualEncoder, "save", real)
    _assert_resumed_identically(uninterrupted, train(cfg, planted_data, tmp_path / "run", resume=True))


def test_kill_9_of_a_training_process(tmp_path, planted_data, cfg, uninterrupted):
    config = tmp_path / "config.yaml"
    save_config(cfg, config)
    run = tmp_path / "run"
    command = [sys.executable, "-m", "vixml.cli.main", "train", str(config), "--data", str(planted_data)]
    proc = subprocess.Popen([*command, "--out", str(run)], stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 300
        while RunFolder(run).latest_checkpoint() is None:  # killed at whatever step it has reached then
            assert proc.poll() is None and time.time() < deadline, "the run ended before it could be killed"
            time.sleep(0.01)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    _assert_resumed_identically(uninterrupted, train(cfg, planted_data, run, resume=True))
