"""Bad inputs to `vixml data ...` and the dataset loaders: each one is exit 1 with the file and what was expected.

One test per defect of issue 12 (data side); the messages checked here are the ones docs/bad-inputs.md quotes.
"""

from __future__ import annotations

import contextlib
import errno
import gzip
import json
import logging
import re
import shutil

import pytest

from support_data import make_catalogue, make_dataset, make_xc_raw
from vixml.cli.main import main
from vixml.data import load_dataset, read_label_matrix, write_label_matrix
from vixml.data.layout import TEXT_FILES
from vixml.errors import DataError

TEXT_FILES = sorted(TEXT_FILES.values())


def run(capsys, *args: str) -> tuple[int, str, str]:
    """``vixml ARGS`` in this process (so that a test can monkeypatch the library); (exit code, stdout, stderr)."""
    code = main(list(args))
    out = capsys.readouterr()
    return code, out.out, out.err


@contextlib.contextmanager
def caplog_at_info():
    """The messages logged (at INFO and above) by vixml inside the block."""
    messages: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record):
            messages.append(record.getMessage())

    handler = Keep(logging.INFO)
    logging.getLogger("vixml").addHandler(handler)
    try:
        yield messages
    finally:
        logging.getLogger("vixml").removeHandler(handler)


def test_disk_full_names_the_path_and_the_space_needed(tmp_path, monkeypatch, capsys):
    src = make_dataset(tmp_path / "src", n_train=8, n_test=4, n_labels=5, manifest=False)

    def full_disk(source, target):
        with open(target, "wb") as fh:
            fh.write(b"x" * 10)
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(shutil, "copyfile", full_disk)
    code, _, err = run(capsys, "data", "prepare", str(src), str(tmp_path / "out"))
    assert code == 1
    assert f"no space left on device while writing {tmp_path / 'out' / 'trn.raw.txt'}:" in err
    size = (src / "trn.raw.txt").stat().st_size
    assert f"{size} bytes were needed" in err and "free there" in err
    assert "Traceback" not in err
    assert not (tmp_path / "out").exists()  # nothing half-written is left where later commands look


def test_one_invalid_byte_is_named_not_turned_into_mojibake(tmp_path, capsys):
    data = make_dataset(tmp_path / "data", n_train=8, n_test=4, n_labels=5, manifest=False)
    lines = (data / "trn.raw.txt").read_bytes().splitlines(keepends=True)
    lines[2] = "café ".encode() + b"cr\xe8me\n"  # line 3: UTF-8 text with one latin-1 byte
    (data / "trn.raw.txt").write_bytes(b"".join(lines))
    offset = sum(len(line) for line in lines[:2]) + len("café cr".encode())
    code, _, err = run(capsys, "data", "validate", str(data))
    assert code == 1
    assert f"trn.raw.txt:3 [encoding]: not valid UTF-8 at byte offset {offset}" in err
    assert "--encoding latin-1" in err
    code, out, _ = run(capsys, "data", "validate", str(data), "--encoding", "latin-1", "--json")
    report = json.loads(out)
    assert code == 0 and report["encodings"]["trn.raw.txt"] == "latin-1 (asked)"
    code, _, err = run(capsys, "data", "prepare", str(data), str(tmp_path / "out"), "--encoding", "latin-1")
    assert code == 0, err
    assert (tmp_path / "out" / "trn.raw.txt").read_bytes().splitlines()[2] == "cafÃ© crème".encode()  # as asked
    code, out, _ = run(capsys, "data", "validate", str(tmp_path / "out"), "--json")  # the copy is UTF-8
    assert code == 0 and json.loads(out)["encodings"]["trn.raw.txt"] == "utf-8"


def test_known_public_latin1_files_are_read_as_latin1_and_said_so(tmp_path, capsys):
    data = make_dataset(tmp_path / "LF-AmazonTitles-131K", n_train=8, n_test=4, n_labels=5, latin1=True)
    code, out, _ = run(capsys, "data", "validate", str(data), "--json")
    assert code == 0
    assert json.loads(out)["encodings"] == {name: "latin-1 (known public XC file)" for name in TEXT_FILES}
    code, _, err = run(capsys, "data", "validate", str(data), "--encoding", "utf-8")
    assert code == 1 and "not valid UTF-8" in err


