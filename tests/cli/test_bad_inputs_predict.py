"""`vixml predict` and `Predictor.predict`: one string is one query, empty texts refused as HTTP refuses them,
blank lines skipped and counted, `-` for stdin/stdout, a quick table for one TEXT, an --out folder refused."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from vixml.errors import DataError

OFFLINE = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "MPLBACKEND": "Agg"}


def vixml(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "vixml.cli.main", *args], capture_output=True, text=True,
                          env=OFFLINE, input=stdin)  # fmt: skip


def test_a_string_is_one_query_and_an_empty_text_is_refused(cli_run):
    from vixml.inference import Predictor

    predictor = Predictor.load(cli_run)
    one = predictor.predict("kaka item", k=3)
    assert one.indices.shape == (1, 3)  # one row, not one per character
    assert one.indices.tolist() == predictor.predict(["kaka item"], k=3).indices.tolist()
    with pytest.raises(DataError) as refused:
        predictor.predict(["kaka item", " ", ""], k=3)
    assert [str(p) for p in refused.value.problems] == ["<texts> [item 1]: empty text", "<texts> [item 2]: empty text"]
    with pytest.raises(DataError, match="empty text"):
        predictor.predict("", k=3)


def test_blank_lines_are_skipped_with_a_count_and_dash_means_stdin_and_stdout(cli_run, tmp_path):
    (tmp_path / "q.txt").write_text("kaka item\n\nlolo with\n\n")
    out = vixml("predict", str(cli_run), "--texts", str(tmp_path / "q.txt"), "--out", str(tmp_path / "p.jsonl"),
                "--k", "3")  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert "2 blank line(s) skipped, 2 queries" in out.stderr
    written = [json.loads(line) for line in (tmp_path / "p.jsonl").read_text().splitlines()]
    assert [r["query"] for r in written] == ["kaka item", "lolo with"]
    piped = vixml("predict", str(cli_run), "--texts", "-", "--out", "-", "--k", "3", stdin="kaka item\n\nlolo with\n")
    assert piped.returncode == 0, piped.stderr
    assert [json.loads(line) for line in piped.stdout.splitlines()] == written  # stdout: the JSON lines only


def test_one_text_prints_a_table_of_its_top_labels(cli_run):
    out = vixml("predict", str(cli_run), "kaka item", "--k", "4")
    assert out.returncode == 0, out.stderr
    assert "top 4 labels for 'kaka item'" in out.stdout and out.stdout.count(" item ") >= 4, out.stdout
    record = json.loads(vixml("predict", str(cli_run), "kaka item", "--k", "4", "--json").stdout)
    assert record["query"] == "kaka item" and len(record["labels"]) == 4
    assert record["texts"][0] in out.stdout
    empty = vixml("predict", str(cli_run), "  ")
    assert empty.returncode == 1 and "empty text" in empty.stderr and "Traceback" not in empty.stderr


def test_an_out_that_is_a_folder_is_refused_before_any_work(cli_run, cli_data, tmp_path):
    (tmp_path / "q.txt").write_text("kaka item\n")
    (tmp_path / "d.jsonl").mkdir()
    for args in (["--texts", str(tmp_path / "q.txt"), "--out", str(tmp_path / "d.jsonl")],
                 ["--data", str(cli_data), "--out", str(tmp_path)]):  # fmt: skip
        out = vixml("predict", str(cli_run), *args)
        assert out.returncode == 1 and "is a folder: --out must name a file to write" in out.stderr, out.stderr
        assert "Traceback" not in out.stderr
