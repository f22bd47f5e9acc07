"""A hybrid run end to end: the sparse companion trains beside the dual encoder, every route fuses the same way."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys

import numpy as np
import pytest

from vixml.data import load_dataset, read_label_matrix
from vixml.inference import Predictor
from vixml.inference.labels import add_labels, hide_labels
from vixml.retrieval import SparseRanker
from vixml.training import train

pytestmark = pytest.mark.slow  # trains models end to end

HYBRID = ["sparse={}", "sparse.holdout=0.1", "sparse.trees=1", "train.epochs=3"]


class _Killed(Exception):
    pass


@pytest.fixture(scope="module")
def hybrid_run(tmp_path_factory, planted_data, train_config, tiny_bert):
    return train(train_config(tiny_bert, *HYBRID), planted_data, tmp_path_factory.mktemp("hybrid") / "run")


def _digest(folder):
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_a_hybrid_run_keeps_its_companion_and_reports_every_source(hybrid_run):
    metrics = json.loads((hybrid_run / "metrics.json").read_text())
    assert set(metrics["sources"]) == {"dense", "sparse", "fused"}
    assert metrics["final"] == metrics["sources"]["fused"]
    fusion = json.loads((hybrid_run / "fusion.json").read_text())
    assert fusion["tuned_on"] == 24 and 0 <= fusion["dense_weight"] <= 1  # 10% of the 240 training queries
    assert (hybrid_run / "sparse" / "sparse.json").is_file()
    state = json.loads((hybrid_run / "run.json").read_text())
    assert state["sparse_seconds"] < state["seconds"]
    from vixml.reports.html import build_report

    page = build_report([hybrid_run])
    assert all(f"<td>{name}</td>" in page for name in ("zero-shot", "dense", "sparse", "fused"))  # a row each
    assert f"Fused = {fusion['dense_weight']:.2f} x dense" in page and "tuned on 24 held-out queries" in page


def test_the_readme_lists_every_file_of_the_run_as_the_run_folder_describes_it(hybrid_run):
    from vixml.run_folder import RunFolder

    run = RunFolder(hybrid_run)
    described = dict(run.describe_files(hybrid=True))
    present = {p.name + ("/" if p.is_dir() else "") for p in hybrid_run.iterdir() if not p.name.startswith(".")}
    assert present <= set(described), f"written but not described: {present - set(described)}"
    assert {"sparse/", "fusion.json"} <= present and "checkpoints/" in present and "run.json" in present
    files = next(line for line in run.readme.read_text().splitlines() if line.startswith("Files: "))
    assert all(f"`{name}` ({what})" in files for name, what in described.items())
    assert set(dict(run.describe_files(hybrid=False))) == set(described) - {"sparse/", "fusion.json"}


def test_the_runs_own_predictions_equal_predict_data(tmp_path, hybrid_run, planted_data):
    own = read_label_matrix(hybrid_run / "predictions_tst.npz")
    out = tmp_path / "pred.npz"
    cli = [sys.executable, "-m", "vixml.cli.main", "predict", str(hybrid_run), "--data", str(planted_data)]
    subprocess.run([*cli, "--out", str(out), "--k", "10"], check=True, capture_output=True)
    again = read_label_matrix(out)
    assert (own != again).nnz == 0 and own.nnz == again.nnz
    ann = subprocess.run(
        [*cli, "--out", str(tmp_path / "ann.npz"), "--index", "hnsw", "--json"],
        check=True,
        capture_output=True,
        text=True,
    )
    summary = json.loads(ann.stdout)  # stdout holds the JSON object alone
    assert summary["source"] == "fused" and summary["index"] == "hnsw" and summary["index_recall@100"] >= 0.99


def test_a_hidden_label_never_comes_back_from_any_route(tmp_path, hybrid_run, planted_data):
    run = tmp_path / "run"
    shutil.copytree(hybrid_run, run)
    predictor = Predictor.load(run)
    dataset = load_dataset(planted_data)
    texts = list(dataset.tst_texts)
    top = predictor.predict(texts, k=1).indices[:, 0]
    hidden = int(np.bincount(top).argmax())  # the label most often ranked first
    hide_labels(predictor, [hidden])
    for reader in (predictor, Predictor.load(run), Predictor.load(run, index="hnsw")):
        for source in ("dense", "sparse", "fused"):
            assert hidden not in reader.predict(texts, k=24, source=source).indices
            assert hidden not in reader.predict_dataset(planted_data, k=24, source=source).indices
    from fastapi.testclient import TestClient

    from vixml.serve.app import create_app
    from vixml.serve.settings import ServeSettings

    with TestClient(create_app(Predictor.load(run), ServeSettings(run))) as client:
        for source in ("dense", "sparse", "fused"):
            body = {"queries": [{"text": t} for t in texts[:20]], "k": 24, "source": source}
            answer = client.post("/predict", json=body)
            assert answer.status_code == 200, answer.text
            results = answer.json()["results"]
            assert all(hidden not in r["labels"] for r in results)
            assert all(len(r["sources"]) == len(r["labels"]) for r in results)
        assert client.get("/info").json()["sparse"] is True
        refused = client.post("/predict", json={"queries": [{"text": "x"}], "source": "bm25"})
        assert refused.status_code == 422 and "source" in refused.json()["detail"][0]["loc"]


def test_an_added_label_is_found_by_the_fused_retriever(tmp_path, hybrid_run, planted_data):
    run = tmp_path / "run"
    shutil.copytree(hybrid_run, run)
    predictor = Predictor.load(run)
    query = list(load_dataset(planted_data).tst_texts)[0]
    [new_id] = add_labels(predictor, [query])  # its text is the query's: the dense score is the best there is
    found = Predictor.load(run).predict([query], k=5, source="fused")
    assert new_id in found.indices[0]
    record = found.records([query])[0]
    assert "dense" in record["sources"][record["labels"].index(new_id)]


def test_a_killed_hybrid_run_resumes_with_its_companion_to_the_same_model(
    tmp_path, planted_data, train_config, tiny_bert
):
    cfg = train_config(tiny_bert, *HYBRID)
    full = train(cfg, planted_data, tmp_path / "full")

    def kill(step: int) -> None:
        if step == 10:  # in epoch 2, after the epoch-1 checkpoint
            raise _Killed

    with pytest.raises(_Killed):
        train(cfg, planted_data, tmp_path / "killed", step_callbacks=[kill])
    saved = _digest(tmp_path / "killed" / "sparse")
    resumed = train(cfg, planted_data, tmp_path / "killed", resume=True)
    assert _digest(resumed / "sparse") == saved  # the companion was kept, not retrained
    # the dense part does not depend on the companion: bit for bit the uninterrupted run's
    np.testing.assert_array_equal(np.load(full / "label_embeddings.npy"), np.load(resumed / "label_embeddings.npy"))
    own = read_label_matrix(resumed / "predictions_tst.npz")
    again = Predictor.load(resumed).predict_dataset(planted_data, k=10)
    assert (own != again).nnz == 0
    texts = list(load_dataset(planted_data).tst_texts)
    a = SparseRanker.load(resumed / "sparse").search(texts, 10)
    b = SparseRanker.load(resumed / "sparse").search(texts, 10)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])


def test_plus_r_is_fused_as_a_third_source_and_predict_agrees(tmp_path, planted_data, train_config, tiny_bert):
    from vixml.config import load_config
    from vixml.metrics.evaluation import evaluate_predictions

    run = train(train_config(tiny_bert, *HYBRID, "eval.augment={}"), planted_data, tmp_path / "run")
    metrics = json.loads((run / "metrics.json").read_text())
    assert set(metrics["sources"]) == {"dense", "sparse", "fused", "dense + R", "fused + R"}
    weights = json.loads((run / "fusion.json").read_text())["plus_r"]
    assert set(weights) == {"dense", "r", "sparse"} and sum(weights.values()) == pytest.approx(1)
    assert metrics["fusion"]["plus_r"] == weights and "+R is a third fused source" in (run / "README.md").read_text()
    dataset = load_dataset(planted_data)
    cfg = load_config(run / "config.yaml").eval
    predicted = Predictor.load(run).predict_dataset(planted_data, k=cfg.topk, augment=True, source="fused")
    again = evaluate_predictions(predicted, dataset, cfg)
    assert again == pytest.approx(metrics["sources"]["fused + R"])
