"""vixml.data.footprint: label-file shapes from headers, byte counts of the readers, upper bounds of the peaks."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest
import scipy.sparse as sp

from support_data import make_dataset
from vixml.data import dataset_stats, footprint, read_label_matrix, write_label_matrix
from vixml.data import labels as labels_module
from vixml.data.footprint import csr_bytes, evaluate_need, folder_need, matrix_shape, prepare_need, stats_need
from vixml.data.validate import validate_dataset
from vixml.memory_fit import BASE_BYTES


def _matrix(n_rows=300, n_cols=50, seed=0) -> sp.csr_matrix:
    rng = np.random.default_rng(seed)
    y = sp.random(n_rows, n_cols, density=0.1, random_state=rng, format="csr", dtype=np.float32)
    y.data[:] = rng.choice([1.0, 0.5, 0.25], size=y.nnz)
    return y


@pytest.mark.parametrize("suffix", [".txt", ".npz"])
def test_shape_and_entries_come_from_the_header(tmp_path, suffix):
    y = _matrix()
    write_label_matrix(tmp_path / f"y{suffix}", y)
    shape = matrix_shape(tmp_path / f"y{suffix}")
    assert (shape.n_rows, shape.n_cols, shape.nnz) == (300, 50, y.nnz)
    assert shape.kind == {".txt": "text", ".npz": "npz"}[suffix]
    assert f"y{suffix} (300 x 50, {y.nnz:,} entries)" in shape.describe()


def test_files_without_a_header_have_no_shape(tmp_path):
    (tmp_path / "bad.txt").write_text("1:1 2:1\n")
    (tmp_path / "bad.npz").write_bytes(b"PK\x03\x04 truncated")
    assert matrix_shape(tmp_path / "bad.txt") is None
    assert matrix_shape(tmp_path / "bad.npz") is None
    assert matrix_shape(tmp_path / "missing.txt") is None
    assert matrix_shape(None) is None


@pytest.mark.parametrize("suffix", [".txt", ".npz"])
def test_csr_bytes_are_what_the_reader_holds(tmp_path, suffix, monkeypatch):
    monkeypatch.setattr(labels_module, "_FAST_MIN_BYTES", 0)  # the numba parser, as for large files
    write_label_matrix(tmp_path / f"y{suffix}", _matrix())
    y = read_label_matrix(tmp_path / f"y{suffix}")
    assert y.data.nbytes + y.indices.nbytes + y.indptr.nbytes == csr_bytes(*y.shape, y.nnz)
    assert csr_bytes(10, 10, 3) == 8 * 3 + 4 * 11  # by hand: float32 + int32 per entry, int32 per row + 1


def test_needs_grow_with_the_matrices(tmp_path):
    small = make_dataset(tmp_path / "small", n_train=40, n_test=12, n_labels=20)
    large = make_dataset(tmp_path / "large", n_train=400, n_test=120, n_labels=20, max_labels=8)
    for need in (folder_need, stats_need, prepare_need):
        assert BASE_BYTES < need(small)[0] < need(large)[0]
    assert folder_need(large)[0] < stats_need(large)[0] < prepare_need(large)[0]
    trn = matrix_shape(large / "trn_X_Y.txt")
    assert stats_need(large)[0] - folder_need(large)[0] == csr_bytes(20, 400, trn.nnz) + 24 * 20  # the CSC


@pytest.fixture(scope="module")
def mid_dataset(tmp_path_factory):
    """20,000 x 3,000 labels (about 90k entries): the data, not the constants, is most of the estimate."""
    return make_dataset(tmp_path_factory.mktemp("mid") / "data", n_train=20_000, n_test=5_000, n_labels=3_000,
                        max_labels=8)  # fmt: skip


def _traced_peak(fn, *args) -> int:
    tracemalloc.start()
    try:
        fn(*args)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize(("what", "need"), [(validate_dataset, folder_need), (dataset_stats, stats_need)])
def test_estimates_bound_the_peak_of_the_allocations(mid_dataset, monkeypatch, what, need):
    """Every numpy and Python allocation (tracemalloc sees both), measured: under the estimate less the base."""
    monkeypatch.setattr(labels_module, "_FAST_MIN_BYTES", 0)
    what(mid_dataset)  # numba's compilation (or cache loading) is counted in the base, not here
    peak = _traced_peak(what, mid_dataset)
    data_part = need(mid_dataset)[0] - BASE_BYTES
    assert peak <= data_part, (peak, data_part)


def test_evaluate_estimate_bounds_the_metrics(mid_dataset, tmp_path, monkeypatch):
    from vixml.cli.main import main

    monkeypatch.setattr(labels_module, "_FAST_MIN_BYTES", 0)
    rng = np.random.default_rng(0)
    ids = np.stack([rng.choice(3_000, 100, replace=False) for _ in range(5_000)])
    pred = sp.csr_matrix((rng.random(ids.size, dtype=np.float32), ids.ravel(), np.arange(0, ids.size + 1, 100)),
                         shape=(5_000, 3_000))  # fmt: skip
    write_label_matrix(tmp_path / "pred.npz", pred)
    args = ["evaluate", "--pred", str(tmp_path / "pred.npz"), "--data", str(mid_dataset), "--json"]
    assert main(args) == 0  # compiles (or loads) the metric kernels: numba's own memory, counted in the base
    peak = _traced_peak(main, args)
    need, what = evaluate_need(tmp_path / "pred.npz", mid_dataset / "tst_X_Y.txt", mid_dataset / "trn_X_Y.txt", 100)
    assert peak <= need - BASE_BYTES, (peak, need - BASE_BYTES)
    assert "pred.npz (5,000 x 3,000, 0.5M entries)" in what


def test_a_text_label_file_is_counted_once_per_version(tmp_path, monkeypatch):
    """A command checks the folder, then load_dataset checks it again: the entries are counted once, and
    again only when the file changes."""
    path = tmp_path / "trn_X_Y.txt"
    path.write_text("2 5\n0:1 3:1\n4:1\n")
    calls = []
    original = footprint._text_shape
    monkeypatch.setattr(footprint, "_text_shape", lambda p: calls.append(p) or original(p))
    footprint._shape.cache_clear()
    assert footprint.matrix_shape(path).nnz == 3
    assert footprint.matrix_shape(path).nnz == 3 and len(calls) == 1
    path.write_text("2 5\n0:1 3:1\n2:1 4:1\n")
    assert footprint.matrix_shape(path).nnz == 4 and len(calls) == 2
