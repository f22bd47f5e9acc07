"""`vixml images fetch` against a hostile server and hostile URL tables, through the command line.

A server that trickles its headers must not hold a worker past ``--timeout``; a redirect never leaves
http(s); a URL table cannot make the fetch read local files without ``--allow-local``; a second writer of
the same folder is refused with the holder named.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("PIL")

from support_http import ImageServer, Route, png  # noqa: E402
from vixml.locking import WriteLock  # noqa: E402
from vixml.vision.download import DownloadPolicy, FetchFailure, read_reference  # noqa: E402

SRC = str(Path(__file__).resolve().parents[2] / "src")


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch):
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")


def vixml(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", "")}
    return subprocess.run(
        [sys.executable, "-m", "vixml.cli.main", *args], capture_output=True, text=True, env=env, timeout=120
    )


def _table(path: Path, rows: list[tuple[str, str]]) -> Path:
    with open(path, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["id", "url"])
        writer.writerows(rows)
    return path


def _fetch(data: Path, table: Path, *extra: str) -> subprocess.CompletedProcess:
    return vixml(
        "images", "fetch", str(data), "--split", "trn", "--urls", str(table), "-n", "1", "--size", "32",
        "--workers", "2", "--quiet", "--json", *extra,
    )  # fmt: skip


def test_trickled_headers_cannot_outlast_the_timeout(tmp_path):
    routes = {"/drip.png": Route(png(), trickle=0.05, trickle_for=30.0), "/ok.png": Route(png())}
    with ImageServer(routes, lifetime=90) as server:
        table = _table(tmp_path / "u.csv", [("a", server.url("/drip.png")), ("b", server.url("/ok.png"))])
        out = _fetch(tmp_path / "ds", table, "--timeout", "1", "--retries", "0")
        hung_up = dict(server.hung_up)
    assert out.returncode == 0, out.stderr
    counts = json.loads(out.stdout)
    assert counts["failed_by_reason"] == {"timeout": 1} and counts["ok"] == 1
    assert hung_up == {"/drip.png": 1}  # the client cut the connection long before the 30 s trickle ended


def test_a_trickle_is_a_timeout_in_the_library_too():
    with ImageServer({"/drip.png": Route(png(), trickle=0.05, trickle_for=30.0)}, lifetime=60) as server:
        with pytest.raises(FetchFailure) as info:
            read_reference(server.url("/drip.png"), DownloadPolicy(timeout=0.5, retries=0))
    assert info.value.reason == "timeout" and "0.5 s" in info.value.detail


def test_a_redirect_never_leaves_http(tmp_path):
    secret = tmp_path / "secret.png"
    secret.write_bytes(png())
    with ImageServer({"/ok.png": Route(png())}) as good:
        routes = {
            "/to-file.png": Route(redirect=secret.as_uri()),
            "/to-ftp.png": Route(redirect="ftp://127.0.0.1/x.png"),
            "/to-http.png": Route(redirect=good.url("/ok.png")),
        }
        with ImageServer(routes) as server:
            rows = [("a", server.url("/to-file.png")), ("b", server.url("/to-ftp.png"))]
            table = _table(tmp_path / "u.csv", [*rows, ("c", server.url("/to-http.png"))])
            out = _fetch(tmp_path / "ds", table, "--retries", "0")
    assert out.returncode == 0, out.stderr
    counts = json.loads(out.stdout)
    assert counts["failed_by_reason"] == {"bad_redirect": 2} and counts["ok"] == 1
    failures = (tmp_path / "ds" / "train_imgs_32_1_failures.csv").read_text()
    assert "only http(s) is followed" in failures


def test_local_files_in_a_url_table_need_allow_local(tmp_path):
    local = tmp_path / "local.png"
    local.write_bytes(png())
    with ImageServer({"/ok.png": Route(png())}) as server:
        table = _table(tmp_path / "u.csv", [("a", server.url("/ok.png")), ("b", str(local)), ("c", local.as_uri())])
        refused = _fetch(tmp_path / "ds", table)
        assert not (tmp_path / "ds" / "train_imgs_32_1.bin").exists()
        allowed = _fetch(tmp_path / "ds", table, "--allow-local")
    assert refused.returncode == 1 and "Traceback" not in refused.stderr
    assert "holds http(s) URLs and 2 local file reference(s)" in refused.stderr and "--allow-local" in refused.stderr
    assert allowed.returncode == 0, allowed.stderr
    assert json.loads(allowed.stdout)["ok"] == 3
    paths = _table(tmp_path / "p.csv", [("a", str(local)), ("b", local.as_uri())])  # a local catalogue
    out = _fetch(tmp_path / "ds2", paths)
    assert out.returncode == 0, out.stderr


def test_a_second_writer_is_refused_naming_the_holder(tmp_path):
    table = _table(tmp_path / "u.csv", [("a", "data:image/png;base64,")])
    data = tmp_path / "ds"
    with WriteLock(data, "vixml images fetch"):
        out = _fetch(data, table)
    assert out.returncode == 1 and "Traceback" not in out.stderr
    assert f"is being written by another process (vixml images fetch, pid {os.getpid()} on" in out.stderr


def test_a_file_or_a_run_folder_is_not_a_dataset_folder(tmp_path):
    table = _table(tmp_path / "u.csv", [("a", "data:image/png;base64,")])
    (tmp_path / "file").write_text("x")
    out = _fetch(tmp_path / "file", table)
    assert out.returncode == 1 and "is a file, not a dataset folder" in out.stderr
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    (run / "config.yaml").write_text("{}\n")
    out = _fetch(run, table)
    assert out.returncode == 1 and "is a run folder" in out.stderr
