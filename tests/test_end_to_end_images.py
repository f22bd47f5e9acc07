"""From image URLs served locally to a trained fused model, through the command line only:
`vixml images fetch` -> `vixml images embed` -> `vixml train` (images) -> `vixml predict` -> `vixml evaluate`.
"""

from __future__ import annotations

import csv
import json
import subprocess
import sys

import numpy as np
import pytest

from support_data import make_dataset
from support_http import ImageServer, Route, png
from support_models import make_tiny_bert
from support_vision import tiny_siglip
from vixml.data import load_dataset, read_manifest
from vixml.inference import Predictor

COLOURS = [(220, 20, 20), (20, 200, 20), (20, 20, 220), (230, 230, 20), (20, 220, 220), (220, 20, 220)]


def vixml(*args: str) -> subprocess.CompletedProcess:
    out = subprocess.run([sys.executable, "-m", "vixml.cli.main", *args], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-3000:]
    return out


@pytest.mark.slow
def test_urls_to_fused_model(tmp_path):
    data = make_dataset(tmp_path / "data", n_train=48, n_test=12, n_labels=6, max_labels=1)
    before = read_manifest(data)["fingerprint"]
    ds = load_dataset(data, images=False)
    rows = {"trn": ds.trn_Y, "tst": ds.tst_Y, "lbl": None}
    routes = {}
    for split, y in rows.items():
        n = ds.n_labels if y is None else y.shape[0]
        with open(tmp_path / f"{split}.csv", "w", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(["id", "url"])
            for i in range(n):
                colour = COLOURS[i if y is None else int(y.indices[y.indptr[i]])]
                routes[f"/{split}/{i}.png"] = Route(body=png(24, 16, colour))
                writer.writerow([i, f"URL/{split}/{i}.png"])
    with ImageServer(routes) as server:
        for split in rows:
            table = tmp_path / f"{split}.csv"
            table.write_text(table.read_text().replace("URL/", server.url("/")))
            out = vixml("images", "fetch", str(data), "--split", split, "--urls", str(table), "-n", "1", "--json")
            assert json.loads(out.stdout)["items_without_image"] == 0
    siglip = tiny_siglip(tmp_path / "siglip")
    vixml("images", "embed", str(data), "--model", str(siglip), "--num-images", "1", "--tag", "tiny", "--json")
    manifest = read_manifest(data)  # refreshed: lists the new banks, maps and embeddings; validate stays clean
    assert manifest["fingerprint"] != before and "trn_embs_imgs_1_32_tiny.npy" in manifest["files"]
    assert "train_imgs_384_1.bin" in manifest["files"]
    vixml("data", "validate", str(data))

    bert = make_tiny_bert(tmp_path / "bert", vocab_texts=list(ds.trn_texts) + list(ds.lbl_texts))
    config = tmp_path / "empty.yaml"
    config.write_text("")
    settings = [
        f"model.name_or_path={bert}", "images.num_images=1", "images.embedding_model=tiny", "train.epochs=2",
        f"images.vision_model={siglip}",
        "train.batch_size=16", "train.device=cpu", "mining=null", "eval.topk=5",
    ]  # fmt: skip
    run = tmp_path / "run"
    vixml("train", str(config), "--data", str(data), "--out", str(run), *[a for s in settings for a in ("--set", s)])
    assert (run / "model" / "image_projection.safetensors").exists()
    vixml("predict", str(run), "--data", str(data), "--k", "5", "--out", str(tmp_path / "pred.npz"))
    out = vixml(
        "evaluate", "--pred", str(tmp_path / "pred.npz"), "--true", str(data / "tst_X_Y.txt"),
        "--train", str(data / "trn_X_Y.txt"), "--filter", str(data / "filter_labels_test.txt"), "--json",
    )  # fmt: skip
    final = json.loads((run / "metrics.json").read_text())["final"]
    assert json.loads(out.stdout)["P@1"] == pytest.approx(final["P@1"], abs=1e-6)

    # new queries with image files: embedded by the run's vision model as the banks were
    predictor = Predictor.load(run)
    files = []
    for i in range(ds.n_test):
        path = tmp_path / f"query{i}.png"
        path.write_bytes(png(24, 16, COLOURS[int(ds.tst_Y.indices[ds.tst_Y.indptr[i]])]))
        files.append([path] if i % 4 else [])  # every fourth query comes without an image
    texts = list(ds.tst_texts)
    _, from_files = predictor.predict(texts, images=files, k=1)
    emb, mask = load_dataset(data, image_model="tiny").images["tst"].gather(range(ds.n_test))
    mask[::4] = False
    _, from_bank = predictor.predict(texts, images=(emb, mask), k=1)
    assert (from_files == from_bank).mean() >= 0.9
    # a query without images is read as training read an item whose images are missing: every slot masked
    none = np.zeros_like(mask[:4])
    np.testing.assert_array_equal(predictor.encode(texts[:4]), predictor.encode(texts[:4], images=(emb[:4], none)))
    # (not as text alone: the fixed image positions shift the text, so the embeddings differ)
    model = predictor.model
    ids = model.backbone.tokenize(texts[:4], 16)
    text_only = model.encode_queries(ids["input_ids"], ids["attention_mask"]).detach().numpy()
    assert np.abs(text_only - predictor.encode(texts[:4])).max() > 1e-3
