"""benchmarks/gpu_check.py, small on the CPU: the GPU check must not meet its own bugs on a lent GPU's clock."""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import pytest

from vixml.config import load_config
from vixml.data import load_dataset

ROOT = Path(__file__).resolve().parents[1]


def _gpu_check():
    spec = importlib.util.spec_from_file_location("gpu_check", ROOT / "benchmarks" / "gpu_check.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_decoder_step_runs_both_ways_and_reads_the_memory_estimate(tmp_path):
    figures = _gpu_check().decoder(tmp_path, device="cpu", tiny=True)
    for key in ("no_ckpt", "with_ckpt"):
        assert math.isfinite(figures[f"{key}_loss"]) and figures[f"{key}_loss"] > 0
        assert figures[f"{key}_step_s"] > 0
        assert f"{key}_estimate_error" not in figures, figures
    # checkpointing trades activations for recompute: the estimate must say less memory with it
    assert 0 < figures["with_ckpt_estimate_gib"] < figures["no_ckpt_estimate_gib"]


def test_search_agrees_with_the_cpu_reference():
    figures = _gpu_check().search(device="cpu", n_labels=5_000)
    assert figures["top100_overlap_with_cpu"] > 0.99
    assert figures["max_score_diff"] < 1e-3


def test_demo_writes_the_data_and_a_config_for_the_device(tmp_path):
    for tiny in (False, True):  # the bundled demo data (the GPU's run), the synthetic few batches (CPU try)
        _gpu_check().demo(tmp_path / str(tiny), device="cpu", tiny=tiny)
        cfg = load_config(tmp_path / str(tiny) / "demo.yaml")
        assert cfg.train.device == "cpu" and cfg.train.epochs == 1
        assert load_dataset(tmp_path / str(tiny) / "demo").n_train == (96 if tiny else 7587)
