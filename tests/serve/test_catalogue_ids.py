"""A catalogue's own ids (SKU-like label ids, query ids), end to end: prepare, train, predict, serve, edit, restart.

One label's id looks like a row number of another label ("7" is the id of row 3): the documented rule
(ids first, then row numbers) is checked through the CLI and HTTP.
"""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest
from fastapi.testclient import TestClient

from support_data import label_word
from support_serve import LABEL_IDS, N_LABELS, NUMERIC_ROW
from vixml.cli.main import main
from vixml.inference import Predictor
from vixml.run_folder import RunFolder
from vixml.serve import ServeSettings, create_app


@pytest.fixture
def run(tmp_path, id_run):
    return shutil.copytree(id_run, tmp_path / "run")


@pytest.fixture
def vixml(capsys):
    """The command line in this process: -> CompletedProcess(args, code, stdout, stderr)."""

    def call(*args, ok: bool = True) -> subprocess.CompletedProcess:
        capsys.readouterr()
        code = main([str(a) for a in args])
        out = capsys.readouterr()
        if ok:
            assert code == 0, out.err[-3000:]
        return subprocess.CompletedProcess(args, code, out.out, out.err)

    return call


def _ids_of(result) -> list[list[str]]:
    return [[LABEL_IDS[int(i)] for i in row if i >= 0] for row in result.indices]


def test_the_run_keeps_the_ids_and_the_predictor_returns_them(id_run):
    folder = RunFolder(id_run)
    assert folder.label_ids.read_text().splitlines() == LABEL_IDS
    assert folder.test_ids.read_text().splitlines() == [f"Q-{i:04d}" for i in range(96, 120)]
    predictor = Predictor.load(id_run, device="cpu")
    result = predictor.predict([f"{label_word(5)} pack", f"{label_word(NUMERIC_ROW)} the"], k=5)
    assert result.ids == _ids_of(result)
    records = result.records(["a", "b"], ["first", None])
    assert records[0]["query_id"] == "first" and "query_id" not in records[1]
    assert records[0]["ids"] == result.ids[0] and records[0]["labels"] == result.indices[0].tolist()
    labels = predictor.labels
    assert labels.find("7") == NUMERIC_ROW  # an own id first, although "7" is also a row number
    assert labels.find("8") == 8 and labels.find(LABEL_IDS[8]) == 8 and labels.find(7) == 7  # ints are rows
    assert labels.find("uitoolkit::nope") is None and labels.find(str(N_LABELS)) is None


def test_predict_texts_jsonl_carries_query_and_label_ids(tmp_path, id_run, vixml):
    queries = tmp_path / "q.jsonl"
    texts = [f"{label_word(2)} with", f"{label_word(9)} {label_word(11)} set"]
    queries.write_text("".join(json.dumps({"id": f"ask-{i}", "text": t}) + "\n" for i, t in enumerate(texts)))
    vixml("predict", id_run, "--texts", queries, "--k", 4, "--out", tmp_path / "p.jsonl")
    records = [json.loads(line) for line in (tmp_path / "p.jsonl").read_text().splitlines()]
    want = Predictor.load(id_run, device="cpu").predict(texts, k=4)
    assert [r["query_id"] for r in records] == ["ask-0", "ask-1"]
    assert [r["labels"] for r in records] == want.indices.tolist()
    assert [r["ids"] for r in records] == want.ids == _ids_of(want)


