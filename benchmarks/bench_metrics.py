"""Benchmark of vixml.metrics.evaluate on an XMC-scale prediction matrix, against the pyxclib-style numpy peer.

Workload: n queries (1M; 100K with --quick) x top-100 predictions over 1M labels, ~5 true labels per
query of which 2 are among the predictions. ``evaluate`` runs on the canonical CSR form (what
``vixml predict`` writes), on the dense ``(scores, indices)`` form (what a top-k search returns) and with
one filter pair per query. The peer is the transcription of pyxclib's ``Metrics.eval`` + recall
(vixml.testing.reference_metrics, top-k by one vectorised numpy sort) on a subset of the rows (100K; 20K
quick), scaled linearly to n. Times are medians of 3 repeats; the first call, which compiles the numba
kernel or loads it from numba's on-disk cache, is timed apart (``first_call_s``), and so is a compilation
from an empty cache in a fresh process (``compile_cold_s``).

Usage: ``python benchmarks/bench_metrics.py [--quick]``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np
import scipy.sparse as sp

from timing import timed

N_LABELS = 1_000_000
WIDTH = 100
TRUE_PER_ROW = 5


def make_data(n: int, seed: int = 0):
    """Truth (n, L) CSR and top-WIDTH predictions as dense (scores, indices) with distinct labels per row."""
    rng = np.random.default_rng(seed)
    start = rng.integers(0, N_LABELS, size=(n, 1))
    stride = rng.integers(1, N_LABELS // WIDTH, size=(n, 1))  # j * stride < L: distinct labels per row
    indices = ((start + np.arange(WIDTH) * stride) % N_LABELS).astype(np.int64)
    scores = rng.random((n, WIDTH), dtype=np.float32)
    planted = indices[:, [3, 40]]  # two true labels among the predictions, three elsewhere
    labels = np.concatenate([planted, rng.integers(0, N_LABELS, size=(n, TRUE_PER_ROW - 2))], axis=1)
    true = sp.csr_matrix(
        (np.ones(labels.size, np.float32), labels.ravel(), np.arange(n + 1) * TRUE_PER_ROW), shape=(n, N_LABELS)
    )
    true.sum_duplicates()
    return true, scores, indices


def to_csr(scores: np.ndarray, indices: np.ndarray) -> sp.csr_matrix:
    n = scores.shape[0]
    pred = sp.csr_matrix(
        (scores.ravel(), indices.ravel().astype(np.int32), np.arange(n + 1) * WIDTH), shape=(n, N_LABELS)
    )
    pred.sort_indices()
    return pred


_COLD = """
import time, numpy as np, scipy.sparse as sp
from vixml.metrics import evaluate
true = sp.random(50, 20, density=0.2, format="csr", random_state=0, dtype=np.float32)
pred = sp.random(50, 20, density=0.3, format="csr", random_state=1, dtype=np.float32)
dense = (np.ones((50, 3), np.float32), np.tile(np.arange(3), (50, 1)))
start = time.perf_counter()
evaluate(true, pred)
evaluate(true, dense)
print(time.perf_counter() - start)
"""


def cold_compile_seconds() -> float:
    """Compile time of the two common kernel signatures (CSR f32/i32, dense f32/i64) with an empty numba cache."""
    with tempfile.TemporaryDirectory() as cache:
        env = {**os.environ, "NUMBA_CACHE_DIR": cache}
        done = subprocess.run([sys.executable, "-c", _COLD], env=env, capture_output=True, text=True, check=True)
    return float(done.stdout.split()[-1])


def run(quick: bool) -> dict:
    import numba

    from vixml.metrics import _kernels, evaluate
    from vixml.testing import reference_metrics as ox

    n = 100_000 if quick else 1_000_000
    n_peer = 20_000 if quick else 100_000
    true, scores, indices = make_data(n)
    pred = to_csr(scores, indices)
    pairs = np.stack([np.arange(n), indices[:, 0]], axis=1)  # one filter pair per query (its top prediction)

    small = slice(0, 1000)
    start = time.perf_counter()
    evaluate(true[small], pred[small], k=5)
    evaluate(true[small], (scores[small], indices[small]), k=5)
    compile_s = time.perf_counter() - start
    cache_hits = sum(_kernels.accumulate.stats.cache_hits.values())

    out = {"queries": n, "labels": N_LABELS, "top": WIDTH, "threads": numba.get_num_threads()}
    out["first_call_s"] = round(compile_s, 2)
    out["first_call_from_cache"] = cache_hits > 0
    out["compile_cold_s"] = round(cold_compile_seconds(), 1)
    out["evaluate_csr_s"] = round(timed(lambda: evaluate(true, pred, k=5)).wall, 3)
    out["evaluate_dense_s"] = round(timed(lambda: evaluate(true, (scores, indices), k=5)).wall, 3)
    out["evaluate_filtered_s"] = round(timed(lambda: evaluate(true, pred, k=5, filter=pairs)).wall, 3)

    peer_true, peer_pred = true[:n_peer], pred[:n_peer]
    inv = ox.compute_inv_propesity(peer_true, 0.55, 1.5)
    peer_s = timed(lambda: ox.all_metrics(peer_pred, peer_true, inv, k=5)).wall * (n / n_peer)
    out["peer_rows_measured"] = n_peer
    out["peer_pyxclib_numpy_s"] = round(peer_s, 2)
    out["speedup_vs_peer"] = round(peer_s / out["evaluate_csr_s"], 1)

    ours = evaluate(peer_true, peer_pred, k=5, train=peer_true)  # same numbers as the peer, to the 1e-6
    ref = ox.all_metrics(peer_pred, peer_true, inv, k=5)
    out["max_abs_diff_vs_peer"] = float(
        max(abs(ours[f"{name}@{j + 1}"] - ref[i][j]) for i, name in enumerate(("P", "nDCG", "PSP", "PSnDCG", "R"))
            for j in range(5))
    )  # fmt: skip
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="100K queries instead of 1M")
    args = parser.parse_args()
    print(json.dumps(run(args.quick), indent=2))


if __name__ == "__main__":
    main()
