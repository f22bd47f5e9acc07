"""Balanced hierarchical 2-means: NGAME's query clusters and PRIME's label -> free-vector map (docs/method.md 4).

NGAME clusters the epoch's bank of query embeddings into groups of ``cluster_size`` similar queries and fills
each batch with whole groups, so that the in-batch negatives are hard. PRIME maps each label to one of
65,536 free vectors by the same clustering of the initial label embeddings. Both use the reference
``b_kmeans_dense`` recursion: every node is split in two halves whose sizes differ by at most one, by a
spherical 2-means whose assignment step is a median split of cosine(c1) - cosine(c0).

The tree is built level by level, never node by node in Python: a permutation of the point ids keeps every
node a contiguous range, the few huge nodes of the top levels are split one at a time with parallel kernels,
and the many small nodes of the deeper levels are split in one numba call, one node per thread (a small
node stays in cache for all its iterations). The (N, d) input is read in place: neither normalised into a
copy nor gathered.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from vixml.errors import ConfigError, DataError, Problem

if TYPE_CHECKING:
    import torch

__all__ = ["ClusterAssignment", "balanced_kmeans"]

logger = logging.getLogger(__name__)

# A level whose nodes average at least this many points splits them one at a time, each step parallel over
# the node's points; smaller nodes are split one per thread. Fixed (not derived from the thread count) so
# that the clusters for a seed do not depend on the number of threads.
_WIDE_MIN_POINTS = 1 << 16


@dataclass(frozen=True, eq=False)
class ClusterAssignment:
    """A partition of N points into K clusters, stored compactly (CSR-like).

    Cluster ``c`` holds the point ids ``order[offsets[c]:offsets[c + 1]]``. Clusters are numbered in tree
    order, so clusters with nearby ids are siblings in the 2-means tree (similar to each other).

    Attributes:
        order: (N,) int64 point ids, grouped by cluster; each id appears exactly once.
        offsets: (K + 1,) int64, non-decreasing, ``offsets[0] == 0`` and ``offsets[-1] == N``.
    """

    order: np.ndarray
    offsets: np.ndarray

    def __post_init__(self) -> None:
        self.order.flags.writeable = False  # the cluster views handed out must not reorder it
        self.offsets.flags.writeable = False

    @property
    def num_clusters(self) -> int:
        """K, the number of clusters."""
        return int(self.offsets.shape[0] - 1)

    @property
    def num_points(self) -> int:
        """N, the number of points clustered."""
        return int(self.order.shape[0])

    def sizes(self) -> np.ndarray:
        """(K,) int64 number of points per cluster."""
        return np.diff(self.offsets)

    def labels(self) -> np.ndarray:
        """(N,) int64 cluster id of each point (e.g. PRIME's free-vector index per label)."""
        out = np.empty(self.num_points, dtype=np.int64)
        out[self.order] = np.repeat(np.arange(self.num_clusters, dtype=np.int64), self.sizes())
        return out

    def cluster(self, c: int) -> np.ndarray:
        """Point ids of cluster ``c`` (a read-only view into ``order``)."""
        return self.order[self.offsets[c] : self.offsets[c + 1]]

    def clusters(self) -> list[np.ndarray]:
        """Point ids of every cluster, in cluster order (read-only views into ``order``)."""
        return np.split(self.order, self.offsets[1:-1])


def balanced_kmeans(
    embeddings: np.ndarray | torch.Tensor,
    *,
    cluster_size: int | None = None,
    num_clusters: int | None = None,
    max_iter: int = 20,
    tol: float = 1e-4,
    seed: int = 0,
    progress: bool = False,
) -> ClusterAssignment:
    """Cluster points by cosine similarity into balanced clusters (balanced hierarchical 2-means).

    With ``cluster_size`` the tree has ``K = 2 ** ceil(log2(N / cluster_size))`` leaves, as NGAME's depth
    ``ceil(log2(N / cl_size)) + 1`` gives: every cluster has ``floor(N / K)`` or ``ceil(N / K)`` points, at
    most ``cluster_size`` and more than about ``cluster_size / 2``. With ``num_clusters`` (any K, e.g.
    PRIME's 65,536 free vectors) the leaves get the same floor/ceil sizes: a node of k leaves is split into
    ``ceil(k / 2)`` and ``floor(k / 2)`` leaves, with points in proportion. K is capped at N.

    Args:
        embeddings: (N, d) float array or CPU/GPU tensor; rows need not be normalised (a zero row is allowed).
            float32 C-contiguous numpy input (or a CPU float32 tensor) is read without a copy.
        cluster_size: the largest cluster size wanted (NGAME's ``cl_size``). Exactly one of this and
            ``num_clusters``.
        num_clusters: the number of clusters wanted.
        max_iter: the most 2-means steps per node (the reference has no cap; real embeddings take 2-15).
        tol: a node stops once the mean similarity of its points to their centroid improves by less.
        seed: seeds the choice of the two starting points of every node; same seed, same clusters.
        progress: show a progress bar over the tree levels.

    Returns:
        The :class:`ClusterAssignment`.

    Raises:
        ConfigError: a bad ``cluster_size`` / ``num_clusters`` / ``max_iter`` / ``tol``.
        DataError: embeddings that are not a non-empty 2-D array, or with NaN / infinite entries.
    """
    x = _as_matrix(embeddings)
    n = x.shape[0]
    k = _target_clusters(n, cluster_size, num_clusters)
    if max_iter < 1:
        raise ConfigError(f"max_iter must be >= 1, got {max_iter}")
    if not tol >= 0.0:
        raise ConfigError(f"tol must be >= 0, got {tol}")
    from vixml.training import clustering_kernels as kern

    inv, bad = kern.row_inverse_norms(x)
    if bad.any():
        raise DataError(_bad_row_problems(np.flatnonzero(bad)))
    offsets = (np.arange(k + 1, dtype=np.int64) * n) // k  # leaf j holds points offsets[j]:offsets[j + 1]
    perm = np.arange(n, dtype=np.int64)
    rng = np.random.default_rng(seed)
    depth = (k - 1).bit_length()  # ceil(log2(k)) levels of splits
    lo = np.zeros(1, dtype=np.int64)  # leaf ranges [lo, hi) of the nodes still to split
    hi = np.full(1, k, dtype=np.int64)
    bar = _progress_bar(depth, progress)
    for level in range(depth):
        mid = lo + (hi - lo + 1) // 2  # the left child takes ceil(k / 2) of the node's k leaves
        steps = _split_level(kern, x, inv, perm, offsets[lo], offsets[mid], offsets[hi], rng, max_iter, tol)
        logger.debug("level %d: %d nodes, %.2f steps per node", level, lo.shape[0], steps.mean())
        lo, hi = np.stack([lo, mid], axis=1).ravel(), np.stack([mid, hi], axis=1).ravel()  # children, in order
        keep = hi - lo >= 2
        lo, hi = lo[keep], hi[keep]
        bar.update(1)
    bar.close()
    return ClusterAssignment(order=perm, offsets=offsets)


def _split_level(kern: Any, x, inv, perm, starts, splits, ends, rng, max_iter: int, tol: float) -> np.ndarray:
    """Split the nodes ``perm[starts[m]:ends[m]]`` at ``splits[m]`` (M,); returns the (M,) step counts."""
    sizes, lefts = ends - starts, splits - starts
    i0 = rng.integers(0, sizes)  # two distinct random start points per node
    i1 = rng.integers(0, sizes - 1)
    i1 += i1 >= i0
    if sizes.mean() < _WIDE_MIN_POINTS:
        return kern.split_nodes(x, inv, perm, starts, lefts, ends, i0, i1, max_iter, float(tol))
    nodes = zip(starts, lefts, ends, i0, i1, strict=True)
    return np.array(
        [_split_big_node(kern, x, inv, perm[s:e], int(m), int(a), int(b), max_iter, tol) for s, m, e, a, b in nodes]
    )


def _split_big_node(kern: Any, x, inv, idx, n_left: int, i0: int, i1: int, max_iter: int, tol: float) -> int:
    """One node split (same steps as ``kern.split_nodes``), each pass over the points parallel."""
    n = idx.shape[0]
    sums = np.zeros((2, x.shape[1]), dtype=np.float64)
    diff = np.empty(n, dtype=np.float32)
    assign = np.zeros(n, dtype=np.int8)
    prev = np.zeros(n, dtype=np.int8)
    w = kern.start_direction(x, inv, idx[i0], idx[i1])
    kern.parallel_diffs(x, inv, idx, w, diff)
    old, new, steps = -1e6, -2.0, 0
    while True:
        kern.assign_at_threshold(diff, np.partition(diff, n_left - 1)[n_left - 1], n_left, assign)
        kern.parallel_sums(x, inv, idx, assign, prev, sums, steps == 0)
        old, new = new, kern.centroid_direction(sums, w) / n
        prev[:] = assign
        steps += 1
        if new - old < tol or steps >= max_iter:
            break
        kern.parallel_diffs(x, inv, idx, w, diff)
    kern.stable_partition(idx, assign)
    return steps


def _bad_row_problems(rows: np.ndarray) -> list[Problem]:
    """One problem per non-finite row (the first 50), then a count of the rest."""
    problems = [Problem("<embeddings>", f"row {r} (0-based) has a NaN or infinite entry") for r in rows[:50]]
    if rows.shape[0] > 50:
        problems.append(Problem("<embeddings>", f"{rows.shape[0] - 50} more rows have NaN or infinite entries"))
    return problems


def _as_matrix(embeddings: Any) -> np.ndarray:
    """(N, d) float32 C-contiguous numpy view of the input (a copy only when dtype/device/layout need it)."""
    if hasattr(embeddings, "detach") and hasattr(embeddings, "cpu"):  # a torch tensor, without importing torch
        t = embeddings.detach().cpu()
        if not t.is_floating_point():
            raise DataError(Problem("<embeddings>", f"expected a floating-point tensor, got {t.dtype}"))
        embeddings = t.float().numpy()
    x = np.asarray(embeddings)
    problems = []
    if x.ndim != 2:
        problems.append(Problem("<embeddings>", f"expected a 2-D (N, d) array, got shape {x.shape}"))
    elif x.shape[0] == 0 or x.shape[1] == 0:
        problems.append(Problem("<embeddings>", f"expected at least one point and one dimension, got {x.shape}"))
    if not np.issubdtype(x.dtype, np.floating):
        problems.append(Problem("<embeddings>", f"expected a floating-point array, got dtype {x.dtype}"))
    if problems:
        raise DataError(problems)
    return np.ascontiguousarray(x, dtype=np.float32)


def _target_clusters(n: int, cluster_size: int | None, num_clusters: int | None) -> int:
    """K from exactly one of cluster_size (K = 2 ** ceil(log2(N / size)), at least 1) or num_clusters."""
    if (cluster_size is None) == (num_clusters is None):
        raise ConfigError("give exactly one of cluster_size and num_clusters")
    if cluster_size is not None:
        if cluster_size < 1:
            raise ConfigError(f"cluster_size must be >= 1, got {cluster_size}")
        k = 1
        while k * cluster_size < n:  # exact integer form of 2 ** ceil(log2(n / cluster_size))
            k *= 2
        return min(k, n)  # only cluster_size == 1 can ask for more leaves than points
    assert num_clusters is not None
    if num_clusters < 1:
        raise ConfigError(f"num_clusters must be >= 1, got {num_clusters}")
    if num_clusters > n:
        logger.info("num_clusters %d > %d points: capped at %d (one point per cluster)", num_clusters, n, n)
    return min(num_clusters, n)


class _NoBar:
    def update(self, _n: int) -> None:
        pass

    def close(self) -> None:
        pass


def _progress_bar(total: int, show: bool) -> Any:
    if not show:
        return _NoBar()
    from tqdm.auto import tqdm

    return tqdm(total=total, desc="balanced k-means", unit="level")
