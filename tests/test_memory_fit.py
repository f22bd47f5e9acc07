"""vixml.memory_fit: the memory available (MemAvailable, the cgroup's limit), the refusal and the switch."""

from __future__ import annotations

import logging

import pytest

from vixml import memory_fit
from vixml.errors import ResourceError, VixmlError


@pytest.fixture
def fake_proc(tmp_path, monkeypatch):
    """``/proc/meminfo`` and ``/sys/fs/cgroup`` replaced by files under tmp_path (absent until written)."""
    meminfo, cgroup = tmp_path / "meminfo", tmp_path / "cgroup"
    cgroup.mkdir()
    monkeypatch.setattr(memory_fit, "_MEMINFO", meminfo)
    monkeypatch.setattr(memory_fit, "_CGROUP", cgroup)
    monkeypatch.delenv(memory_fit.SKIP_ENV, raising=False)
    return meminfo, cgroup


def test_mem_available_is_read_from_meminfo(fake_proc):
    meminfo, _ = fake_proc
    meminfo.write_text("MemTotal:       32000000 kB\nMemFree:  100 kB\nMemAvailable:   6000000 kB\n")
    assert memory_fit.available_bytes() == 6_000_000 * 1024


def test_a_lower_cgroup_limit_wins(fake_proc):
    meminfo, cgroup = fake_proc
    meminfo.write_text("MemAvailable:   6000000 kB\n")
    (cgroup / "memory.max").write_text(f"{4 << 30}\n")
    (cgroup / "memory.current").write_text(f"{1 << 30}\n")
    assert memory_fit.available_bytes() == 3 << 30
    (cgroup / "memory.stat").write_text(f"anon 1000\ninactive_file {1 << 29}\nactive_file 5\n")
    assert memory_fit.available_bytes() == (3 << 30) + (1 << 29)  # inactive page cache is given back first
    (cgroup / "memory.max").write_text("max\n")  # no limit: MemAvailable alone
    assert memory_fit.available_bytes() == 6_000_000 * 1024


def test_cgroup_v1_limit(fake_proc):
    _, cgroup = fake_proc
    (cgroup / "memory").mkdir()
    (cgroup / "memory" / "memory.limit_in_bytes").write_text(f"{2 << 30}\n")
    (cgroup / "memory" / "memory.usage_in_bytes").write_text(f"{1 << 29}\n")
    assert memory_fit.available_bytes() == (2 << 30) - (1 << 29)
    (cgroup / "memory" / "memory.limit_in_bytes").write_text(f"{(1 << 63) - 4096}\n")  # v1's "no limit"
    assert memory_fit.available_bytes() is None


def test_nothing_readable_means_no_check(fake_proc):
    assert memory_fit.available_bytes() is None
    memory_fit.require(1 << 50, "everything", "no hint")  # does not raise


def test_require_names_the_need_what_is_available_and_the_hint(monkeypatch):
    monkeypatch.delenv(memory_fit.SKIP_ENV, raising=False)
    monkeypatch.setattr(memory_fit, "available_bytes", lambda: int(5.6 * 2**30))
    monkeypatch.setattr(memory_fit, "resident_bytes", lambda: int(0.5 * 2**30))
    memory_fit.require(6 << 30, "x", "y")  # 6 GiB <= 5.6 available + 0.5 already held
    with pytest.raises(ResourceError) as caught:
        memory_fit.require(int(9.3 * 2**30), "the label matrices of d/ (3 x 4, 5 entries)", "Use a bigger box.",
                           command="vixml data stats")  # fmt: skip
    message = str(caught.value)
    assert message.startswith(
        "vixml data stats: needs about 9.3 GiB for the label matrices of d/ (3 x 4, 5 entries); 6.1 GiB available. "
        "Use a bigger box."
    )
    assert "VIXML_SKIP_MEMORY_CHECK=1" in message
    assert isinstance(caught.value, VixmlError)


@pytest.mark.parametrize("value", ["1", "true", "yes"])
def test_the_switch_skips_the_check(monkeypatch, value):
    monkeypatch.setenv(memory_fit.SKIP_ENV, value)
    monkeypatch.setattr(memory_fit, "available_bytes", lambda: 1)
    memory_fit.require(1 << 40, "x", "y")
    assert memory_fit.budget(1 << 30) == 1 << 30


def test_budget_shrinks_to_a_share_of_what_is_available(monkeypatch):
    monkeypatch.delenv(memory_fit.SKIP_ENV, raising=False)
    monkeypatch.setattr(memory_fit, "available_bytes", lambda: 1 << 30)
    assert memory_fit.budget(1 << 30) == 1 << 28
    assert memory_fit.budget(1 << 20) == 1 << 20
    monkeypatch.setattr(memory_fit, "available_bytes", lambda: 1 << 20)
    assert memory_fit.budget(1 << 30) == 64 << 20  # the floor
    monkeypatch.setattr(memory_fit, "available_bytes", lambda: None)
    assert memory_fit.budget(1 << 30) == 1 << 30


def test_the_search_chunk_shrinks_and_says_so(monkeypatch, caplog):
    import numpy as np
    import torch

    from vixml.search import exact

    monkeypatch.delenv(memory_fit.SKIP_ENV, raising=False)
    monkeypatch.setattr(memory_fit, "available_bytes", lambda: 1 << 30)
    monkeypatch.setattr(exact, "_said", set())
    with caplog.at_level(logging.INFO, logger="vixml.search.exact"):
        assert exact.label_chunk_bytes(torch.device("cpu")) == 256 << 20
    assert "label chunks of 256 MiB instead of 1.0 GiB" in caplog.text
    rng = np.random.default_rng(0)
    q, lab = rng.standard_normal((300, 8), dtype=np.float32), rng.standard_normal((500, 8), dtype=np.float32)
    _, ids = exact.topk(q, lab, 3, device="cpu")
    assert np.array_equal(ids[:, 0], np.argmax(q @ lab.T, axis=1))


@pytest.mark.skipif(memory_fit._malloc_trim() is None, reason="glibc's malloc_trim only")
def test_the_search_gives_back_each_label_chunk(monkeypatch):
    """Without giving back, glibc kept about 96 MiB of the 293 MiB of converted label chunks after the search
    (and a second chunk came on top of the first one's freed blocks: 1.94 instead of 1.24 GiB at 1.3M)."""
    import numpy as np

    from vixml.search import exact

    monkeypatch.setattr(exact, "_CHUNK_BYTES_CPU", 64 << 20)
    monkeypatch.setenv(memory_fit.SKIP_ENV, "1")  # the chunk size as set, whatever this machine has
    rng = np.random.default_rng(0)
    labels = rng.standard_normal((200_000, 384), dtype=np.float32)
    queries = rng.standard_normal((300, 384), dtype=np.float32)  # enough for oneDNN's converted copy
    exact.topk(queries[:8], labels[:100], 5)  # libraries and kernels loaded before measuring
    before = memory_fit.resident_bytes()
    _, ids = exact.topk(queries, labels, 100)
    assert memory_fit.resident_bytes() - before < 40 << 20
    assert np.array_equal(ids[:, 0], np.argmax(queries @ labels.T, axis=1))


def test_gib():
    assert memory_fit.gib(int(9.3 * 2**30)) == "9.3 GiB"
    assert memory_fit.gib(412 << 20) == "412 MiB"
