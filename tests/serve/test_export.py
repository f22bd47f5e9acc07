"""`vixml export`: ONNX exports equal the run (fp32 to 1e-4, top-10 the same), serve without torch, refuse damage;
sentence-transformers folders encode as the run; model cards; runs and exports by hub id from a local cache."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import yaml

from support_data import label_word
from vixml.cli.main import main
from vixml.errors import ConfigError, DataError
from vixml.inference import Predictor
from vixml.inference.export import export_onnx, export_sentence_transformers

pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")

QUERIES = [f"{label_word(i)} with {label_word(i + 3)}" for i in range(8)] + ["set of new things", label_word(12), "x"]


@pytest.fixture(scope="module")
def plain_export(tmp_path_factory, plain_run):
    return export_onnx(plain_run, tmp_path_factory.mktemp("exports") / "plain")


@pytest.fixture(scope="module")
def prime_export(tmp_path_factory, prime_run):
    return export_onnx(prime_run, tmp_path_factory.mktemp("exports") / "prime")


def _torch_and_onnx(run, export, texts=QUERIES, images=None):
    torch_side = Predictor.load(run, device="cpu")
    onnx_side = Predictor.load(export)
    return torch_side, onnx_side, torch_side.encode(texts, images), onnx_side.encode(texts, images)


@pytest.mark.parametrize("which", ["plain", "prime"])
def test_onnx_embeddings_and_top10_equal_the_run(which, request):
    run, export = request.getfixturevalue(f"{which}_run"), request.getfixturevalue(f"{which}_export")
    torch_side, onnx_side, want, got = _torch_and_onnx(run, export)
    assert onnx_side.model.precision == "fp32" and got.shape == want.shape
    np.testing.assert_allclose(got, want, atol=1e-4)
    a, b = torch_side.predict(QUERIES, k=10), onnx_side.predict(QUERIES, k=10)
    assert a.indices.tolist() == b.indices.tolist() and a.texts == b.texts
    np.testing.assert_allclose(a.scores, b.scores, atol=1e-4)
    card = (export / "README.md").read_text()
    meta = yaml.safe_load(card.split("---\n")[1])
    assert (
        meta["library_name"] == "vixml" and "onnx" in meta["tags"] and ("prime" in meta["tags"]) == (which == "prime")
    )


def test_image_run_exports_the_projection_and_fusion(tmp_path, image_run):
    export = export_onnx(image_run, tmp_path / "images")
    manifest = json.loads((export / "export.json").read_text())
    assert manifest["inputs"] == ["input_ids", "attention_mask", "images", "image_mask"]
    rng = np.random.default_rng(0)
    n = len(QUERIES)
    emb = rng.standard_normal((n, 1, manifest["vision_dim"])).astype(np.float32)
    mask = np.arange(n)[:, None] % 3 != 0  # some queries without their image
    torch_side, _, want, got = _torch_and_onnx(image_run, export, images=(emb, mask))
    np.testing.assert_allclose(got, want, atol=1e-4)
    _, _, want, got = _torch_and_onnx(image_run, export)  # no images at all: masked slots, as training read them
    np.testing.assert_allclose(got, want, atol=1e-4)


def test_int8_export_is_close_and_smaller(tmp_path, plain_run, plain_export):
    export = export_onnx(plain_run, tmp_path / "int8", int8=True, label_dtype="fp16")
    manifest = json.loads((export / "export.json").read_text())
    assert manifest["precision"] == "int8" and manifest["label_dtype"] == "fp16"
    assert np.load(export / "label_embeddings.npy").dtype == np.float16
    onnx_side = Predictor.load(export)
    got = onnx_side.encode(QUERIES)
    want = Predictor.load(plain_export).encode(QUERIES)
    assert np.min(np.sum(got * want, axis=1)) > 0.95  # cosine of unit vectors
    assert onnx_side.label_embeddings.dtype == np.float32


def test_the_served_export_answers_as_the_torch_server(plain_run, plain_export):
    from fastapi.testclient import TestClient

    from vixml.serve import ServeSettings, create_app

    body = {"queries": [{"text": q} for q in QUERIES], "k": 10}
    answers = []
    for folder in (plain_run, plain_export):
        with TestClient(create_app(Predictor.load(folder), ServeSettings(folder))) as client:
            response = client.post("/predict", json=body)
            assert response.status_code == 200, response.text
            answers.append([r["labels"] for r in response.json()["results"]])
            info = client.get("/info").json()
    assert answers[0] == answers[1] and info["prototypes"] is False


def test_predicting_from_an_export_loads_neither_torch_nor_transformers(plain_export):
    code = (
        "import sys\n"
        "from vixml.inference import Predictor\n"
        f"p = Predictor.load({str(plain_export)!r})\n"
        f"print(p.predict({QUERIES!r}, k=3).indices.tolist())\n"
        "import vixml.serve.app\n"
        "print([m for m in ('torch', 'transformers') if m in sys.modules])\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=os.environ.copy())
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.splitlines()[-1] == "[]"
    assert out.stdout.splitlines()[0] == str(Predictor.load(plain_export).predict(QUERIES, k=3).indices.tolist())


def test_the_command_line_predicts_from_an_export_where_torch_is_not_installed(tmp_path, plain_export):
    """As in a serving-only install: importing torch, transformers, numba or matplotlib fails."""
    queries = tmp_path / "q.txt"
    queries.write_text("\n".join(QUERIES) + "\n")
    code = (
        "import sys\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in ('torch', 'transformers', 'numba', 'matplotlib'):\n"
        "            raise ImportError('not installed: ' + name)\n"
        "sys.meta_path.insert(0, Block())\n"
        "from vixml.cli.main import main\n"
        f"sys.exit(main(['predict', {str(plain_export)!r}, '--texts', {str(queries)!r}, '--k', '3', '--out', "
        f"{str(tmp_path / 'p.jsonl')!r}]))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-3000:]
    records = [json.loads(line) for line in (tmp_path / "p.jsonl").read_text().splitlines()]
    assert [r["labels"] for r in records] == Predictor.load(plain_export).predict(QUERIES, k=3).indices.tolist()


def test_cli_export_then_predict_texts(tmp_path, plain_run, capsys):
    out = tmp_path / "cli-export"
    assert main(["export", str(plain_run), "--out", str(out), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["to"] == "onnx"
    queries = tmp_path / "q.txt"
    queries.write_text("\n".join(QUERIES) + "\n")
    assert main(["predict", str(out), "--texts", str(queries), "--k", "3", "--out", str(tmp_path / "p.jsonl")]) == 0
    records = [json.loads(line) for line in (tmp_path / "p.jsonl").read_text().splitlines()]
    assert [r["labels"] for r in records] == Predictor.load(plain_run).predict(QUERIES, k=3).indices.tolist()
    assert main(["export", str(plain_run), "--to", "tflite", "--out", str(out)]) == 2


def test_damaged_or_half_written_exports_are_refused(tmp_path, plain_export):
    half = tmp_path / "half"
    shutil.copytree(plain_export, half)
    (half / "export.json").unlink()  # what an interrupted export would leave if it wrote in place
    with pytest.raises(DataError, match="export.json: missing: not an export folder, or its export did not complete"):
        Predictor.load(half)
    broken = tmp_path / "broken"
    shutil.copytree(plain_export, broken)
    graph = broken / "query_encoder.onnx"
    graph.write_bytes(graph.read_bytes()[:1000])
    with pytest.raises(DataError, match="query_encoder.onnx"):
        Predictor.load(broken)
    wrong = tmp_path / "wrong"
    shutil.copytree(plain_export, wrong)
    (wrong / "export.json").write_text('{"format": "vixml.export", "version": 99}')
    with pytest.raises(DataError, match="version 1"):
        Predictor.load(wrong)
    (wrong / "export.json").write_text("{not json")
    with pytest.raises(DataError, match="unreadable"):
        Predictor.load(wrong)


def test_an_export_replaces_the_old_one_whole_and_leaves_no_temporary_folder(tmp_path, plain_run, monkeypatch):
    from vixml.inference import export as export_module

    out = export_onnx(plain_run, tmp_path / "e")
    before = (out / "export.json").read_text()

    def fail(*args, **kwargs):
        raise RuntimeError("killed while copying")

    monkeypatch.setattr(export_module, "_copy_label_side", fail)
    with pytest.raises(RuntimeError, match="killed"):
        export_onnx(plain_run, out)
    assert (out / "export.json").read_text() == before  # the old export is whole
    assert sorted(p.name for p in tmp_path.iterdir()) == [".e.export.lock", "e"]
    Predictor.load(out)


def test_adding_labels_to_an_export_is_refused_with_where_to_do_it(tmp_path, plain_export):
    from vixml.inference.labels import add_labels

    predictor = Predictor.load(shutil.copytree(plain_export, tmp_path / "copy"))
    with pytest.raises(DataError, match="labels add RUN"):
        add_labels(predictor, ["a new label"])


def test_a_decoder_run_is_refused(tmp_path, qwen_path, serve_data):
    from support_serve import run_config
    from vixml.training import train

    config = run_config(qwen_path, "train.epochs=1", "model.kind=decoder", "model.lora.r=4", "model.lora.alpha=8")
    run = train(config, serve_data, tmp_path / "run")
    with pytest.raises(ConfigError, match=r"decoder backbones \(qwen2, LoRA\)"):
        export_onnx(run, tmp_path / "export")
    assert not (tmp_path / "export").exists()


def test_sentence_transformers_folder_encodes_as_the_run(tmp_path, plain_run):
    sentence_transformers = pytest.importorskip("sentence_transformers")
    out = export_sentence_transformers(plain_run, tmp_path / "st")
    model = sentence_transformers.SentenceTransformer(str(out), device="cpu")
    want = Predictor.load(plain_run).encode(QUERIES)
    np.testing.assert_allclose(model.encode(QUERIES, convert_to_numpy=True), want, atol=1e-4)
    labels = np.load(out / "label_embeddings.npy")
    np.testing.assert_array_equal(labels, np.load(plain_run / "label_embeddings.npy"))
    assert "SentenceTransformer(" in (out / "README.md").read_text()
    with pytest.raises(DataError, match="sentence-transformers export"):
        Predictor.load(out)


def test_the_run_readme_is_a_model_card(plain_run):
    text = (plain_run / "README.md").read_text()
    meta = yaml.safe_load(text.split("---\n")[1])
    assert meta["library_name"] == "vixml" and "vixml" in meta["tags"] and meta["datasets"]
    results = meta["model-index"][0]["results"][0]["metrics"]
    final = json.loads((plain_run / "metrics.json").read_text())["final"]
    assert {m["name"]: m["value"] for m in results}["P@1"] == round(100 * final["P@1"], 2)
    for section in ("## Protocol", "## Recipe", "Hardware and time", "## Load and predict"):
        assert section in text


def _fill_hub_cache(cache, repo_id: str, folder) -> None:
    """The layout huggingface_hub's cache uses: models--ORG--NAME/{refs/main, snapshots/COMMIT/...}."""
    root = cache / f"models--{repo_id.replace('/', '--')}"
    commit = "0" * 40
    (root / "refs").mkdir(parents=True)
    (root / "refs" / "main").write_text(commit)
    shutil.copytree(folder, root / "snapshots" / commit, ignore=shutil.ignore_patterns(".*"))


