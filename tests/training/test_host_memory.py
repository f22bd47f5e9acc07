"""The host memory of a training run, checked before anything is written (vixml.planning.training)."""

from __future__ import annotations

import pytest
import torch

from support_data import make_dataset
from vixml import memory_fit
from vixml.cli.main import main
from vixml.config import RunConfig, apply_overrides, save_config
from vixml.data import load_dataset
from vixml.data.footprint import folder_need
from vixml.planning import sparse_need, training_need, training_phases

CPU = torch.device("cpu")


def _config(tiny_bert, *sets: str) -> RunConfig:
    return apply_overrides(RunConfig(), [f"model.name_or_path={tiny_bert}", "train.device=cpu", *sets])


def test_the_bank_grows_with_the_training_queries_and_the_phases_are_named(tmp_path, tiny_bert):
    small = load_dataset(make_dataset(tmp_path / "small", n_train=1000, n_test=100, n_labels=200))
    large = load_dataset(make_dataset(tmp_path / "large", n_train=3000, n_test=100, n_labels=200))
    cfg = _config(tiny_bert)
    (a, what), (b, _) = training_need(cfg, small, CPU), training_need(cfg, large, CPU)
    row = 4 * 32  # float32 embeddings of the 32-wide BERT
    assert b - a >= 2000 * row  # the bank, per added query (the peak phase here is the evaluation)
    assert "the query bank" in what and "the model's weights and AdamW state on the CPU" in what
    # two ranks on this machine, each encoding half of every batch: each holds its bank and its model
    two, what2 = training_need(cfg, large, CPU, local_ranks=2, ranks=2)
    one_half, _ = training_need(_config(tiny_bert, f"train.batch_size={cfg.train.batch_size // 2}"), large, CPU)
    assert two > one_half + 3000 * row and "on 2 ranks on this machine" in what2


def test_train_is_refused_when_the_run_would_not_fit_though_the_data_would(tmp_path, tiny_bert, monkeypatch, capsys):
    data = make_dataset(tmp_path / "data", n_train=2000, n_test=100, n_labels=200)
    cfg = _config(tiny_bert, "train.epochs=1")
    save_config(cfg, tmp_path / "cfg.yaml")
    data_need = folder_need(data)[0]
    extra, _ = training_need(cfg, load_dataset(data), CPU)
    monkeypatch.delenv(memory_fit.SKIP_ENV, raising=False)
    assert extra > 2 * data_need  # the run's own memory dominates: room for the data, not for the run
    monkeypatch.setattr(memory_fit, "available_bytes", lambda: data_need + (extra - data_need) // 2)
    monkeypatch.setattr(memory_fit, "resident_bytes", lambda: 0)
    code = main(["train", str(tmp_path / "cfg.yaml"), "--data", str(data), "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert code == 1 and "Traceback" not in err, err
    assert "vixml train: needs about" in err and "the query bank" in err and "trn_X_Y.txt" in err
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("unreadable", ["no-such-model-folder"])
def test_a_backbone_the_estimator_cannot_read_is_not_checked(tmp_path, unreadable):
    ds = load_dataset(make_dataset(tmp_path / "data", n_train=20, n_test=5, n_labels=6))
    cfg = apply_overrides(RunConfig(), [f"model.name_or_path={tmp_path / unreadable}"])
    assert training_need(cfg, ds, CPU) == (0, "")


def test_the_sparse_companion_is_counted_in_a_hybrid_run_only(tmp_path, tiny_bert):
    ds = load_dataset(make_dataset(tmp_path / "data", n_train=1000, n_test=100, n_labels=200))
    plain = training_phases(_config(tiny_bert), ds, CPU)
    hybrid_cfg = _config(tiny_bert, "sparse={}")
    hybrid = training_phases(hybrid_cfg, ds, CPU)
    assert "training the sparse companion" not in plain.phases
    training, held = sparse_need(hybrid_cfg.sparse, ds)
    assert training > 0 and held > 0
    # its training is one more phase (before the first step: it never overlaps the others), the trained
    # companion is held for the rest of the run; nothing else changes
    assert hybrid.phases == {**plain.phases, "training the sparse companion": training}
    assert hybrid.held == plain.held + held
    (need, what), (plain_need, plain_what) = (
        training_need(hybrid_cfg, ds, CPU),
        training_need(_config(tiny_bert), ds, CPU),
    )
    assert need == hybrid.held + max(hybrid.phases.values()) and need >= plain_need + held
    assert "the sparse companion" in what and "sparse" not in plain_what
    # more trees, more memory; unigrams alone and no label texts, less
    trees = sparse_need(_config(tiny_bert, "sparse={}", "sparse.trees=6").sparse, ds)  # the default is 3
    lean = sparse_need(_config(tiny_bert, "sparse={}", "sparse.ngrams=1", "sparse.label_texts=false").sparse, ds)
    assert trees[0] > training and trees[1] == 2 * held
    assert lean[0] < training and lean[1] < held
    # pruning small weights shrinks the forest as measured: 1/3 at 0.3, 1/10 at 0.5 (the default is 0.1)
    for threshold, factor in ((0.3, 1 / 3), (0.5, 0.1), (0.9, 0.1)):
        pruned = sparse_need(_config(tiny_bert, "sparse={}", f"sparse.weight_threshold={threshold}").sparse, ds)
        assert pruned[1] == pytest.approx(held * factor, rel=1e-4)  # whole bytes


def test_the_sparse_companion_can_be_the_peak_phase(tmp_path, tiny_bert):
    # a forest of 8 trees over 2,000 labels, tiny batches, 5 test queries: the companion's training outweighs
    # a step, the refills and the evaluation
    ds = load_dataset(make_dataset(tmp_path / "data", n_train=3000, n_test=5, n_labels=2000))
    cfg = _config(tiny_bert, "sparse={}", "sparse.trees=8", "train.batch_size=4", "prototypes=null")
    need, what = training_need(cfg, ds, CPU)
    found = training_phases(cfg, ds, CPU)
    assert max(found.phases, key=found.phases.get) == "training the sparse companion"
    assert "training the sparse companion at its peak" in what
    assert need == found.held + found.phases["training the sparse companion"]
