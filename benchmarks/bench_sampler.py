"""Training-batch construction: one epoch of EpochBatchSampler against the reference's per-query code.

The reference (ViXML ``utils.py``) draws each query's positive with ``np.random.choice`` in ``__getitem__`` and
builds each batch's targets as a scipy product ``Y[batch] @ onehot(labels).T``. We time both per 100K queries
on the same power-law label matrix; the peer runs on a slice of the epoch and is scaled.

Usage: ``python benchmarks/bench_sampler.py [--quick]``.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import scipy.sparse as sp

from timing import timed
from vixml.training.sampler import EpochBatchSampler


def _power_law_labels(n: int, num_labels: int, mean_degree: float, seed: int) -> sp.csr_matrix:
    """(n, L) binary matrix with Zipf-like label frequencies (a few head labels, a long tail)."""
    rng = np.random.default_rng(seed)
    degrees = np.maximum(rng.poisson(mean_degree, n), 1)
    popularity = 1.0 / np.arange(1, num_labels + 1) ** 0.9
    cols = rng.choice(num_labels, size=int(degrees.sum()), p=popularity / popularity.sum())
    rows = np.repeat(np.arange(n), degrees)
    y = sp.csr_matrix((np.ones(cols.shape[0], np.float32), (rows, cols)), shape=(n, num_labels))
    y.sum_duplicates()
    y.data[:] = 1.0
    return y


def _reference_epoch_slice(y: sp.csr_matrix, weights: np.ndarray, batch_size: int, num_batches: int) -> None:
    """The reference's per-query sampling and scipy target product, for ``num_batches`` batches."""
    rng = np.random.default_rng(0)
    order = rng.permutation(y.shape[0])
    for b in range(num_batches):
        rows = order[b * batch_size : (b + 1) * batch_size]
        picked = []
        for r in rows:
            pos = y.indices[y.indptr[r] : y.indptr[r + 1]]
            p = weights[pos]
            picked.append(rng.choice(pos, p=p / p.sum()))
        onehot = sp.csr_matrix(
            (np.ones(len(picked), bool), (np.array(picked), np.arange(len(picked)))), shape=(y.shape[1], len(picked))
        )
        _ = (y[rows] @ onehot).toarray()


def run(quick: bool = False) -> dict:
    n, num_labels = (100_000, 50_000) if quick else (1_000_000, 500_000)
    batch_size, repeats = 2048, 3
    y = _power_law_labels(n, num_labels, mean_degree=5.0, seed=0)
    per_100k = 100_000 / n
    figures: dict = {"queries": n, "labels": num_labels, "nnz": int(y.nnz), "batch_size": batch_size}

    start = time.perf_counter()
    sampler = EpochBatchSampler(y, batch_size, seed=0, positive_sampling="inverse_propensity")
    figures["init_s"] = round(time.perf_counter() - start, 3)

    epoch = iter(range(10**6))
    # The first batch costs the epoch's order and every query's positive; targets are built batch by batch.
    figures["epoch_first_batch_s_per_100k"] = (
        timed(lambda: next(sampler.epoch_batches(next(epoch))), repeats).wall * per_100k
    )
    figures["epoch_random_s_per_100k"] = (
        timed(lambda: sum(1 for _ in sampler.epoch_batches(next(epoch))), repeats).wall * per_100k
    )
    sampler.set_clusters(np.array_split(np.random.default_rng(1).permutation(n), n // 16), cluster_size=16)
    figures["epoch_clustered_s_per_100k"] = (
        timed(lambda: sum(1 for _ in sampler.epoch_batches(next(epoch))), repeats).wall * per_100k
    )

    counts = np.bincount(y.indices, minlength=num_labels)
    c = (np.log(n) - 1) * 3.6**0.6
    weights = 1 + c * (counts + 2.6) ** -0.6
    ref_batches = 2 if quick else 5
    ref = timed(lambda: _reference_epoch_slice(y, weights, batch_size, ref_batches), 1).wall
    figures["reference_epoch_s_per_100k"] = ref * 100_000 / (ref_batches * batch_size)
    figures["speedup_vs_reference"] = figures["reference_epoch_s_per_100k"] / figures["epoch_random_s_per_100k"]
    return {k: round(v, 4) if isinstance(v, float) else v for k, v in figures.items()}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    print(json.dumps(run(parser.parse_args().quick), indent=2))