def test_cli_hides_unhides_and_adds_by_id_and_a_restart_keeps_them(tmp_path, run, vixml):
    vixml("labels", "hide", run, LABEL_IDS[5], "7")
    predictor = Predictor.load(run, device="cpu")  # a restart
    assert predictor.labels.overlay.hidden == {5, NUMERIC_ROW}  # "7" named the label whose id it is
    shown = [i for i in predictor.predict([f"{label_word(5)} item"], k=N_LABELS).ids[0] if i is not None]
    assert LABEL_IDS[5] not in shown and "7" not in shown and len(shown) == N_LABELS - 2
    vixml("labels", "unhide", run, "7")
    vixml("labels", "unhide", run, "7")  # already visible: nothing changes, nothing logged
    edits = json.loads(vixml("labels", "list", run).stdout)
    assert edits["hidden"] == [5] and edits["hidden_ids"] == [LABEL_IDS[5]] and edits["label_ids"] is True
    assert [(h["edit"], h["ids"], h["by"]) for h in edits["history"]] == [
        ("hide", ["7", LABEL_IDS[5]], "vixml labels hide"),  # rows in order: 3, 5
        ("unhide", ["7"], "vixml labels unhide"),
    ]
    new = tmp_path / "new.jsonl"
    new.write_text(json.dumps({"id": "uitoolkit::zuzu", "text": "zuzu item"}) + "\n" + '{"text": "bobo item"}\n')
    out = json.loads(vixml("labels", "add", run, "--texts", new, "--json").stdout)
    assert out["added"] == [N_LABELS, N_LABELS + 1] and out["ids"] == ["uitoolkit::zuzu", str(N_LABELS + 1)]
    again = vixml("labels", "add", run, "--texts", new, ok=False)
    assert again.returncode == 1 and f"id 'uitoolkit::zuzu' is taken by label row {N_LABELS}" in again.stderr
    clash = tmp_path / "clash.jsonl"
    rows = [{"id": LABEL_IDS[0], "text": "a item"}, {"id": "n", "text": "b"}, {"id": "n", "text": "c"}]
    clash.write_text("".join(json.dumps(r) + "\n" for r in [*rows, {"id": "bad\u0007", "text": "d"}]))
    refused = vixml("labels", "add", run, "--texts", clash, ok=False)
    assert (
        refused.returncode == 1 and "label 1: id " + repr(LABEL_IDS[0]) + " is taken by label row 0" in refused.stderr
    )
    assert "label 3: id 'n' is given twice" in refused.stderr and "holds a control character" in refused.stderr
    assert Predictor.load(run, device="cpu").labels.num_labels == N_LABELS + 2  # nothing added
    unknown = vixml("labels", "hide", run, "uitoolkit::nope", ok=False)
    assert unknown.returncode == 1 and "no label has the id 'uitoolkit::nope'" in unknown.stderr
    vixml("labels", "hide", run, "uitoolkit::zuzu")
    restarted = Predictor.load(run, device="cpu")
    assert restarted.labels.find("uitoolkit::zuzu") == N_LABELS and restarted.labels.is_hidden(N_LABELS)
    result = restarted.predict(["zuzu item"], k=N_LABELS + 2).records()[0]
    assert "uitoolkit::zuzu" not in result["ids"] and str(N_LABELS + 1) in result["ids"]


