"""dataset_stats against hand-computed values; the synthetic builder's promises."""

from __future__ import annotations

import json

import numpy as np
import pytest
import scipy.sparse as sp

import support_data
from vixml.data import dataset_stats, load_dataset, validate_dataset, write_label_matrix, write_texts
from vixml.data.image_maps import ImageMap, write_image_map


@pytest.fixture
def tiny(tmp_path):
    """4 train points, 2 test points, 5 labels; train label frequencies [1, 3, 0, 1, 0]."""
    d = tmp_path / "tiny"
    write_texts(d / "trn.raw.txt", ["a", "b", "c", "d"])
    write_texts(d / "tst.raw.txt", ["e", "f"])
    write_texts(d / "lbl.raw.txt", [f"l{j}" for j in range(5)])
    trn = sp.csr_matrix(np.array([[1, 1, 0, 0, 0], [0, 1, 0, 0, 0], [0, 0, 0, 0, 0], [0, 1, 0, 1, 0]]))
    tst = sp.csr_matrix(np.array([[0, 0, 0, 0, 1], [0, 0, 0, 0, 0]]))
    write_label_matrix(d / "trn_X_Y.txt", trn)
    write_label_matrix(d / "tst_X_Y.txt", tst)
    np.save(d / "trn_embs_imgs_2_3_m.npy", np.zeros((3, 3), dtype=np.float32))
    write_image_map(d / "train_imgs_384_2_map.npz", ImageMap(np.array([0, 2, 2, 3, 3]), np.array([0, 1, 2])))
    return d


def test_hand_computed_stats(tiny):
    stats = dataset_stats(tiny)
    assert stats["n_labels"] == 5
    assert stats["trn"] == {
        "points": 4,
        "nnz": 5,
        "avg_labels_per_point": 1.25,
        "avg_points_per_label": 1.0,
        "empty_rows": 1,
        "image_coverage": 0.5,
        "avg_images_per_item": 0.75,
    }
    assert stats["tst"] == {
        "points": 2,
        "nnz": 1,
        "avg_labels_per_point": 0.5,
        "avg_points_per_label": 0.2,
        "empty_rows": 1,
    }
    # frequencies sorted: [0, 0, 1, 1, 3]; linear interpolation at (n - 1) * q
    assert stats["label_frequency"] == pytest.approx(
        {"min": 0, "p25": 0, "p50": 1, "p75": 1, "p90": 2.2, "p99": 2.92, "max": 3}
    )
    assert stats["labels_without_train_points"] == 2
    assert json.loads(json.dumps(stats)) == stats


def test_stats_of_a_loaded_dataset_with_banks(tiny):
    ds = load_dataset(tiny)
    assert set(ds.images) == {"trn"}
    assert dataset_stats(ds) == dataset_stats(tiny)


def test_synthetic_builder_structure(tmp_path):
    path = support_data.make_dataset(tmp_path / "s", n_train=60, n_test=9, n_labels=30, with_images=True, seed=3)
    assert validate_dataset(path) == []
    ds = load_dataset(path)
    assert (ds.n_train, ds.n_test, ds.n_labels) == (60, 9, 30)
    row = ds.trn_Y[0].indices
    words = set(ds.trn_texts[0].split())
    assert {support_data.label_word(int(j)) for j in row} <= words  # a point's text names its labels
    assert ds.lbl_texts[5] == f"{support_data.label_word(5)} item"
    assert len({support_data.label_word(j) for j in range(1000)}) == 1000
    again = support_data.make_dataset(tmp_path / "again", n_train=60, n_test=9, n_labels=30, with_images=True, seed=3)
    assert (again / "trn_X_Y.txt").read_bytes() == (path / "trn_X_Y.txt").read_bytes()  # a function of the seed
    # images: label j shows its prototype; a point shows the mean of its labels' prototypes (+ small noise)
    label_emb, label_mask = ds.images["lbl"].gather(np.arange(30))
    point_emb, point_mask = ds.images["trn"].gather(np.arange(60))
    assert point_mask.sum(axis=1).tolist() == [i % 3 for i in range(60)]
    checked = 0
    for i in range(60):
        labels = ds.trn_Y[i].indices
        if point_mask[i, 0] and label_mask[labels, 0].all():
            target = label_emb[labels, 0].mean(axis=0)
            cos = point_emb[i, 0] @ target / np.linalg.norm(point_emb[i, 0]) / np.linalg.norm(target)
            assert cos > 0.9
            checked += 1
    assert checked >= 5
    freq = np.diff(ds.trn_Y.tocsc().indptr)
    assert freq.max() >= 3 * max(1, np.median(freq))  # head and tail labels
