"""``vixml doctor``: the CPU, its native precisions, threads, libraries and the search backend chosen here."""

from __future__ import annotations

import json

from vixml.cli.main import main
from vixml.devices import cpu_features


def test_doctor_reports_the_machine_and_the_search_choice(capsys, monkeypatch):
    monkeypatch.setenv("VIXML_SEARCH_BACKEND", "numpy")
    capsys.readouterr()
    assert main(["doctor", "--json", "--dim", "32"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["cpu"]["model"] == cpu_features().model and report["native_bf16"] in (True, False)
    assert report["search"]["batch"] == "numpy" and "VIXML_SEARCH_BACKEND" in report["search"]["source"]
    assert report["threads"]["torch"] >= 1 and "torch" in report["libraries"]
    assert main(["doctor", "--dim", "32"]) == 0
    assert "numpy for batches" in capsys.readouterr().out.replace("\n", " ")


def test_doctor_measures_the_gemm_ceilings(capsys, monkeypatch):
    from vixml.search import gemm

    monkeypatch.setenv("VIXML_SEARCH_BACKEND", "torch")
    full = gemm.ceilings
    monkeypatch.setattr(gemm, "ceilings", lambda k: full(m=256, n=1024, k=k, repeats=1))  # small: not a benchmark
    capsys.readouterr()
    assert main(["doctor", "--json", "--gemm", "--dim", "16"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert {"fp32-torch", "fp32-numpy", "bf16-torch"} <= set(report["gemm_gflops"])
    assert all(v > 0 for k, v in report["gemm_gflops"].items() if k.startswith("fp32"))
