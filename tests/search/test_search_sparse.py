"""to_csr: top-k arrays <-> prediction matrix."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from support_search import normalised
from vixml.errors import DataError
from vixml.search import to_csr, topk


def test_round_trip_from_topk():
    q, x = normalised(30, 16, seed=1), normalised(40, 16, seed=2)
    scores, ids = topk(q, x, 50)  # k > L: 10 padding columns per row
    matrix = to_csr(scores, ids, n_labels=40)
    assert matrix.shape == (30, 40) and matrix.nnz == 30 * 40 and matrix.has_sorted_indices
    dense = matrix.toarray()
    np.testing.assert_allclose(dense, q @ x.T, atol=1e-6)  # k > L: every label of every row is there
    for row in range(30):
        np.testing.assert_array_equal(dense[row, ids[row, :40]], scores[row, :40])
    # back to top-k: the best k of each row of the matrix are the original ones
    back = np.argsort(-dense, axis=1, kind="stable")[:, :40]
    np.testing.assert_array_equal(np.take_along_axis(dense, back, 1), scores[:, :40])


def test_hand_example_with_padding_and_torch():
    scores = torch.tensor([[0.9, 0.5, -np.inf], [0.2, 0.0, 0.7]])
    ids = torch.tensor([[3, 0, -1], [1, 4, 2]])
    matrix = to_csr(scores, ids, 5)
    assert matrix.indptr.tolist() == [0, 2, 5]
    assert matrix.indices.tolist() == [0, 3, 1, 2, 4]
    np.testing.assert_allclose(matrix.data, [0.5, 0.9, 0.2, 0.7, 0.0])  # an explicit 0.0 score is kept
    assert matrix.dtype == np.float32


def test_bad_predictions_are_listed():
    with pytest.raises(DataError) as info:
        to_csr(np.ones((3, 2)), np.array([[0, 0], [1, 9], [2, 3]]), 4)
    messages = [str(p) for p in info.value.problems]
    assert any("row 1: label id >= n_labels=4" in m for m in messages)
    assert any("row 0: a label id appears twice" in m for m in messages)
    with pytest.raises(DataError, match="must be equal 2-D"):
        to_csr(np.ones((2, 2)), np.ones((2, 3), int), 4)


@pytest.mark.parametrize("block", [1 << 20, 24])  # one block; blocks of 3 rows
def test_built_by_blocks_it_equals_the_coo_construction(monkeypatch, block):
    """Padding anywhere in a row, unsorted ids: the same matrix as scipy's COO -> CSR, indices sorted."""
    import scipy.sparse as sp

    from vixml.search import sparse

    monkeypatch.setattr(sparse, "_BLOCK_ENTRIES", block)

    rng = np.random.default_rng(3)
    ids = np.stack([rng.choice(50, 8, replace=False) for _ in range(20)])
    ids[rng.random(ids.shape) < 0.3] = -1
    scores = rng.standard_normal(ids.shape).astype(np.float32)
    keep = ids >= 0
    rows = np.broadcast_to(np.arange(20)[:, None], ids.shape)
    want = sp.csr_matrix((scores[keep], (rows[keep], ids[keep])), shape=(20, 50))
    want.sort_indices()
    got = to_csr(scores, ids, 50)
    assert got.indices.dtype == np.int32 and got.has_canonical_format
    np.testing.assert_array_equal(got.indptr, want.indptr)
    np.testing.assert_array_equal(got.indices, want.indices)
    np.testing.assert_array_equal(got.data, want.data)


def test_problems_of_every_block_are_listed(monkeypatch):
    from vixml.search import sparse

    monkeypatch.setattr(sparse, "_BLOCK_ENTRIES", 2)  # one row per block
    ids = np.array([[0, 1], [2, 2], [3, 9], [1, 0]])
    with pytest.raises(DataError) as info:
        to_csr(np.ones((4, 2)), ids, 4)
    messages = [str(p) for p in info.value.problems]
    assert any("row 1: a label id appears twice" in m for m in messages)
    assert any("row 2: label id >= n_labels=4" in m for m in messages)
    assert len(messages) == 2
