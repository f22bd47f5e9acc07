"""Balanced hierarchical 2-means: NGAME query banks and PRIME label -> free-vector maps.

Figures (seconds are medians over repeats, numba already compiled):
* ``ngame_*``: N x 384 query embeddings into clusters of 16 (N = 1M; quick: 100K).
* ``prime_*``: 1.3M x 768 label embeddings into 65,536 clusters (quick: 200K into 65,536 * 200K / 1.3M).
* ``peer_*``: the reference algorithm written plainly (numpy, node by node, as ``b_kmeans_dense`` in
  NGAME / ViXML, in one process whose BLAS uses every core; the reference spreads nodes over a process
  pool) on 100K x 384 (quick: 20K), against ours on the same points: the speed ratio, and the mean cosine
  of points to their cluster mean for both (same algorithm, so about equal).

Points are synthetic embeddings with structure: 4,096 random directions plus uniform noise.

Run: ``python benchmarks/bench_clustering.py [--quick]``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

_REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(_REPO / "src"))

from timing import timed  # noqa: E402
from vixml.testing.reference_clustering import mean_cosine, reference_balanced_kmeans  # noqa: E402
from vixml.training.clustering import balanced_kmeans  # noqa: E402

__all__ = ["run"]


def _embeddings(n: int, d: int, seed: int = 0, n_centres: int = 4096, noise: float = 1.5) -> np.ndarray:
    """(n, d) float32: a random centre per point plus uniform noise (cheap to draw at millions of points)."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((n_centres, d), dtype=np.float32)
    x = centres[rng.integers(0, n_centres, size=n)]
    step = 1 << 16
    for lo in range(0, n, step):  # noise in slices: no second (n, d) temporary
        block = x[lo : lo + step]
        block += (rng.random(block.shape, dtype=np.float32) - 0.5) * (2.0 * noise)
    return x


def _time(fn, repeats: int) -> tuple[float, float, object]:
    """Median wall and CPU (all threads) seconds of ``fn()`` and its result (one run fewer when slow)."""
    t = timed(fn, repeats, slow_after=30.0)
    return t.wall, t.cpu, t.result


def run(quick: bool) -> dict:
    """Measure the three cases; returns a flat dict of figures."""
    balanced_kmeans(_embeddings(512, 8), cluster_size=16)  # load / compile the kernels outside the timings
    res: dict = {}

    n = 100_000 if quick else 1_000_000
    x = _embeddings(n, 384, seed=1)
    sec, cpu, a = _time(lambda: balanced_kmeans(x, cluster_size=16), 3)
    res.update(
        ngame_points=n,
        ngame_dim=384,
        ngame_clusters=a.num_clusters,
        ngame_min_size=int(a.sizes().min()),
        ngame_max_size=int(a.sizes().max()),
        ngame_seconds=round(sec, 3),
        ngame_cpu_seconds=round(cpu, 3),
    )
    del x, a

    n_lab = 200_000 if quick else 1_300_000
    k = 65_536 if not quick else round(65_536 * n_lab / 1_300_000)
    x = _embeddings(n_lab, 768, seed=2)
    sec, cpu, a = _time(lambda: balanced_kmeans(x, num_clusters=k), 1 if not quick else 2)
    res.update(
        prime_points=n_lab,
        prime_dim=768,
        prime_clusters=a.num_clusters,
        prime_min_size=int(a.sizes().min()),
        prime_max_size=int(a.sizes().max()),
        prime_seconds=round(sec, 3),
        prime_cpu_seconds=round(cpu, 3),
    )
    del x, a

    n_peer = 20_000 if quick else 100_000
    x = _embeddings(n_peer, 384, seed=3)
    ours_sec, _, ours = _time(lambda: balanced_kmeans(x, cluster_size=16), 3)
    ref_sec, _, ref = _time(lambda: reference_balanced_kmeans(x, cluster_size=16), 1)
    res.update(
        peer_points=n_peer,
        peer_ours_seconds=round(ours_sec, 3),
        peer_reference_seconds=round(ref_sec, 3),
        peer_speedup=round(ref_sec / ours_sec, 1),
        peer_ours_mean_cosine=round(mean_cosine(x, ours.clusters()), 4),
        peer_reference_mean_cosine=round(mean_cosine(x, ref), 4),
    )
    return res


if __name__ == "__main__":
    print(json.dumps(run("--quick" in sys.argv[1:]), indent=2))
