"""Catalogues and folders of the wrong kind (issue 23): one message for a column no record has, a semicolon export
read by its delimiter, a catalogue or a run folder given as a dataset folder named as such, negative relevance and
non-text cells refused, not stored as Python reprs."""

from __future__ import annotations

import csv
import json

import pytest

from support_data import make_catalogue, make_dataset
from vixml.cli.main import main
from vixml.data import load_dataset


def run(capsys, *args: str) -> tuple[int, str]:
    code = main(list(args))
    out = capsys.readouterr()
    return code, out.err


def _rewrite(path, change) -> None:
    rows = list(csv.reader(path.open(newline="")))
    rows = change(rows)
    with path.open("w", newline="") as fh:
        csv.writer(fh).writerows(rows)


def test_a_misnamed_column_is_one_message_listing_the_columns(tmp_path, capsys):
    cat, _ = make_catalogue(tmp_path / "cat")
    _rewrite(cat / "queries.csv", lambda rows: [["id", "description"], *rows[1:]])
    code, err = run(capsys, "data", "prepare", str(cat), str(tmp_path / "out"))
    assert code == 1 and err.count("\n  - ") == 1, err
    assert "queries.csv has no text (text, or title [+ content]) column; its columns are id, description " in err
    assert "(delimiter ',', guessed from the header line)" in err
    assert not (tmp_path / "out").exists()
    cat2, _ = make_catalogue(tmp_path / "cat2")
    _rewrite(cat2 / "pairs.csv", lambda rows: [["qid", *rows[0][1:]], *rows[1:]])
    code, err = run(capsys, "data", "prepare", str(cat2), str(tmp_path / "out2"))
    assert code == 1 and "pairs.csv has no query_id column; its columns are qid, label_id, split" in err, err


def test_a_semicolon_export_is_read_by_its_delimiter(tmp_path, capsys, caplog):
    cat, expected = make_catalogue(tmp_path / "cat")
    for name in ("queries.csv", "labels.csv", "pairs.csv"):
        rows = list(csv.reader((cat / name).open(newline="")))
        with (cat / name).open("w", newline="") as fh:
            csv.writer(fh, delimiter=";").writerows(rows)  # texts hold commas: "product sku-3, blue"
    with caplog.at_level("INFO"):
        code, err = run(capsys, "data", "prepare", str(cat), str(tmp_path / "out"))
    assert code == 0, err
    assert "queries.csv: delimiter ';' (guessed from the header line: it has no comma)" in caplog.text
    ds = load_dataset(tmp_path / "out")
    assert list(ds.lbl_texts) == expected["lbl_texts"]


def test_a_catalogue_or_a_run_folder_given_as_a_dataset_folder_says_so(tmp_path, capsys):
    cat, _ = make_catalogue(tmp_path / "cat")
    for command in (["data", "validate", str(cat)], ["data", "stats", str(cat)]):
        code, err = run(capsys, *command)
        assert code == 1, err
        assert "this looks like a catalogue (queries.csv, labels.csv, pairs.csv), not a prepared dataset" in err
        assert f"run `vixml data prepare {cat} OUT` first" in err and "required file missing" not in err
    data = make_dataset(tmp_path / "data", n_train=8, n_test=4, n_labels=4)
    run_dir = tmp_path / "run"
    (run_dir / "checkpoints").mkdir(parents=True)
    (run_dir / "config.yaml").write_text("")
    (run_dir / "run.json").write_text(json.dumps({"data": {"path": str(data)}}))
    code, err = run(capsys, "data", "validate", str(run_dir))
    assert code == 1 and "this is a run folder (config.yaml, run.json), not a dataset folder" in err, err
    assert f"give the dataset folder it was trained on ({data}, as its run.json says)" in err


def test_negative_relevance_is_refused_by_prepare_and_validate(tmp_path, capsys):
    cat, _ = make_catalogue(tmp_path / "cat")
    _rewrite(cat / "pairs.csv", lambda rows: [rows[0] + ["value"], rows[1] + ["-2"], *(r + ["1"] for r in rows[2:])])
    code, err = run(capsys, "data", "prepare", str(cat), str(tmp_path / "out"))
    assert code == 1 and "pairs.csv:2 [value]: value '-2' is negative: relevance is >= 0" in err, err
    data = make_dataset(tmp_path / "data", n_train=8, n_test=4, n_labels=4)
    lines = (data / "trn_X_Y.txt").read_text().splitlines()
    lines[3] = lines[3].replace(":1", ":-1", 1)
    (data / "trn_X_Y.txt").write_text("\n".join(lines) + "\n")
    code, err = run(capsys, "data", "validate", str(data))
    assert code == 1 and "trn_X_Y.txt: 1 negative label value(s) in row(s) 2: relevance is >= 0" in err, err


@pytest.mark.parametrize(
    ("cell", "stored", "refusal"),
    [
        (["red", "shoe"], "red shoe", None),  # tags: joined with spaces
        (1984, "1984", None),  # a number: as written
        ({"en": "shoe"}, None, "text is a JSON object: expected a string"),
        ([["red"], 1], None, "text is a list of non-strings: expected a string"),
    ],
)
def test_list_number_and_object_text_cells_are_joined_or_refused(tmp_path, capsys, cell, stored, refusal):
    cat, _ = make_catalogue(tmp_path / "cat", fmt="jsonl")
    records = [json.loads(line) for line in (cat / "labels.jsonl").read_text().splitlines()]
    records[0]["text"] = cell
    (cat / "labels.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    code, err = run(capsys, "data", "prepare", str(cat), str(tmp_path / "out"))
    if refusal is None:
        assert code == 0, err
        assert load_dataset(tmp_path / "out").lbl_texts[0] == stored
    else:
        assert code == 1 and f"labels.jsonl:1 [text]: {refusal}" in err, err
