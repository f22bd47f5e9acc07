"""The helpers of vixml.distributed in one process (the 2-rank behaviour: tests/training/test_distributed.py)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vixml import distributed
from vixml.errors import ConfigError


def test_split_evenly_covers_the_batch_in_near_equal_contiguous_shares():
    for n, parts in [(31, 2), (32, 4), (3, 4), (0, 2), (129, 8)]:
        ranges = distributed.split_evenly(n, parts)
        sizes = [b - a for a, b in ranges]
        assert len(ranges) == parts and sum(sizes) == n
        assert max(sizes) - min(sizes) <= 1
        assert all(ranges[i][1] == ranges[i + 1][0] for i in range(parts - 1))


def test_one_process_is_the_identity(monkeypatch):
    for var in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "TORCHELASTIC_RUN_ID"):
        monkeypatch.delenv(var, raising=False)
    with distributed.session(torch.device("cpu")) as world:
        assert world == distributed.World(0, 1, 0) and world.is_main and not world.distributed
        x = torch.randn(5, 3, requires_grad=True)
        assert distributed.gather_with_grad(x, (5,)) is x
        order = np.array([4, 2, 0, 1, 3])
        np.testing.assert_array_equal(distributed.shard_batches(5, 2, order), order)
        rows, values = np.array([2, 0, 1]), np.arange(6, dtype=np.float32).reshape(3, 2)
        np.testing.assert_array_equal(distributed.gather_rows(rows, values, 3), values[[1, 2, 0]])
        assert distributed.broadcast_object({"a": 1}) == {"a": 1}
        assert distributed.all_gather_objects(7) == [7]
        assert distributed.any_rank(True) and not distributed.any_rank(False)


def test_world_follows_the_torchrun_variables(monkeypatch):
    monkeypatch.setenv("RANK", "3")
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("LOCAL_RANK", "1")
    world = distributed.world()
    assert (world.rank, world.size, world.local_rank) == (3, 4, 1)
    assert not world.is_main and world.distributed


def test_fsdp_sharding_is_refused_without_a_process_group():
    from vixml.training.parallel import shard_decoder_layers

    with pytest.raises(ConfigError, match="torchrun"):
        shard_decoder_layers(torch.nn.Linear(2, 2))


def test_train_fsdp_resolves_to_decoders_on_several_ranks_and_refuses_what_it_cannot_shard(monkeypatch):
    from vixml.training.parallel import wants_fsdp

    monkeypatch.setenv("WORLD_SIZE", "1")
    assert not wants_fsdp(True, decoder=True, precision="bf16")  # one process: no effect
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert wants_fsdp("auto", decoder=True, precision="bf16")
    assert not wants_fsdp("auto", decoder=False, precision="bf16")
    assert not wants_fsdp("auto", decoder=True, precision="fp16")  # replicated: one scaler for all
    assert not wants_fsdp(False, decoder=True, precision="bf16")
    with pytest.raises(ConfigError, match="encoder"):
        wants_fsdp(True, decoder=False, precision="fp32")
    with pytest.raises(ConfigError, match="fp16"):
        wants_fsdp(True, decoder=True, precision="fp16")


def test_more_processes_than_gpus_is_refused_before_joining(monkeypatch):
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("LOCAL_RANK", "1")
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    with pytest.raises(ConfigError, match="LOCAL_RANK 1.*1 CUDA device"):
        with distributed.session(torch.device("cuda")):
            pass
