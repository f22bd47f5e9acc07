"""`vixml predict RUN --texts FILE` and `vixml labels add` through the command line, against the Python API."""

from __future__ import annotations

import csv
import dataclasses
import json
import shutil
import subprocess
import sys

import numpy as np
import pytest

from support_data import label_word
from support_serve import N_LABELS
from vixml.cli.main import main
from vixml.config import apply_overrides
from vixml.data import load_dataset, read_label_matrix
from vixml.data.queries import read_text_input
from vixml.errors import DataError
from vixml.inference import Predictor


def vixml_subprocess(*args: str) -> subprocess.CompletedProcess:
    out = subprocess.run([sys.executable, "-m", "vixml.cli.main", *map(str, args)], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-3000:]
    return out


@pytest.fixture
def vixml(capsys):
    """The command line in this process (a subprocess costs seconds of imports): -> (code, stdout, stderr)."""

    def run(*args, ok: bool = True) -> subprocess.CompletedProcess:
        capsys.readouterr()
        code = main([str(a) for a in args])
        captured = capsys.readouterr()
        if ok:
            assert code == 0, captured.err[-3000:]
        return subprocess.CompletedProcess(args, code, captured.out, captured.err)

    return run


QUERIES = [f"{label_word(2)} with", f"{label_word(7)} {label_word(11)} pack", "new set of things"]


def test_predict_texts_jsonl_and_npz_equal_the_predictor(tmp_path, prime_run, vixml):
    queries = tmp_path / "q.txt"
    queries.write_text("\n".join(QUERIES) + "\n")
    vixml_subprocess("predict", prime_run, "--texts", queries, "--k", 3, "--out", tmp_path / "p.jsonl")
    records = [json.loads(line) for line in (tmp_path / "p.jsonl").read_text().splitlines()]
    want = Predictor.load(prime_run, device="cpu").predict(QUERIES, k=3)
    assert [r["query"] for r in records] == QUERIES
    assert [r["labels"] for r in records] == want.indices.tolist()
    assert [r["texts"] for r in records] == want.texts
    np.testing.assert_allclose([r["scores"] for r in records], want.scores, atol=1e-5)

    table = tmp_path / "q.csv"
    with open(table, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["id", "text"])
        writer.writerows(enumerate(QUERIES))
    vixml("predict", prime_run, "--texts", table, "--k", 3, "--out", tmp_path / "p.npz")
    pred = read_label_matrix(tmp_path / "p.npz")
    assert pred.shape == (3, N_LABELS)
    np.testing.assert_allclose(pred.toarray(), want.to_csr(N_LABELS).toarray(), atol=1e-5)


def test_augmented_free_texts_equal_augmented_split_predictions(tmp_path, prime_run, serve_data, vixml):
    """The test split given as free texts with --augment ranks as `predict --data --augment` does."""
    ds = load_dataset(serve_data)
    out = tmp_path / "free.npz"
    args = ["--k", 5, "--augment", "--data", serve_data]
    vixml("predict", prime_run, "--texts", serve_data / "tst.raw.txt", "--out", out, *args)
    free = read_label_matrix(out)
    predictor = Predictor.load(prime_run, device="cpu")
    unfiltered = dataclasses.replace(predictor, config=apply_overrides(predictor.config, ["eval.use_filter=false"]))
    split = unfiltered.predict_dataset(serve_data, k=5, augment=True)  # free texts have no filter rows
    assert free.shape == split.shape == (ds.n_test, N_LABELS)
    np.testing.assert_allclose(free.toarray(), split.toarray(), atol=1e-4)
    pairs = ds.filter_tst
    assert pairs is not None and len(pairs), "the planted data has reciprocal pairs to filter"
    for augment in (False, True):  # the filter pairs go before the top-k cut: rows keep k labels, none filtered
        filtered = predictor.predict_dataset(serve_data, k=5, augment=augment).tocsr()
        assert (np.diff(filtered.indptr) == 5).all()
        assert not filtered[pairs[:, 0], pairs[:, 1]].any()
    assert (
        vixml(
            "predict", prime_run, "--texts", serve_data / "tst.raw.txt", "--out", out, "--augment", ok=False
        ).returncode
        == 2
    )


def test_labels_add_offline_then_predict_finds_them(tmp_path, prime_run, vixml):
    run = shutil.copytree(prime_run, tmp_path / "run")
    new = tmp_path / "new.jsonl"
    new.write_text(json.dumps({"text": "zuzu item"}) + "\n" + json.dumps({"title": "bobo", "content": "item"}) + "\n")
    out = vixml("labels", "add", run, "--texts", new, "--json")
    assert json.loads(out.stdout)["added"] == [N_LABELS, N_LABELS + 1]
    queries = tmp_path / "q.txt"
    queries.write_text("zuzu item\n")
    vixml("predict", run, "--texts", queries, "--k", N_LABELS + 2, "--out", tmp_path / "p.jsonl")
    record = json.loads((tmp_path / "p.jsonl").read_text())
    assert {"zuzu item", "bobo item"} <= set(record["texts"])
    vixml("labels", "hide", run, N_LABELS, 0)
    vixml("predict", run, "--texts", queries, "--k", N_LABELS + 2, "--out", tmp_path / "p.jsonl")
    record = json.loads((tmp_path / "p.jsonl").read_text())
    assert N_LABELS not in record["labels"] and 0 not in record["labels"] and len(record["labels"]) == N_LABELS
    edits = json.loads(vixml("labels", "list", run).stdout)
    assert edits["hidden"] == [0, N_LABELS] and [a["text"] for a in edits["added"]] == ["zuzu item", "bobo item"]
    bad = vixml("labels", "hide", run, 99, ok=False)
    assert bad.returncode == 1 and "label id 99 does not exist" in bad.stderr


def test_text_input_problems_name_their_lines(tmp_path):
    path = tmp_path / "q.txt"
    path.write_text("one\n\nthree\n \n")
    with pytest.raises(DataError) as info:
        read_text_input(path)
    assert [p.line for p in info.value.problems] == [2, 4]
    table = tmp_path / "q.jsonl"
    table.write_text('{"text": "a", "images": ["x.png", "https://h/y.jpg"]}\n{"name": "b"}\n')
    with pytest.raises(DataError, match="no 'text'") as info:
        read_text_input(table)
    assert info.value.problems[0].line == 2
    table.write_text('{"text": "a", "images": ["x.png", "https://h/y.jpg"]}\n{"text": "b"}\n')
    parsed = read_text_input(table)
    assert parsed.texts == ["a", "b"] and parsed.images == [[str(tmp_path / "x.png"), "https://h/y.jpg"], []]
