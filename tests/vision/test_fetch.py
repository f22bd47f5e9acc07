"""`vixml images fetch`: thumbnails, the bank + map against hand-built expectations, failures, resumption.

Every download goes to a local HTTP server (support_http) whose hit counters prove what was fetched,
retried, or skipped on a rerun.
"""

from __future__ import annotations

import base64
import csv
import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("PIL")

from PIL import Image  # noqa: E402

from support_http import ImageServer, Route, jpeg, palette_png, png, rgba_png  # noqa: E402
from vixml.data import discover_image_files, read_image_map  # noqa: E402
from vixml.errors import ConfigError, DataError  # noqa: E402
from vixml.vision import fetch as fetch_mod  # noqa: E402
from vixml.vision.download import DownloadPolicy, FetchFailure, read_reference  # noqa: E402
from vixml.vision.fetch import FetchOptions, bank_paths, fetch_images  # noqa: E402
from vixml.vision.fetch_journal import FAILED, OK, FetchJournal  # noqa: E402
from vixml.vision.fetch_plan import FetchPlan  # noqa: E402
from vixml.vision.image_refs import ImageRefs, load_image_refs, refs_from_folder, refs_from_table  # noqa: E402
from vixml.vision.thumbnail import (  # noqa: E402
    ImageTooLargeError,
    NotAnImageError,
    decode_bank_line,
    decode_image,
    thumbnail,
    thumbnail_line,
)

RED, BLUE, GREEN, YELLOW, WHITE = (200, 30, 30), (30, 30, 200), (0, 160, 0), (250, 200, 0), (255, 255, 255)
FAST = DownloadPolicy(timeout=0.5, retries=1, backoff=0.01, max_bytes=20_000)
SRC = str(Path(__file__).resolve().parents[2] / "src")


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch):
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")


def _noise_png(width: int, height: int) -> bytes:
    """A PNG that does not compress (random pixels): ~3 bytes per pixel."""
    rng = np.random.default_rng(0)
    out = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8)).save(out, format="PNG")
    return out.getvalue()


def _routes() -> dict[str, Route]:
    return {
        "/red.png": Route(png(40, 40, RED)),
        "/blue.jpg": Route(jpeg(60, 30, BLUE), content_type="image/jpeg"),
        "/rgba.png": Route(rgba_png(40, 40, GREEN)),
        "/pal.png": Route(palette_png(40, 40)),
        "/wide.png": Route(png(400, 40, RED)),
        "/broken.png": Route(b"<html>this is not an image</html>", content_type="text/html"),
        "/missing.png": Route(status=404),
        "/flaky.png": Route(png(20, 20, BLUE), fail_first=1),
        "/slow.png": Route(png(), delay=1.5),
        "/big.png": Route(_noise_png(120, 120)),
    }


def _bank_images(path: Path) -> list[np.ndarray]:
    with open(path, "rb") as fh:
        return [np.asarray(decode_bank_line(line)) for line in fh]


def _close(pixel, color, tol: int = 12) -> bool:
    return bool(np.all(np.abs(np.asarray(pixel, dtype=int) - np.asarray(color)) <= tol))


