"""vixml.metrics against values computed by hand, with the derivation beside each expected number."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.sparse as sp

from vixml.metrics import evaluate, mrr, ndcg, precision, psndcg, psprecision, recall

D2 = 1 / math.log2(3)  # discount of rank 2 (rank 1: 1/log2(2) = 1, rank 3: 1/log2(4) = 0.5)


def csr(rows: list[dict[int, float]], n_labels: int = 6, dtype=np.float32) -> sp.csr_matrix:
    r = [i for i, row in enumerate(rows) for _ in row]
    c = [label for row in rows for label in row]
    v = [value for row in rows for value in row.values()]
    return sp.csr_matrix((np.array(v, dtype=dtype), (r, c)), shape=(len(rows), n_labels))


# q0: true {0, 2}; ranked 0 (hit), 1, 2 (hit)
# q1: true {1};    ranked 3, 1 (hit)              -- fewer than k = 3 predictions
# q2: no true label; ranked 4                      -- counted in every mean
TRUE = csr([{0: 1, 2: 1}, {1: 1}, {}])
PRED = csr([{0: 0.9, 1: 0.8, 2: 0.7}, {3: 0.5, 1: 0.4}, {4: 0.3}])


def test_precision_by_hand():
    # P@1 = mean(1/1, 0/1, 0) ; P@2 = mean(1/2, 1/2, 0) ; P@3 = mean(2/3, 1/3, 0)
    np.testing.assert_allclose(precision(TRUE, PRED, k=3), [1 / 3, 1 / 3, 1 / 3], atol=1e-12)


def test_ndcg_by_hand():
    # q0 (2 true): DCG = 1, 1, 1 + 0.5 ; IDCG = 1, 1 + D2, 1 + D2
    # q1 (1 true): DCG = 0, D2, D2     ; IDCG = 1, 1, 1
    # q2 (none):   DCG = 0
    expected = [1 / 3, (1 / (1 + D2) + D2) / 3, (1.5 / (1 + D2) + D2) / 3]  # = 0.3333, 0.41469, 0.51688
    np.testing.assert_allclose(ndcg(TRUE, PRED, k=3), expected, atol=1e-12)
    np.testing.assert_allclose(expected, [0.333333, 0.414692, 0.516884], atol=1e-6)


def test_recall_by_hand():
    # denominators: q0 2 true labels, q1 1, q2 0 -> 1
    # R@1 = (1/2 + 0 + 0)/3 ; R@2 = (1/2 + 1 + 0)/3 ; R@3 = (2/2 + 1 + 0)/3
    np.testing.assert_allclose(recall(TRUE, PRED, k=3), [1 / 6, 1 / 2, 2 / 3], atol=1e-12)


def test_mrr_by_hand():
    # first hit at rank 1 for q0, rank 2 for q1, none for q2: (1 + 1/2 + 0) / 3
    assert mrr(TRUE, PRED) == pytest.approx(0.5, abs=1e-12)


W = np.array([1.0, 2.0, 3.0, 4.0, 5.0, 6.0])  # inverse propensity of labels 0..5


def test_psprecision_by_hand():
    # weighted hits: q0 ranks (w=1 hit, miss, w=3 hit); q1 (miss, w=2 hit); q2 nothing.
    # best rankings of the true labels by weight: q0 (3, 1), q1 (2).
    # PSP@j = sum_q cum_j(q)/j / sum_q best_cum_j(q)/j
    # j=1: (1 + 0) / (3 + 2) ; j=2: (1/2 + 2/2) / (4/2 + 2/2) ; j=3: (4/3 + 2/3) / (4/3 + 2/3)
    np.testing.assert_allclose(psprecision(TRUE, PRED, W, k=3), [0.2, 0.5, 1.0], atol=1e-12)


def test_psndcg_by_hand():
    # per-query normalisers IDCG@j: q0 1, 1 + D2, 1 + D2 ; q1 1, 1, 1
    # numerator j=2: q0 1/(1+D2) + q1 2*D2 ; denominator j=2: q0 (3 + 1*D2)/(1+D2) + q1 2
    # j=3: numerator q0 (1 + 3*0.5)/(1+D2) + q1 2*D2 ; denominator as j=2 (q0 has 2 labels, q1 1)
    num2, den2 = 1 / (1 + D2) + 2 * D2, (3 + D2) / (1 + D2) + 2
    num3 = 2.5 / (1 + D2) + 2 * D2
    expected = [1 / 5, num2 / den2, num3 / den2]  # = 0.2, 0.443653, 0.661271
    np.testing.assert_allclose(psndcg(TRUE, PRED, W, k=3), expected, atol=1e-12)
    np.testing.assert_allclose(expected, [0.2, 0.443653, 0.661271], atol=1e-6)


def test_evaluate_keys_and_values():
    out = evaluate(TRUE, PRED, k=3)
    assert list(out) == [f"{m}@{j}" for m in ("P", "nDCG", "PSP", "PSnDCG", "R") for j in (1, 2, 3)] + ["MRR"]
    assert all(isinstance(v, float) for v in out.values())
    assert out["P@1"] == pytest.approx(1 / 3) and out["R@3"] == pytest.approx(2 / 3) and out["MRR"] == 0.5


def test_ties_break_by_lower_label_id():
    # labels 3 and 1 tie at 0.5: label 1 ranks first
    pred = csr([{3: 0.5, 1: 0.5}])
    assert precision(csr([{1: 1}]), pred, k=2).tolist() == [1.0, 0.5]
    assert precision(csr([{3: 1}]), pred, k=2).tolist() == [0.0, 0.5]
    # the same order from the dense form, whatever the column order
    dense = (np.array([[0.5, 0.5]], dtype=np.float32), np.array([[3, 1]]))
    assert precision(csr([{3: 1}]), dense, k=2).tolist() == [0.0, 0.5]
    assert mrr(csr([{3: 1}]), dense) == 0.5


def test_empty_prediction_rows_and_padding():
    # q0 predicts nothing; q1 predicts label 2 (hit) in the dense form padded with -1
    true = csr([{0: 1}, {2: 1}])
    empty = csr([{}, {2: 0.1}])
    dense = (np.array([[0.0, 0.0], [0.1, 9.0]], dtype=np.float32), np.array([[-1, -1], [2, -1]]))
    for pred in (empty, dense):
        out = evaluate(true, pred, k=2)
        assert (out["P@1"], out["P@2"], out["R@2"], out["MRR"]) == (0.5, 0.25, 0.5, 0.5)


def test_label_values_are_gains():
    # pyxclib's eval flags are the true *values*: a label of value 2 counts 2 in P@1 and in the recall
    # denominator (sum of values 2 + 1 = 3); nDCG's count of positives is int(2 + 1) = 3.
    true = csr([{0: 2.0, 1: 1.0}])
    pred = csr([{0: 0.9}])
    out = evaluate(true, pred, k=1)
    assert (out["P@1"], out["R@1"], out["nDCG@1"]) == (2.0, pytest.approx(2 / 3), 2.0)


def test_extra_recall_cutoffs_when_reachable():
    rng = np.random.default_rng(0)
    n, width = 4, 30
    indices = np.stack([rng.permutation(200)[:width] for _ in range(n)])
    scores = rng.random((n, width), dtype=np.float32)
    true = csr([{int(indices[i, j]): 1.0 for j in (0, 15, 25)} for i in range(n)], n_labels=200)
    out = evaluate(true, (scores, indices), k=5)
    assert [key for key in out if key.startswith("R@")] == ["R@1", "R@2", "R@3", "R@4", "R@5", "R@10", "R@20"]
    # all three true labels are predicted, so R@width-or-more would be 1; R@20 counts those ranked <= 20
    ranks = (scores[:, None, :] > scores[:, [0, 15, 25], None]).sum(-1) + 1
    assert out["R@20"] == pytest.approx(float((ranks <= 20).sum()) / (3 * n))
