"""`vixml evaluate` inputs: file kinds told apart, files named in every message, PSP only with training labels,
A/B from the dataset family."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import scipy.sparse as sp

from support_data import make_dataset
from vixml.data import read_label_matrix, write_label_matrix
from vixml.metrics import evaluate


def vixml(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "vixml.cli.main", *args], capture_output=True, text=True)


@pytest.fixture
def data(tmp_path):
    return make_dataset(tmp_path / "LF-ToyAmazon-1K", n_train=30, n_test=8, n_labels=12)


def _scores(data, seed=0) -> np.ndarray:
    truth = read_label_matrix(data / "tst_X_Y.txt")
    return np.random.default_rng(seed).random(truth.shape).astype(np.float32)


def test_a_dense_npy_of_scores_is_accepted_as_its_top_labels(data, tmp_path):
    scores = _scores(data)
    np.save(tmp_path / "scores.npy", scores)
    out = vixml("evaluate", "--pred", str(tmp_path / "scores.npy"), "--data", str(data), "--json")
    assert out.returncode == 0, out.stderr
    truth, train = read_label_matrix(data / "tst_X_Y.txt"), read_label_matrix(data / "trn_X_Y.txt")
    pairs = np.loadtxt(data / "filter_labels_test.txt", dtype=np.int64).reshape(-1, 2)
    expected = evaluate(truth, sp.csr_matrix(scores), train=train, A=0.6, B=2.6, filter=pairs)  # every label
    got = json.loads(out.stdout)
    assert got.pop("units") == "fraction"
    assert got.keys() == expected.keys()
    for key in expected:
        assert got[key] == pytest.approx(expected[key], abs=1e-6), key
    assert "family 'amazon'" in out.stderr  # A/B of the family recorded by the folder's manifest


def test_files_of_another_kind_say_what_they_are(data, tmp_path):
    np.save(tmp_path / "ints.npy", np.arange(6).reshape(2, 3))
    (tmp_path / "fake.npz").write_text("hello world\n")
    np.savez(tmp_path / "arrays.npz", a=np.zeros(3))
    true = str(data / "tst_X_Y.txt")
    cases = {
        "ints.npy": "a dense numpy array int64 of shape (2, 3) (.npy); a dense prediction file must be a 2-D float",
        "fake.npz": "this is a text file, not a zip archive as .npz files are",
        "arrays.npz": "this is a zip archive (.npz) holding a, not a scipy sparse matrix",
    }
    for name, needle in cases.items():
        out = vixml("evaluate", "--pred", str(tmp_path / name), "--true", true)
        assert out.returncode == 1 and "Traceback" not in out.stderr, out.stderr
        assert needle in out.stderr, out.stderr
        assert "pickle" not in out.stderr and len(out.stderr.splitlines()) <= 3
    np.save(tmp_path / "true.npy", np.ones((8, 12), np.float32))
    out = vixml("evaluate", "--pred", str(tmp_path / "ints.npy"), "--true", str(tmp_path / "true.npy"))
    assert out.returncode == 1 and "true.npy: this is a dense numpy array float32 of shape (8, 12)" in out.stderr


def test_problems_name_the_file_not_the_option(data, tmp_path):
    write_label_matrix(tmp_path / "pred.npz", sp.random(8, 11, density=0.3, format="csr", random_state=0))
    (tmp_path / "filter.txt").write_text("0 1\n\n9 2\n")  # line 3: row 9 of 8
    out = vixml(
        "evaluate", "--pred", str(tmp_path / "pred.npz"), "--true", str(data / "tst_X_Y.txt"),
        "--filter", str(tmp_path / "filter.txt"),
    )  # fmt: skip
    assert out.returncode == 1
    assert f"{tmp_path / 'filter.txt'}:3 [row]: row 9 out of range [0, 8)" in out.stderr
    (tmp_path / "filter.txt").write_text("0 1\n")
    out = vixml(
        "evaluate", "--pred", str(tmp_path / "pred.npz"), "--true", str(data / "tst_X_Y.txt"),
        "--filter", str(tmp_path / "filter.txt"),
    )  # fmt: skip
    assert out.returncode == 1
    assert f"{tmp_path / 'pred.npz'} [shape]: predictions have shape (8, 11)" in out.stderr


def test_psp_needs_training_labels_unless_asked(data, tmp_path):
    write_label_matrix(tmp_path / "pred.npz", sp.csr_matrix(_scores(data)))
    args = ["evaluate", "--pred", str(tmp_path / "pred.npz"), "--true", str(data / "tst_X_Y.txt"), "--json"]
    out = vixml(*args)
    assert out.returncode == 0, out.stderr
    assert not [key for key in json.loads(out.stdout) if key.startswith("PS")]
    assert "PSP@k and PSnDCG@k left out: they need the training labels" in out.stderr
    asked = json.loads(vixml(*args, "--propensity-from-test").stdout)
    with_train = json.loads(vixml(*args, "--train", str(data / "trn_X_Y.txt")).stdout)
    assert "PSP@1" in asked and "PSP@1" in with_train and asked["PSP@1"] != with_train["PSP@1"]


def test_ab_from_the_family_or_given(data, tmp_path):
    write_label_matrix(tmp_path / "pred.npz", sp.csr_matrix(_scores(data)))
    base = ["evaluate", "--pred", str(tmp_path / "pred.npz"), "--data", str(data), "--json"]
    amazon = json.loads(vixml(*base).stdout)
    given = json.loads(vixml(*base, "--A", "0.6", "--B", "2.6").stdout)
    default = json.loads(vixml(*base, "--A", "0.55", "--B", "1.5").stdout)
    assert amazon == given and amazon["PSP@1"] != default["PSP@1"]
    other = make_dataset(tmp_path / "plain", n_train=30, n_test=8, n_labels=12)
    out = vixml("evaluate", "--pred", str(tmp_path / "pred.npz"), "--data", str(other))
    assert out.returncode == 0 and "A=0.55, B=1.5 (family unknown" in out.stderr
