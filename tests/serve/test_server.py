"""The HTTP API through FastAPI's test client: predictions equal Predictor.predict, edits, limits, metrics."""

from __future__ import annotations

import base64
import io
import json
import threading

import numpy as np
import pytest
from fastapi.testclient import TestClient

from support_data import label_word
from support_serve import N_LABELS
from vixml.inference import Predictor
from vixml.serve import Limits, ServeSettings, create_app

QUERIES = [f"{label_word(1)} with", f"{label_word(4)} {label_word(9)} pack", "set of new", label_word(12)]


def _client(run, **settings) -> TestClient:
    predictor = Predictor.load(run, device="cpu")
    return TestClient(create_app(predictor, ServeSettings(run, **settings)))


def _detail(response) -> dict:
    detail = response.json()["detail"]
    assert isinstance(detail, list) and detail, response.text
    return detail[0]


@pytest.fixture(scope="module")
def offline(prime_run):
    return Predictor.load(prime_run, device="cpu").predict(QUERIES, k=5)


def test_predictions_equal_the_predictor_alone_together_and_concurrently(prime_run, offline):
    with _client(prime_run, batch_window_ms=20) as client:
        together = client.post("/predict", json={"queries": [{"text": q} for q in QUERIES], "k": 5})
        assert together.status_code == 200, together.text
        answers = [None] * len(QUERIES)

        def ask(i: int) -> None:
            answers[i] = client.post("/predict", json={"queries": [{"text": QUERIES[i]}], "k": 5}).json()["results"][0]

        threads = [threading.Thread(target=ask, args=(i,)) for i in range(len(QUERIES)) for _ in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        metrics = client.get("/metrics").text
    for results in (together.json()["results"], answers):
        assert [r["labels"] for r in results] == offline.indices.tolist()
        assert [r["texts"] for r in results] == offline.texts
        np.testing.assert_allclose([r["scores"] for r in results], offline.scores, atol=1e-5)
    assert 'vixml_requests_total{method="POST",route="/predict",status="200"} 13.0' in metrics
    count = float(metrics.split("vixml_batch_queries_count ")[1].split()[0])
    assert count < 13  # concurrent requests shared encoder passes
    assert "vixml_request_seconds_bucket" in metrics and 'vixml_labels{state="trained"} 16.0' in metrics


def test_added_labels_are_found_survive_a_restart_and_hidden_ones_never_return(run_copy):
    everything = {"queries": [{"text": "zuzu item"}, {"text": QUERIES[0]}], "k": N_LABELS + 2}
    with _client(run_copy) as client:
        added = client.post("/labels", json={"labels": [{"text": "zuzu item"}, {"text": "bobo item"}]})
        assert added.status_code == 200, added.text
        want = {"rows": [N_LABELS, N_LABELS + 1], "ids": [str(N_LABELS), str(N_LABELS + 1)], "labels": N_LABELS + 2}
        assert added.json() == want  # a run without catalogue ids: row numbers are the ids
        results = client.post("/predict", json=everything).json()["results"]
        assert {N_LABELS, N_LABELS + 1} <= set(results[0]["labels"])
        assert "zuzu item" in results[0]["texts"]
        top = results[1]["labels"][0]
        assert client.delete(f"/labels/{top}").status_code == 200
        assert client.delete(f"/labels/{N_LABELS + 1}").status_code == 200
        assert _detail(client.delete("/labels/999"))["loc"] == ["path", "label_id"]
        assert client.get(f"/labels/{top}").json()["hidden"] is True
        info = client.get("/info").json()
        assert (info["added_labels"], info["hidden_labels"], info["visible_labels"]) == (2, 2, N_LABELS)
    with _client(run_copy) as client:  # a restart: everything comes back from the run folder
        results = client.post("/predict", json=everything).json()["results"]
        for r in results:
            assert N_LABELS in r["labels"] and top not in r["labels"] and N_LABELS + 1 not in r["labels"]
            assert len(r["labels"]) == N_LABELS


def test_every_limit_is_a_4xx_naming_its_field(prime_run):
    limits = Limits(max_queries=3, max_text_chars=50, max_k=8, max_body_bytes=4000, max_new_labels=2)
    with _client(prime_run, limits=limits) as client:
        cases = [
            ({"queries": [{"text": "a"}] * 4}, 422, ["body", "queries"]),
            ({"queries": []}, 422, ["body", "queries"]),
            ({"queries": [{"text": "a"}, {"text": "x" * 51}]}, 422, ["body", "queries", 1, "text"]),
            ({"queries": [{"text": "  "}]}, 422, ["body", "queries", 0, "text"]),
            ({"queries": [{"text": "a"}], "k": 0}, 422, ["body", "k"]),
            ({"queries": [{"text": "a"}], "k": 9}, 422, ["body", "k"]),
            ({"queries": [{"text": "a"}], "augment": True}, 422, ["body", "augment"]),
            ({"queries": [{"text": "a", "images": ["aGVsbG8="]}]}, 422, ["body", "queries", 0, "images"]),
            ({"queries": [{"texts": "a"}]}, 422, ["body", "queries", 0, "text"]),  # pydantic's own check
            ({"queries": [{"text": "a" * 5000}]}, 413, ["body"]),
        ]
        for body, status, loc in cases:
            response = client.post("/predict", json=body)
            assert response.status_code == status, (body, response.text)
            assert _detail(response)["loc"] == loc, (body, response.text)
        response = client.post("/labels", json={"labels": [{"text": "a"}] * 3})
        assert response.status_code == 422 and _detail(response)["loc"] == ["body", "labels"]
        chunked = client.post("/predict", content=iter([b'{"queries": [{"text": "', b"y" * 5000, b'"}]}']))
        assert chunked.status_code == 413  # a streamed body is counted too


def test_edits_need_the_token_and_one_worker(prime_run, monkeypatch):
    body = {"labels": [{"text": "zuzu item"}]}
    with _client(prime_run, token="s3cret") as client:
        missing = client.post("/labels", json=body)
        assert missing.status_code == 401 and _detail(missing)["loc"] == ["header", "authorization"]
        wrong = client.post("/labels", json=body, headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 403 and _detail(wrong)["msg"] == "wrong token"
        assert client.delete("/labels/0", headers={"Authorization": "Bearer nope"}).status_code == 403
        assert client.get("/info").json()["token_required"] is True
    with _client(prime_run, host="0.0.0.0") as client:  # reachable from elsewhere, no token: read-only
        refused = client.post("/labels", json=body)
        assert refused.status_code == 403 and "token" in _detail(refused)["msg"]
        assert client.post("/predict", json={"queries": [{"text": "a"}]}).status_code == 200
    with _client(prime_run, workers=2) as client:
        refused = client.post("/labels", json=body)
        assert refused.status_code == 403 and "--workers 2" in _detail(refused)["msg"]
        assert client.get("/info").json()["editable"] is False


def test_health_info_docs_page_and_report(prime_run):
    with _client(prime_run) as client:
        assert client.get("/health").json() == {"status": "ok"}
        info = client.get("/info").json()
        assert (info["trained_labels"], info["prototypes"], info["editable"]) == (N_LABELS, True, True)
        docs = client.get("/docs").text
        assert "cdn" not in docs.lower() and "/static-offline-docs/swagger-ui-bundle.js" in docs
        assert client.get("/static-offline-docs/swagger-ui-bundle.js").status_code == 200
        schema = client.get("/openapi.json").json()
        assert {"/predict", "/labels", "/labels/{label_id}", "/health", "/info", "/metrics"} <= set(schema["paths"])
        page = client.get("/").text
        assert "/static/app.js" in page and "http" not in page.replace("https://arxiv.org", "")
        assert client.get("/static/app.js").status_code == 200
        report = client.get("/report")
        assert report.status_code == 200 and "by label-frequency decile" in report.text


def test_multipart_upload_and_image_decoding(prime_run):
    from PIL import Image

    from vixml.serve.errors import RequestError
    from vixml.serve.images import decode_base64_image

    with _client(prime_run) as client:
        response = client.post("/predict/upload", data={"text": QUERIES[0], "k": "3"})
        assert response.status_code == 200, response.text
        assert len(response.json()["results"][0]["labels"]) == 3
        with_image = client.post("/predict/upload", data={"text": "a"}, files={"images": ("a.png", b"\x89PNG....")})
        assert with_image.status_code == 422 and "text only" in _detail(with_image)["msg"]
    buffer = io.BytesIO()
    Image.new("RGB", (8, 6), (200, 10, 10)).save(buffer, format="PNG")
    png = base64.b64encode(buffer.getvalue()).decode()
    assert decode_base64_image(png, ["x"], 10_000).size == (8, 6)
    assert decode_base64_image("data:image/png;base64," + png, ["x"], 10_000).size == (8, 6)
    for text, status in (("/etc/passwd", 422), (png, 413), (base64.b64encode(b"GIF8-not").decode(), 415)):
        with pytest.raises(RequestError) as info:
            decode_base64_image(text, ["body", "queries", 0, "images", 0], 60 if status == 413 else 10_000)
        assert info.value.status_code == status and info.value.loc == ["body", "queries", 0, "images", 0]
    assert json.dumps(info.value.detail)  # JSON-ready, as FastAPI sends it


@pytest.mark.slow
def test_images_as_base64_and_uploads_equal_the_predictor_on_the_same_images(image_run, tmp_path):
    import shutil

    from PIL import Image

    run = shutil.copytree(image_run, tmp_path / "run")
    images = [Image.new("RGB", (24, 16), colour) for colour in ((220, 20, 20), (20, 20, 220))]
    encoded = []
    for image in images:
        buffer = io.BytesIO()
        image.save(buffer, format="PNG")
        encoded.append(buffer.getvalue())
    texts = [QUERIES[0], QUERIES[1]]
    want = Predictor.load(run, device="cpu").predict(texts, images=[[images[0]], [images[1]]], k=4)
    with _client(run) as client:
        assert client.get("/info").json()["query_images"] is True
        b64 = [base64.b64encode(e).decode() for e in encoded]
        body = {"queries": [{"text": t, "images": [b]} for t, b in zip(texts, b64, strict=True)]}
        answer = client.post("/predict", json={**body, "k": 4})
        assert answer.status_code == 200, answer.text
        assert [r["labels"] for r in answer.json()["results"]] == want.indices.tolist()
        np.testing.assert_allclose([r["scores"] for r in answer.json()["results"]], want.scores, atol=1e-5)
        upload = client.post(
            "/predict/upload", data={"text": texts[1], "k": "4"}, files={"images": ("b.png", encoded[1])}
        )
        assert upload.json()["results"][0]["labels"] == want.indices[1].tolist()
        too_many = {"queries": [{"text": "a", "images": [b64[0]] * 2}]}
        assert _detail(client.post("/predict", json=too_many))["loc"] == ["body", "queries", 0, "images"]
        label = {"labels": [{"text": "zuzu item", "images": [b64[0]]}]}
        added = client.post("/labels", json=label)
        assert added.status_code == 200, added.text
        assert client.get("/labels/16").json()["text"] == "zuzu item"
