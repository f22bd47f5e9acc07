"""A run folder is never lost or mixed: locks, resume checks, mid-epoch checkpoints, signals, divergence.

Every resume is compared bit for bit with an uninterrupted run of the same config.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import numpy as np
import pytest
import torch

from support_data import make_dataset
from vixml.config import save_config
from vixml.errors import ConfigError, DataError, TrainingDiverged, TrainingInterrupted
from vixml.locking import LockedError, WriteLock
from vixml.run_folder import RunFolder
from vixml.training import train
from vixml.training.checkpoint import load_checkpoint

# 240 queries, batch 32: 8 steps per epoch; 3 epochs.
SHORT = ("train.epochs=3", "prototypes.lpn_heads=4", "prototypes.lpn_ffn=64", "train.checkpoint_every=1")


class _Killed(Exception):
    pass


def _kill_at(step_to_kill: int):
    def kill(step: int) -> None:
        if step == step_to_kill:
            raise _Killed

    return kill


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory, planted_data, tiny_bert, train_config):
    """The reference run every interrupted-and-resumed run must equal, bit for bit."""
    cfg = train_config(tiny_bert, *SHORT, "train.checkpoint_steps=3")
    return train(cfg, planted_data, tmp_path_factory.mktemp("full") / "run")


def _assert_identical(a, b) -> None:
    np.testing.assert_array_equal(np.load(a / "label_embeddings.npy"), np.load(b / "label_embeddings.npy"))
    assert json.loads((a / "metrics.json").read_text()) == json.loads((b / "metrics.json").read_text())
    history = [json.loads((run / "history.json").read_text()) for run in (a, b)]
    strip = [[{k: v for k, v in rec.items() if k != "seconds"} for rec in h] for h in history]
    assert strip[0] == strip[1]


@pytest.mark.slow
def test_a_run_killed_inside_an_epoch_resumes_from_its_mid_epoch_checkpoint(
    tmp_path, planted_data, tiny_bert, train_config, uninterrupted
):
    cfg = train_config(tiny_bert, *SHORT, "train.checkpoint_steps=3")
    with pytest.raises(_Killed):
        train(cfg, planted_data, tmp_path / "run", step_callbacks=[_kill_at(14)])  # epoch 2, after step 12's ckpt
    state, _ = load_checkpoint(RunFolder(tmp_path / "run").latest_checkpoint())
    assert (state["epoch"], state["step"], state["batch"]) == (1, 12, 4)  # 4 batches into the second epoch
    (tmp_path / "run" / ".label_embeddings.npy.ab12cd34.npy").write_text("left by a kill")
    resumed = train(cfg, planted_data, tmp_path / "run", resume=True)
    _assert_identical(uninterrupted, resumed)
    assert not list(resumed.glob(".*.npy")), "stale temporary files are cleaned on resume"
    record = json.loads((resumed / "run.json").read_text())
    assert len(record["segments"]) == 2 and record["finished"]
    assert record["seconds"] == pytest.approx(sum(s["seconds"] for s in record["segments"]), abs=0.2)
    assert "2 segment(s)" in (resumed / "README.md").read_text()


@pytest.mark.slow
def test_sigterm_stops_after_the_step_with_a_checkpoint_and_resumes_identically(
    tmp_path, planted_data, tiny_bert, train_config, uninterrupted
):
    cfg = train_config(tiny_bert, *SHORT, "train.checkpoint_steps=3")

    def terminate(step: int) -> None:
        if step == 10:
            os.kill(os.getpid(), signal.SIGTERM)

    with pytest.raises(
        TrainingInterrupted, match="interrupted at epoch 2 step 10; run the same command with --resume"
    ):
        train(cfg, planted_data, tmp_path / "run", step_callbacks=[terminate])
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # the handler is removed again
    state, _ = load_checkpoint(RunFolder(tmp_path / "run").latest_checkpoint())
    assert (state["step"], state["batch"]) == (10, 2)
    _assert_identical(uninterrupted, train(cfg, planted_data, tmp_path / "run", resume=True))


@pytest.mark.slow
def test_ctrl_c_through_the_command_line_exits_130_with_the_resume_hint(
    tmp_path, planted_data, tiny_bert, train_config
):
    config = tmp_path / "config.yaml"
    save_config(train_config(tiny_bert, *SHORT), config)
    code = (
        "import os, signal, sys; from vixml.cli.main import main; from vixml.training import trainer as t; "
        "step = t.Trainer._optimizer_step; "
        "t.Trainer._optimizer_step = lambda self: (step(self), self.state.step == 5 and os.kill(os.getpid(), "
        "signal.SIGINT)); "
        f"sys.exit(main(['train', {str(config)!r}, '--data', {str(planted_data)!r}, '--out', "
        f"{str(tmp_path / 'run')!r}]))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 130, out.stderr[-2000:]
    assert "interrupted at epoch 1 step 5; run the same command with --resume to continue" in out.stderr
    assert "Traceback" not in out.stderr


@pytest.mark.slow
def test_a_second_writer_is_refused_and_nothing_is_written(tmp_path, planted_data, tiny_bert, train_config):
    cfg = train_config(tiny_bert, *SHORT)
    with WriteLock(tmp_path / "run", "another vixml train"):
        with pytest.raises(LockedError, match="another vixml train, pid"):
            train(cfg, planted_data, tmp_path / "run")
    assert not (tmp_path / "run" / "config.yaml").exists()


@pytest.mark.slow
def test_resume_refuses_other_data_of_the_same_shape_unless_forced(tmp_path, planted_data, tiny_bert, train_config):
    cfg = train_config(tiny_bert, *SHORT)
    with pytest.raises(_Killed):
        train(cfg, planted_data, tmp_path / "run", step_callbacks=[_kill_at(10)])
    other = make_dataset(tmp_path / "other", n_train=240, n_test=60, n_labels=24, max_labels=2, seed=7)
    with pytest.raises(ConfigError, match=r"fingerprint .* resume with the run's own data, or pass --force"):
        train(cfg, other, tmp_path / "run", resume=True)
    train(cfg, other, tmp_path / "run", resume=True, force=True)


@pytest.mark.slow
def test_bad_inputs_fail_before_anything_is_written(tmp_path, planted_data, tiny_bert, train_config):
    with pytest.raises(ConfigError, match="no such folder"):
        train(train_config(tmp_path / "no-such-model"), planted_data, tmp_path / "run")
    assert not (tmp_path / "run").exists()
    (tmp_path / "file").write_text("x")
    with pytest.raises(DataError, match="is not a folder"):
        train(train_config(tiny_bert), planted_data, tmp_path / "file")
    with pytest.raises(ConfigError, match="not a dict"):
        train({"train": {"epochs": 1}}, planted_data, tmp_path / "run")


@pytest.mark.slow
def test_a_finished_run_asked_to_resume_returns_at_once(
    tmp_path, planted_data, tiny_bert, train_config, uninterrupted
):
    cfg = train_config(tiny_bert, *SHORT, "train.checkpoint_steps=3")
    steps = []
    before = (uninterrupted / "metrics.json").stat().st_mtime_ns
    assert train(cfg, planted_data, uninterrupted, resume=True, step_callbacks=[steps.append]) == uninterrupted
    assert steps == [] and (uninterrupted / "metrics.json").stat().st_mtime_ns == before


@pytest.mark.slow
def test_a_diverging_run_stops_naming_the_last_good_checkpoint(
    tmp_path, planted_data, tiny_bert, train_config, monkeypatch
):
    from vixml.training.trainer import Trainer

    step = Trainer._optimizer_step

    def poisoned(self) -> None:
        step(self)
        if self.state.step == 9:  # after the first epoch's checkpoint (8 steps)
            with torch.no_grad():
                next(self.model.parameters()).fill_(float("nan"))

    monkeypatch.setattr(Trainer, "_optimizer_step", poisoned)
    cfg = train_config(tiny_bert, *SHORT, "train.log_every=1")
    with pytest.raises(
        TrainingDiverged, match=r"diverged at step 10 \(loss nan\); the last good checkpoint is .*ckpt-e0001"
    ):
        train(cfg, planted_data, tmp_path / "run")
