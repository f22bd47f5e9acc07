"""vixml.metrics against the transcription of pyxclib's numpy definitions (tests/support_pyxclib.py)."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

import support_pyxclib as ox
from vixml.metrics import evaluate, inverse_propensity, mrr, psndcg, psprecision


def random_case(seed: int):
    """A small random problem with the awkward cases: empty truth rows, empty or short prediction rows,
    tied scores, explicit 0.0 scores, negative scores and (every third seed) non-binary true values."""
    rng = np.random.default_rng(seed)
    n, n_labels = int(rng.integers(1, 80)), int(rng.integers(1, 40))
    true = sp.random(n, n_labels, density=rng.uniform(0, 0.3), format="csr", random_state=seed, dtype=np.float32)
    true.data[:] = rng.choice([0.5, 1.0, 2.0], size=true.nnz) if seed % 3 == 0 else 1.0
    pred = sp.random(n, n_labels, density=rng.uniform(0, 0.5), format="csr", random_state=seed + 1)
    pred.data = (np.round(pred.data * 4) / 4 - 0.25).astype(np.float32)  # few distinct values: ties, 0.0, < 0
    train = sp.random(2 * n + 3, n_labels, density=0.2, format="csr", random_state=seed + 2, dtype=np.float32)
    train.data[:] = 1.0
    return true, pred, train, int(rng.integers(1, 8))


def oracle(true, pred, train, k, A=0.55, B=1.5):
    inv = ox.compute_inv_propesity(train, A, B)
    ref = {}
    for name, fn in (("P", ox.precision), ("nDCG", ox.ndcg), ("R", ox.recall)):
        ref.update({f"{name}@{j + 1}": v for j, v in enumerate(fn(pred, true, k=k))})
    with np.errstate(invalid="ignore", divide="ignore"):  # pyxclib gives NaN (0/0) where no truth exists
        for name, fn in (("PSP", ox.psprecision), ("PSnDCG", ox.psndcg)):
            ref.update({f"{name}@{j + 1}": np.nan_to_num(v) for j, v in enumerate(fn(pred, true, inv, k=k))})
    ref["MRR"] = ox.mrr(pred, true)
    return ref


def assert_matches(out: dict, ref: dict):
    assert set(ref) <= set(out)
    for key, value in ref.items():
        assert out[key] == pytest.approx(float(value), abs=1e-6), key


@pytest.mark.parametrize("seed", range(12))
def test_csr_matches_pyxclib(seed):
    true, pred, train, k = random_case(seed)
    assert_matches(evaluate(true, pred, train=train, k=k), oracle(true, pred, train, k))


@pytest.mark.parametrize("seed", range(4))
def test_propensity_presets_match_pyxclib(seed):
    true, pred, train, k = random_case(seed)
    assert_matches(evaluate(true, pred, train=train, k=k, A=0.6, B=2.6), oracle(true, pred, train, k, 0.6, 2.6))


def _dense(pred: sp.csr_matrix, rng, pad: int = 2):
    """The same predictions as (scores, indices) with the columns shuffled and -1 padding added."""
    width = int(np.diff(pred.indptr).max(initial=0)) + pad
    scores = np.full((pred.shape[0], width), np.inf, dtype=np.float32)  # padding score must not matter
    indices = np.full((pred.shape[0], width), -1, dtype=np.int64)
    for i in range(pred.shape[0]):
        row = pred[i]
        cols = rng.permutation(width)[: row.nnz]
        scores[i, cols], indices[i, cols] = row.data, row.indices
    return scores, indices


@pytest.mark.parametrize("seed", range(6))
def test_dense_form_and_unsorted_csr_match(seed):
    true, pred, train, k = random_case(seed)
    rng = np.random.default_rng(seed)
    ref = oracle(true, pred, train, k)
    assert_matches(evaluate(true, _dense(pred, rng), train=train, k=k), ref)
    # a non-canonical CSR (indices unsorted within rows) and float64 scores / int64 ids
    data, ids = pred.data.copy(), pred.indices.copy()
    for i in range(pred.shape[0]):  # reverse each row: label ids descending
        s, e = pred.indptr[i], pred.indptr[i + 1]
        data[s:e], ids[s:e] = data[s:e][::-1], ids[s:e][::-1]
    unsorted = sp.csr_matrix((data, ids, pred.indptr), shape=pred.shape)
    assert not unsorted.has_canonical_format or pred.nnz == np.count_nonzero(np.diff(pred.indptr) <= 1)
    assert_matches(evaluate(true, unsorted, train=train, k=k), ref)
    wide = sp.csr_matrix((pred.data.astype(np.float64), pred.indices.astype(np.int64), pred.indptr), pred.shape)
    assert_matches(evaluate(true, wide, train=train, k=k), ref)


def test_deep_recall_and_mrr_match():
    rng = np.random.default_rng(7)
    n, n_labels, width = 40, 300, 100
    indices = np.stack([rng.permutation(n_labels)[:width] for _ in range(n)])
    scores = rng.integers(0, 20, size=(n, width)).astype(np.float32)  # many ties
    true = sp.random(n, n_labels, density=0.05, format="csr", random_state=3, dtype=np.float32)
    true.data[:] = 1.0
    out = evaluate(true, (scores, indices), k=5)
    csr = ox.to_csr((scores, indices), n_labels)
    for c in (10, 20, 50, 100):
        assert out[f"R@{c}"] == pytest.approx(ox.recall(csr, true, k=c)[-1], abs=1e-9)
    assert out["MRR"] == pytest.approx(ox.mrr(csr, true), abs=1e-12)
    assert mrr(true, csr) == pytest.approx(out["MRR"], abs=1e-12)


def test_individual_ps_functions_match():
    true, pred, train, k = random_case(5)
    inv = inverse_propensity(train, 0.5, 0.4)
    np.testing.assert_allclose(inv, ox.compute_inv_propesity(train, 0.5, 0.4), rtol=1e-6)
    np.testing.assert_allclose(psprecision(true, pred, inv, k=k), ox.psprecision(pred, true, inv, k=k), atol=1e-6)
    np.testing.assert_allclose(psndcg(true, pred, inv, k=k), ox.psndcg(pred, true, inv, k=k), atol=1e-6)


def test_train_none_uses_true_for_propensities():
    true, pred, _, k = random_case(4)
    assert evaluate(true, pred, k=k) == evaluate(true, pred, train=true, k=k)


def test_result_does_not_depend_on_thread_count():
    import numba

    true, pred, train, k = random_case(9)
    big_true = sp.vstack([true] * 300).tocsr()  # > 1 block of queries
    big_pred = sp.vstack([pred] * 300).tocsr()
    before = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        one = evaluate(big_true, big_pred, k=k)
    finally:
        numba.set_num_threads(before)
    assert evaluate(big_true, big_pred, k=k) == one


@pytest.mark.parametrize("seed", range(3))
def test_metrics_eval_transcription_agrees(seed):
    """The one-pass transcription of ``Metrics.eval`` (the benchmark's peer) equals the separate functions."""
    true, pred, train, k = random_case(seed + 20)
    inv = ox.compute_inv_propesity(train, 0.55, 1.5)
    with np.errstate(invalid="ignore", divide="ignore"):
        got = ox.all_metrics(pred, true, inv, k=k)
        expected = [
            ox.precision(pred, true, k),
            ox.ndcg(pred, true, k),
            ox.psprecision(pred, true, inv, k),
            ox.psndcg(pred, true, inv, k),
            ox.recall(pred, true, k),
        ]
    for a, b in zip(got, expected, strict=True):
        np.testing.assert_allclose(a, b, atol=1e-7)
