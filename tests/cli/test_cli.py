"""The `vixml` command through a subprocess: exit codes, --json purity, messages that name file and line."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

from support_data import make_dataset
from vixml.data import write_filter, write_label_matrix
from vixml.metrics import evaluate

DEMO = Path(__file__).resolve().parents[2] / "src" / "vixml" / "resources" / "demo" / "wordnet-hypernyms"


def vixml(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "vixml.cli.main", *args], capture_output=True, text=True)


def test_help_version_and_usage_errors():
    assert vixml("--help").returncode == 0
    out = vixml("--version")
    assert out.returncode == 0 and out.stdout.startswith("vixml ")
    assert vixml("no-such-command").returncode == 2
    assert vixml("evaluate").returncode == 2  # missing --pred / --true


def test_data_stats_json_is_the_only_stdout():
    out = vixml("data", "stats", str(DEMO), "--json")
    assert out.returncode == 0, out.stderr
    stats = json.loads(out.stdout)
    assert stats["n_labels"] == 1162 and stats["trn"]["points"] == 7587 and stats["tst"]["points"] == 1744


def test_validate_lists_every_planted_defect_with_its_line(tmp_path):
    data = make_dataset(tmp_path / "data", n_train=10, n_test=5, n_labels=6)
    assert vixml("data", "validate", str(data)).returncode == 0
    lines = (data / "trn_X_Y.txt").read_text().splitlines()
    lines[3] = "1:1 oops"  # malformed token on line 4
    lines[5] = "99:1"  # label id out of range on line 6
    (data / "trn_X_Y.txt").write_text("\n".join(lines) + "\n")
    (data / "filter_labels_test.txt").write_text("0 1\n7 2\n")  # row 7 does not exist (5 test rows)
    out = vixml("data", "validate", str(data))
    assert out.returncode == 1
    assert "trn_X_Y.txt:4" in out.stderr and "trn_X_Y.txt:6" in out.stderr
    assert "filter_labels_test.txt:2" in out.stderr
    report = json.loads(vixml("data", "validate", str(data), "--json").stdout)
    assert report["ok"] is False and len(report["problems"]) >= 3


def test_prepare_copies_and_validates(tmp_path):
    out = vixml("data", "prepare", str(DEMO), str(tmp_path / "ds"), "--json")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["trn"]["points"] == 7587
    again = vixml("data", "prepare", str(DEMO), str(tmp_path / "ds"))
    assert again.returncode == 1 and "overwrite" in again.stderr


def test_evaluate_json_matches_the_library(tmp_path):
    rng = np.random.default_rng(0)
    true = sp.random(50, 30, density=0.08, random_state=1, format="csr", dtype=np.float32)
    true.data[:] = 1
    train = sp.random(200, 30, density=0.05, random_state=2, format="csr", dtype=np.float32)
    train.data[:] = 1
    pred = sp.random(50, 30, density=0.3, random_state=3, format="csr", dtype=np.float32)
    pred.data = rng.random(pred.nnz).astype(np.float32)
    pairs = np.array([[0, 1], [3, 4]])
    for name, m in (("true.txt", true), ("train.txt", train), ("pred.npz", pred)):
        write_label_matrix(tmp_path / name, m)
    write_filter(tmp_path / "f.txt", pairs)
    out = vixml(
        "evaluate", "--pred", str(tmp_path / "pred.npz"), "--true", str(tmp_path / "true.txt"),
        "--train", str(tmp_path / "train.txt"), "--filter", str(tmp_path / "f.txt"),
        "--A", "0.6", "--B", "2.6", "--k", "3", "--json",
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    expected = evaluate(true, pred, train=train, k=3, A=0.6, B=2.6, filter=pairs)
    got = json.loads(out.stdout)
    assert got.pop("units") == "fraction"  # the table shows %, JSON keeps fractions and says so
    assert got.keys() == expected.keys()
    for key in expected:
        assert got[key] == pytest.approx(expected[key], abs=1e-9)
    table = vixml(
        "evaluate", "--pred", str(tmp_path / "pred.npz"), "--true", str(tmp_path / "true.txt"),
        "--train", str(tmp_path / "train.txt"),
    )  # fmt: skip
    assert table.returncode == 0 and "PSnDCG" in table.stdout and "(%)" in table.stdout


def test_bad_input_exits_1_naming_the_file(tmp_path):
    (tmp_path / "bad.txt").write_text("2 3\n0:1\n1:x\n")
    out = vixml("evaluate", "--pred", str(tmp_path / "bad.txt"), "--true", str(tmp_path / "bad.txt"))
    assert out.returncode == 1
    assert "bad.txt:3" in out.stderr and "Traceback" not in out.stderr


def test_config_show_and_bad_override(tmp_path):
    out = vixml("config", "show", "--set", "train.epochs=7")
    assert out.returncode == 0 and "epochs: 7" in out.stdout and "model:" in out.stdout
    bad = vixml("config", "show", "--set", "train.epochz=7")
    assert bad.returncode == 1 and "epochz" in bad.stderr and "Traceback" not in bad.stderr
    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    assert vixml("config", "show", str(empty)).returncode == 0


def test_cli_layer_is_thin():
    """Commands parse options and call the library: no cli module is long."""
    for path in (Path(__file__).resolve().parents[2] / "src" / "vixml" / "cli").glob("*.py"):
        assert len(path.read_text().splitlines()) < 200, path
