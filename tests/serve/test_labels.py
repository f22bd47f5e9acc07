"""Label edits on a trained run: new labels encoded as trained ones, hidden labels gone, the overlay on disk."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from support_data import label_word
from support_serve import N_LABELS, NEW_WORDS
from vixml.errors import DataError
from vixml.inference import Predictor
from vixml.inference import labels as labels_module
from vixml.inference.labels import (
    LabelSet,
    add_labels,
    encode_new_labels,
    hide_labels,
    merge_topk,
    prototype_without_centroid,
)
from vixml.inference.overlay import LabelOverlay
from vixml.locking import LockedError
from vixml.run_folder import RunFolder
from vixml.search import topk


def _oracle(queries, matrix, visible_ids, k):
    """Brute force over the visible rows of ``matrix``: score descending, then id ascending."""
    scores = queries @ matrix[visible_ids].T
    out_s, out_i = [], []
    for row in scores:
        order = np.lexsort((visible_ids, -row.astype(np.float64)))[:k]
        out_s.append(row[order])
        out_i.append(visible_ids[order])
    return np.array(out_s), np.array(out_i)


@pytest.mark.parametrize("compact", [False, True], ids=["overfetch", "compacted"])
def test_search_equals_brute_force_over_visible_labels(monkeypatch, compact):
    if compact:
        monkeypatch.setattr(labels_module, "OVERFETCH_MAX", 0)
    rng = np.random.default_rng(0)
    base = rng.standard_normal((50, 8)).astype(np.float32)
    added = rng.standard_normal((7, 8)).astype(np.float32)
    queries = rng.standard_normal((9, 8)).astype(np.float32)
    overlay = LabelOverlay(50, 8, "x").with_added([f"new {i}" for i in range(7)], added, None, [0] * 7)
    hidden = [3, 10, 11, 49, 52]
    labels = LabelSet(base, [f"label {i}" for i in range(50)], overlay.with_hidden(hidden))
    everything = np.concatenate([base, added])
    visible = np.setdiff1d(np.arange(57), hidden)
    for k in (1, 5, 20, 60):
        scores, ids = labels.search(queries, k)
        want_s, want_i = _oracle(queries, everything, visible, min(k, visible.size))
        np.testing.assert_array_equal(ids[:, : want_i.shape[1]], want_i)
        np.testing.assert_allclose(scores[:, : want_s.shape[1]], want_s, rtol=1e-5, atol=1e-5)
        assert (ids[:, want_i.shape[1] :] == -1).all()
    result = labels.predictions(*labels.search(queries[:1], 3))
    assert result.texts[0] == [labels.text(int(i)) for i in result.indices[0]]
    assert labels.text(52) == "new 2" and labels.text(4) == "label 4"


def test_merge_ranks_ties_by_lower_id_and_pads():
    a = (np.array([[0.5, 0.2]], np.float32), np.array([[7, 1]]))
    b = (np.array([[0.5, -np.inf]], np.float32), np.array([[3, -1]]))
    scores, ids = merge_topk([a, b], 5)
    assert ids.tolist() == [[3, 7, 1, -1, -1]]
    assert scores[0, :3].tolist() == pytest.approx([0.5, 0.5, 0.2])


def test_cluster_means_by_hand():
    base = np.array([[1, 0], [0, 1], [3, 0], [0, -2]], np.float32)
    labels = LabelSet(base, None)
    means = labels.cluster_means(np.array([0, 1, 0, 2]), 3)
    np.testing.assert_allclose(means, [[1, 0], [0, 1], [0, -1]], atol=1e-6)


def test_prototype_without_centroid_is_the_lpn_with_a_zero_centroid(prime_run):
    predictor = Predictor.load(prime_run, device="cpu")
    protos = predictor.model.prototypes
    ids = torch.tensor([0, 5, 9])
    u = torch.from_numpy(predictor.encode_labels([f"{label_word(int(i))} item" for i in ids]))
    with torch.no_grad():
        protos.centroids[ids] = 0
        want = protos(ids, u)
        got = prototype_without_centroid(protos, u, protos.label_to_free[ids])
    torch.testing.assert_close(got, want)


def test_a_label_added_with_a_trained_text_gets_that_labels_embedding(tmp_path, plain_run):
    """Plain dual encoder: a trained label's embedding is its text embedding, so a copy must match it."""
    import shutil

    run = shutil.copytree(plain_run, tmp_path / "run")
    predictor = Predictor.load(run, device="cpu")
    j = 6
    text = predictor.label_texts[j]
    with LabelOverlay.lock(run, "test"):
        (new_id,) = add_labels(predictor, [text])
    assert new_id == N_LABELS
    np.testing.assert_allclose(predictor.labels.overlay.embeddings[0], predictor.label_embeddings[j], atol=1e-5)
    result = predictor.predict([text], k=N_LABELS + 1)
    row = result.indices[0].tolist()
    assert abs(row.index(j) - row.index(new_id)) == 1  # equal scores up to float noise: side by side
    assert result.texts[0][row.index(new_id)] == text


