"""Issue 23's remaining tracebacks and small breaks: a port in use, `evaluate` of predict's JSON lines and of a huge
--k, a pickled query bank in a checkpoint, a report written where nothing can be written."""

from __future__ import annotations

import json
import os
import pickle
import socket
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

from vixml.errors import DataError

OFFLINE = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "MPLBACKEND": "Agg"}


def vixml(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "vixml.cli.main", *args], capture_output=True, text=True, env=OFFLINE)


def test_a_port_in_use_is_refused_before_the_model_loads(cli_run):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        out = vixml("serve", str(cli_run), "--port", str(port))
    assert out.returncode == 1, out.stderr
    assert f"port {port} on 127.0.0.1 is already in use" in out.stderr and "--port" in out.stderr
    assert "Traceback" not in out.stderr and "Loading weights" not in out.stderr  # the model was never loaded


def test_evaluate_takes_predict_json_lines_of_the_test_split_and_says_what_it_needs_otherwise(
    cli_run, cli_data, tmp_path
):
    pred = tmp_path / "tst.jsonl"
    made = vixml("predict", str(cli_run), "--texts", str(cli_data / "tst.raw.txt"), "--out", str(pred))
    assert made.returncode == 0, made.stderr
    npz = tmp_path / "tst.npz"
    assert vixml("predict", str(cli_run), "--data", str(cli_data), "--out", str(npz)).returncode == 0
    from_jsonl = vixml("evaluate", "--pred", str(pred), "--data", str(cli_data), "--json")
    from_npz = vixml("evaluate", "--pred", str(npz), "--data", str(cli_data), "--json")
    assert from_jsonl.returncode == 0, from_jsonl.stderr
    assert json.loads(from_jsonl.stdout) == pytest.approx(json.loads(from_npz.stdout), abs=1e-6)
    lines = pred.read_text().splitlines()
    (tmp_path / "two.jsonl").write_text("\n".join(lines[:2]) + "\n")
    (tmp_path / "swapped.jsonl").write_text("\n".join([lines[1], lines[0], *lines[2:]]) + "\n")
    for name, needle in (
        ("two.jsonl", "it has 2 records, the test split 16"),
        ("swapped.jsonl", "record 1 is the query"),
    ):
        out = vixml("evaluate", "--pred", str(tmp_path / name), "--data", str(cli_data))
        assert out.returncode == 1 and len(out.stderr.splitlines()) == 2, out.stderr  # one problem, not 212
        assert "this is the JSON lines of `vixml predict --texts`" in out.stderr and needle in out.stderr
        assert "vixml predict RUN --data DIR --out pred.npz" in out.stderr


def test_a_huge_k_is_bounded_by_the_label_count(cli_run, cli_data):
    started = time.monotonic()
    out = vixml("evaluate", "--pred", str(cli_run / "predictions_tst.npz"), "--data", str(cli_data), "--k",
                "1000000000", "--json")  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert "--k 1000000000 is more than the 16 labels" in out.stderr
    assert "P@16" in json.loads(out.stdout) and time.monotonic() - started < 60


def test_a_pickled_query_bank_is_a_damaged_checkpoint_never_unpickled(tmp_path):
    from vixml.training.checkpoint import load_checkpoint

    torch.save({"step": 1}, tmp_path / "state.pt")
    np.save(tmp_path / "bank.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(DataError) as refused:
        load_checkpoint(tmp_path)
    message = str(refused.value)
    assert "bank.npy: damaged checkpoint: the query bank is a numpy .npy file that cannot be read" in message
    (tmp_path / "bank.npy").write_bytes(pickle.dumps([1, 2]))
    with pytest.raises(DataError, match="damaged checkpoint"):
        load_checkpoint(tmp_path)


def test_a_report_or_predictions_written_where_nothing_can_be_written(cli_run, tmp_path):
    (tmp_path / "afile").write_text("x")
    out = vixml("report", str(cli_run), "--out", str(tmp_path / "afile" / "r.html"))
    assert out.returncode == 1 and "Traceback" not in out.stderr, out.stderr
    assert f"cannot write {tmp_path / 'afile' / 'r.html'}: {tmp_path / 'afile'} is a file, not a folder" in out.stderr
    if os.path.isdir("/proc/self"):  # a folder no one can create files in, even root
        out = vixml("report", str(cli_run), "--out", "/proc/r.html")
        assert out.returncode == 1 and "cannot write /proc/r.html: no such file or directory in /proc" in out.stderr