def test_runs_and_exports_load_by_hub_id_from_the_local_cache(tmp_path, plain_run, plain_export, monkeypatch):
    cache = tmp_path / "hub"
    _fill_hub_cache(cache, "acme/plain-run", plain_run)
    _fill_hub_cache(cache, "acme/plain-onnx", plain_export)
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    import huggingface_hub.constants as constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    want = Predictor.load(plain_run).predict(QUERIES, k=5).indices.tolist()
    assert Predictor.load("acme/plain-run").predict(QUERIES, k=5).indices.tolist() == want
    assert Predictor.load("acme/plain-onnx").predict(QUERIES, k=5).indices.tolist() == want
    with pytest.raises(DataError, match="acme/missing"):
        Predictor.load("acme/missing")


def test_a_hybrid_run_exports_its_companion_fusion_and_label_overlay(tmp_path, serve_data, serve_model):
    pytest.importorskip("omikuji")
    from support_serve import run_config
    from vixml.inference.labels import hide_labels
    from vixml.training import train

    config = run_config(serve_model, "sparse={}", "sparse.holdout=0.1", "sparse.trees=1", "train.epochs=1")
    run = train(config, serve_data, tmp_path / "run")
    hide_labels(Predictor.load(run), [2, 5])  # an overlay made for the run's label file
    half = export_onnx(run, tmp_path / "half", label_dtype="fp16")  # the overlay re-stamped for the fp16 file
    assert Predictor.load(half).labels.overlay.hidden == {2, 5}
    export = export_onnx(run, tmp_path / "export")  # fp32 labels: the same scores, so the same fused near-ties
    assert (export / "sparse" / "sparse.json").is_file() and (export / "fusion.json").is_file()
    torch_side, onnx_side = Predictor.load(run), Predictor.load(export)
    assert onnx_side.sparse is not None and onnx_side.labels.overlay.hidden == {2, 5}
    for source in ("fused", "sparse"):
        a, b = torch_side.predict(QUERIES, k=5, source=source), onnx_side.predict(QUERIES, k=5, source=source)
        assert a.indices.tolist() == b.indices.tolist(), source
        assert not {2, 5} & set(b.indices.ravel().tolist())
