"""The sparse companion: it learns, it reloads exactly, it prints nothing, a damaged or missing one is named."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest

from support_data import make_dataset
from vixml.config import SparseConfig
from vixml.data import load_dataset
from vixml.errors import DataError, MissingExtraError
from vixml.metrics import evaluate
from vixml.retrieval import SparseRanker
from vixml.search import to_csr


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return load_dataset(make_dataset(tmp_path_factory.mktemp("d"), n_train=200, n_test=50, n_labels=20))


@pytest.fixture(scope="module")
def ranker(data, tmp_path_factory):
    folder = tmp_path_factory.mktemp("s") / "sparse"
    texts, labels = list(data.trn_texts), list(data.lbl_texts)
    return SparseRanker.train(texts, data.trn_Y, labels, SparseConfig(trees=2), folder), folder


def test_it_learns_the_planted_words_and_reloads_to_the_same_scores(data, ranker):
    model, folder = ranker
    texts = list(data.tst_texts)
    scores, ids = model.search(texts, 10)
    p1 = evaluate(data.tst_Y, to_csr(scores, ids, data.n_labels), k=1)["P@1"]
    assert p1 > 0.8  # texts carry their labels' words; chance is about 0.1
    again = SparseRanker.load(folder).search(texts, 10)
    np.testing.assert_array_equal(scores, again[0])
    np.testing.assert_array_equal(ids, again[1])
    assert (np.diff(scores, axis=1) <= 0).all() and ((scores > 0) | (ids < 0)).all()


def test_label_texts_let_it_find_a_label_without_training_queries(data, tmp_path):
    keep = data.trn_Y.copy().tolil()
    keep[:, 3] = 0  # label 3 has no training query left
    texts, labels = list(data.trn_texts), list(data.lbl_texts)
    model = SparseRanker.train(texts, keep.tocsr(), labels, SparseConfig(trees=1), tmp_path / "s")
    _, ids = model.search([labels[3]], 3)
    assert 3 in ids[0]


def test_training_and_loading_print_nothing(data, tmp_path, capfd):
    SparseRanker.train(list(data.trn_texts), data.trn_Y, None, SparseConfig(trees=1), tmp_path / "s")
    SparseRanker.load(tmp_path / "s")
    out, err = capfd.readouterr()
    assert out == "" and "omikuji" not in err and "Examples" not in err  # stdout is the --json channel


def test_a_damaged_companion_is_named(ranker, tmp_path):
    import shutil

    _, folder = ranker
    broken = tmp_path / "sparse"
    shutil.copytree(folder, broken)
    (broken / "idf.npy").write_bytes(b"not an array")
    with pytest.raises(DataError, match="idf.npy|unreadable"):
        SparseRanker.load(broken)
    shutil.copy(folder / "idf.npy", broken / "idf.npy")
    record = json.loads((folder / "sparse.json").read_text())
    (broken / "sparse.json").write_text(json.dumps({**record, "format": "other"}))
    with pytest.raises(DataError, match="format"):
        SparseRanker.load(broken)
    (broken / "sparse.json").unlink()
    with pytest.raises(DataError, match="incomplete"):
        SparseRanker.load(broken)


def test_without_the_extra_it_says_which_to_install(ranker, monkeypatch):
    _, folder = ranker
    monkeypatch.setitem(sys.modules, "omikuji", None)
    with pytest.raises(MissingExtraError, match=r"vixml\[sparse\]"):
        SparseRanker.load(folder)
