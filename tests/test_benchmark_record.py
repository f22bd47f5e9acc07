"""Every benchmark topic carries the CPU it ran on, and RESULTS.md says which figures hold where bf16 is emulated."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

RUNNER = Path(__file__).resolve().parents[1] / "benchmarks" / "run.py"


@pytest.fixture
def runner():
    spec = importlib.util.spec_from_file_location("bench_runner", RUNNER)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_cpu_record_follows_the_native_bf16_answer(runner, monkeypatch):
    monkeypatch.setenv("VIXML_NATIVE_BF16", "0")
    record = runner.cpu_record()
    assert record["_native_bf16"] is False and record["_cpu"] and record["_cpu_flags"]
    monkeypatch.setenv("VIXML_NATIVE_BF16", "1")
    assert runner.cpu_record()["_native_bf16"] is True


def test_results_name_each_topics_cpu_and_the_figures_to_compare(runner, tmp_path):
    native = {
        "x_qps": 1.0,
        "_cpu": "Xeon (AVX2, AVX-512, AMX)",
        "_cpu_flags": "AVX2, AVX-512, AMX",
        "_native_bf16": True,
    }
    emulated = {"x_qps": 2.0, "_cpu": "EPYC (AVX2)", "_cpu_flags": "AVX2", "_native_bf16": False}
    path = tmp_path / "RESULTS.md"
    runner.write_markdown({"machine": {"cores": 2}, "search": native, "search@AVX2": emulated}, path)
    text = path.read_text()
    assert "CPU: Xeon (AVX2, AVX-512, AMX). bf16 native here." in text
    assert "CPU: EPYC (AVX2). **bf16 is emulated here**: compare the fp32 figures" in text
    assert "| _cpu" not in text  # the CPU is the sentence, not a row
