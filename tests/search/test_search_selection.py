"""The two running top-k engines (numba reservoirs for CPU, torch selection for GPU) against a full sort."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from support_search import integer_data, oracle_topk
from vixml.search import _kernels, exact, topk
from vixml.search.reservoir import Reservoir, RowPool
from vixml.search.selection import RunningTopK, best_of, group_size, sort_total


def _blocks(scores: np.ndarray, width: int):
    for start in range(0, scores.shape[1], width):
        yield start, np.ascontiguousarray(scores[:, start : start + width])


def _oracle(scores: np.ndarray, k: int):
    order = np.argsort(-scores.astype(np.float64), axis=1, kind="stable")[:, :k]
    return np.take_along_axis(scores, order, axis=1), order


CASES = [  # (rows, L, block width, k, tie-heavy)
    (6, 3000, 1000, 10, False),
    (6, 3000, 1000, 10, True),
    (4, 200, 64, 150, True),  # k near L, blocks narrower than k
    (5, 20000, 8192, 100, False),  # group stage with pruning
    (5, 20000, 8192, 100, True),
    (3, 999, 999, 1, True),
]


def _scores(rows, n, ties, seed):
    rng = np.random.default_rng(seed)
    s = rng.standard_normal((rows, n)).astype(np.float32)
    return np.round(s * 2) if ties else s  # a handful of distinct values: ties everywhere


@pytest.mark.parametrize("case", CASES, ids=str)
def test_reservoir_equals_stable_sort(case):
    rows, n, width, k, ties = case
    s = _scores(rows, n, ties, seed=n + k)
    res = Reservoir(rows, k)
    for offset, block in _blocks(s, width):
        res.push(block, offset)
    values, ids = res.finish()
    want_v, want_i = _oracle(s, k)
    np.testing.assert_array_equal(ids, want_i)
    np.testing.assert_array_equal(values, want_v)


@pytest.mark.parametrize("case", CASES, ids=str)
def test_running_topk_equals_stable_sort(case):
    rows, n, width, k, ties = case
    s = _scores(rows, n, ties, seed=n + k + 1)
    state = RunningTopK(rows, k, torch.float32, "cpu")
    for offset, block in _blocks(s, width):
        state.push(torch.from_numpy(block), offset)
    values, ids = state.finish()
    want_v, want_i = _oracle(s, k)
    np.testing.assert_array_equal(ids.numpy(), want_i)
    np.testing.assert_array_equal(values.numpy(), want_v)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_running_topk_half_precision_values(dtype):
    """The GPU half-precision route (no tie rule): the kept values are the k best; ids may permute ties."""
    s = torch.from_numpy(_scores(5, 6000, False, seed=12)).to(dtype)
    state = RunningTopK(5, 50, dtype, "cpu", exact_ties=False)
    for offset in range(0, 6000, 2048):
        state.push(s[:, offset : offset + 2048].contiguous(), offset)
    values, ids = state.finish()
    want_v, _ = _oracle(s.float().numpy(), 50)
    np.testing.assert_array_equal(np.sort(values.float().numpy(), 1), np.sort(want_v, 1))
    np.testing.assert_array_equal(torch.gather(s, 1, ids).float().numpy(), values.float().numpy())


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_reservoir_rows_split_over_threads(dtype):
    s = torch.from_numpy(_scores(70, 3000, True, seed=11)).to(dtype)
    with RowPool(3) as pool:
        res = Reservoir(70, 12, pool)
        for offset in range(0, 3000, 700):
            res.push(s[:, offset : offset + 700].contiguous(), offset)
        values, ids = res.finish()
    want_v, want_i = _oracle(s.float().numpy(), 12)
    np.testing.assert_array_equal(ids, want_i)
    np.testing.assert_array_equal(values, want_v)


def test_reservoir_bf16_blocks_and_seed():
    """bfloat16 blocks (widened in the kernel) and a seeded earlier result give the full-sort answer."""
    s = torch.from_numpy(_scores(4, 5000, True, seed=9)).bfloat16()
    k = 30
    first = Reservoir(4, k)
    first.push(s[:, :2000].contiguous(), 0)
    seeded = Reservoir(4, k)
    seeded.seed(*first.finish())
    seeded.push(s[:, 2000:].contiguous(), 2000)
    want_v, want_i = _oracle(s.float().numpy(), k)
    values, ids = seeded.finish()
    np.testing.assert_array_equal(ids, want_i)
    np.testing.assert_array_equal(values, want_v)


def test_reservoir_padding_when_fewer_than_k():
    res = Reservoir(2, 5)
    res.push(np.array([[1.0, 3.0, 2.0], [0.0, -0.0, -1.0]], np.float32), 10)
    values, ids = res.finish()
    np.testing.assert_array_equal(ids, [[11, 12, 10, -1, -1], [10, 11, 12, -1, -1]])  # -0.0 ties +0.0
    assert np.isneginf(values[:, 3:]).all()


def test_entry_encoding_round_trip_and_order():
    values = np.array([[1.5, -0.0, 0.0, -2.25, np.inf, -np.inf, 1e-30, -1e-30, 3.4e38]], np.float32)
    ids = np.arange(values.size)[None] * 1000
    entries = _kernels.encode(values, ids)
    back_v, back_i = _kernels.decode(entries)
    np.testing.assert_array_equal(back_i, ids)
    np.testing.assert_array_equal(back_v, values)  # -0.0 comes back as 0.0, which compares equal
    by_entry = ids[0, np.argsort(-entries[0], kind="stable")]
    np.testing.assert_array_equal(by_entry, [4000, 8000, 0, 6000, 1000, 2000, 7000, 3000, 5000])


def test_sort_total_and_best_of():
    v = torch.tensor([[1.0, 2.0, 2.0, 0.0], [5.0, 5.0, 5.0, 5.0]])
    i = torch.tensor([[7, 9, 3, 1], [4, 2, 8, 6]])
    sv, si = sort_total(v, i)
    assert si.tolist() == [[3, 9, 7, 1], [2, 4, 6, 8]]
    bv, bi = best_of(v, i, 6)
    assert bi[:, 4:].eq(-1).all() and torch.isneginf(bv[:, 4:]).all()


def test_group_size_keeps_enough_groups():
    for n in (64, 1000, 8192, 65536):
        for k in (1, 10, 100):
            g = group_size(n, k)
            assert g == 1 or n // g >= 2 * (k + 1)


@pytest.mark.parametrize("precision", ["fp32", "bf16-rescore", "bf16"])
def test_driver_with_torch_selection(monkeypatch, precision):
    """The GPU route of topk (torch selection, seeded across label chunks), exercised on CPU."""

    def torch_selector(plan, rows, k):
        return RunningTopK(rows, k, plan.dtype, plan.device, exact_ties=plan.dtype == torch.float32)

    monkeypatch.setattr(exact, "_selector", torch_selector)
    monkeypatch.setattr(exact, "_CHUNK_BYTES_CPU", 400 * 12 * 2)
    q, x = integer_data(11, 1500, 12, seed=10, high=2)
    scores, ids = topk(q.astype(np.float64), x, 25, precision=precision, block_queries=4, block_labels=200)
    want_v, want_i = oracle_topk(q, x, 25)
    np.testing.assert_array_equal(scores, want_v)
    if precision != "bf16":  # half precision on GPU: ties in any order
        np.testing.assert_array_equal(ids, want_i)
