"""P@k and PSP@k by label-frequency decile: hand-computed bins and contributions, and totals equal evaluate()."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from vixml.metrics import evaluate, inverse_propensity
from vixml.metrics.deciles import frequency_bins, metrics_by_decile, ranked_topk


def test_bins_by_hand():
    # label frequencies 3, 1, 0, 2 -> order (most frequent first) 0, 3, 1, 2 -> two bins {0, 3}, {1, 2}
    train = sp.csr_matrix(np.array([[1, 1, 0, 1], [1, 0, 0, 1], [1, 0, 0, 0]]))
    bins, freqs = frequency_bins(train, 2)
    assert bins.tolist() == [0, 1, 1, 0] and freqs.tolist() == [3, 1, 0, 2]
    bins, _ = frequency_bins(train, 3)  # array_split: sizes 2, 1, 1
    assert bins.tolist() == [0, 1, 2, 0]


def test_ranked_topk_ties_by_lower_id():
    pred = sp.csr_matrix(np.array([[0.5, 0.9, 0.5, 0.0], [0.0, 0.0, 0.0, 0.0]]))
    assert ranked_topk(pred, 3).tolist() == [[1, 0, 2], [-1, -1, -1]]


def test_contributions_by_hand():
    train = sp.csr_matrix(np.array([[1, 1, 0, 1], [1, 0, 0, 1], [1, 0, 0, 0]]))  # bins {0, 3} head, {1, 2} tail
    true = sp.csr_matrix(np.array([[1, 0, 1, 0], [0, 1, 0, 1]]))
    pred = sp.csr_matrix(np.array([[0.9, 0.8, 0.1, 0.0], [0.2, 0.7, 0.0, 0.6]]))
    # top-2: row 0 -> 0 (hit, head), 1 (miss); row 1 -> 1 (hit, tail), 3 (hit, head)
    out = metrics_by_decile(true, pred, train, k=2, A=0.55, B=1.5, n_bins=2)
    assert [b["P@2"] for b in out["bins"]] == pytest.approx([2 / 4, 1 / 4])
    w = inverse_propensity(train, A=0.55, B=1.5)
    best = (w[0] + w[2]) + (w[1] + w[3])  # each row's two true labels
    assert out["bins"][0]["PSP@2"] == pytest.approx((w[0] + w[3]) / best)
    assert out["bins"][1]["PSP@2"] == pytest.approx(w[1] / best)
    assert [(b["labels"], b["min_freq"], b["max_freq"]) for b in out["bins"]] == [(2, 2, 3), (2, 0, 1)]


def test_bins_add_up_to_evaluate():
    rng = np.random.default_rng(0)
    n, n_labels = 200, 57
    train = sp.random(400, n_labels, density=0.05, random_state=1, format="csr")
    train.data[:] = 1
    true = sp.random(n, n_labels, density=0.06, random_state=2, format="csr")
    true.data[:] = 1
    pred = sp.random(n, n_labels, density=0.2, random_state=3, format="csr")
    pred.data = rng.random(pred.nnz).astype(np.float32)
    for k in (1, 3, 5):
        out = metrics_by_decile(true, pred, train, k=k, A=0.6, B=2.6)
        want = evaluate(true, pred, train=train, k=k, A=0.6, B=2.6)
        assert sum(b[f"P@{k}"] for b in out["bins"]) == pytest.approx(want[f"P@{k}"], abs=1e-9)
        assert out[f"PSP@{k}"] == pytest.approx(want[f"PSP@{k}"], abs=1e-9)
        assert sum(b["labels"] for b in out["bins"]) == n_labels
