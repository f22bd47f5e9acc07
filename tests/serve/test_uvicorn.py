"""A real `vixml serve` under uvicorn on loopback: HTTP equals Predictor.predict, a SIGKILL loses no
acknowledged edit, one editor per run, and read-only `--workers 2`."""

from __future__ import annotations

import subprocess
import sys

import httpx
import numpy as np
import pytest

from support_data import label_word
from support_serve import N_LABELS
from support_server import ServerProcess, free_port
from vixml.inference import Predictor

QUERIES = [f"{label_word(3)} with", f"{label_word(8)} pack", "new and set"]


@pytest.mark.slow
def test_killed_server_loses_no_acknowledged_edit(run_copy):
    want = Predictor.load(run_copy, device="cpu").predict(QUERIES, k=4)
    server = ServerProcess(run_copy, "--device", "cpu")
    try:
        answer = httpx.post(server.url + "/predict", json={"queries": [{"text": q} for q in QUERIES], "k": 4}).json()
        assert [r["labels"] for r in answer["results"]] == want.indices.tolist()
        np.testing.assert_allclose([r["scores"] for r in answer["results"]], want.scores, atol=1e-5)
        second = subprocess.run(
            [sys.executable, "-m", "vixml.cli.main", "serve", str(run_copy), "--port", str(free_port())],
            capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        assert second.returncode == 1 and "being written by another process" in second.stderr
        added = httpx.post(server.url + "/labels", json={"labels": [{"text": "zuzu item"}]}, timeout=60)
        assert added.json()["rows"] == [N_LABELS]
        hidden = httpx.delete(server.url + "/labels/2", timeout=60)
        assert hidden.status_code == 200
    finally:
        server.kill()  # right after the acknowledgements: no shutdown hook runs
    with ServerProcess(run_copy, "--device", "cpu") as again:
        info = httpx.get(again.url + "/info").json()
        assert (info["added_labels"], info["hidden_labels"]) == (1, 1)
        results = httpx.post(again.url + "/predict", json={"queries": [{"text": "zuzu item"}], "k": N_LABELS}).json()
        assert N_LABELS in results["results"][0]["labels"] and 2 not in results["results"][0]["labels"]


@pytest.mark.slow
def test_two_workers_serve_read_only(prime_run):
    want = Predictor.load(prime_run, device="cpu").predict(QUERIES, k=3)
    with ServerProcess(prime_run, "--device", "cpu", "--workers", "2") as server:
        for _ in range(4):  # requests spread over both workers
            answer = httpx.post(server.url + "/predict", json={"queries": [{"text": q} for q in QUERIES], "k": 3})
            assert [r["labels"] for r in answer.json()["results"]] == want.indices.tolist()
        refused = httpx.post(server.url + "/labels", json={"labels": [{"text": "zuzu item"}]})
        assert refused.status_code == 403 and "--workers 2" in refused.json()["detail"][0]["msg"]
