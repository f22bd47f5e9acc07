"""Retrieval-augmented scoring (docs/method.md 5) against hand-computed values."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from vixml.inference import augmented_scores


def test_label_and_query_hits_by_hand():
    # one query: label hits 0 (0.9) and 1 (0.5); training-query hit 0 (0.8) whose labels are {1, 2}
    train_y = sp.csr_matrix(np.array([[0, 1, 1, 0], [1, 0, 0, 0]], dtype=np.float32))
    out = augmented_scores(
        np.array([[0.9, 0.5]]), np.array([[0, 1]]), np.array([[0.8]]), np.array([[0]]),
        train_y, temperature=0.1, label_weight=0.9, k=10,
    )  # fmt: skip
    e = np.exp(np.array([9.0, 5.0, 8.0]))
    a, b, c = e / e.sum()
    expected = np.array([0.9 * a, 0.9 * b + 0.1 * c, 0.1 * c, 0.0])
    np.testing.assert_allclose(out.toarray()[0], expected, rtol=1e-6)
    assert out.nnz == 3  # label 3 is never reached


def test_a_training_query_votes_with_its_label_values_as_the_reference():
    """eval_mm.py multiplies the softmax by vstack([I * (1 - lambda), trn_X_Y * lambda]), lambda = 0.1: a graded
    training matrix weights the votes (the XC files hold 1s, where this changes nothing)."""
    train_y = sp.csr_matrix(np.array([[0, 0.5, 2.0]], dtype=np.float32))
    out = augmented_scores(
        np.array([[0.3]]), np.array([[0]]), np.array([[0.2]]), np.array([[0]]),
        train_y, temperature=1.0, label_weight=0.9, k=10,
    )  # fmt: skip
    e = np.exp(np.array([0.3, 0.2]))
    a, c = e / e.sum()
    np.testing.assert_allclose(out.toarray()[0], [0.9 * a, 0.1 * c * 0.5, 0.1 * c * 2.0], rtol=1e-6)


def test_padding_is_ignored_and_top_k_kept():
    train_y = sp.csr_matrix(np.eye(5, dtype=np.float32))
    out = augmented_scores(
        np.array([[0.5, 0.4, -np.inf]]), np.array([[3, 1, -1]]), np.array([[0.45, 0.0]]), np.array([[4, -1]]),
        train_y, temperature=1.0, label_weight=0.5, k=2,
    )  # fmt: skip
    dense = out.toarray()[0]
    assert np.count_nonzero(dense) == 2
    e = np.exp(np.array([0.5, 0.4, 0.45]))
    p = e / e.sum()
    # candidates: label 3 -> 0.5 p0, label 1 -> 0.5 p1, label 4 (via query 4) -> 0.5 p2; keep the two largest
    assert dense[3] == pytest.approx(0.5 * p[0]) and dense[4] == pytest.approx(0.5 * p[2]) and dense[1] == 0


def test_mass_is_the_weighted_softmax_mass_before_truncation():
    rng = np.random.default_rng(0)
    train_y = sp.random(50, 30, density=0.1, random_state=1, format="csr")
    train_y.data[:] = 1
    train_y = train_y[np.asarray(train_y.sum(1)).ravel() == 1]  # one label per training query
    n = 4
    ls, li = rng.random((n, 5)), np.stack([rng.permutation(30)[:5] for _ in range(n)])
    qs, qi = rng.random((n, 3)), rng.integers(0, train_y.shape[0], (n, 3))
    out = augmented_scores(ls, li, qs, qi, train_y, temperature=0.05, label_weight=0.9, k=1000)
    logits = np.concatenate([ls, qs], axis=1) / 0.05
    p = np.exp(logits - logits.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    expected = 0.9 * p[:, :5].sum(1) + 0.1 * p[:, 5:].sum(1)  # each training query has exactly one label
    np.testing.assert_allclose(np.asarray(out.sum(1)).ravel(), expected, rtol=1e-5)


def test_filtered_pairs_are_removed_before_the_top_k_cut():
    """The reference fuses, filters the reciprocal pairs, then ranks: a filtered label frees its slot."""
    train_y = sp.csr_matrix(np.eye(5, dtype=np.float32))
    args = (np.array([[0.5, 0.4, 0.3]]), np.array([[3, 1, 2]]), np.array([[0.45]]), np.array([[4]]), train_y)
    plain = augmented_scores(*args, temperature=1.0, label_weight=0.5, k=2)
    assert sorted(plain.indices.tolist()) == [3, 4]
    filtered = augmented_scores(*args, temperature=1.0, label_weight=0.5, k=2, exclude=np.array([[0, 3]]))
    assert sorted(filtered.indices.tolist()) == [1, 4]  # two labels still, none of them filtered
    assert filtered[0, 4] == pytest.approx(plain[0, 4])  # scores are not renormalised
