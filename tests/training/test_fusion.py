"""Vision enhancement (docs/method.md 3): images help where only the image carries the answer, and image dropout
keeps a fused model at the text-only level when images are missing at inference.

Planted data: 4 groups x 6 colours = 24 labels. A query's text names its group but never its colour; its
images show the colour (a random "colour" vector plus noise), as do the label's images. Text alone can only
find the group (P@1 about 1/6); text + images can find the exact label.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import scipy.sparse as sp

from support_models import make_tiny_bert
from vixml.config import RunConfig, apply_overrides
from vixml.data import load_dataset, write_label_matrix, write_texts
from vixml.data.image_maps import ImageMap, write_image_map
from vixml.inference import Predictor
from vixml.training import train

pytestmark = pytest.mark.slow  # every test here trains a model end to end (make test runs them)

GROUPS = ["kettle", "lamp", "sofa", "rug"]
COLOURS = 6
DIM = 16
N_IMAGES = 2


def _split(directory, name, labels, texts, colour_of, protos, rng):
    """Write texts, labels and image embeddings (released names) of one split."""
    write_texts(directory / f"{name}.raw.txt", texts)
    if labels is not None:
        y = sp.csr_matrix((np.ones(len(labels)), (np.arange(len(labels)), labels)), shape=(len(labels), 24))
        write_label_matrix(directory / f"{name}_X_Y.txt", y)
    counts = np.full(len(texts), N_IMAGES)
    emb = np.concatenate([protos[c] + 0.1 * rng.standard_normal((N_IMAGES, DIM)) for c in colour_of]).astype(
        np.float32
    )
    np.save(directory / f"{name}_embs_imgs_{N_IMAGES}_{DIM}_planted.npy", emb)
    indptr = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    long = {"trn": "train", "tst": "test", "lbl": "labels"}[name]
    write_image_map(directory / f"{long}_imgs_384_{N_IMAGES}_map.npz", ImageMap(indptr, np.arange(len(emb))))


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    directory = tmp_path_factory.mktemp("colours")
    rng = np.random.default_rng(0)
    protos = rng.standard_normal((COLOURS, DIM))
    label_group = np.arange(24) // COLOURS
    label_colour = np.arange(24) % COLOURS
    _split(directory, "lbl", None, [f"{GROUPS[g]} item" for g in label_group], label_colour, protos, rng)
    for name, n in (("trn", 480), ("tst", 120)):
        labels = rng.integers(0, 24, n)
        texts = [f"{GROUPS[label_group[j]]} thing {'new' if i % 2 else 'used'}" for i, j in enumerate(labels)]
        _split(directory, name, labels, texts, label_colour[labels], protos, rng)
    return directory


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory, data_dir):
    ds = load_dataset(data_dir, images=False)
    return make_tiny_bert(tmp_path_factory.mktemp("bert"), vocab_texts=list(ds.trn_texts) + list(ds.lbl_texts))


def _train(tmp_path, data_dir, model, *extra):
    cfg = apply_overrides(
        RunConfig(),
        [
            f"model.name_or_path={model}",
            "data.max_length=8",
            "train.epochs=8",
            "train.batch_size=48",
            "train.lr=3e-3",
            "train.warmup_steps=5",
            "train.eval_every=0",
            "train.checkpoint_every=0",
            "train.device=cpu",
            "train.sampling=uniform",
            "mining=null",
            "loss.name=infonce",
            "eval.topk=10",
            *extra,
        ],
    )
    return train(cfg, data_dir, tmp_path)


def _p1_and_group(predictor, ds, images):
    _, top = predictor.predict(list(ds.tst_texts), images=images, k=1)
    truth = ds.tst_Y.indices
    return float(np.mean(top[:, 0] == truth)), float(np.mean(top[:, 0] // COLOURS == truth // COLOURS))


def test_images_carry_what_text_cannot_and_dropout_keeps_text_level(tmp_path, data_dir, tiny_model):
    text_run = _train(tmp_path / "text", data_dir, tiny_model)
    fused_run = _train(tmp_path / "fused", data_dir, tiny_model, "images.num_images=2")
    robust_run = _train(tmp_path / "robust", data_dir, tiny_model, "images.num_images=2", "images.dropout=0.5")

    text_p1 = json.loads((text_run / "metrics.json").read_text())["final"]["P@1"]
    fused_p1 = json.loads((fused_run / "metrics.json").read_text())["final"]["P@1"]
    assert text_p1 < 0.4, text_p1  # the colour is not in the text: about 1/6
    assert fused_p1 > 0.85 and fused_p1 > 2.5 * text_p1, (text_p1, fused_p1)

    ds = load_dataset(data_dir)
    images = ds.images["tst"].gather(np.arange(ds.n_test))
    robust = Predictor.load(robust_run)
    with_images, _ = _p1_and_group(robust, ds, images)
    without_p1, without_group = _p1_and_group(robust, ds, None)
    assert with_images > 0.8, with_images  # keeps the fused accuracy with images
    assert without_group > 0.9, without_group  # without images it still finds the group, as text-only does
    assert without_p1 > text_p1 - 0.1, (without_p1, text_p1)