def _write_csv(path: Path, rows: list[tuple[str, str]], header=("id", "url")) -> Path:
    with open(path, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        writer.writerows(rows)
    return path


# thumbnails ------------------------------------------------------------------------------------------------------
def test_thumbnail_geometry_is_centred_with_white_margins():
    out = np.asarray(thumbnail(Image.new("RGB", (100, 33), RED), 384))
    assert out.shape == (384, 384, 3)
    h = round(33 * 3.84)  # 127 rows of image, centred
    top = (384 - h) // 2
    assert (out[:top] == 255).all() and (out[top + h :] == 255).all()
    assert (out[top : top + h] == RED).all()
    small = np.asarray(thumbnail(Image.new("RGB", (40, 20), RED), 384, upscale=False))
    assert (small[182:202, 172:212] == RED).all() and (small[:182] == 255).all() and (small[:, :172] == 255).all()
    tall = np.asarray(thumbnail(Image.new("L", (10, 500), 0), 100))  # greyscale -> RGB, 2x100 centred
    assert tall.shape == (100, 100, 3) and (tall[:, 49:51] == 0).all() and (tall[:, :49] == 255).all()


def test_transparency_becomes_white_and_16_bit_grey_is_scaled():
    rgba = np.asarray(thumbnail(decode_image(rgba_png(40, 40, GREEN)), 40))
    assert (rgba[:, :20] == 255).all() and (rgba[:, 20:] == GREEN).all()
    pal = np.asarray(thumbnail(decode_image(palette_png(40, 40)), 40))
    assert (pal[:20] == 255).all() and (pal[20:] == YELLOW).all()
    grey16 = Image.fromarray(np.full((8, 8), 32768, dtype=np.uint16))
    assert (np.asarray(thumbnail(grey16, 8)) == 128).all()  # not clipped to white


def test_decode_rejects_non_images_and_bombs_before_decoding():
    with pytest.raises(NotAnImageError):
        decode_image(b"<html></html>")
    with pytest.raises(NotAnImageError):
        decode_image(png()[:60])  # truncated
    with pytest.raises(ImageTooLargeError):
        decode_image(png(400, 400), max_pixels=100_000)
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    rotated = io.BytesIO()
    Image.new("RGB", (40, 20), RED).save(rotated, format="JPEG", exif=exif.tobytes())
    assert decode_image(rotated.getvalue()).size == (20, 40)
    line = thumbnail_line(jpeg(800, 400, BLUE), 64, quality=80)
    image = decode_bank_line(line)
    assert image.size == (64, 64) and image.mode == "RGB" and image.format == "JPEG"


# downloads -------------------------------------------------------------------------------------------------------
def test_download_reasons_and_retries():
    with ImageServer(_routes()) as server:
        assert read_reference(server.url("/flaky.png"), FAST) == _routes()["/flaky.png"].body
        assert server.hits["/flaky.png"] == 2  # one 500, then the retry succeeded
        cases = {"/missing.png": "http_404", "/slow.png": "timeout", "/big.png": "too_large"}
        for path, reason in cases.items():
            with pytest.raises(FetchFailure) as info:
                read_reference(server.url(path), FAST)
            assert info.value.reason == reason, path
        assert server.hits["/missing.png"] == 1  # a 404 is not retried
        assert server.hits["/slow.png"] == 2  # a timeout is
        assert server.hits["/big.png"] == 1
        port = server.port
    with pytest.raises(FetchFailure) as info:  # the server is gone: connection refused
        read_reference(f"http://127.0.0.1:{port}/red.png", FAST)
    assert info.value.reason == "connection" and info.value.transient


def test_local_files_file_urls_and_data_uris(tmp_path):
    body = png()
    (tmp_path / "a.png").write_bytes(body)
    assert read_reference(str(tmp_path / "a.png")) == body
    assert read_reference((tmp_path / "a.png").as_uri()) == body
    assert read_reference("data:image/png;base64," + base64.b64encode(body).decode()) == body
    for ref, reason in [
        (str(tmp_path / "nope.png"), "not_found"),
        ("ftp://example.com/a.png", "bad_url"),
        (str(tmp_path / "a.png"), "too_large"),
    ]:
        with pytest.raises(FetchFailure) as info:
            read_reference(ref, DownloadPolicy(max_bytes=len(body) - 1))
        assert info.value.reason == reason


# the whole fetch ---------------------------------------------------------------------------------------------------
def _catalogue(tmp_path: Path, server: ImageServer) -> tuple[Path, Path]:
    """Items a..e of a split (ids file order) and a URL table with several rows per item and an extra item."""
    data = tmp_path / "ds"
    data.mkdir()
    (data / "trn_ids.txt").write_text("a\nb\nc\nd\ne\n")
    u = server.url
    rows = [
        ("b", f"{u('/missing.png')}|{u('/rgba.png')}"),  # a |-separated cell
        ("a", u("/red.png")),
        ("zz", u("/wide.png")),  # not an item of the split: ignored
        ("b", json.dumps([u("/pal.png"), u("/wide.png")])),  # a JSON list cell
        ("a", u("/blue.jpg")),
        ("c", u("/broken.png")),
        ("c", u("/slow.png")),
        ("c", u("/big.png")),
        ("d", u("/flaky.png")),
        ("d", u("/red.png")),  # shared with a: fetched once, one bank row
        ("a", u("/red.png")),  # repeated for a: kept once
    ]
    return data, _write_csv(tmp_path / "urls.csv", rows)


def test_fetch_writes_bank_map_and_failures(tmp_path):
    with ImageServer(_routes()) as server:
        data, table = _catalogue(tmp_path, server)
        refs = load_image_refs(data, "trn", table)
        assert refs.ids == ["a", "b", "c", "d", "e"] and refs.ignored == 1
        result = fetch_images(data, "trn", refs, FetchOptions(num_images=2, workers=4, download=FAST))
        hits = dict(server.hits)
    paths = bank_paths(data, "trn", 384, 2)
    assert paths.bank.name == "train_imgs_384_2.bin" and paths.map.name == "train_imgs_384_2_map.npz"
    image_map = read_image_map(paths.map)
    rows = [image_map.rows_of(i).tolist() for i in range(5)]
    # bank rows by first use in item order: red 0, blue 1, rgba 2, pal 3, flaky 4
    assert rows == [[0, 1], [2, 3], [], [4, 0], []]
    images = _bank_images(paths.bank)
    assert len(images) == 5 and all(im.shape == (384, 384, 3) for im in images)
    red, blue, rgba, pal, flaky = images
    assert _close(red[0, 0], RED) and _close(red[383, 383], RED)  # square: no margin
    assert _close(blue[0, 0], WHITE) and _close(blue[383, 383], WHITE) and _close(blue[192, 192], BLUE)
    assert _close(blue[100, 5], BLUE) and _close(blue[90, 5], WHITE)  # 384x192 band from row 96
    assert _close(rgba[192, 40], WHITE) and _close(rgba[192, 340], GREEN)
    assert _close(pal[40, 192], WHITE) and _close(pal[340, 192], YELLOW)
    assert _close(flaky[192, 192], BLUE)
    assert hits.get("/wide.png", 0) == 0  # b already had 2 images; zz is not an item
    assert hits["/red.png"] == 1 and hits["/flaky.png"] == 2 and hits["/missing.png"] == 1
    with open(paths.failures, newline="") as fh:
        failures = {
            (r["item"], int(r["url_index"]), r["url"].rsplit("/", 1)[1], r["reason"]) for r in csv.DictReader(fh)
        }
    assert failures == {
        ("b", 0, "missing.png", "http_404"),
        ("c", 0, "broken.png", "not_image"),
        ("c", 1, "slow.png", "timeout"),
        ("c", 2, "big.png", "too_large"),
    }
    counts = result.as_dict()
    assert counts["complete"] and counts["images"] == 5 and counts["ok"] == 5 and counts["failed"] == 4
    assert counts["failed_by_reason"] == {"http_404": 1, "not_image": 1, "timeout": 1, "too_large": 1}
    assert counts["items_without_image"] == 2 and counts["items_with_images"] == 3 and counts["items_short"] == 0
    assert counts["not_needed"] == 1 and counts["ignored_items"] == 1
    assert not paths.work.exists()  # the work folder is gone once the bank is written
    found = discover_image_files(data)["trn"]  # the dataset reader finds the pair under the released names
    assert (found.bank, found.map_npz, found.num_images, found.image_size) == (paths.bank, paths.map, 2, 384)
    with pytest.raises(ConfigError, match="overwrite"):
        fetch_images(data, "trn", refs, FetchOptions(num_images=2, download=FAST))


def test_a_failed_reference_is_replaced_by_the_items_next_one(tmp_path):
    routes = {f"/{k}.png": Route(png(8, 8, (10 * k, 0, 0))) for k in range(4)}
    routes["/1.png"] = Route(status=410)
    with ImageServer(routes) as server:
        refs = ImageRefs.from_lists(["x"], [[server.url(f"/{k}.png") for k in range(4)]])
        fetch_images(tmp_path, "lbl", refs, FetchOptions(num_images=2, workers=2, download=FAST))
        assert server.hits == {"/0.png": 1, "/1.png": 1, "/2.png": 1}  # /3.png never needed
    paths = bank_paths(tmp_path, "lbl", 384, 2)
    assert paths.bank.name == "labels_imgs_384_2.bin"
    assert read_image_map(paths.map).rows_of(0).tolist() == [0, 1]
    assert [int(im[192, 192, 0]) // 10 for im in _bank_images(paths.bank)] == [0, 2]  # images of refs 0 and 2


def test_plan_picks_the_untried_references_that_complete_each_items_first_n():
    refs = ImageRefs.from_lists(["i0", "i1", "i2"], [["a", "b", "c", "d"], ["b", "e"], ["f", "a", "c"]])
    plan = FetchPlan.of(refs)
    assert sorted(plan.urls) == list("abcdef") and len(plan.slot_url) == 9
    status = np.zeros(len(plan.urls), np.int8)
    code = {url: k for k, url in enumerate(plan.urls)}
    for url, value in {"a": FAILED, "e": OK, "f": OK}.items():
        status[code[url]] = value
    # i0: a failed -> b, c; i1: e ok, b untried -> b; i2: f ok, a failed -> c
    assert [plan.urls[u] for u in plan.wanted(status, 2)] == ["b", "c"]
    status[code["b"]] = FAILED
    assert [plan.urls[u] for u in plan.wanted(status, 2)] == ["c", "d"]  # d now completes i0
    assert plan.wanted(status, 1).tolist() == [code["c"]]  # i1 has e, i2 has f


def _many(server: ImageServer, n: int) -> ImageRefs:
    return ImageRefs.from_lists(
        [f"item{i}" for i in range(n // 2)],
        [[server.url(f"/{2 * i}.png"), server.url(f"/{2 * i + 1}.png")] for i in range(n // 2)],
    )


def _many_routes(n: int) -> dict[str, Route]:
    return {f"/{k}.png": Route(png(16, 16, (k * 5 % 256, 100, 50))) for k in range(n)}


def _reference_bank(tmp_path: Path, n: int) -> bytes:
    with ImageServer(_many_routes(n)) as server:
        out = tmp_path / "reference"
        fetch_images(out, "trn", _many(server, n), FetchOptions(num_images=2, workers=3, download=FAST))
    return bank_paths(out, "trn", 384, 2).bank.read_bytes()


def test_limit_then_resume_fetches_only_the_rest_and_writes_the_same_bank(tmp_path):
    n = 12
    with ImageServer(_many_routes(n)) as server:
        refs = _many(server, n)
        out = tmp_path / "ds"
        first = fetch_images(out, "trn", refs, FetchOptions(num_images=2, workers=3, download=FAST, limit=5))
        assert not first.complete and first.attempted == 5 and server.total_hits() == 5
        paths = bank_paths(out, "trn", 384, 2)
        assert not paths.bank.exists() and not paths.map.exists() and paths.work.is_dir()
        before = dict(server.hits)
        second = fetch_images(out, "trn", refs, FetchOptions(num_images=2, workers=3, download=FAST))
        assert second.complete and second.attempted == n - 5
        assert all(server.hits[p] == 1 for p in server.hits) and len(server.hits) == n  # nothing fetched twice
        assert set(before).isdisjoint(set(server.hits) - set(before)) and len(before) == 5
    assert paths.bank.read_bytes() == _reference_bank(tmp_path, n)
    assert read_image_map(paths.map).indices.tolist() == list(range(n))


def test_interrupt_mid_way_keeps_finished_work(tmp_path, monkeypatch):
    n = 10
    calls = {"n": 0}
    real = fetch_mod.thumbnail_line

    def interrupting(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 5:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    with ImageServer(_many_routes(n)) as server:
        refs = _many(server, n)
        out = tmp_path / "ds"
        monkeypatch.setattr(fetch_mod, "thumbnail_line", interrupting)
        with pytest.raises(KeyboardInterrupt):
            fetch_images(out, "trn", refs, FetchOptions(num_images=2, workers=1, download=FAST))
        monkeypatch.setattr(fetch_mod, "thumbnail_line", real)
        done = _journaled_ok(bank_paths(out, "trn", 384, 2).work)
        assert 1 <= len(done) <= 4
        before = dict(server.hits)
        fetch_images(out, "trn", refs, FetchOptions(num_images=2, workers=2, download=FAST))
        again = {p for p in server.hits if server.hits[p] > before.get(p, 0)}
    assert again == {f"/{k}.png" for k in range(n)} - done
    assert bank_paths(out, "trn", 384, 2).bank.read_bytes() == _reference_bank(tmp_path, n)


def _journaled_ok(work: Path) -> set[str]:
    lines = (work / "journal.jsonl").read_text().splitlines()[1:]
    return {
        "/" + json.loads(line)["url"].rsplit("/", 1)[1] for line in lines if line.strip() and json.loads(line)["ok"]
    }


_CHILD = """
import sys
sys.path.insert(0, {src!r})
from vixml.vision.download import DownloadPolicy
from vixml.vision.fetch import FetchOptions, fetch_images
from vixml.vision.image_refs import ImageRefs
urls = {urls!r}
refs = ImageRefs.from_lists([f"i{{k}}" for k in range(len(urls))], [[u] for u in urls])
fetch_images({out!r}, "tst", refs, FetchOptions(num_images=1, workers=2, flush_every=1,
             download=DownloadPolicy(timeout=5, retries=0)))
"""


@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL")
def test_kill_minus_9_then_rerun_fetches_only_what_was_not_journaled(tmp_path):
    n = 30
    with ImageServer(_many_routes(n), delay_all=0.05) as server:
        urls = [server.url(f"/{k}.png") for k in range(n)]
        out = tmp_path / "ds"
        code = _CHILD.format(src=SRC, urls=urls, out=str(out))
        child = subprocess.Popen([sys.executable, "-c", code], stderr=subprocess.PIPE)
        deadline = time.monotonic() + 20
        while server.total_hits() < 12 and time.monotonic() < deadline and child.poll() is None:
            time.sleep(0.01)
        assert child.poll() is None, child.stderr.read().decode()
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
        child.stderr.close()
        paths = bank_paths(out, "tst", 384, 1)
        done = _journaled_ok(paths.work)
        assert 6 <= len(done) < n and not paths.bank.exists()
        before = dict(server.hits)
        refs = ImageRefs.from_lists([f"i{k}" for k in range(n)], [[u] for u in urls])
        result = fetch_images(out, "tst", refs, FetchOptions(num_images=1, workers=4, download=FAST))
        again = {p for p in server.hits if server.hits[p] > before.get(p, 0)}
    assert again == {f"/{k}.png" for k in range(n)} - done and result.attempted == n - len(done)
    assert read_image_map(paths.map).counts().tolist() == [1] * n
    assert len(_bank_images(paths.bank)) == n


def test_keep_work_then_retry_failed(tmp_path):
    routes = {"/ok.png": Route(png()), "/later.png": Route(status=503)}
    with ImageServer(routes) as server:
        refs = ImageRefs.from_lists(["p", "q"], [[server.url("/ok.png")], [server.url("/later.png")]])
        opts = FetchOptions(num_images=1, workers=2, download=FAST, keep_work=True)
        first = fetch_images(tmp_path, "trn", refs, opts)
        assert first.failed_by_reason == {"http_503": 1} and server.hits["/later.png"] == 2  # retried once
        server.routes["/later.png"] = Route(png(10, 10, BLUE))
        fetch_images(tmp_path, "trn", refs, opts)  # a recorded failure is final without --retry-failed
        assert server.hits == {"/ok.png": 1, "/later.png": 2}
        again = fetch_images(tmp_path, "trn", refs, FetchOptions(num_images=1, download=FAST, retry_failed=True))
        assert server.hits == {"/ok.png": 1, "/later.png": 3} and again.failed == 0
    assert read_image_map(bank_paths(tmp_path, "trn", 384, 1).map).counts().tolist() == [1, 1]
    assert not bank_paths(tmp_path, "trn", 384, 1).work.exists()


def test_journal_survives_a_torn_line_and_refuses_other_settings(tmp_path):
    journal = FetchJournal(tmp_path / "w", {"size": 384, "quality": 90, "upscale": True})
    journal.record_ok("u1", b"AAAA")
    journal.record_failure("u2", "http_404", "Not Found", False)
    journal.flush()
    journal.record_ok("u3", b"BBBB")  # staged but never journaled: cut off on reopen
    journal._staging.flush()
    journal._pending.clear()  # killed before the journal batch was written
    journal.close()
    with open(tmp_path / "w" / "journal.jsonl", "ab") as fh:
        fh.write(b'{"url": "u4", "ok": tr')  # torn by a kill
    staging = tmp_path / "w" / "staging.b64"
    reopened = FetchJournal(tmp_path / "w", {"size": 384, "quality": 90, "upscale": True})
    assert staging.read_bytes() == b"AAAA\n"
    states = reopened.states(["u3", "u1", "u2", "u4"])
    assert states.status.tolist() == [0, 1, 2, 0] and states.failures[2][0] == "http_404"
    reopened.record_ok("u3", b"CC")
    reopened.close()
    again = FetchJournal(tmp_path / "w", {"size": 384, "quality": 90, "upscale": True})
    assert again.states(["u3"]).offset.tolist() == [5] and staging.read_bytes() == b"AAAA\nCC\n"
    if sys.platform != "win32":
        with pytest.raises(ConfigError, match="another fetch"):
            FetchJournal(tmp_path / "w", {"size": 384, "quality": 90, "upscale": True})
    again.close()
    with pytest.raises(ConfigError, match="quality=90"):
        FetchJournal(tmp_path / "w", {"size": 384, "quality": 70, "upscale": True})


# inputs ------------------------------------------------------------------------------------------------------------
def test_folder_input_and_local_files(tmp_path):
    folder = tmp_path / "imgs"
    folder.mkdir()
    for name, color in [("x_1.jpg", BLUE), ("x.png", RED), ("x_0.png", GREEN), ("y_10.png", RED), ("y_9.png", BLUE)]:
        Image.new("RGB", (20, 10), color).save(folder / name)
    (folder / "notes.txt").write_text("not an image")
    (folder / "z_2.png").write_bytes(b"broken")
    found = refs_from_folder(folder)
    assert {k: [Path(p).name for p in v] for k, v in found.items()} == {
        "x": ["x.png", "x_0.png", "x_1.jpg"],
        "y": ["y_9.png", "y_10.png"],
        "z": ["z_2.png"],
    }
    assert list(refs_from_folder(folder, known_ids=["y_10", "y"])["y_10"]) == [str((folder / "y_10.png").resolve())]
    data = tmp_path / "ds"
    data.mkdir()
    (data / "tst_ids.txt").write_text("z\nw\nx\n")
    refs = load_image_refs(data, "tst", folder)
    assert refs.ids == ["z", "w", "x"] and refs.ignored == 1  # y is not an item
    result = fetch_images(data, "tst", refs, FetchOptions(num_images=2, workers=2))
    image_map = read_image_map(bank_paths(data, "tst", 384, 2).map)
    assert [image_map.rows_of(i).tolist() for i in range(3)] == [[], [], [0, 1]]
    red, green = _bank_images(bank_paths(data, "tst", 384, 2).bank)
    assert _close(red[192, 192], RED) and _close(green[192, 192], GREEN) and _close(red[0, 0], WHITE)
    assert result.failed_by_reason == {"not_image": 1}


def test_table_inputs_resolve_paths_and_keep_first_appearance(tmp_path):
    Image.new("RGB", (8, 8), RED).save(tmp_path / "r.png")
    body = base64.b64encode(png(8, 8, BLUE)).decode()
    table = _write_csv(
        tmp_path / "t.csv",
        [("k2", "r.png"), ("k1", f"data:image/png;base64,{body}"), ("k2", ""), ("k3", "missing.png|r.png")],
        header=("item_id", "image_path"),
    )
    found = refs_from_table(table)
    assert list(found) == ["k2", "k1", "k3"]
    assert found["k2"] == [str(tmp_path / "r.png")] and found["k3"][1] == str(tmp_path / "r.png")
    with pytest.raises(DataError, match="columns are item_id, image_path"):
        refs_from_table(table, url_column="link")
    pq = pytest.importorskip("pyarrow.parquet")
    import pyarrow as pa

    pq.write_table(pa.table({"id": ["a", "b"], "urls": [["u1", "u2"], []]}), tmp_path / "t.parquet")
    assert refs_from_table(tmp_path / "t.parquet") == {"a": [str(tmp_path / "u1"), str(tmp_path / "u2")], "b": []}
    data = tmp_path / "ds"
    data.mkdir()
    (data / "trn.raw.txt").write_text("one\ntwo\n")
    with pytest.raises(DataError, match="pass --ids"):
        load_image_refs(data, "trn", table)  # 3 items, 2 rows, no ids: cannot line up
    (data / "trn.raw.txt").write_text("one\ntwo\nthree\n")
    result = fetch_images(data, "trn", load_image_refs(data, "trn", table), FetchOptions(num_images=1, workers=2))
    assert result.complete and result.items_without_image == 0 and result.failed_by_reason == {"not_found": 1}


def test_default_input_is_the_datasets_images_jsonl(tmp_path):
    Image.new("RGB", (8, 8), RED).save(tmp_path / "r.png")
    (tmp_path / "lbl_ids.txt").write_text("L1\nL2\n")
    (tmp_path / "lbl.images.jsonl").write_text(json.dumps([str(tmp_path / "r.png")]) + "\n[]\n")
    refs = load_image_refs(tmp_path, "lbl")
    assert refs.ids == ["L1", "L2"] and refs.indptr.tolist() == [0, 1, 1]
    (tmp_path / "lbl_ids.txt").write_text("L1\nL2\nL3\n")
    with pytest.raises(DataError, match="2 lines but the split has 3 ids"):
        load_image_refs(tmp_path, "lbl")
    with pytest.raises(DataError, match="no image references"):
        load_image_refs(tmp_path, "trn")


# command line ------------------------------------------------------------------------------------------------------
def test_cli_fetch_json_is_the_only_stdout(tmp_path):
    from typer.testing import CliRunner

    from vixml.cli.images import app

    with ImageServer({"/a.png": Route(png()), "/b.png": Route(status=404)}) as server:
        table = _write_csv(tmp_path / "u.csv", [("q1", server.url("/a.png")), ("q2", server.url("/b.png"))])
        args = ["fetch", str(tmp_path / "ds"), "--split", "train", "--urls", str(table), "-n", "1", "--size", "64"]
        out = CliRunner().invoke(app, [*args, "--json", "--timeout", "1", "--retries", "0", "--quiet"])
    assert out.exit_code == 0, out.output
    counts = json.loads(out.stdout)
    assert counts["complete"] and counts["images"] == 1 and counts["failed_by_reason"] == {"http_404": 1}
    assert (tmp_path / "ds" / "train_imgs_64_1.bin").is_file() and counts["map"].endswith("train_imgs_64_1_map.npz")
    bad = CliRunner().invoke(app, ["fetch", str(tmp_path), "--split", "val", "--urls", str(table)])
    assert bad.exit_code == 2
