"""Every index backend: build, search, recall against exact, save -> load -> identical results."""

from __future__ import annotations

import json

import numpy as np
import pytest

from support_search import clustered, integer_data, oracle_topk
from vixml.errors import ConfigError, DataError
from vixml.search import Index, available_indexes, build_index, index_class, recall_at_k
from vixml.search.index import MANIFEST

BACKENDS = ["exact", "faiss-flat", "faiss-hnsw", "faiss-ivf", "hnswlib"]


@pytest.fixture(scope="module")
def data():
    labels, queries = clustered(3000, 200, 32, seed=1)
    return labels, queries


def test_registry_names():
    assert available_indexes() == BACKENDS


def test_unknown_backend_lists_the_valid_names():
    with pytest.raises(ConfigError, match="unknown index 'annoy'; valid names: exact, faiss-flat, faiss-hnsw"):
        build_index("annoy", np.zeros((2, 2), np.float32))


def test_unknown_parameter_is_a_type_error():
    with pytest.raises(TypeError):
        index_class("hnswlib")(ef=10)


@pytest.mark.parametrize("name", BACKENDS)
def test_build_search_save_load(name, data, tmp_path):
    labels, queries = data
    index = build_index(name, labels)
    scores, ids = index.search(queries, 10)
    assert scores.shape == ids.shape == (200, 10) and scores.dtype == np.float32 and ids.dtype == np.int64
    recall = index.recall(queries, 10)
    assert recall >= 0.9, f"{name}: recall@10 {recall:.3f}"
    assert recall == pytest.approx(index.recall(queries, 10, embeddings=labels))
    np.testing.assert_allclose(scores, np.einsum("nd,nkd->nk", queries, labels[ids]), atol=1e-4)
    index.save(tmp_path / "index")
    loaded = Index.load(tmp_path / "index")
    assert type(loaded) is type(index) and loaded.params == index.params
    assert (loaded.size, loaded.dim) == (3000, 32)
    again_scores, again_ids = loaded.search(queries, 10)
    np.testing.assert_array_equal(again_ids, ids)
    np.testing.assert_array_equal(again_scores, scores)
    np.testing.assert_allclose(loaded.vectors(), labels, atol=1e-6)
    assert type(index).load(tmp_path / "index").search(queries[:5], 3)[1].tolist() == ids[:5, :3].tolist()


@pytest.mark.parametrize("name", ["exact", "faiss-flat"])
def test_exact_backends_equal_the_oracle(name):
    q, x = integer_data(20, 500, 8, seed=2)
    _, ids = build_index(name, x).search(q, 15)
    want = oracle_topk(q, x, 15)[1]
    if name == "exact":
        np.testing.assert_array_equal(ids, want)
    else:  # faiss breaks ties its own way: compare the score multisets
        scores = q.astype(np.float64) @ x.T.astype(np.float64)
        np.testing.assert_array_equal(np.take_along_axis(scores, ids, 1), np.take_along_axis(scores, want, 1))


@pytest.mark.parametrize("name", BACKENDS)
def test_k_beyond_the_index_is_padded(name):
    labels, queries = clustered(50, 4, 8, seed=3)
    scores, ids = build_index(name, labels).search(queries, 60)
    assert ids.shape == (4, 60) and (ids[:, 50:] == -1).all() and np.isneginf(scores[:, 50:]).all()
    assert np.isneginf(scores[ids < 0]).all()


def test_save_replaces_atomically(tmp_path, data):
    labels, queries = data
    target = tmp_path / "index"
    build_index("exact", labels[:100]).save(target)
    build_index("faiss-flat", labels).save(target)
    assert Index.load(target).name == "faiss-flat"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["index"]  # no temporary folders left

    class Broken(index_class("exact")):
        def _save(self, directory):
            (directory / "partial").write_text("x")
            raise OSError("disk full")

    broken = Broken().build(labels[:10])
    with pytest.raises(OSError, match="disk full"):
        broken.save(target)
    assert Index.load(target).name == "faiss-flat"  # the old index is intact
    assert sorted(p.name for p in tmp_path.iterdir()) == ["index"]


def test_load_checks_the_folder(tmp_path, data):
    with pytest.raises(DataError, match="index.json is missing"):
        Index.load(tmp_path)
    build_index("exact", data[0][:10]).save(tmp_path / "i")
    manifest = json.loads((tmp_path / "i" / MANIFEST).read_text())
    (tmp_path / "i" / MANIFEST).write_text(json.dumps(manifest | {"version": 99, "format": "other"}))
    with pytest.raises(DataError, match="2 problem") as info:
        Index.load(tmp_path / "i")
    assert {p.field for p in info.value.problems} == {"format", "version"}
    (tmp_path / "i" / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(ConfigError, match="holds a 'exact' index, not 'hnswlib'"):
        index_class("hnswlib").load(tmp_path / "i")


def test_search_checks_its_inputs(data):
    index = build_index("exact", data[0][:10])
    with pytest.raises(DataError, match="width 5 differs"):
        index.search(np.zeros((2, 5), np.float32), 3)
    with pytest.raises(ConfigError, match="k must be"):
        index.search(data[1], 0)
    with pytest.raises(ConfigError, match="empty"):
        index_class("hnswlib")().search(data[1], 1)


def test_recall_at_k_hand_values():
    exact = np.array([[1, 2, 3, 4], [5, 6, -1, -1], [-1, -1, -1, -1]])
    approx = np.array([[4, 9, 1, 8], [6, -1, -1, 5], [1, 2, 3, 4]])
    assert recall_at_k(approx, exact) == pytest.approx((2 / 4 + 2 / 2) / 2)
    assert recall_at_k(exact, exact) == 1.0
    assert recall_at_k(approx[:1, :2], exact[:1]) == pytest.approx(1 / 4)
    with pytest.raises(DataError):
        recall_at_k(approx[:2], exact)


@pytest.mark.parametrize("name", ["exact", "hnswlib"])
def test_non_finite_embeddings_are_refused_naming_the_rows(name, data, tmp_path):
    if name == "hnswlib":
        pytest.importorskip("hnswlib")
    labels, queries = data[0][:20].copy(), data[1][:4].copy()
    labels[[3, 11]] = np.nan
    with pytest.raises(DataError, match=r"2 of 20 label embeddings hold NaN or inf values \(row\(s\) 3, 11\)"):
        build_index(name, labels)
    index = build_index(name, data[0][:20])
    queries[2, 0] = np.inf
    with pytest.raises(DataError, match=r"1 of 4 query embeddings hold NaN or inf values \(row\(s\) 2\)"):
        index.search(queries, 3)
    if name == "exact":  # a saved file damaged afterwards is refused when loaded
        index.save(tmp_path / "i")
        vectors = np.load(tmp_path / "i" / "embeddings.npy")
        vectors[5] = np.nan
        np.save(tmp_path / "i" / "embeddings.npy", vectors)
        with pytest.raises(DataError, match=r"embeddings.npy: 1 of 20 label embeddings hold NaN"):
            Index.load(tmp_path / "i")
