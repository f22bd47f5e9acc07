"""Balanced hierarchical 2-means (vixml.training.clustering) against a numpy port of the reference."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from support_clustering import mean_cosine, planted_groups, reference_balanced_kmeans, reference_split
from vixml.errors import ConfigError, DataError
from vixml.training import clustering
from vixml.training import clustering_kernels as kern
from vixml.training.clustering import ClusterAssignment, balanced_kmeans


def _check_partition(a: ClusterAssignment, n: int) -> None:
    assert a.order.dtype == np.int64 and a.offsets.dtype == np.int64
    np.testing.assert_array_equal(np.sort(a.order), np.arange(n))
    assert a.offsets[0] == 0 and a.offsets[-1] == n and np.all(np.diff(a.offsets) >= 0)
    labels = a.labels()
    for c, ids in enumerate(a.clusters()):
        assert np.all(labels[ids] == c)
        np.testing.assert_array_equal(ids, a.cluster(c))


def _purity(clusters: list[np.ndarray], group: np.ndarray) -> float:
    return sum(np.bincount(group[ids]).max() for ids in clusters) / group.shape[0]


@pytest.mark.parametrize(
    ("n", "cluster_size", "k", "sizes"),
    [
        (1024, 16, 64, {16}),  # power of two: exact
        (1000, 16, 64, {15, 16}),  # 1000 / 64 = 15.6
        (1025, 16, 128, {8, 9}),  # just over a power of two: halves, still >= size / 2
        (4096, 1, 4096, {1}),
        (5, 1, 5, {1}),  # more leaves than points is capped
    ],
)
def test_cluster_size_gives_ngame_tree(n, cluster_size, k, sizes):
    x = np.random.default_rng(0).standard_normal((n, 8)).astype(np.float32)
    a = balanced_kmeans(x, cluster_size=cluster_size)
    _check_partition(a, n)
    assert a.num_clusters == k and a.num_points == n
    assert set(a.sizes().tolist()) == sizes
    assert a.sizes().max() <= cluster_size


@pytest.mark.parametrize(("n", "k", "sizes"), [(1000, 10, {100}), (100, 7, {14, 15}), (300, 300, {1}), (9, 20, {1})])
def test_num_clusters_any_k(n, k, sizes):
    x = np.random.default_rng(1).standard_normal((n, 6)).astype(np.float32)
    a = balanced_kmeans(x, num_clusters=k)
    _check_partition(a, n)
    assert a.num_clusters == min(k, n)
    assert set(a.sizes().tolist()) == sizes


def test_tiny_inputs():
    a = balanced_kmeans(np.ones((1, 4), dtype=np.float32), cluster_size=16)
    assert a.num_clusters == 1 and a.clusters()[0].tolist() == [0]
    a = balanced_kmeans(np.random.default_rng(0).standard_normal((10, 4)), cluster_size=16)
    assert a.num_clusters == 1 and sorted(a.clusters()[0].tolist()) == list(range(10))
    a = balanced_kmeans(np.eye(2, dtype=np.float32), cluster_size=1, progress=True)
    assert sorted(map(list, a.clusters())) == [[0], [1]]
    for view in (a.cluster(0), a.clusters()[1], a.order):
        with pytest.raises(ValueError, match="read-only"):
            view[0] = 1


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_planted_groups_are_recovered(seed):
    # Tight groups: a median split can only cut a group that straddles the median on the centroid axis, and
    # with noise 0.3 that happens (purity ~0.9, the same for the reference); with 0.1 it does not.
    x, group = planted_groups(64, 16, 32, noise=0.1, seed=seed)
    a = balanced_kmeans(x, cluster_size=16, seed=seed)
    assert a.num_clusters == 64
    assert _purity(a.clusters(), group) >= 0.95


def test_seed_determinism():
    x = np.random.default_rng(2).standard_normal((2000, 16)).astype(np.float32)
    a = balanced_kmeans(x, cluster_size=16, seed=3)
    b = balanced_kmeans(x, cluster_size=16, seed=3)
    c = balanced_kmeans(x, cluster_size=16, seed=4)
    np.testing.assert_array_equal(a.order, b.order)
    assert not np.array_equal(a.labels(), c.labels())


def test_torch_and_numpy_inputs_agree():
    x, _ = planted_groups(16, 16, 12, noise=0.5)
    want = balanced_kmeans(x, cluster_size=16).order
    np.testing.assert_array_equal(balanced_kmeans(torch.from_numpy(x), cluster_size=16).order, want)
    np.testing.assert_array_equal(balanced_kmeans(torch.from_numpy(x).double(), cluster_size=16).order, want)
    np.testing.assert_array_equal(balanced_kmeans(np.asfortranarray(x), cluster_size=16).order, want)
    x64 = x.astype(np.float64)
    np.testing.assert_array_equal(balanced_kmeans(x64, cluster_size=16).order, want)
    assert x64.dtype == np.float64  # the input is not modified


def test_norm_does_not_matter_and_zero_rows_are_allowed():
    x, _ = planted_groups(8, 16, 12, noise=0.5)
    scale = np.random.default_rng(0).uniform(0.1, 10.0, size=(x.shape[0], 1)).astype(np.float32)
    want = balanced_kmeans(x, cluster_size=16).labels()
    got = balanced_kmeans(x * scale, cluster_size=16).labels()
    assert np.mean(got == want) >= 0.99  # rounding may move a boundary point, nothing more
    x[::7] = 0.0
    _check_partition(balanced_kmeans(x, cluster_size=16), x.shape[0])
    same = np.ones((64, 5), dtype=np.float32)  # all ties: still balanced
    assert set(balanced_kmeans(same, cluster_size=8).sizes().tolist()) == {8}


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_one_split_matches_the_reference_step_by_step(seed):
    rng = np.random.default_rng(seed)
    x, _ = planted_groups(6, 50, 24, noise=0.8, seed=seed)
    n, n_left = x.shape[0], 150 + seed
    i0, i1 = rng.choice(n, size=2, replace=False)
    left, right, steps = reference_split(x.astype(np.float64), i0, i1, n_left, tol=1e-4, max_iter=50)
    assert steps > 2  # a real iteration, not just the start
    inv, _ = kern.row_inverse_norms(x)
    perm = np.arange(n, dtype=np.int64)
    one = np.array([0]), np.array([n_left]), np.array([n]), np.array([i0]), np.array([i1])
    got_steps = kern.split_nodes(x, inv, perm, *one, 50, 1e-4)
    assert got_steps[0] == steps
    assert set(perm[:n_left].tolist()) == set(left.tolist())
    assert set(perm[n_left:].tolist()) == set(right.tolist())
    perm = np.arange(n, dtype=np.int64)  # the top-level path: same steps, parallel over points
    assert clustering._split_big_node(kern, x, inv, perm, n_left, int(i0), int(i1), 50, 1e-4) == steps
    assert set(perm[:n_left].tolist()) == set(left.tolist())


def test_top_level_path_gives_the_same_tree(monkeypatch):
    x, group = planted_groups(32, 16, 16, noise=0.1)
    deep = balanced_kmeans(x, cluster_size=16, seed=5)
    monkeypatch.setattr(clustering, "_WIDE_MIN_POINTS", 1)
    wide = balanced_kmeans(x, cluster_size=16, seed=5)
    np.testing.assert_array_equal(wide.order, deep.order)
    assert _purity(wide.clusters(), group) >= 0.95


@pytest.mark.parametrize("wide_min_points", [1, 1 << 16])
def test_thread_count_does_not_change_the_clusters(monkeypatch, wide_min_points):
    numba = pytest.importorskip("numba")
    monkeypatch.setattr(clustering, "_WIDE_MIN_POINTS", wide_min_points)
    x = np.random.default_rng(4).standard_normal((20_000, 12)).astype(np.float32)  # > 1 chunk per top node
    before = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        one = balanced_kmeans(x, cluster_size=512, seed=1)
    finally:
        numba.set_num_threads(before)
    np.testing.assert_array_equal(balanced_kmeans(x, cluster_size=512, seed=1).order, one.order)


def test_max_iter_caps_the_steps():
    x = np.random.default_rng(3).standard_normal((400, 24)).astype(np.float32)
    inv, _ = kern.row_inverse_norms(x)
    one = np.array([0]), np.array([200]), np.array([400]), np.array([0]), np.array([1])
    assert kern.split_nodes(x, inv, np.arange(400), *one, 3, 0.0)[0] == 3
    assert kern.split_nodes(x, inv, np.arange(400), *one, 50, 1.0)[0] == 2  # the reference's minimum


def test_quality_matches_the_reference_tree():
    x, _ = planted_groups(40, 25, 32, noise=1.0, seed=7)
    ours = balanced_kmeans(x, cluster_size=16, seed=0).clusters()
    ref = reference_balanced_kmeans(x, cluster_size=16, seed=0)
    assert len(ours) == len(ref) == 64
    assert mean_cosine(x, ours) >= mean_cosine(x, ref) - 0.01


def test_bad_arguments_are_refused():
    x = np.zeros((10, 3), dtype=np.float32)
    with pytest.raises(ConfigError, match="exactly one"):
        balanced_kmeans(x)
    with pytest.raises(ConfigError, match="exactly one"):
        balanced_kmeans(x, cluster_size=2, num_clusters=2)
    with pytest.raises(ConfigError, match="cluster_size"):
        balanced_kmeans(x, cluster_size=0)
    with pytest.raises(ConfigError, match="num_clusters"):
        balanced_kmeans(x, num_clusters=0)
    with pytest.raises(ConfigError, match="max_iter"):
        balanced_kmeans(x, cluster_size=2, max_iter=0)
    for bad in (np.zeros(5), np.zeros((0, 3)), np.zeros((4, 3), dtype=np.int64), torch.zeros(4, 3, dtype=torch.long)):
        with pytest.raises(DataError):
            balanced_kmeans(bad, cluster_size=2)


def test_non_finite_rows_are_all_reported():
    x = np.ones((10, 3), dtype=np.float32)
    x[2, 1] = np.nan
    x[7, 0] = np.inf
    with pytest.raises(DataError) as err:
        balanced_kmeans(x, cluster_size=2)
    assert [p.message.split()[1] for p in err.value.problems] == ["2", "7"]
    x = np.full((60, 2), np.nan, dtype=np.float32)
    with pytest.raises(DataError) as err:
        balanced_kmeans(x, cluster_size=2)
    assert len(err.value.problems) == 51 and "10 more rows" in err.value.problems[-1].message
