"""Commands that would not fit in memory are refused before they load anything (issue 11).

The memory available is monkeypatched low: each command exits 1 without a traceback, naming the file, the
memory needed, the memory available and what to do, and without reading a label file;
``VIXML_SKIP_MEMORY_CHECK=1`` lets it run.
"""

from __future__ import annotations

import re
from types import SimpleNamespace

import numpy as np
import pytest

from support_data import make_dataset, make_xc_raw
from vixml import memory_fit
from vixml.cli.main import main
from vixml.data import write_label_matrix
from vixml.errors import ResourceError

AVAILABLE = 3 << 20  # 3 MiB: less than any command's need


def run(capsys, *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.fixture
def low_memory(monkeypatch):
    """3 MiB available, nothing held; reading a label matrix fails the test (the refusal comes first)."""
    monkeypatch.delenv(memory_fit.SKIP_ENV, raising=False)
    monkeypatch.setattr(memory_fit, "available_bytes", lambda: AVAILABLE)
    monkeypatch.setattr(memory_fit, "resident_bytes", lambda: 0)

    def no_reading(*args, **kwargs):
        raise AssertionError("a label file was read before the memory check refused the command")

    import vixml.data
    import vixml.data.predictions
    import vixml.data.rules

    monkeypatch.setattr(vixml.data.rules, "label_matrix_problems", no_reading)
    monkeypatch.setattr(vixml.data, "read_label_matrix", no_reading)
    monkeypatch.setattr(vixml.data.predictions, "read_predictions", no_reading)


def _check_refusal(code: int, err: str, command: str, names: list[str]) -> None:
    assert code == 1 and "Traceback" not in err, err
    assert f"error: {command}: needs about " in err
    assert re.search(r"needs about \d+ MiB for .*; 3 MiB available\. ", err), err
    for name in names:
        assert name in err
    assert "VIXML_SKIP_MEMORY_CHECK=1" in err
    assert "more memory" in err  # the hint


@pytest.fixture
def dataset(tmp_path):
    return make_dataset(tmp_path / "data", n_train=30, n_test=10, n_labels=12)


def test_validate_is_refused_before_loading(dataset, low_memory, capsys):
    code, _, err = run(capsys, "data", "validate", str(dataset))
    _check_refusal(code, err, "vixml data validate", [str(dataset / "trn_X_Y.txt"), "30 x 12"])


def test_stats_is_refused_before_loading(dataset, low_memory, capsys):
    code, _, err = run(capsys, "data", "stats", str(dataset))
    _check_refusal(code, err, "vixml data stats", [str(dataset / "trn_X_Y.txt"), str(dataset / "tst_X_Y.txt")])


def test_prepare_of_a_dataset_folder_is_refused_before_loading(tmp_path, low_memory, capsys):
    src = make_dataset(tmp_path / "src", n_train=30, n_test=10, n_labels=12, manifest=False)
    code, _, err = run(capsys, "data", "prepare", str(src), str(tmp_path / "out"))
    _check_refusal(code, err, "vixml data prepare", [str(src / "trn_X_Y.txt")])
    assert not (tmp_path / "out").exists()


def test_prepare_of_an_xc_folder_is_refused_once_converted_and_writes_nothing(tmp_path, low_memory, capsys):
    src, _ = make_xc_raw(tmp_path / "LF-Toy")
    out = tmp_path / "out"
    code, _, err = run(capsys, "data", "prepare", str(src), str(out))
    _check_refusal(code, err, "vixml data prepare", [str(out / "trn_X_Y.txt")])  # named where it would be
    assert not out.exists() and not list(tmp_path.glob(".out.preparing-*"))


def test_evaluate_is_refused_before_loading(dataset, tmp_path, low_memory, capsys):
    pred = tmp_path / "pred.npz"
    write_label_matrix(pred, np.eye(10, 12, dtype=np.float32))
    code, _, err = run(capsys, "evaluate", "--pred", str(pred), "--data", str(dataset))
    _check_refusal(code, err, "vixml evaluate", [str(pred), "10 x 12", str(dataset / "tst_X_Y.txt")])


def test_the_switch_runs_them_anyway(dataset, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(memory_fit, "available_bytes", lambda: AVAILABLE)
    monkeypatch.setattr(memory_fit, "resident_bytes", lambda: 0)
    monkeypatch.setenv(memory_fit.SKIP_ENV, "1")
    pred = tmp_path / "pred.npz"
    write_label_matrix(pred, np.eye(10, 12, dtype=np.float32))
    assert run(capsys, "data", "validate", str(dataset))[0] == 0
    assert run(capsys, "data", "stats", str(dataset), "--json")[0] == 0
    assert run(capsys, "evaluate", "--pred", str(pred), "--data", str(dataset), "--json")[0] == 0
    assert run(capsys, "data", "prepare", str(dataset), str(tmp_path / "out"))[0] == 0


def test_unknown_memory_checks_nothing(dataset, monkeypatch, capsys):
    monkeypatch.delenv(memory_fit.SKIP_ENV, raising=False)
    monkeypatch.setattr(memory_fit, "available_bytes", lambda: None)
    assert run(capsys, "data", "stats", str(dataset), "--json")[0] == 0


def test_predict_is_refused_before_embedding(dataset, low_memory):
    """The search of ``vixml predict``: the dataset, the query embeddings and the search, before any encoding."""
    from vixml.inference.predictor import Predictor

    fake = SimpleNamespace(label_embeddings=np.zeros((12, 384), np.float32), device=SimpleNamespace(type="cpu"))
    with pytest.raises(ResourceError) as caught:
        Predictor._require_fits(fake, dataset, "tst", 100, False)
    message = str(caught.value)
    assert message.startswith("vixml predict: needs about ")
    assert str(dataset / "tst_X_Y.txt") in message and "10 query embeddings of 384" in message
    assert "3 MiB available" in message and "more memory" in message


def test_train_is_refused_before_writing(dataset, tmp_path, low_memory, capsys):
    config = tmp_path / "empty.yaml"  # all defaults
    config.write_text("")
    code, _, err = run(capsys, "train", str(config), "--data", str(dataset), "--out", str(tmp_path / "run"))
    _check_refusal(code, err, "vixml train", [str(dataset / "trn_X_Y.txt"), "30 x 12"])
    assert not (tmp_path / "run").exists()


def test_the_python_loader_is_refused_before_reading(dataset, low_memory):
    from vixml.data import load_dataset

    with pytest.raises(ResourceError) as caught:
        load_dataset(dataset)
    assert str(caught.value).startswith("load_dataset: needs about ")
    assert str(dataset / "trn_X_Y.txt") in str(caught.value)
