"""Label matrices: text and npz round trips, the numba fast path against the careful pass, every defect named."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from vixml.data import labels as labels_module
from vixml.data import read_label_matrix, write_label_matrix
from vixml.errors import DataError


@pytest.fixture(params=["careful", "fast"])
def path_kind(request, monkeypatch):
    """Run a test through the Python pass and through the numba kernels (thresholds forced to 0)."""
    if request.param == "fast":
        monkeypatch.setattr(labels_module, "_FAST_MIN_BYTES", 0)
        monkeypatch.setattr(labels_module, "_FAST_MIN_NNZ", 0)
    return request.param


def _random(n_rows=50, n_cols=30, seed=0):
    rng = np.random.default_rng(seed)
    y = sp.random(n_rows, n_cols, density=0.1, format="csr", dtype=np.float32, random_state=seed)
    y.data = rng.choice(np.float32([1.0, 0.5, 0.1, 2.25, 1e-5, 3.5e20, -0.75]), size=y.nnz)
    y.data[y.indptr[3] : y.indptr[4]] = 0  # an empty row
    y.eliminate_zeros()
    return y


def test_hand_written_file(tmp_path, path_kind):
    path = tmp_path / "y.txt"
    path.write_text("3 4\n2:1 0:0.5\n\n3:1.5e-1\n")
    y = read_label_matrix(path)
    assert y.dtype == np.float32 and y.shape == (3, 4)
    expected = np.array([[0.5, 0, 1, 0], [0, 0, 0, 0], [0, 0, 0, 0.15]], dtype=np.float32)
    np.testing.assert_array_equal(y.toarray(), expected)
    assert y.has_sorted_indices


def test_fast_parser_accepts_good_files_and_rejects_each_defect(tmp_path):
    good = tmp_path / "good.txt"
    good.write_text("3 4\n2:1 0:0.5\n\n3:1.5e-1 1:-2E+1\n\n")
    header = labels_module._read_header(good)
    y = labels_module._parse_fast(good, *header)
    assert y is not None  # the kernel itself parsed it (no fallback)
    np.testing.assert_allclose(y.toarray(), [[0.5, 0, 1, 0], [0, 0, 0, 0], [0, -20, 0, 0.15]])
    for body in (
        "0:1 x\n\n\n",
        "4:1\n\n\n",
        "1:1 1:2\n\n\n",
        "1:nan\n\n\n",
        "1:\n\n\n",
        "\n\n",
        "\n\n\n1:1\n",
        "-1:1\n\n\n",
        "1:1e\n\n\n",
        "1:1.5x\n\n\n",
        "1:1e999\n\n\n",
    ):
        bad = tmp_path / "bad.txt"
        bad.write_text("3 4\n" + body)
        assert labels_module._parse_fast(bad, *labels_module._read_header(bad)) is None, body


def test_text_round_trip(tmp_path, path_kind):
    y = _random()
    write_label_matrix(tmp_path / "y.txt", y)
    back = read_label_matrix(tmp_path / "y.txt")
    assert back.shape == y.shape
    np.testing.assert_array_equal(back.toarray(), y.toarray())
    assert (tmp_path / "y.txt").read_text().splitlines()[4] == ""  # the empty row is an empty line


def test_fast_and_python_writers_write_the_same_bytes(tmp_path, monkeypatch):
    y = _random(200, 40, seed=3)
    write_label_matrix(tmp_path / "python.txt", y)
    monkeypatch.setattr(labels_module, "_FAST_MIN_NNZ", 0)
    monkeypatch.setattr(labels_module, "_WRITE_BLOCK_NNZ", 17)  # many blocks
    write_label_matrix(tmp_path / "fast.txt", y)
    assert (tmp_path / "python.txt").read_bytes() == (tmp_path / "fast.txt").read_bytes()


def test_npz_round_trip(tmp_path):
    y = _random()
    write_label_matrix(tmp_path / "y.npz", y)
    back = read_label_matrix(tmp_path / "y.npz")
    assert back.dtype == np.float32
    np.testing.assert_array_equal(back.toarray(), y.toarray())


def test_values_format_shortest_and_exact():
    fmt = labels_module.format_value
    assert [fmt(v) for v in (1.0, 0.5, 0.1, -0.0, 1e-5, 3.5e20)] == ["1", "0.5", "0.1", "0", "1e-05", "3.5e+20"]
    for v in np.float32([0.1, 1 / 3, 1e-7, 123456.7]):
        assert np.float32(float(fmt(v))) == v


def test_unsorted_rows_are_sorted(tmp_path, path_kind):
    path = tmp_path / "y.txt"
    path.write_text("2 5\n4:1 1:2 3:3\n0:1\n")
    y = read_label_matrix(path)
    assert y.indices.tolist() == [1, 3, 4, 0]
    assert y.data.tolist() == [2.0, 3.0, 1.0, 1.0]


def test_whitespace_variants_and_trailing_blank_lines(tmp_path, path_kind):
    path = tmp_path / "y.txt"
    path.write_bytes(b"2 3\r\n 0:1\t2:1 \r\n1:+1.\r\n\n\n")
    y = read_label_matrix(path)
    np.testing.assert_array_equal(y.toarray(), [[1, 0, 1], [0, 1, 0]])


def test_every_defect_is_listed_with_its_line(tmp_path, path_kind):
    path = tmp_path / "bad.txt"
    path.write_text(
        "4 5\n"
        "0:1 1:1\n"  # 2: fine
        "0:1 oops 2:1\n"  # 3: bad token
        "7:1 -1:1 3:x 4:nan\n"  # 4: out of range, negative, non-numeric, non-finite
        "2:1 2:0.5\n"  # 5: duplicate
        "1:1\n"  # 6: a fifth row
    )
    with pytest.raises(DataError) as err:
        read_label_matrix(path)
    found = {(p.line, p.field) for p in err.value.problems}
    assert found == {(3, "token"), (4, "label"), (4, "value"), (5, "label"), (6, None)}
    messages = " | ".join(p.message for p in err.value.problems)
    for needle in (
        "bad token 'oops'",
        "label id 7 out of range",
        "negative label id -1",
        "non-numeric",
        "non-finite",
        "duplicate label 2",
        "beyond the 4",
    ):
        assert needle in messages
    assert all(p.file == str(path) for p in err.value.problems)


def test_too_few_rows_and_bad_header(tmp_path, path_kind):
    few = tmp_path / "few.txt"
    few.write_text("3 2\n0:1\n1:1\n")
    with pytest.raises(DataError) as err:
        read_label_matrix(few)
    (problem,) = err.value.problems
    assert problem.line == 1 and "says 3 rows but the file has 2" in problem.message
    headerless = tmp_path / "headerless.txt"
    headerless.write_text("0:1 1:1\n1:1\n")
    with pytest.raises(DataError, match="missing header"):
        read_label_matrix(headerless)
    bad = tmp_path / "badheader.txt"
    bad.write_text("3 x\n0:1\n")
    with pytest.raises(DataError, match="bad header"):
        read_label_matrix(bad)


def test_npz_defects(tmp_path):
    with pytest.raises(DataError, match="not found"):
        read_label_matrix(tmp_path / "absent.npz")
    np.savez(tmp_path / "junk.npz", a=np.arange(3))
    with pytest.raises(DataError, match="not a scipy sparse"):
        read_label_matrix(tmp_path / "junk.npz")
    y = sp.csr_matrix((np.float32([1, np.nan, 2]), np.array([0, 1, 1]), np.array([0, 1, 3])), shape=(2, 3))
    sp.save_npz(tmp_path / "nan_dup.npz", y)
    with pytest.raises(DataError) as err:
        read_label_matrix(tmp_path / "nan_dup.npz")
    text = str(err.value)
    assert "non-finite" in text and "duplicate label 1 in row 1" in text


def test_writer_refuses_non_finite_and_sums_duplicates(tmp_path):
    with pytest.raises(DataError, match="non-finite"):
        write_label_matrix(tmp_path / "y.txt", sp.csr_matrix(np.array([[np.inf, 1.0]])))
    coo = sp.coo_matrix((np.float32([1, 2]), ([0, 0], [1, 1])), shape=(1, 2))
    write_label_matrix(tmp_path / "y.txt", coo)
    assert (tmp_path / "y.txt").read_text() == "1 2\n1:3\n"


def test_large_file_takes_the_fast_path(tmp_path):
    rng = np.random.default_rng(1)
    n_rows, n_cols = 30_000, 5_000
    y = sp.random(n_rows, n_cols, density=8 / n_cols, format="csr", dtype=np.float32, random_state=rng)
    y.data[:] = 1
    write_label_matrix(tmp_path / "big.txt", y)
    assert (tmp_path / "big.txt").stat().st_size >= labels_module._FAST_MIN_BYTES
    back = read_label_matrix(tmp_path / "big.txt")
    assert back.shape == y.shape and (back != y).nnz == 0
