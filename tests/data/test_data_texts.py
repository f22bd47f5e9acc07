"""Text files: lazy store, encodings, id->text lines, atomic writing."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from vixml.data import TextStore, read_texts, write_texts
from vixml.data import texts as texts_module
from vixml.errors import DataError


def test_round_trip_replaces_newlines_and_keeps_unicode(tmp_path):
    texts = ["plain", "two\nlines", "crlf\r\nend", "", "héllo wörld ✓", "tab\there"]
    assert write_texts(tmp_path / "t.txt", texts) == len(texts)
    store = read_texts(tmp_path / "t.txt")
    assert store.encoding == "utf-8" and not store.has_ids
    assert list(store) == ["plain", "two lines", "crlf  end", "", "héllo wörld ✓", "tab\there"]
    assert len(store) == 6
    assert (tmp_path / "t.txt").read_bytes().count(b"\n") == 6


def test_indexing_forms(tmp_path):
    texts = [f"line {i}" for i in range(10)]
    write_texts(tmp_path / "t.txt", texts)
    store = read_texts(tmp_path / "t.txt")
    assert store[3] == "line 3"
    assert store[-1] == "line 9"
    assert store[np.int64(2)] == "line 2"
    assert store[2:5] == texts[2:5]
    assert store[::3] == texts[::3]
    assert store[np.array([7, 0, 7])] == ["line 7", "line 0", "line 7"]
    assert store[[1, -2]] == ["line 1", "line 8"]
    with pytest.raises(IndexError):
        store[10]
    with pytest.raises(IndexError):
        store[[0, 11]]


def test_iteration_crosses_blocks(tmp_path, monkeypatch):
    monkeypatch.setattr(texts_module, "_BLOCK_LINES", 3)
    texts = [f"t{i}" for i in range(10)]
    write_texts(tmp_path / "t.txt", texts)
    store = read_texts(tmp_path / "t.txt")
    assert list(store) == texts
    assert store[1:8] == texts[1:8]


def test_scan_chunks_agree_with_whole_file(tmp_path, monkeypatch):
    monkeypatch.setattr(texts_module, "_CHUNK", 7)  # chunk borders inside lines and inside multi-byte chars
    texts = ["aé" * 5, "", "ü", "plain text here", "ñ" * 9]
    write_texts(tmp_path / "t.txt", texts)
    store = read_texts(tmp_path / "t.txt")
    assert store.encoding == "utf-8"
    assert list(store) == texts


def test_one_invalid_byte_is_an_error_naming_line_and_offset_not_mojibake(tmp_path):
    path = tmp_path / "l.txt"
    path.write_bytes("café ok\n".encode() + b"caf\xe9 cr\xe8me\n")  # line 2 holds a latin-1 byte at offset 12
    with pytest.raises(DataError) as err:
        read_texts(path)
    (problem,) = err.value.problems
    assert (problem.line, problem.field) == (2, "encoding")
    assert "not valid UTF-8 at byte offset 12" in problem.message and "--encoding latin-1" in problem.message
    store = read_texts(path, encoding="latin-1")  # asked for: every byte is a character
    assert (store.encoding, store.encoding_reason) == ("latin-1", "latin-1 (asked)")
    assert list(store) == ["cafÃ© ok", "café crème"]


@pytest.mark.parametrize(
    "folder, name, known",
    [
        ("LF-AmazonTitles-131K", "trn.raw.txt", True),
        ("LF-Amazon-131K", "lbl.raw.txt", True),
        ("lf-amazontitles-1.3M", "tst.raw.txt", True),
        ("MM-AmazonTitles-300K", "trn.raw.txt", True),
        ("AmazonTitles-670K", "lbl.raw.txt", True),
        ("LF-AmazonTitles-131K", "trn_ids.txt", False),  # not one of the text files the XC tooling writes
        ("my-amazon-copy", "trn.raw.txt", False),  # a renamed folder: ask for latin-1 explicitly
        ("LF-WikiSeeAlso-320K", "trn.raw.txt", False),
    ],
)
def test_latin1_only_for_the_known_public_files(tmp_path, folder, name, known):
    path = tmp_path / folder / name
    path.parent.mkdir()
    path.write_bytes("caf\xe9 cr\xe8me\nna\xefve\n".encode("latin-1"))
    if known:
        store = read_texts(path)
        assert store.encoding_reason == "latin-1 (known public XC file)"
        assert list(store) == ["café crème", "naïve"]
    else:
        with pytest.raises(DataError, match="line 1|not valid UTF-8"):
            read_texts(path)
    with pytest.raises(DataError, match="not valid UTF-8"):
        read_texts(path, encoding="utf-8")  # strict even for the known files


def test_utf8_forced_on_latin1_is_a_problem(tmp_path):
    path = tmp_path / "l.txt"
    path.write_bytes("caf\xe9\n".encode("latin-1"))
    with pytest.raises(DataError, match="not valid UTF-8"):
        read_texts(path, encoding="utf-8")


def test_binary_file_is_a_problem_with_line(tmp_path):
    path = tmp_path / "b.txt"
    path.write_bytes(b"ok\nfine\nbad\x00byte\n")
    with pytest.raises(DataError) as err:
        read_texts(path)
    (problem,) = err.value.problems
    assert problem.line == 3 and "NUL" in problem.message and problem.file == str(path)


def test_missing_file_is_a_data_error(tmp_path):
    with pytest.raises(DataError, match="cannot read"):
        read_texts(tmp_path / "absent.txt")


def test_id_text_lines(tmp_path):
    path = tmp_path / "ids.txt"
    path.write_bytes(b"B001->Blue shoes -> size 9\nB002->\nB003->Red hat\n")
    store = read_texts(path)
    assert store.has_ids
    assert list(store) == ["Blue shoes -> size 9", "", "Red hat"]
    assert store[0] == "Blue shoes -> size 9"
    assert next(store.raw_lines()) == "B001->Blue shoes -> size 9"


def test_arrow_inside_plain_titles_is_not_an_id(tmp_path):
    path = tmp_path / "p.txt"
    path.write_bytes(b"USB-C -> HDMI adapter\nplain title\n")
    store = read_texts(path)
    assert not store.has_ids
    assert store[0] == "USB-C -> HDMI adapter"
    assert read_texts(path, layout="id->text")[0] == " HDMI adapter"  # exactly what follows the first ->


def test_last_line_without_newline_crlf_and_bom(tmp_path):
    path = tmp_path / "c.txt"
    path.write_bytes(b"\xef\xbb\xbffirst\r\nsecond\r\nthird")
    store = read_texts(path)
    assert list(store) == ["first", "second", "third"]
    assert store[0] == "first"


def test_empty_file_and_blank_lines(tmp_path):
    (tmp_path / "e.txt").write_bytes(b"")
    assert len(read_texts(tmp_path / "e.txt")) == 0
    (tmp_path / "b.txt").write_bytes(b"\n\nx\n")
    assert list(read_texts(tmp_path / "b.txt")) == ["", "", "x"]


def test_store_pickles_without_its_map(tmp_path):
    write_texts(tmp_path / "t.txt", ["a", "b"])
    store = read_texts(tmp_path / "t.txt")
    assert store[1] == "b"  # opens the map
    clone = pickle.loads(pickle.dumps(store))
    assert isinstance(clone, TextStore) and clone._mm is None
    assert list(clone) == ["a", "b"]


def test_offsets_are_the_only_per_line_memory(tmp_path):
    write_texts(tmp_path / "t.txt", (f"text {i}" for i in range(1000)))
    store = read_texts(tmp_path / "t.txt")
    assert store.offsets.dtype == np.int64 and store.offsets.shape == (1001,)


def test_write_is_atomic_on_failure(tmp_path):
    path = tmp_path / "t.txt"
    write_texts(path, ["old"])

    def broken():
        yield "new"
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        write_texts(path, broken())
    assert path.read_text() == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["t.txt"]
