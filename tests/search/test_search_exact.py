"""Exact blocked top-k (vixml.search.topk) against a full-sort oracle, on every path and input kind."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from support_search import assert_close_topk, clustered, integer_data, normalised, oracle_topk
from vixml.errors import ConfigError, DataError
from vixml.search import exact, topk
from vixml.search.gemm import installed

SHAPES = [  # (n, L, d, k, block_queries, block_labels)
    (10, 1000, 16, 5, 3, 256),  # many small blocks
    (33, 5000, 32, 100, 16, 1024),  # k large against the block
    (7, 3000, 24, 1, 4, 700),  # k = 1, ragged last block
    (5, 130, 8, 128, 2, 64),  # k near L
    (5, 50, 8, 80, None, None),  # k > L: padding
    (300, 2000, 16, 10, 128, 512),  # enough queries for the oneDNN route
]


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s[:4])))
@pytest.mark.parametrize("precision", ["fp32", "bf16-rescore", "bf16"])
def test_equals_full_sort_with_ties(shape, precision):
    """Small-integer data: exact scores, many ties; result equals the stable full sort (lower id first)."""
    n, n_labels, d, k, bq, bl = shape
    q, x = integer_data(n, n_labels, d, seed=n + k, high=2)  # |scores| <= 4 d: exact in bf16 too
    scores, ids = topk(q, x, k, block_queries=bq, block_labels=bl, precision=precision, device="cpu")
    want_scores, want_ids = oracle_topk(q, x, k)
    assert scores.dtype == np.float32 and ids.dtype == np.int64 and ids.shape == (n, k)
    np.testing.assert_array_equal(ids, want_ids)
    np.testing.assert_array_equal(scores, want_scores)


def test_equals_torch_topk_values_on_float_data():
    q, x = normalised(40, 64, seed=1), normalised(3000, 64, seed=2)
    scores, ids = topk(q, x, 50, block_queries=16, block_labels=512)
    full = torch.topk(torch.from_numpy(q) @ torch.from_numpy(x).T, 50)
    np.testing.assert_allclose(scores, full.values.numpy(), atol=1e-5)
    assert (np.sort(ids, 1) == np.sort(full.indices.numpy(), 1)).mean() > 0.99  # equal but for near-ties
    assert_close_topk(q, x, 50, scores, ids, atol=1e-5)


@pytest.mark.parametrize("backend", installed())
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s[:4])))
def test_every_backend_returns_the_exact_top_k_with_ties_to_the_lower_id(backend, shape):
    n, n_labels, d, k, bq, bl = shape
    q, x = integer_data(n, n_labels, d, seed=n + k, high=2)  # exact scores in any summation order, many ties
    scores, ids = topk(q, x, k, block_queries=bq, block_labels=bl, device="cpu", backend=backend)
    want_scores, want_ids = oracle_topk(q, x, k)
    np.testing.assert_array_equal(ids, want_ids)
    np.testing.assert_array_equal(scores, want_scores)


@pytest.mark.parametrize("backend", installed())
def test_every_backend_finds_the_top_k_of_random_and_clustered_data(backend):
    labels, queries = clustered(4000, 300, 48, seed=7)
    for q, x in ((normalised(300, 48, seed=8), normalised(4000, 48, seed=9)), (queries, labels)):
        scores, ids = topk(q, x, 50, device="cpu", backend=backend)
        assert_close_topk(q, x, 50, scores, ids, atol=1e-5)


def test_a_backend_that_cannot_serve_the_search_is_refused():
    q, x = integer_data(4, 50, 8)
    with pytest.raises(ConfigError, match="valid: onednn, torch, numpy, faiss"):
        topk(q, x, 3, device="cpu", backend="blis")
    with pytest.raises(ConfigError, match="exact fp32 search on CPU"):
        topk(q, x, 3, device="cpu", backend="numpy", precision="bf16")


def test_several_label_chunks_carry_the_result(monkeypatch):
    """Labels converted in chunks (bounded memory): the running result carries across chunks."""
    monkeypatch.setattr(exact, "_CHUNK_BYTES_CPU", 300 * 8 * 2)  # 300 bf16 rows of width 8 per chunk
    q, x = integer_data(9, 1000, 8, seed=4, high=2)
    for precision in ("bf16", "bf16-rescore", "fp32"):
        scores, ids = topk(q.astype(np.float64), x.astype(np.float64), 40, precision=precision, block_labels=128)
        np.testing.assert_array_equal(ids, oracle_topk(q, x, 40)[1])


def test_input_kinds(tmp_path):
    """numpy, float64, torch (returns torch), non-contiguous views and read-only memmaps give one answer."""
    q, x = integer_data(12, 700, 10, seed=5)
    want = oracle_topk(q, x, 20)[1]
    path = tmp_path / "labels.npy"
    np.save(path, x)
    memmap = np.load(path, mmap_mode="r")
    for queries, labels in [
        (q, x),
        (q.astype(np.float64), x.astype(np.float64)),
        (q, memmap),
        (np.asfortranarray(q), np.asfortranarray(x)),
        (np.concatenate([q, q], axis=1)[:, : q.shape[1]], x),
    ]:
        for precision in ("fp32", "bf16-rescore"):
            np.testing.assert_array_equal(topk(queries, labels, 20, block_labels=128, precision=precision)[1], want)
    scores_t, ids_t = topk(torch.from_numpy(q), torch.from_numpy(x), 20)
    assert isinstance(ids_t, torch.Tensor) and ids_t.dtype == torch.int64 and scores_t.dtype == torch.float32
    np.testing.assert_array_equal(ids_t.numpy(), want)
    grad = torch.from_numpy(q).requires_grad_()
    assert not topk(grad, x, 3)[0].requires_grad


def test_bf16_rescore_recall_on_normalised_data():
    q, x = normalised(64, 64, seed=6), normalised(20000, 64, seed=7)
    _, exact_ids = topk(q, x, 100)
    scores, ids = topk(q, x, 100, precision="bf16-rescore")
    hits = np.mean([len(set(a) & set(b)) / 100 for a, b in zip(ids, exact_ids, strict=True)])
    assert hits >= 0.995
    assert_close_topk(q, x, 100, scores, ids, atol=0.02)  # wrong picks are near-ties only
    np.testing.assert_allclose(scores, np.einsum("nd,nkd->nk", q, x[ids]), atol=1e-5)  # float32 re-scored


def test_empty_inputs_and_padding():
    q, x = integer_data(4, 3, 5)
    scores, ids = topk(q, x, 6)
    assert (ids[:, 3:] == -1).all() and np.isneginf(scores[:, 3:]).all()
    assert topk(q[:0], x, 2)[0].shape == (0, 2)
    empty_scores, empty_ids = topk(q, x[:0], 2)
    assert (empty_ids == -1).all() and np.isneginf(empty_scores).all()


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"k": 0}, ConfigError),
        ({"k": 2.0}, ConfigError),
        ({"k": 2, "precision": "int8"}, ConfigError),
        ({"k": 2, "block_queries": 0}, ConfigError),
        ({"k": 2, "precision": "fp16", "device": "cpu"}, ConfigError),
    ],
)
def test_bad_arguments(kwargs, error):
    q, x = integer_data(3, 10, 4)
    with pytest.raises(error):
        topk(q, x, **kwargs)


def test_bad_inputs_name_the_problem():
    q, x = integer_data(3, 10, 4)
    with pytest.raises(DataError, match="width 4 differs"):
        topk(q, x[:, :3], 2)
    with pytest.raises(DataError, match="2-D float"):
        topk(q[0], x, 2)
    with pytest.raises(DataError, match="2-D float"):
        topk(q.astype(np.int64), x, 2)


def test_non_finite_queries_and_labels_are_refused_naming_the_rows():
    import torch

    q, x = integer_data(6, 10, 4)
    x[[2, 7], 1] = np.nan
    q[4, 0] = -np.inf
    with pytest.raises(DataError) as err:
        topk(q, x, 2)
    assert [str(p) for p in err.value.problems] == [
        "<queries>: 1 of 6 query embeddings hold NaN or inf values (row(s) 4); every value must be a finite number",
        "<labels>: 2 of 10 label embeddings hold NaN or inf values (row(s) 2, 7); every value must be a finite number",
    ]
    with pytest.raises(DataError, match="query embeddings"):
        topk(torch.from_numpy(q), torch.from_numpy(x), 2, check_finite="queries")  # labels not checked
    scores, ids = topk(q[:4], x, 2, check_finite="none")  # the caller vouches: what a NaN label does
    assert not np.isin([2, 7], ids).any()  # ... it is never found: the reason the check exists


def test_precision_error_lists_the_choices():
    with pytest.raises(ConfigError, match="fp32, bf16-rescore, int8-rescore, fp16, bf16"):
        topk(*integer_data(2, 5, 3), 1, precision="half")


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("precision", ["fp32", "bf16-rescore", "fp16", "bf16"])
def test_cuda_matches_cpu(precision):
    q, x = integer_data(50, 3000, 16, seed=8, high=2)
    want = oracle_topk(q, x, 40)
    scores, ids = topk(q, x, 40, device="cuda", precision=precision, block_queries=16, block_labels=512)
    if precision in ("fp32", "bf16-rescore"):
        np.testing.assert_array_equal(ids, want[1])
    np.testing.assert_array_equal(scores, want[0])
    scores_t, _ = topk(torch.from_numpy(q).cuda(), torch.from_numpy(x).cuda(), 40, precision=precision)
    assert scores_t.device.type == "cuda"


@pytest.mark.parametrize("native", ["1", "0"])
def test_bf16_rescore_becomes_fp32_where_bf16_is_emulated(monkeypatch, caplog, native):
    """On a CPU without AVX512_BF16/AMX a bf16 shortlist would be slow: fp32 instead, said in the log."""
    rescore, calls = exact._rescore, []
    monkeypatch.setattr(exact, "_rescore", lambda *args: calls.append(1) or rescore(*args))
    monkeypatch.setattr(exact, "_said", set())
    monkeypatch.setenv("VIXML_NATIVE_BF16", native)
    q, x = integer_data(12, 700, 8, seed=6, high=2)
    with caplog.at_level("INFO", logger="vixml.search.exact"):
        scores, ids = topk(q, x, 20, precision="bf16-rescore", device="cpu")
    want_scores, want_ids = oracle_topk(q, x, 20)
    np.testing.assert_array_equal(ids, want_ids)
    np.testing.assert_array_equal(scores, want_scores)
    said = [r.getMessage() for r in caplog.records if "'bf16-rescore' -> 'fp32'" in r.getMessage()]
    if native == "1":
        assert calls and not said  # the bf16 shortlist was re-scored in fp32
    else:
        assert not calls and len(said) == 1  # the plain fp32 route ran


def test_int8_rescore_returns_exact_scores_and_recalls_the_exact_top_k():
    labels, queries = clustered(6000, 400, 64, seed=11)
    scores, ids = topk(queries, labels, 50, device="cpu", precision="int8-rescore", block_labels=1024)
    want_scores, want_ids = topk(queries, labels, 50, device="cpu", backend="numpy")
    recall = np.mean([np.isin(ids[r], want_ids[r]).mean() for r in range(ids.shape[0])])
    assert recall >= 0.999, recall
    exact_scores = np.einsum("nd,nkd->nk", queries, labels[ids])
    np.testing.assert_allclose(scores, exact_scores, atol=1e-5)  # rescored in float32, not int8 values
    assert (np.diff(scores, axis=1) <= 0).all()
    with pytest.raises(ConfigError, match="int8-rescore"):
        topk(queries, labels, 5, device="cpu", precision="int8-rescore", backend="numpy")


def test_without_torch_loaded_the_search_runs_in_numpy_with_the_same_answer():
    """An export's server never loads torch: topk then searches in numpy (fp16 labels converted block by block)."""
    import subprocess
    import sys

    code = (
        "import sys, numpy as np\n"
        "from vixml.search import topk\n"
        "rng = np.random.default_rng(0)\n"
        "q = rng.standard_normal((70, 16)).astype(np.float32)\n"
        "lab = rng.standard_normal((40000, 16)).astype(np.float16)\n"
        "s, i = topk(q, lab, k=5)\n"
        "np.save(sys.argv[1], np.concatenate([s, i.astype(np.float32)], axis=1))\n"
        "print('torch' in sys.modules)\n"
    )
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        path = f"{tmp}/out.npy"
        done = subprocess.run([sys.executable, "-c", code, path], capture_output=True, text=True)
        assert done.returncode == 0, done.stderr[-2000:]
        assert done.stdout.strip() == "False"
        got = np.load(path)
    rng = np.random.default_rng(0)
    q = rng.standard_normal((70, 16)).astype(np.float32)
    lab = rng.standard_normal((40000, 16)).astype(np.float16)
    scores, ids = topk(q, lab.astype(np.float32), k=5)
    np.testing.assert_array_equal(got[:, 5:].astype(np.int64), ids)
    np.testing.assert_allclose(got[:, :5], scores, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s[:4])))
def test_the_numpy_search_equals_full_sort_with_ties(shape):
    n, n_labels, d, k, bq, bl = shape
    q, x = integer_data(n, n_labels, d, seed=n + k, high=2)
    scores, ids = exact._topk_numpy(q, x, k, "all", bq or 256, bl or 32768)
    want_scores, want_ids = oracle_topk(q, x, k)
    np.testing.assert_array_equal(ids, want_ids)
    np.testing.assert_array_equal(scores, want_scores)
