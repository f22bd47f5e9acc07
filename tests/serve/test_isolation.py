"""One client's bad request never harms another's: a failing batch member is answered alone, every field is
checked before use (lone surrogates, non-finite numbers), and image pixels are bounded before decoding."""

from __future__ import annotations

import asyncio
import base64
import io

import pytest
from fastapi.testclient import TestClient

from support_data import label_word
from vixml.inference import Predictor
from vixml.serve import Limits, ServeSettings, create_app
from vixml.serve.batcher import MicroBatcher


def _client(run, **settings) -> TestClient:
    return TestClient(create_app(Predictor.load(run, device="cpu"), ServeSettings(run, **settings)))


def test_a_lone_surrogate_and_a_non_finite_k_are_4xx_naming_their_field(prime_run):
    with _client(prime_run) as client:
        bad_text = client.post(
            "/predict",
            content=b'{"queries": [{"text": "ok"}, {"text": "a \\ud800 b"}]}',
            headers={"content-type": "application/json"},
        )
        assert bad_text.status_code == 422, bad_text.text
        assert bad_text.json()["detail"][0]["loc"] == ["body", "queries", 1, "text"]
        assert "surrogate" in bad_text.json()["detail"][0]["msg"]
        for raw in (b"1e309", b"-1e309", b"NaN", b"1e30"):
            body = b'{"queries": [{"text": "ok"}], "k": ' + raw + b"}"
            response = client.post("/predict", content=body, headers={"content-type": "application/json"})
            assert response.status_code == 422, (raw, response.text)
            assert response.json()["detail"][0]["loc"] == ["body", "k"], response.text
        label = client.post(
            "/labels", content=b'{"labels": [{"text": "\\udfff"}]}', headers={"content-type": "application/json"}
        )
        assert label.status_code in (403, 422), label.text  # refused (editing may be off), never a 500


def test_a_failing_batch_member_fails_alone():
    calls = []

    def run_batch(jobs):
        calls.append([job.texts[0] for job in jobs])
        if any(job.texts[0] == "bad" for job in jobs):
            raise ValueError("the encoder choked")
        return [job.texts[0].upper() for job in jobs]

    async def main():
        batcher = MicroBatcher(run_batch, window_s=0.05)
        await batcher.start()
        try:
            jobs = [batcher.submit([text], None, 1, False) for text in ("a", "bad", "c")]
            return await asyncio.gather(*jobs, return_exceptions=True)
        finally:
            await batcher.stop()

    results = asyncio.run(main())
    assert results[0] == "A" and results[2] == "C" and isinstance(results[1], ValueError)
    assert calls[0] == ["a", "bad", "c"] and sorted(map(tuple, calls[1:])) == [("a",), ("bad",), ("c",)]


def _png(width: int, height: int) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("L", (width, height)).save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()


def test_a_decompression_bomb_is_refused_before_it_is_decoded(image_run):
    limits = Limits(max_image_pixels=1_000_000)
    bomb = _png(4000, 4000)  # 16 Mpx in a few KB
    assert len(bomb) < 100_000
    with _client(image_run, limits=limits) as client:
        body = {"queries": [{"text": label_word(1), "images": [base64.b64encode(bomb).decode()]}]}
        response = client.post("/predict", json=body)
        assert response.status_code == 413, response.text
        detail = response.json()["detail"][0]
        assert detail["loc"] == ["body", "queries", 0, "images", 0] and "1,000,000" in detail["msg"]
        small = {"queries": [{"text": label_word(1), "images": [base64.b64encode(_png(32, 32)).decode()]}]}
        assert client.post("/predict", json=small).status_code == 200


@pytest.mark.parametrize("pixels", [0, -5])
def test_the_pixel_limit_must_be_positive(pixels):
    with pytest.raises(ValueError, match="max_image_pixels"):
        Limits(max_image_pixels=pixels)
