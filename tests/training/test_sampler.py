"""Training batches: positive sampling, in-batch targets, epoch coverage, NGAME cluster batching, schedule."""

from __future__ import annotations

import io
import math

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from vixml.config.sections import MiningConfig
from vixml.errors import ConfigError, DataError
from vixml.training.sampler import EpochBatchSampler, in_batch_targets


def _random_labels(n: int, num_labels: int, max_degree: int, seed: int, empty_every: int = 0) -> sp.csr_matrix:
    """(n, L) random multi-label matrix; every ``empty_every``-th row has no label."""
    rng = np.random.default_rng(seed)
    rows, cols = [], []
    for i in range(n):
        if empty_every and i % empty_every == 0:
            continue
        labels = rng.choice(num_labels, size=rng.integers(1, max_degree + 1), replace=False)
        rows += [i] * len(labels)
        cols += labels.tolist()
    return sp.csr_matrix((np.ones(len(rows), np.float32), (rows, cols)), shape=(n, num_labels))


def _dense_targets(y: sp.csr_matrix, rows: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Brute-force oracle: the dense rows of the batch queries, read at the candidate labels."""
    return y[rows].toarray()[:, labels] != 0


def test_inverse_propensity_sampling_matches_expected_probabilities():
    # Query 0 holds a tail label (0, only in this row) and two head labels (1, 2, in 200 rows each).
    n = 201
    rows = [0, 0, 0] + [i for i in range(1, n) for _ in (0, 1)]
    cols = [0, 1, 2] + [c for _ in range(1, n) for c in (1, 2)]
    y = sp.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(n, 3))
    a, b = 0.6, 2.6
    c = (math.log(n) - 1) * (b + 1) ** a
    weights = 1 + c * (np.array([1.0, 201.0, 201.0]) + b) ** -a  # hand formula, counts 1, 201, 201
    expected = weights / weights.sum()
    sampler = EpochBatchSampler(y, batch_size=n, A=a, B=b)
    draws = []
    for epoch in range(4000):
        batch = next(sampler.epoch_batches(epoch))
        draws.append(batch.label_ids[batch.query_rows == 0][0])
    freq = np.bincount(draws, minlength=3) / len(draws)
    assert expected[0] > 0.4 and expected[0] > 1.5 * expected[1]  # the tail label is favoured
    np.testing.assert_allclose(freq, expected, atol=0.03)


def test_uniform_sampling_is_uniform_over_a_rows_positives():
    y = sp.csr_matrix(np.array([[1, 1, 1, 1], [1, 0, 0, 0]], dtype=np.float32))
    sampler = EpochBatchSampler(y, batch_size=2, positive_sampling="uniform")
    draws = []
    for epoch in range(4000):
        batch = next(sampler.epoch_batches(epoch))
        draws.append(batch.label_ids[batch.query_rows == 0][0])
    np.testing.assert_allclose(np.bincount(draws, minlength=4) / len(draws), 0.25, atol=0.03)


def test_targets_equal_brute_force_with_duplicate_labels():
    y = _random_labels(300, 12, max_degree=4, seed=1)  # few labels: many duplicates per batch
    rng = np.random.default_rng(0)
    for _ in range(20):
        rows = rng.choice(300, size=40, replace=False)
        labels = rng.integers(0, 12, size=40)
        assert len(np.unique(labels)) < 40
        np.testing.assert_array_equal(in_batch_targets(y, rows, labels), _dense_targets(y, rows, labels))


def test_sampler_batches_targets_equal_brute_force():
    y = _random_labels(500, 30, max_degree=5, seed=2, empty_every=7)
    sampler = EpochBatchSampler(y, batch_size=64)
    for batch in sampler.epoch_batches(3):
        np.testing.assert_array_equal(batch.targets, _dense_targets(y, batch.query_rows, batch.label_ids))
        assert batch.targets.diagonal().all()
        assert all(y[q, lab] != 0 for q, lab in zip(batch.query_rows, batch.label_ids, strict=True))


def test_targets_ignore_stored_zeros_and_duplicates():
    # Row 0 stores label 1 twice (non-canonical) and label 2 as an explicit zero: 2 is not a positive.
    y = sp.csr_matrix((np.array([1.0, 1.0, 0.0, 1.0]), np.array([1, 1, 2, 2]), np.array([0, 3, 4])), shape=(2, 3))
    sampler = EpochBatchSampler(y, batch_size=2, positive_sampling="uniform")
    for epoch in range(20):
        batch = next(sampler.epoch_batches(epoch))
        assert dict(zip(batch.query_rows.tolist(), batch.label_ids.tolist(), strict=True)) == {0: 1, 1: 2}


def test_every_labelled_query_once_per_epoch_and_empty_rows_skipped():
    y = _random_labels(1000, 50, max_degree=3, seed=3, empty_every=10)
    sampler = EpochBatchSampler(y, batch_size=64)
    assert sampler.num_skipped == 100
    batches = list(sampler.epoch_batches(0))
    assert len(batches) == len(sampler) == math.ceil(900 / 64)
    rows = np.concatenate([b.query_rows for b in batches])
    np.testing.assert_array_equal(np.sort(rows), np.flatnonzero(np.diff(y.indptr)))
    assert [len(b) for b in batches[:-1]] == [64] * (len(batches) - 1)


def test_drop_last():
    y = _random_labels(100, 20, max_degree=2, seed=4)
    sampler = EpochBatchSampler(y, batch_size=30, drop_last=True)
    assert len(sampler) == 3
    assert [len(b) for b in sampler.epoch_batches(0)] == [30, 30, 30]


def test_deterministic_per_seed_and_epoch():
    y = _random_labels(400, 40, max_degree=4, seed=5)

    def rows_labels(sampler: EpochBatchSampler, epoch: int) -> tuple[np.ndarray, np.ndarray]:
        batches = list(sampler.epoch_batches(epoch))
        return np.concatenate([b.query_rows for b in batches]), np.concatenate([b.label_ids for b in batches])

    a, b = EpochBatchSampler(y, 32, seed=7), EpochBatchSampler(y, 32, seed=7)
    _ = rows_labels(a, 0)  # a fresh sampler at epoch 2 equals one that ran epochs 0..1 first
    _ = rows_labels(a, 1)
    for x, z in zip(rows_labels(a, 2), rows_labels(b, 2), strict=True):
        np.testing.assert_array_equal(x, z)
    assert not np.array_equal(rows_labels(a, 2)[0], rows_labels(a, 3)[0])
    assert not np.array_equal(rows_labels(a, 2)[0], rows_labels(EpochBatchSampler(y, 32, seed=8), 2)[0])


def test_cluster_batching_keeps_clusters_in_one_batch():
    n, size = 512, 16
    y = _random_labels(n, 40, max_degree=3, seed=6)
    clusters = np.array_split(np.random.default_rng(0).permutation(n), n // size)
    sampler = EpochBatchSampler(y, batch_size=4 * size)
    sampler.set_clusters(clusters, cluster_size=size)
    assert sampler.clustered and sampler.cluster_size == size
    batch_of = np.empty(n, np.int64)
    for epoch in (0, 1):
        for k, batch in enumerate(sampler.epoch_batches(epoch)):
            batch_of[batch.query_rows] = k
        for cluster in clusters:
            assert len(np.unique(batch_of[cluster])) == 1
    first = [b.query_rows for b in sampler.epoch_batches(0)]
    second = [b.query_rows for b in sampler.epoch_batches(1)]
    assert not all(np.array_equal(p, q) for p, q in zip(first, second, strict=True))  # cluster order is reshuffled


def test_cluster_batching_accepts_order_offsets_and_skips_empty_rows():
    y = _random_labels(64, 10, max_degree=2, seed=7, empty_every=4)

    class Assignment:  # the shape of vixml.training.clustering.ClusterAssignment
        order = np.arange(64)[::-1].copy()
        offsets = np.arange(0, 65, 8)

    sampler = EpochBatchSampler(y, batch_size=6)
    sampler.set_clusters(Assignment())
    assert sampler.cluster_size == 8
    rows = np.concatenate([b.query_rows for b in sampler.epoch_batches(0)])
    np.testing.assert_array_equal(np.sort(rows), np.flatnonzero(np.diff(y.indptr)))


def test_bad_clusters_are_refused():
    y = _random_labels(20, 5, max_degree=2, seed=8)
    sampler = EpochBatchSampler(y, batch_size=4)
    with pytest.raises(ValueError, match="partition"):
        sampler.set_clusters([np.arange(10), np.arange(9, 20)])  # row 9 twice
    with pytest.raises(ValueError, match="partition"):
        sampler.set_clusters([np.arange(10)])  # rows 10..19 missing
    with pytest.raises(ValueError, match="query rows"):
        sampler.set_clusters([np.arange(21)])


def test_state_dict_round_trip_reproduces_clustered_epoch():
    y = _random_labels(256, 30, max_degree=3, seed=9)
    sampler = EpochBatchSampler(y, batch_size=32, seed=3)
    sampler.set_clusters(np.array_split(np.random.default_rng(1).permutation(256), 16), cluster_size=16)
    buffer = io.BytesIO()
    torch.save(sampler.state_dict(), buffer)
    buffer.seek(0)
    resumed = EpochBatchSampler(y, batch_size=32, seed=3)
    resumed.load_state_dict(torch.load(buffer, weights_only=True))
    assert resumed.clustered and resumed.cluster_size == 16
    for p, q in zip(sampler.epoch_batches(12), resumed.epoch_batches(12), strict=True):
        np.testing.assert_array_equal(p.query_rows, q.query_rows)
        np.testing.assert_array_equal(p.label_ids, q.label_ids)
    with pytest.raises(ValueError, match="queries"):
        EpochBatchSampler(y[:100], batch_size=32).load_state_dict(sampler.state_dict())
    sampler.set_clusters(None)
    resumed.load_state_dict(sampler.state_dict())
    assert not resumed.clustered


def test_bad_settings():
    y = _random_labels(10, 5, max_degree=2, seed=10)
    with pytest.raises(ConfigError) as err:
        EpochBatchSampler(y, batch_size=0, positive_sampling="tail")  # type: ignore[arg-type]
    assert "batch_size" in str(err.value) and "positive_sampling" in str(err.value)
    with pytest.raises(DataError):
        EpochBatchSampler(sp.csr_matrix((5, 3)), batch_size=2)
    with pytest.raises(ConfigError, match="B"):
        EpochBatchSampler(y, batch_size=2, B=0.0)


def test_single_query_still_samples_every_positive():
    # N = 1 gives log N - 1 < 0 in the propensity formula: a label seen once would get weight 0.
    y = sp.csr_matrix(np.array([[1, 1, 0]], dtype=np.float32))
    sampler = EpochBatchSampler(y, batch_size=1)
    drawn = {int(next(sampler.epoch_batches(e)).label_ids[0]) for e in range(50)}
    assert drawn <= {0, 1} and drawn


def test_mining_schedule_encoder_preset():
    schedule = MiningConfig().resolved(150)  # docs/method.md 4: cl_size 16 doubling at 20..120, start 10, every 5
    assert schedule == MiningConfig(16, (20, 40, 60, 80, 100, 120), 10, 5)
    assert [e for e in range(150) if schedule.should_recluster(e)] == list(range(10, 150, 5))
    assert [schedule.cluster_size_at(e) for e in (10, 19, 20, 39, 40, 60, 80, 100, 119, 120, 149)] == [
        16, 16, 32, 32, 64, 128, 256, 512, 512, 1024, 1024,
    ]  # fmt: skip
    assert not schedule.uses_clusters(10) and schedule.uses_clusters(11)


def test_mining_schedule_decoder_preset_and_validation():
    schedule = MiningConfig(cluster_size=16, double_at=(8, 12, 16, 20, 24), start_epoch=4, update_every=2)
    assert [e for e in range(30) if schedule.should_recluster(e)] == list(range(4, 30, 2))
    assert [schedule.cluster_size_at(e) for e in (4, 7, 8, 12, 16, 20, 24, 29)] == [16, 16, 32, 64, 128, 256, 512, 512]
    with pytest.raises(ConfigError) as err:
        MiningConfig(cluster_size=0, double_at=(-1,), start_epoch=-2, update_every=0)
    with pytest.raises(ConfigError, match="double_at"):
        MiningConfig(double_at=(12, 8))
    with pytest.raises(ValueError, match="resolved"):
        MiningConfig().should_recluster(3)  # an 'auto' schedule is resolved against train.epochs first
    assert all(k in str(err.value) for k in ("cluster_size", "start_epoch", "update_every"))