def test_http_predict_and_edits_by_id_survive_a_restart(run):
    with TestClient(create_app(Predictor.load(run, device="cpu"), ServeSettings(run))) as client:
        body = {"queries": [{"text": f"{label_word(4)} pack", "id": "Q-x"}, {"text": "new set"}], "k": 5}
        results = client.post("/predict", json=body).json()["results"]
        assert results[0]["query_id"] == "Q-x" and results[1].get("query_id") is None
        assert [r["ids"] for r in results] == [[LABEL_IDS[i] for i in r["labels"]] for r in results]
        assert client.get(f"/labels/{LABEL_IDS[4]}").json() == {
            "row": 4, "id": LABEL_IDS[4], "text": f"{label_word(4)} item", "hidden": False, "added": False
        }  # fmt: skip
        assert client.get("/labels/7").json()["row"] == NUMERIC_ROW and client.get("/labels/8").json()["row"] == 8
        assert client.get("/labels/" + "9" * 5000).status_code == 404  # no row, no ValueError
        missing = client.get("/labels/uitoolkit::nope")
        assert missing.status_code == 404 and "uitoolkit::nope" in missing.json()["detail"][0]["msg"]
        hidden = client.delete(f"/labels/{LABEL_IDS[4]}")
        assert hidden.json() == {"hidden": 4, "id": LABEL_IDS[4], "labels": N_LABELS - 1}
        everything = {"queries": [{"text": f"{label_word(4)} item"}], "k": N_LABELS}
        assert LABEL_IDS[4] not in client.post("/predict", json=everything).json()["results"][0]["ids"]
        shown = client.post(f"/labels/{LABEL_IDS[4]}/unhide")
        assert shown.status_code == 200 and shown.json()["unhidden"] == 4
        assert LABEL_IDS[4] in client.post("/predict", json=everything).json()["results"][0]["ids"]
        added = client.post("/labels", json={"labels": [{"text": "zuzu item", "id": "uitoolkit::zuzu"}]})
        assert added.json() == {"rows": [N_LABELS], "ids": ["uitoolkit::zuzu"], "labels": N_LABELS + 1}
        taken = client.post("/labels", json={"labels": [{"text": "bobo item", "id": LABEL_IDS[2]}]})
        assert taken.status_code == 409 and "taken by label row 2" in taken.json()["detail"][0]["msg"]
        twice = client.post("/labels", json={"labels": [{"text": "a item", "id": "x"}, {"text": "b item", "id": "x"}]})
        assert twice.status_code == 409 and "given twice" in twice.json()["detail"][0]["msg"]
        empty = client.post("/labels", json={"labels": [{"text": "bobo item", "id": "  "}]})
        assert empty.status_code == 422 and empty.json()["detail"][0]["loc"] == ["body", "labels", 0, "id"]
        assert client.delete("/labels/uitoolkit::zuzu").status_code == 200
        history = client.get("/labels").json()["history"]
        assert [(h["edit"], h["ids"], h["by"]) for h in history] == [
            ("hide", [LABEL_IDS[4]], "http"),
            ("unhide", [LABEL_IDS[4]], "http"),
            ("add", ["uitoolkit::zuzu"], "http"),
            ("hide", ["uitoolkit::zuzu"], "http"),
        ]
        assert client.get("/info").json()["label_ids"] is True
    with TestClient(create_app(Predictor.load(run, device="cpu"), ServeSettings(run))) as client:  # a restart
        state = client.get("/labels/uitoolkit::zuzu").json()
        assert state == {"row": N_LABELS, "id": "uitoolkit::zuzu", "text": "zuzu item", "hidden": True, "added": True}
        assert client.post("/labels/uitoolkit::zuzu/unhide").status_code == 200
        results = client.post("/predict", json={"queries": [{"text": "zuzu item"}], "k": N_LABELS + 1}).json()
        assert "uitoolkit::zuzu" in results["results"][0]["ids"]
        assert len(client.get("/labels").json()["history"]) == 5


def test_report_samples_show_query_and_label_ids(id_run):
    from vixml.reports.html import build_report

    page = build_report([id_run])
    samples = page[page.index("Sample test predictions") :]
    assert "Q-0096" in samples and "Q-0119" in samples  # the first and last test queries
    assert "#uitoolkit::" in samples and samples.count("class='sample'") == 8  # SAMPLES


def test_predict_data_jsonl_carries_the_split_ids(tmp_path, id_run, vixml):
    data = id_run.parent / "data"
    vixml("predict", id_run, "--data", data, "--k", 3, "--out", tmp_path / "p.jsonl")
    vixml("predict", id_run, "--data", data, "--k", 3, "--out", tmp_path / "p.npz")
    records = [json.loads(line) for line in (tmp_path / "p.jsonl").read_text().splitlines()]
    assert [r["query_id"] for r in records] == [f"Q-{i:04d}" for i in range(96, 120)]
    assert records[0]["query"] == (data / "tst.raw.txt").read_text().splitlines()[0]
    from vixml.data import read_label_matrix

    matrix = read_label_matrix(tmp_path / "p.npz").tocsr()
    for row, record in enumerate(records):
        entries = dict(zip(matrix[row].indices.tolist(), matrix[row].data.tolist(), strict=True))
        assert set(record["labels"]) == set(entries) and len(record["labels"]) == 3
        assert record["scores"] == sorted(record["scores"], reverse=True)
        assert record["scores"] == pytest.approx([entries[j] for j in record["labels"]], abs=1e-6)
        assert record["ids"] == [LABEL_IDS[j] for j in record["labels"]]