def test_added_labels_persist_are_found_and_hidden_ones_never_return(run_copy):
    predictor = Predictor.load(run_copy, device="cpu")
    texts = [f"{w} item" for w in NEW_WORDS]
    with LabelOverlay.lock(run_copy, "test"):
        ids = add_labels(predictor, texts)
        assert ids == list(range(N_LABELS, N_LABELS + 3))
        emb, free = encode_new_labels(predictor, texts)  # deterministic: same embeddings again
        np.testing.assert_allclose(predictor.labels.overlay.embeddings, emb, atol=1e-6)
        assert free is not None and (free >= 0).all() and (free < predictor.model.prototypes.num_free_vectors).all()
        everything = predictor.predict([texts[0], "kalo"], k=N_LABELS + 3)
        assert set(ids) <= set(everything.indices[0].tolist())  # every label is ranked with a large k
        top = int(everything.indices[1, 0])
        hide_labels(predictor, [top, ids[1]])
    again = Predictor.load(run_copy, device="cpu")  # a restart: the overlay comes back from disk
    assert [a.text for a in again.labels.overlay.added] == texts
    np.testing.assert_array_equal(again.labels.overlay.embeddings, predictor.labels.overlay.embeddings)
    result = again.predict([texts[0], texts[1], "kalo"], k=N_LABELS + 3)
    assert not np.isin(result.indices, [top, ids[1]]).any()
    assert (result.indices >= 0).sum(axis=1).tolist() == [N_LABELS + 1] * 3  # all the others still ranked
    state = json.loads((RunFolder(run_copy).label_overlay / "overlay.json").read_text())
    assert state["hidden"] == sorted([top, ids[1]])


def test_a_writer_killed_between_the_two_files_leaves_the_previous_overlay(run_copy, monkeypatch):
    predictor = Predictor.load(run_copy, device="cpu")
    with LabelOverlay.lock(run_copy, "test"):
        add_labels(predictor, ["zuzu item"])

        def killed(*args, **kwargs):
            raise KeyboardInterrupt  # dies after embeddings.npy was replaced, before overlay.json

        monkeypatch.setattr("vixml.inference.overlay.atomic_open", killed)
        with pytest.raises(KeyboardInterrupt):
            add_labels(predictor, ["bobo item"])
    monkeypatch.undo()
    emb = np.load(RunFolder(run_copy).label_overlay / "embeddings.npy")
    assert emb.shape[0] == 2  # the new rows reached the disk, their commit record did not
    again = Predictor.load(run_copy, device="cpu")
    assert [a.text for a in again.labels.overlay.added] == ["zuzu item"]
    assert again.labels.num_labels == N_LABELS + 1


def test_one_editor_at_a_time_and_a_stale_overlay_is_refused(run_copy):
    with LabelOverlay.lock(run_copy, "vixml serve"):
        with pytest.raises(LockedError, match="vixml serve"):
            LabelOverlay.lock(run_copy, "vixml labels add").acquire()
        predictor = Predictor.load(run_copy, device="cpu")
        add_labels(predictor, ["zuzu item"])
    emb_path = RunFolder(run_copy).label_embeddings
    emb = np.load(emb_path)
    np.save(emb_path, emb[::-1].copy())  # "retrained": other label embeddings under the same overlay
    with pytest.raises(DataError, match="retrained"):
        Predictor.load(run_copy, device="cpu")


def test_predict_returns_label_texts_and_equals_the_search(prime_run):
    predictor = Predictor.load(prime_run, device="cpu")
    assert list(predictor.label_texts) == [f"{label_word(j)} item" for j in range(N_LABELS)]
    queries = [f"{label_word(3)} the", "kalo kane new"]
    result = predictor.predict(queries, k=4)
    scores, ids = topk(predictor.encode(queries), predictor.label_embeddings, 4)
    np.testing.assert_array_equal(result.indices, ids)
    np.testing.assert_array_equal(result.scores, scores)
    assert result.texts == [[predictor.label_texts[int(i)] for i in row] for row in ids]
    s, i = result  # unpacks as topk's (scores, indices)
    assert i is result.indices and s is result.scores
    assert result.records(queries)[1]["query"] == queries[1]


def test_a_run_without_label_texts_predicts_ids_only(run_copy):
    (RunFolder(run_copy).label_texts).unlink()
    predictor = Predictor.load(run_copy, device="cpu")
    assert predictor.label_texts is None
    result = predictor.predict(["kalo"], k=3)
    assert result.texts == [[None, None, None]] and len(result.records()[0]["labels"]) == 3
