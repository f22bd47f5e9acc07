"""The one retrieval path: fusion beats each source on planted data, filters and hidden labels, sparse files."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import scipy.sparse as sp

from vixml.errors import ConfigError
from vixml.metrics import evaluate
from vixml.retrieval import FOUND_DENSE, FOUND_R, FOUND_SPARSE, Fusion, LabelMatrix, Memory, Retriever, tune
from vixml.search import to_csr

L, D = 60, 16


class PlantedSparse:
    """A lexical source that knows the true label of half the queries (its "text" says so) and guesses else."""

    num_labels = L

    def __init__(self, truth: dict[str, int], seed: int):
        self.truth = truth
        self.rng = np.random.default_rng(seed)

    def search(self, texts, k):
        scores = np.full((len(texts), k), -np.inf, dtype=np.float32)
        ids = np.full((len(texts), k), -1, dtype=np.int64)
        for row, text in enumerate(texts):
            rng = np.random.default_rng(abs(hash(text)) % (2**32))
            guess = rng.permutation(L)  # the same ranking whatever k
            values = np.sort(rng.uniform(0.05, 0.15, size=L))[::-1]
            if text in self.truth:  # it sees this query's label: a confident first answer
                guess = np.concatenate([[self.truth[text]], guess[guess != self.truth[text]]])
                values[0] = 0.9
            scores[row], ids[row] = values[:k], guess[:k]
        return scores, ids


def planted(n: int, seed: int):
    """n queries with one true label each; the dense embedding shows it for the even rows only, the sparse
    source for the odd rows only."""
    rng = np.random.default_rng(seed)
    labels = rng.standard_normal((L, D)).astype(np.float32)
    labels /= np.linalg.norm(labels, axis=1, keepdims=True)
    true = rng.integers(0, L, size=n)
    noise = rng.standard_normal((n, D)).astype(np.float32)
    queries = noise / np.linalg.norm(noise, axis=1, keepdims=True)
    even = np.arange(n) % 2 == 0
    queries[even] = labels[true[even]] * 3 + 0.5 * queries[even]
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    texts = [f"query {seed}-{i}" for i in range(n)]
    sparse_truth = {texts[i]: int(true[i]) for i in range(n) if i % 2 == 1}
    y = sp.csr_matrix((np.ones(n, np.float32), (np.arange(n), true)), shape=(n, L))
    return labels, queries, texts, y, sparse_truth


def p_at_1(retriever, queries, texts, y, source):
    found = retriever.search(queries, texts, 5, source=source)
    return evaluate(y, to_csr(found.scores, found.ids, L), k=1)["P@1"]


def test_fusion_beats_each_source_where_each_sees_half_the_signal():
    labels, queries, texts, y, truth = planted(400, seed=1)
    tune_rows, test_rows = np.arange(200), np.arange(200, 400)
    retriever = Retriever(LabelMatrix(labels), PlantedSparse(truth, 0), candidates=20)
    ids, sources, _ = retriever.candidate_scores(queries[tune_rows], [texts[i] for i in tune_rows], 20)
    fusion = tune(sources, ids, y[tune_rows])
    assert 0 < fusion.dense_weight < 1 and fusion.tuned_on == 200
    retriever.fusion = fusion
    q, t, truth_y = queries[test_rows], [texts[i] for i in test_rows], y[test_rows]
    dense_p1 = p_at_1(retriever, q, t, truth_y, "dense")
    sparse_p1 = p_at_1(retriever, q, t, truth_y, "sparse")
    fused_p1 = p_at_1(retriever, q, t, truth_y, "fused")
    assert 0.4 < dense_p1 < 0.65 and 0.4 < sparse_p1 < 0.65, (dense_p1, sparse_p1)
    assert fused_p1 > max(dense_p1, sparse_p1) + 0.3, (dense_p1, sparse_p1, fused_p1)


def test_candidates_are_scored_by_every_source_with_the_floor_where_one_found_nothing():
    labels, queries, texts, _, truth = planted(8, seed=2)
    retriever = Retriever(LabelMatrix(labels), PlantedSparse(truth, 0), Fusion(0.5), candidates=5)
    ids, sources, found = retriever.candidate_scores(queries, texts, 5)
    dense, sparse_scores = sources["dense"], sources["sparse"]
    valid = ids >= 0
    np.testing.assert_allclose(
        dense[valid],
        np.einsum("nd,nd->n", queries.repeat(ids.shape[1], 0).reshape(*ids.shape, D)[valid], labels[ids[valid]]),
        rtol=1e-5,
    )
    only_dense = valid & (found == FOUND_DENSE)
    assert only_dense.any() and (sparse_scores[only_dense] == 0).all()  # the sparse floor
    assert ((found & FOUND_SPARSE) > 0).any()
    for row in range(ids.shape[0]):
        kept = ids[row][ids[row] >= 0]
        assert len(set(kept.tolist())) == kept.shape[0]  # a candidate once per row


@pytest.mark.parametrize("source", ["dense", "sparse", "fused"])
def test_filter_pairs_are_removed_before_the_cut(source):
    labels, queries, texts, _, truth = planted(10, seed=3)
    retriever = Retriever(LabelMatrix(labels), PlantedSparse(truth, 0), Fusion(0.5), candidates=10)
    plain = retriever.search(queries, texts, 4, source=source)
    pairs = np.array([[row, plain.ids[row, 0]] for row in range(10)], dtype=np.int64)
    filtered = retriever.search(queries, texts, 4, source=source, exclude=pairs)
    for row in range(10):
        assert plain.ids[row, 0] not in filtered.ids[row]
        np.testing.assert_array_equal(filtered.ids[row, :3], plain.ids[row, 1:4])  # the rest moves up
        assert filtered.ids[row, 3] >= 0  # k labels still


def test_a_source_the_run_lacks_is_refused_with_what_to_do():
    labels, queries, texts, _, _ = planted(4, seed=4)
    retriever = Retriever(LabelMatrix(labels))
    assert retriever.resolve("auto") == "dense"
    with pytest.raises(ConfigError, match="sparse=\\{\\}"):
        retriever.search(queries, texts, 3, source="fused")
    with pytest.raises(ConfigError, match="valid"):
        retriever.resolve("bm25")


def planted_thirds(n: int, seed: int):
    """n queries, one true label each: the dense embedding shows it for rows 0 mod 3, the sparse source for
    rows 1 mod 3, and for rows 2 mod 3 only a training query (+R memory) that looks like the query knows it."""
    rng = np.random.default_rng(seed)
    labels = rng.standard_normal((L, D)).astype(np.float32)
    labels /= np.linalg.norm(labels, axis=1, keepdims=True)
    true = rng.integers(0, L, size=n)
    queries = rng.standard_normal((n, D)).astype(np.float32)
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    first = np.arange(n) % 3 == 0
    queries[first] = labels[true[first]] * 3 + 0.5 * queries[first]
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    texts = [f"query {seed}-{i}" for i in range(n)]
    sparse_truth = {texts[i]: int(true[i]) for i in range(n) if i % 3 == 1}
    third = np.flatnonzero(np.arange(n) % 3 == 2)
    memory_emb = np.concatenate([queries[third], rng.standard_normal((n, D)).astype(np.float32)])
    memory_emb /= np.linalg.norm(memory_emb, axis=1, keepdims=True)
    memory_labels = np.concatenate([true[third], rng.integers(0, L, size=n)])  # and n distractors
    memory_y = sp.csr_matrix(
        (np.ones(memory_labels.shape[0], np.float32), (np.arange(memory_labels.shape[0]), memory_labels)),
        shape=(memory_labels.shape[0], L),
    )
    y = sp.csr_matrix((np.ones(n, np.float32), (np.arange(n), true)), shape=(n, L))
    return labels, queries, texts, y, sparse_truth, Memory(memory_emb, memory_y, num_labels=20, num_queries=20)


def test_plus_r_is_a_third_source_with_its_own_tuned_weight(tmp_path):
    labels, queries, texts, y, truth, memory = planted_thirds(600, seed=5)
    tune_rows, test_rows = np.arange(300), np.arange(300, 600)
    retriever = Retriever(LabelMatrix(labels), PlantedSparse(truth, 0), candidates=20)
    ids, sources, found = retriever.candidate_scores(queries[tune_rows], [texts[i] for i in tune_rows], 20, memory)
    assert set(sources) == {"dense", "sparse", "r"} and ((found & FOUND_R) > 0).any()
    fusion = tune(sources, ids, y[tune_rows])
    assert set(fusion.plus_r) == {"dense", "r", "sparse"} and sum(fusion.plus_r.values()) == pytest.approx(1)
    assert min(fusion.plus_r.values()) > 0, fusion.plus_r  # each source carries a third of the answers
    fusion.save(tmp_path / "fusion.json")
    retriever.fusion = Fusion.load(tmp_path / "fusion.json")
    assert retriever.fusion == fusion
    q, t, truth_y = queries[test_rows], [texts[i] for i in test_rows], y[test_rows]

    def p1(source, with_r):
        found = retriever.search(q, t, 5, source=source, memory=memory if with_r else None)
        return evaluate(truth_y, to_csr(found.scores, found.ids, L), k=1)["P@1"]

    alone = {
        name: p1(source, r)
        for name, source, r in (("dense", "dense", 0), ("sparse", "sparse", 0), ("dense+R", "dense", 1))
    }
    fused, fused_r = p1("fused", False), p1("fused", True)
    assert fused_r > max(*alone.values(), fused) + 0.2, (alone, fused, fused_r)
    untuned = Retriever(
        LabelMatrix(labels), PlantedSparse(truth, 0), dataclasses.replace(fusion, plus_r=None), candidates=20
    )
    old_rule = untuned.search(q, t, 5, source="fused", memory=memory)  # +R in the dense source's place
    old = evaluate(truth_y, to_csr(old_rule.scores, old_rule.ids, L), k=1)["P@1"]
    assert fused_r > old + 0.1


def test_a_fusion_file_without_plus_r_weights_still_loads(tmp_path):
    path = tmp_path / "fusion.json"
    path.write_text('{"dense_weight": 0.3, "normalization": "zscore", "tuned_on": 10, "scores": {}}')
    fusion = Fusion.load(path)
    assert fusion.plus_r is None and fusion.weights(True) == {"r": 0.3, "sparse": 0.7}


def test_weights_that_only_noise_prefers_shrink_to_even_and_a_real_gain_stands():
    n, c = 150, 20
    ids = np.tile(np.arange(c), (n, 1))
    chosen = []
    for seed in range(20):  # no source knows anything: every difference between weights is noise
        rng = np.random.default_rng(seed)
        y = sp.csr_matrix((np.ones(n, np.float32), (np.arange(n), rng.integers(0, c, size=n))), shape=(n, L))
        fusion = tune({name: rng.standard_normal((n, c)) for name in ("dense", "sparse")}, ids, y)
        assert len({v["objective"] for v in fusion.scores.values()}) > 1  # noise still ranks the weights
        chosen.append(fusion.dense_weight)
    chosen = np.array(chosen)
    assert (chosen == 0.5).mean() >= 0.6 and np.abs(chosen - 0.5).mean() < 0.1, chosen  # the argmax: 0.35 off

    rng = np.random.default_rng(6)
    y = sp.csr_matrix((np.ones(n, np.float32), (np.arange(n), rng.integers(0, c, size=n))), shape=(n, L))
    noise = {name: rng.standard_normal((n, c)) for name in ("dense", "sparse", "r")}
    knowing = dict(noise, dense=noise["dense"] + 3 * y[:, :c].toarray())  # the dense source knows every answer
    fusion = tune(knowing, ids, y)
    assert fusion.dense_weight > 0.5 and fusion.plus_r["dense"] > 0.4, fusion
