"""Tiny trained runs shared by the serving, free-input, label-edit and report tests (trained once a session).

A run is read-only here: a test that edits labels works on :func:`run_copy`, its own copy.
"""

from __future__ import annotations

import shutil

import pytest

from support_data import make_dataset
from support_models import make_tiny_bert
from support_serve import N_LABELS, NEW_WORDS, make_id_catalogue, run_config
from vixml.data import load_dataset, prepare_dataset
from vixml.training import train


@pytest.fixture(scope="session")
def serve_data(tmp_path_factory):
    return make_dataset(tmp_path_factory.mktemp("serve-data"), n_train=160, n_test=40, n_labels=N_LABELS, max_labels=2)


@pytest.fixture(scope="session")
def serve_model(tmp_path_factory, serve_data):
    ds = load_dataset(serve_data)
    texts = list(ds.trn_texts) + list(ds.lbl_texts) + [f"{w} item" for w in NEW_WORDS]
    return make_tiny_bert(tmp_path_factory.mktemp("serve-bert"), vocab_texts=texts, hidden=32, layers=2, heads=2)


@pytest.fixture(scope="session")
def prime_run(tmp_path_factory, serve_data, serve_model):
    """A PRIME run (prototypes, free vectors) on the planted data: labels ``"<word> item"``."""
    extra = ["prototypes.lpn_heads=4", "prototypes.lpn_ffn=64", "prototypes.lr=2e-3"]
    return train(run_config(serve_model, *extra), serve_data, tmp_path_factory.mktemp("prime") / "run")


@pytest.fixture(scope="session")
def plain_run(tmp_path_factory, serve_data, serve_model):
    """A plain dual-encoder run (no prototypes)."""
    return train(run_config(serve_model, "prototypes=null"), serve_data, tmp_path_factory.mktemp("plain") / "run")


@pytest.fixture(scope="session")
def id_run(tmp_path_factory, serve_model):
    """A plain run on a prepared catalogue with its own ids (support_serve.LABEL_IDS, queries ``Q-0000``...)."""
    root = tmp_path_factory.mktemp("catalogue-ids")
    data = prepare_dataset(make_id_catalogue(root / "catalogue"), root / "data")
    return train(run_config(serve_model, "train.epochs=2"), data, root / "run")


@pytest.fixture
def run_copy(tmp_path, prime_run):
    """A private copy of the PRIME run, for tests that edit its labels."""
    return shutil.copytree(prime_run, tmp_path / "run")


@pytest.fixture(scope="session")
def image_run(tmp_path_factory, serve_model):
    """A run with image early fusion (both sides) whose images are embedded by a tiny random SigLIP."""
    from support_vision import tiny_siglip

    root = tmp_path_factory.mktemp("image-run")
    data = make_dataset(root / "data", n_train=64, n_test=16, n_labels=N_LABELS, max_labels=1, with_images=True,
                        num_images=1, dim=32)  # fmt: skip
    siglip = tiny_siglip(root / "siglip")  # pooled embeddings of 32 dims, as the dataset's
    extra = ["images.num_images=1", "images.embedding_model=synthetic", f"images.vision_model={siglip}"]
    return train(run_config(serve_model, "train.epochs=1", *extra), data, root / "run")
