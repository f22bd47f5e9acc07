"""Dataset loading: a 1.3M-row label file (LF-AmazonTitles-1.3M scale) and a 1.3M-line text file.

Label file: ``read_label_matrix`` (numba kernel over the memory-mapped bytes) against a plain Python reader
(``line.split()`` + ``int``/``float`` per token, as XC scripts without pyxclib's extension do; run on a
tenth of the rows and compared per row) and against ``scipy.sparse.load_npz`` of the same matrix. Texts:
``read_texts`` (offset index + lazy decode) against ``readlines`` into a Python list, with the memory each
keeps. The full file has 1.3M rows with a mean of 22 labels (about 29M entries, as LF-AmazonTitles-1.3M).

Usage: ``python benchmarks/bench_data.py [--quick]``.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from timing import timed
from vixml.data import labels as labels_module
from vixml.data import read_label_matrix, read_texts, write_label_matrix, write_texts


def _labels(n_rows: int, n_labels: int, mean_degree: float, seed: int = 0) -> sp.csr_matrix:
    """(n_rows, n_labels) with Poisson row degrees and Zipf-like label popularity."""
    rng = np.random.default_rng(seed)
    degrees = np.maximum(rng.poisson(mean_degree, n_rows), 1)
    popularity = 1.0 / np.arange(1, n_labels + 1) ** 0.6
    cdf = np.cumsum(popularity / popularity.sum())
    cols = rng.permutation(n_labels)[np.minimum(np.searchsorted(cdf, rng.random(int(degrees.sum()))), n_labels - 1)]
    rows = np.repeat(np.arange(n_rows), degrees)
    y = sp.csr_matrix((np.ones(cols.size, np.float32), (rows, cols)), shape=(n_rows, n_labels))
    y.sum_duplicates()
    y.data[:] = 1.0
    return y


def _python_reader(path: Path) -> sp.csr_matrix:
    """The peer: a line-by-line Python parser of the sparse text format."""
    with open(path) as fh:
        n_rows, n_cols = map(int, fh.readline().split())
        indptr, indices, data = [0], [], []
        for line in fh:
            for token in line.split():
                label, value = token.split(":")
                indices.append(int(label))
                data.append(float(value))
            indptr.append(len(indices))
    return sp.csr_matrix((np.asarray(data, np.float32), indices, indptr), shape=(n_rows, n_cols))


def run(quick: bool) -> dict:
    n_rows = 130_000 if quick else 1_300_000
    n_labels = 1_300_000
    repeats = 3
    figures: dict = {"label_rows": n_rows}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        y = _labels(n_rows, n_labels, 22.0)
        figures["label_nnz"] = int(y.nnz)
        figures["mean_labels_per_row"] = round(y.nnz / n_rows, 1)
        start = time.perf_counter()
        write_label_matrix(tmp / "y.txt", y)
        figures["labels_write_txt_s"] = round(time.perf_counter() - start, 3)
        figures["labels_txt_mb"] = round((tmp / "y.txt").stat().st_size / 2**20, 1)
        write_label_matrix(tmp / "y.npz", y)
        assert (tmp / "y.txt").stat().st_size >= labels_module._FAST_MIN_BYTES
        back = read_label_matrix(tmp / "y.txt")  # warm-up: numba compile / cache load
        assert back.shape == y.shape and back.nnz == y.nnz
        fast = timed(lambda: read_label_matrix(tmp / "y.txt"), repeats).wall
        npz = timed(lambda: read_label_matrix(tmp / "y.npz"), repeats).wall
        tenth = max(1000, n_rows // 10)
        write_label_matrix(tmp / "y_tenth.txt", y[:tenth])
        python = timed(lambda: _python_reader(tmp / "y_tenth.txt"), repeats).wall * (n_rows / tenth)
        figures |= {
            "labels_read_txt_s": round(fast, 3),
            "labels_read_npz_s": round(npz, 3),
            "labels_python_reader_s_scaled": round(python, 2),
            "labels_speedup_vs_python": round(python / fast, 1),
            "labels_txt_vs_npz_ratio": round(fast / npz, 2),
            "labels_read_mb_per_s": round(figures["labels_txt_mb"] / fast, 1),
        }
        del y, back

        n_lines = 130_000 if quick else 1_300_000
        rng = np.random.default_rng(1)
        words = np.array(["wireless", "case", "blue", "for", "kids", "set", "pack", "usb", "steel", "garden"])
        write_texts(tmp / "lbl.raw.txt", (" ".join(rng.choice(words, 6)) for _ in range(n_lines)))
        store = read_texts(tmp / "lbl.raw.txt")
        open_s = timed(lambda: read_texts(tmp / "lbl.raw.txt"), repeats).wall
        picks = rng.integers(0, n_lines, 10_000)
        access = timed(lambda: store[picks], repeats).wall
        iterate = timed(lambda: sum(1 for _ in store), 1).wall

        def readlines():
            with open(tmp / "lbl.raw.txt", encoding="utf-8") as fh:
                return fh.read().splitlines()

        lines = readlines()
        list_mb = (sys.getsizeof(lines) + sum(sys.getsizeof(s) for s in lines)) / 2**20
        peer_open = timed(readlines, repeats).wall
        figures |= {
            "text_lines": n_lines,
            "texts_open_s": round(open_s, 3),
            "texts_readlines_peer_s": round(peer_open, 3),
            "texts_open_vs_readlines_ratio": round(open_s / peer_open, 2),
            "texts_random_access_us_per_line": round(access / len(picks) * 1e6, 2),
            "texts_iterate_s": round(iterate, 3),
            "texts_index_mb": round(store.offsets.nbytes / 2**20, 1),
            "texts_python_list_mb_peer": round(list_mb, 1),
        }
        store.close()
    return figures


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    print(json.dumps(run(parser.parse_args().quick), indent=2))
