"""Input validation of vixml.metrics: every problem reported at once, with a message that says what to fix."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import scipy.sparse as sp

from vixml.errors import ConfigError, DataError
from vixml.metrics import evaluate, precision, psprecision

TRUE = sp.csr_matrix(np.array([[1, 0, 0, 1], [0, 1, 0, 0], [0, 0, 0, 0]], dtype=np.float32))
PRED = sp.csr_matrix(np.array([[0.9, 0.1, 0, 0], [0, 0, 0.3, 0.2], [0.5, 0, 0, 0]], dtype=np.float32))


def test_shape_mismatch_raises_dataerror_naming_both_shapes():
    wrong = sp.csr_matrix((3, 5), dtype=np.float32)
    with pytest.raises(DataError) as err:
        evaluate(TRUE, wrong)
    message = str(err.value)
    assert "(3, 5)" in message and "(3, 4)" in message and "one column per label" in message
    assert err.value.problems[0].file == "pred" and err.value.problems[0].field == "shape"
    with pytest.raises(DataError, match="2 rows but the true label matrix has 3"):
        evaluate(TRUE, (np.zeros((2, 2), np.float32), np.zeros((2, 2), np.int64)))


def test_every_problem_is_reported_at_once():
    wrong = sp.csr_matrix((3, 5), dtype=np.float32)
    train = sp.csr_matrix((10, 7), dtype=np.float32)
    with pytest.raises(DataError) as err:
        evaluate(TRUE, wrong, train=train, filter=[[7, 0]])
    assert [p.file for p in err.value.problems] == ["pred", "filter", "train"]


def test_dense_form_problems():
    scores = np.array([[0.5, np.nan], [0.1, 0.2], [0.3, 0.4]], dtype=np.float32)
    indices = np.array([[0, 9], [1, -2], [2, 3]])
    with pytest.raises(DataError) as err:
        evaluate(TRUE, (scores, indices))
    text = str(err.value)
    assert "outside [0, 4)" in text and "NaN" in text
    with pytest.raises(DataError, match="same shape"):
        evaluate(TRUE, (np.zeros((3, 2)), np.zeros((3, 3), np.int64)))
    with pytest.raises(DataError, match="must be integers"):
        evaluate(TRUE, (np.zeros((3, 2)), np.zeros((3, 2))))
    # NaN in a padding slot (index -1) is fine
    ok = evaluate(TRUE, (np.array([[0.9, np.nan]] * 3), np.array([[0, -1]] * 3)), k=1)
    assert ok["P@1"] == pytest.approx(1 / 3)


def test_label_predicted_twice_is_rejected():
    scores = np.array([[0.9, 0.8], [0.5, 0.4], [0.1, 0.0]], dtype=np.float32)
    indices = np.array([[0, 1], [2, 2], [3, 1]])
    with pytest.raises(DataError) as err:
        evaluate(TRUE, (scores, indices))
    assert [(p.line, p.field) for p in err.value.problems] == [(None, "row 1")]  # a query row, not a file line
    assert "more than once" in str(err.value)


def test_bad_truth_and_types():
    with pytest.raises(DataError, match="no query"):
        evaluate(sp.csr_matrix((0, 4)), sp.csr_matrix((0, 4)))
    with pytest.raises(DataError, match="negative"):
        evaluate(sp.csr_matrix(np.array([[-1.0, 0.0]])), sp.csr_matrix((1, 2)))
    with pytest.raises(DataError, match="scipy sparse"):
        evaluate([[1, 0]], PRED)
    with pytest.raises(DataError, match="scipy sparse"):
        evaluate(TRUE, {"indices": 0})
    with pytest.raises(DataError, match="NaN"):
        evaluate(TRUE, sp.csr_matrix(np.where(PRED.toarray() > 0.4, np.nan, PRED.toarray())))


def test_bad_parameters_raise_configerror():
    for kwargs in ({"k": 0}, {"k": 2.5}, {"A": -1.0}, {"B": 0.0}, {"A": float("nan")}):
        with pytest.raises(ConfigError):
            evaluate(TRUE, PRED, **kwargs)
    with pytest.raises(DataError, match="one inverse propensity per label"):
        psprecision(TRUE, PRED, np.ones(3))


def test_other_sparse_formats_and_dense_truth_are_accepted():
    expected = precision(TRUE, PRED, k=2)
    np.testing.assert_array_equal(precision(TRUE.tocoo(), PRED.tocsc(), k=2), expected)
    np.testing.assert_array_equal(precision(TRUE.toarray(), sp.csr_array(PRED), k=2), expected)


def test_import_is_cheap():
    code = "import sys, vixml.metrics; print('numba' in sys.modules, 'torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]


def test_non_finite_scores_and_labels_are_refused_naming_the_rows():
    pred = PRED.copy()
    assert PRED.indptr.tolist() == [0, 2, 4, 5]
    pred.data[[0, 3]] = [np.inf, np.nan]  # stored entries 0 and 3: rows 0 and 1
    with pytest.raises(DataError) as err:
        evaluate(TRUE, pred)
    (problem,) = err.value.problems
    assert problem.field == "scores"
    assert "2 prediction scores are NaN or infinite in 2 row(s) (0, 1)" in problem.message
    assert "every value must be a finite number" in problem.message
    scores = np.array([[0.9, 0.5], [np.inf, 0.1], [0.3, -np.inf]])
    dense = (scores, np.array([[0, 1], [2, 3], [0, -1]]))  # row 2's -inf is padding (label -1): fine
    with pytest.raises(DataError, match=r"1 row\(s\) \(1\) hold NaN or infinite scores of real"):
        evaluate(TRUE, dense)
    true = TRUE.copy()
    true.data[0] = np.nan
    train = sp.csr_matrix(np.array([[1, 0, 0, np.inf]] * 2, dtype=np.float32))
    with pytest.raises(DataError) as err:
        evaluate(true, PRED, train=train, sources={"true": "tst_X_Y.txt", "train": "trn_X_Y.txt"})
    assert [str(p) for p in err.value.problems] == [
        "tst_X_Y.txt: 1 label values are NaN or infinite in 1 row(s) (0); every value must be a finite number",
        "trn_X_Y.txt: 2 label values are NaN or infinite in 2 row(s) (0, 1); every value must be a finite number",
    ]


def test_problems_name_the_files_given_as_sources():
    wrong = sp.csr_matrix((3, 5), dtype=np.float32)
    with pytest.raises(DataError) as err:
        evaluate(TRUE, wrong, filter=[[7, 0]], sources={"pred": "run/pred.npz", "filter": "filter.txt"})
    assert [p.file for p in err.value.problems] == ["run/pred.npz", "filter.txt"]
