"""Table readers (CSV/TSV/JSONL/Parquet) with line numbers, and the manifest's fingerprint."""

from __future__ import annotations

import gzip
import os

import pytest

from support_data import make_dataset, write_table
from vixml.data import manifest as manifest_module
from vixml.data import tables
from vixml.data.manifest import file_digest, fingerprint, manifest_problems
from vixml.data.tables import iter_table
from vixml.errors import DataError, MissingExtraError


def test_csv_line_numbers_follow_quoted_newlines(tmp_path):
    (tmp_path / "q.csv").write_text('id,text\na,"two\nlines"\nb,plain\n')
    assert list(iter_table(tmp_path / "q.csv")) == [
        (3, {"id": "a", "text": "two\nlines"}),
        (4, {"id": "b", "text": "plain"}),
    ]


def test_gzipped_tsv_with_bom(tmp_path):
    with gzip.open(tmp_path / "q.tsv.gz", "wb") as fh:
        fh.write("\ufeffid\ttext\nx\tcafé\n".encode())
    assert list(iter_table(tmp_path / "q.tsv.gz")) == [(2, {"id": "x", "text": "café"})]


def test_jsonl_and_parquet_give_the_same_records(tmp_path):
    records = [{"id": "a", "n": 1}, {"id": "b", "n": 2}]
    write_table(tmp_path / "t.jsonl", records)
    assert list(iter_table(tmp_path / "t.jsonl")) == [(1, records[0]), (2, records[1])]
    pytest.importorskip("pyarrow")
    write_table(tmp_path / "t.parquet", records)
    assert list(iter_table(tmp_path / "t.parquet")) == [(1, records[0]), (2, records[1])]


def test_bad_inputs(tmp_path, monkeypatch):
    (tmp_path / "t.xlsx").write_bytes(b"")
    with pytest.raises(DataError, match="unknown table format"):
        list(iter_table(tmp_path / "t.xlsx"))
    (tmp_path / "t.jsonl").write_text('{"id": 1}\n[1]\n')
    with pytest.raises(DataError) as err:
        list(iter_table(tmp_path / "t.jsonl"))
    assert err.value.problems[0].line == 2
    (tmp_path / "t.parquet").write_bytes(b"not parquet")

    def missing(module, extra):
        raise MissingExtraError(f"pip install 'vixml[{extra}]'")

    monkeypatch.setattr(tables, "require", missing)
    with pytest.raises(MissingExtraError, match="vixml\\[tables\\]"):
        list(iter_table(tmp_path / "t.parquet"))


def test_fingerprint_follows_content_not_mtime(tmp_path):
    ds = make_dataset(tmp_path / "ds", manifest=False)
    before = fingerprint(ds)
    os.utime(ds / "trn.raw.txt", (1, 1))
    assert fingerprint(ds) == before
    (ds / "notes.md").write_text("not data")
    assert fingerprint(ds) == before
    text = (ds / "lbl.raw.txt").read_bytes()
    (ds / "lbl.raw.txt").write_bytes(text.replace(b"item", b"itex", 1))  # same size, one byte differs
    assert fingerprint(ds) != before


def test_sampled_digest_of_large_files(tmp_path, monkeypatch):
    monkeypatch.setattr(manifest_module, "_FULL_HASH_LIMIT", 1000)
    monkeypatch.setattr(manifest_module, "_BLOCK", 10)
    monkeypatch.setattr(manifest_module, "_SAMPLES", 4)
    data = bytearray(range(256)) * 20  # 5120 bytes: blocks at 0, 1703, 3406, 5110
    (tmp_path / "a.bin").write_bytes(bytes(data))
    base = file_digest(tmp_path / "a.bin")
    data[5115] ^= 1  # inside the tail block
    (tmp_path / "a.bin").write_bytes(bytes(data))
    assert file_digest(tmp_path / "a.bin") != base
    data[5115] ^= 1
    data[100] ^= 1  # between samples: not seen (documented)
    (tmp_path / "a.bin").write_bytes(bytes(data))
    assert file_digest(tmp_path / "a.bin") == base


def test_manifest_problems(tmp_path):
    ds = make_dataset(tmp_path / "ds")
    assert manifest_problems(ds) == []
    (ds / "filter_labels_test.txt").unlink()
    (ds / "trn.raw.txt").write_text("changed\n")
    messages = sorted(p.message for p in manifest_problems(ds))
    assert messages[0] == "filter_labels_test.txt is listed but missing"
    assert "differs from the manifest" in messages[1]
    (ds / "dataset.json").write_text("{broken")
    assert "unreadable manifest" in manifest_problems(ds)[0].message
