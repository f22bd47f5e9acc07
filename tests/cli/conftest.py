"""A tiny trained run shared by the CLI bad-input tests (trained once a session, read-only)."""

from __future__ import annotations

import pytest

from support_data import make_dataset
from support_models import make_tiny_bert
from support_serve import N_LABELS, run_config
from vixml.data import load_dataset


@pytest.fixture(scope="session")
def cli_data(tmp_path_factory):
    return make_dataset(tmp_path_factory.mktemp("cli-data"), n_train=64, n_test=16, n_labels=N_LABELS, max_labels=2)


@pytest.fixture(scope="session")
def cli_model(tmp_path_factory, cli_data):
    ds = load_dataset(cli_data)
    texts = list(ds.trn_texts) + list(ds.lbl_texts)
    return make_tiny_bert(tmp_path_factory.mktemp("cli-bert"), vocab_texts=texts, hidden=32, layers=2, heads=2)


@pytest.fixture(scope="session")
def cli_run(tmp_path_factory, cli_data, cli_model):
    """A one-epoch plain run on 64 planted queries: labels ``"<word> item"``."""
    from vixml.training import train

    return train(run_config(cli_model, "train.epochs=1"), cli_data, tmp_path_factory.mktemp("cli-run") / "run")