def test_validate_rejects_what_the_loaders_reject(tmp_path, capsys):
    data = make_dataset(tmp_path / "data", n_train=8, n_test=4, n_labels=5, manifest=False)
    (data / "lbl.raw.txt").write_text("")
    (data / "trn_X_Y.txt").write_text("8 0\n" + "\n" * 8)
    (data / "tst_X_Y.txt").write_text("4 0\n" + "\n" * 4)
    (data / "filter_labels_test.txt").unlink()
    code, _, err = run(capsys, "data", "validate", str(data))
    assert code == 1
    assert "lbl.raw.txt: no label: the file has no line" in err
    assert "trn_X_Y.txt: no training point has a label" in err
    with pytest.raises(DataError) as loaded:
        load_dataset(data)
    assert {str(p) for p in loaded.value.problems} <= {line[2:] for line in err.splitlines() if line.startswith("x ")}


def test_prepare_refuses_a_repeated_uid_in_the_source(tmp_path, capsys):
    src, _ = make_xc_raw(tmp_path / "LF-Rep", n_labels=5)
    lines = gzip.open(src / "lbl.json.gz", "rt").read().splitlines()
    record = json.loads(lines[3])
    record["uid"] = "L1"  # line 4 repeats line 2's uid
    lines[3] = json.dumps(record)
    with gzip.open(src / "lbl.json.gz", "wt") as fh:
        fh.write("\n".join(lines) + "\n")
    code, _, err = run(capsys, "data", "prepare", str(src), str(tmp_path / "out"))
    assert code == 1
    assert "lbl.json.gz:4 [uid]: repeated uid 'L1' (first on line 2)" in err
    assert not (tmp_path / "out").exists()
    data = make_dataset(tmp_path / "data", n_train=8, n_test=4, n_labels=5, manifest=False)
    (data / "lbl_ids.txt").write_text("a\nb\na\nc\nd\n")  # a folder prepared elsewhere
    code, _, err = run(capsys, "data", "validate", str(data))
    assert code == 1 and "lbl_ids.txt:3: repeated id 'a' (first on line 1)" in err


def test_truncated_json_gz_names_the_file_and_the_line(tmp_path, capsys):
    src, _ = make_xc_raw(tmp_path / "LF-Cut", n_train=400)
    raw = (src / "trn.json.gz").read_bytes()
    (src / "trn.json.gz").write_bytes(raw[: len(raw) // 2])
    code, _, err = run(capsys, "data", "prepare", str(src), str(tmp_path / "out"))
    assert code == 1 and "Aborted" not in err
    assert re.search(r"trn\.json\.gz:\d+: the compressed data ends early after line \d+: the file is truncated", err)
    assert not (tmp_path / "out").exists()


def test_truncated_npz_is_one_problem_and_validation_goes_on(tmp_path, capsys):
    data = make_dataset(tmp_path / "data", n_train=8, n_test=4, n_labels=5, manifest=False)
    write_label_matrix(data / "trn_X_Y.npz", read_label_matrix(data / "trn_X_Y.txt"))
    (data / "trn_X_Y.txt").unlink()
    raw = (data / "trn_X_Y.npz").read_bytes()
    (data / "trn_X_Y.npz").write_bytes(raw[: len(raw) // 2])
    (data / "filter_labels_test.txt").write_text("9 1\n")  # another problem, listed too
    code, _, err = run(capsys, "data", "validate", str(data))
    assert code == 1 and "Traceback" not in err
    assert "trn_X_Y.npz: this is a truncated or corrupt zip archive" in err
    assert "filter_labels_test.txt:1 [row]: row 9 out of range [0, 4)" in err


def test_out_that_is_a_file_or_a_folder_of_another_kind(tmp_path, capsys):
    src = make_dataset(tmp_path / "src", n_train=8, n_test=4, n_labels=5)
    (tmp_path / "file").write_text("x")
    code, _, err = run(capsys, "data", "prepare", str(src), str(tmp_path / "file"))
    assert code == 1 and "output path exists and is a file, not a folder" in err
    other = tmp_path / "home"
    other.mkdir()
    (other / "notes.md").write_text("mine")
    code, _, err = run(capsys, "data", "prepare", str(src), str(other), "--overwrite")
    assert code == 1 and "holds no dataset" in err and (other / "notes.md").read_text() == "mine"


def test_catalogue_columns_are_reported_and_a_missing_test_split_is_said(tmp_path, capsys):
    cat, _ = make_catalogue(tmp_path / "cat", split_column=False)
    (cat / "test_pairs.csv").unlink()
    rows = (cat / "queries.csv").read_text().splitlines()
    (cat / "queries.csv").write_text("\n".join([rows[0] + ",colour"] + [r + ",red" for r in rows[1:]]) + "\n")
    with caplog_at_info() as logs:
        code, _, err = run(capsys, "data", "prepare", str(cat), str(tmp_path / "out"))
    assert code == 0, err
    assert "queries.csv: id=id, text=text (ignored: colour)" in err
    assert "labels.csv: id=id, text=text, images=image_url" in err
    assert any("has no test split" in message for message in logs)
