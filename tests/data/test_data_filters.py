"""Filter files: round trip, empty/missing files, malformed lines and out-of-range pairs with line numbers."""

from __future__ import annotations

import numpy as np
import pytest

from vixml.data import read_filter, write_filter
from vixml.data.filters import check_filter, filter_problems
from vixml.errors import DataError


def test_round_trip(tmp_path):
    pairs = np.array([[0, 5], [3, 1], [3, 2]], dtype=np.int64)
    write_filter(tmp_path / "f.txt", pairs)
    assert (tmp_path / "f.txt").read_text() == "0 5\n3 1\n3 2\n"
    back = read_filter(tmp_path / "f.txt")
    assert back.dtype == np.int64
    np.testing.assert_array_equal(back, pairs)


def test_empty_and_missing_files_give_no_pairs(tmp_path):
    write_filter(tmp_path / "empty.txt", np.zeros((0, 2)))
    assert (tmp_path / "empty.txt").read_bytes() == b""
    for path in (tmp_path / "empty.txt", tmp_path / "absent.txt"):
        pairs = read_filter(path)
        assert pairs.shape == (0, 2) and pairs.dtype == np.int64
    (tmp_path / "blank.txt").write_text("\n  \n")
    assert read_filter(tmp_path / "blank.txt").shape == (0, 2)


def test_blank_lines_and_spacing_are_tolerated(tmp_path):
    (tmp_path / "f.txt").write_text("1 2\n\n 3\t4 \r\n5 6")
    np.testing.assert_array_equal(read_filter(tmp_path / "f.txt"), [[1, 2], [3, 4], [5, 6]])


def test_malformed_lines_are_all_listed(tmp_path):
    (tmp_path / "f.txt").write_text("1 2\n3\n4 x\n-1 2\n5 6 7\n8 9\n")
    with pytest.raises(DataError) as err:
        read_filter(tmp_path / "f.txt")
    assert [p.line for p in err.value.problems] == [2, 3, 4, 5]


def test_out_of_range_pairs_name_their_line(tmp_path):
    (tmp_path / "f.txt").write_text("0 1\n\n9 1\n1 7\n2 2\n")
    problems = filter_problems(tmp_path / "f.txt", n_rows=3, n_labels=5)
    assert [(p.line, p.field) for p in problems] == [(3, "row"), (4, "label")]
    assert "row 9 out of range [0, 3)" in problems[0].message


def test_check_filter_without_bounds_checks_nothing():
    assert check_filter(np.array([[10**9, 10**9]]), None, None, "f") == []
