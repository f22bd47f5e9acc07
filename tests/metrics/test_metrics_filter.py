"""Filtering (row, label) pairs out of the predictions before ranking."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

import support_pyxclib as ox
from vixml.errors import DataError
from vixml.metrics import evaluate, filter_predictions


def csr(rows: list[dict[int, float]], n_labels: int = 5) -> sp.csr_matrix:
    r = [i for i, row in enumerate(rows) for _ in row]
    c = [label for row in rows for label in row]
    v = [value for row in rows for value in row.values()]
    return sp.csr_matrix((np.array(v, dtype=np.float32), (r, c)), shape=(len(rows), n_labels))


def test_filtered_top1_changes_p_at_1():
    # q0 ranks label 0 (true, the query's own item) then label 1 (true); q1 ranks label 3 (false) first
    true = csr([{0: 1, 1: 1}, {2: 1}])
    pred = csr([{0: 0.9, 1: 0.8, 4: 0.1}, {3: 0.7, 2: 0.6}])
    assert evaluate(true, pred, k=1)["P@1"] == 0.5  # (1 + 0) / 2
    # filtering (0, 0) moves label 1 to the top of q0: still a hit; filtering (1, 3) makes q1's top a hit
    assert evaluate(true, pred, k=1, filter=np.array([[1, 3]]))["P@1"] == 1.0
    # filtering (0, 0) and (0, 1) leaves label 4 on top of q0: a miss
    assert evaluate(true, pred, k=1, filter=np.array([[0, 0], [0, 1]]))["P@1"] == 0.0


def test_true_zero_score_is_kept():
    # q0: label 2 is true and predicted with a score of exactly 0.0, an explicit stored entry (a prediction,
    # not an absent entry); label 0 is filtered out
    true = csr([{2: 1}])
    pred = sp.csr_matrix((np.array([0.9, 0.5, 0.0], np.float32), [0, 1, 2], [0, 3]), shape=(1, 5))  # stored 0.0
    assert pred.nnz == 3
    out = evaluate(true, pred, k=2, filter=[[0, 0]])
    # ranking after filtering: label 1 (0.5), label 2 (0.0, hit) -> P@1 = 0, P@2 = 1/2, MRR = 1/2
    assert (out["P@1"], out["P@2"], out["MRR"]) == (0.0, 0.5, 0.5)
    kept = filter_predictions(pred, [[0, 0]])
    assert kept.nnz == 2 and kept[0, 2] == 0.0 and 2 in kept.indices
    assert evaluate(true, kept, k=2) == out


def test_filter_predictions_dense_form_compacts_rows():
    scores = np.array([[0.9, 0.8, 0.7], [0.5, 0.4, -1.0]], dtype=np.float32)
    indices = np.array([[4, 2, 0], [1, 3, -1]])
    new_scores, new_indices = filter_predictions((scores, indices), np.array([[0, 2], [1, 1], [1, 0]]))
    np.testing.assert_array_equal(new_indices, [[4, 0, -1], [3, -1, -1]])
    np.testing.assert_array_equal(new_scores, np.array([[0.9, 0.7, -np.inf], [0.4, -np.inf, -np.inf]], np.float32))
    np.testing.assert_array_equal(indices, [[4, 2, 0], [1, 3, -1]])  # the input is untouched


@pytest.mark.parametrize("seed", range(5))
def test_filter_matches_loop_oracle(seed):
    rng = np.random.default_rng(seed)
    n, n_labels = 30, 25
    true = sp.random(n, n_labels, density=0.2, format="csr", random_state=seed, dtype=np.float32)
    true.data[:] = 1.0
    pred = sp.random(n, n_labels, density=0.3, format="csr", random_state=seed + 1, dtype=np.float32)
    coo = pred.tocoo()
    hit = rng.choice(coo.nnz, size=coo.nnz // 3, replace=False)  # a third of the predictions ...
    pairs = np.concatenate([np.stack([coo.row[hit], coo.col[hit]], 1), rng.integers(0, [n, n_labels], (10, 2))])
    pairs = np.concatenate([pairs, pairs[:3]])  # ... plus unpredicted pairs and repeated pairs
    expected = ox.filter_pairs(pred, pairs, n_labels)
    got = filter_predictions(pred, pairs)
    assert (got != expected).nnz == 0 and got.nnz == expected.nnz
    ref = evaluate(true, expected, k=5, recall_at=())
    assert evaluate(true, pred, k=5, filter=pairs, recall_at=()) == ref
    scores, indices = filter_predictions((ox_dense := _dense(pred))[0:2], pairs)
    assert evaluate(true, (scores, indices), k=5, recall_at=()) == pytest.approx(ref, abs=1e-12)
    assert evaluate(true, ox_dense, k=5, filter=pairs, recall_at=()) == pytest.approx(ref, abs=1e-12)


def _dense(pred: sp.csr_matrix):
    width = int(np.diff(pred.indptr).max())
    scores = np.zeros((pred.shape[0], width), dtype=np.float32)
    indices = np.full((pred.shape[0], width), -1, dtype=np.int64)
    for i in range(pred.shape[0]):
        row = pred[i]
        scores[i, : row.nnz], indices[i, : row.nnz] = row.data, row.indices
    return scores, indices


def test_out_of_range_pairs_are_reported_with_their_line():
    true, pred = csr([{0: 1}, {1: 1}]), csr([{0: 0.5}, {1: 0.5}])
    with pytest.raises(DataError) as err:
        evaluate(true, pred, filter=[[0, 1], [2, 0], [1, 5]])
    lines = [(p.line, p.field) for p in err.value.problems]
    assert lines == [(2, "row"), (3, "label")]
    with pytest.raises(DataError, match="row, label"):
        filter_predictions(pred, np.zeros((3, 3), dtype=int))
