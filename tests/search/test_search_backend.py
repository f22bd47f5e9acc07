"""The search's backend per machine: measured once, cached under a key of the machine and its libraries, and
measured again when the CPU or a library changes; forced by an environment variable; shown by doctor."""

from __future__ import annotations

import json

import pytest

from vixml.errors import ConfigError
from vixml.search import gemm

TINY = {"batch": (256, 512, 5), "small": (4, 512, 5)}


@pytest.fixture
def fresh(tmp_path, monkeypatch):
    """An empty cache, no forced backend, tiny probe searches; counts the measurements."""
    monkeypatch.setenv(gemm.CACHE_ENV, str(tmp_path / "cache"))
    monkeypatch.delenv(gemm.BACKEND_ENV, raising=False)
    monkeypatch.setattr(gemm, "PROBE_SHAPES", TINY)
    gemm._choice_for.cache_clear()
    calls = []
    measure = gemm.measure

    def counted(dim, shapes=None, repeats=2):
        calls.append(dim)
        return measure(dim, shapes, repeats=1)

    monkeypatch.setattr(gemm, "measure", counted)
    yield calls
    gemm._choice_for.cache_clear()


def test_measured_once_then_read_from_the_cache(fresh):
    first = gemm.choice(16)
    assert fresh == [16] and first.source == "measured"
    assert first.batch in gemm.installed() and first.small in gemm.installed() and first.small != "onednn"
    assert set(first.measured["batch"]) == set(gemm.installed())
    gemm._choice_for.cache_clear()  # a new process
    again = gemm.choice(16)
    assert (
        fresh == [16] and again.source.startswith("cache") and (again.batch, again.small) == (first.batch, first.small)
    )
    stored = json.loads(gemm.cache_path().read_text())
    assert len(stored["choices"]) == 1


@pytest.mark.parametrize("change", ["cpu", "torch", "dim"])
def test_a_new_cpu_library_or_width_measures_again(fresh, monkeypatch, change):
    gemm.choice(16)
    gemm._choice_for.cache_clear()
    if change == "dim":
        gemm.choice(24)
    else:
        key = gemm.machine_key
        monkeypatch.setattr(gemm, "machine_key", lambda dim: {**key(dim), change: "something else"})
        gemm.choice(16)
    assert len(fresh) == 2
    assert len(json.loads(gemm.cache_path().read_text())["choices"]) == 2


def test_an_unreadable_cache_is_measured_again(fresh):
    gemm.cache_path().parent.mkdir(parents=True)
    gemm.cache_path().write_text("{not json")
    assert gemm.choice(16).source == "measured" and fresh == [16]


def test_the_environment_forces_a_backend(fresh, monkeypatch):
    monkeypatch.setenv(gemm.BACKEND_ENV, "numpy")
    assert (gemm.choice(16).batch, gemm.choice(16).small) == ("numpy", "numpy") and fresh == []
    gemm._choice_for.cache_clear()
    monkeypatch.setenv(gemm.BACKEND_ENV, "blis")
    with pytest.raises(ConfigError, match="VIXML_SEARCH_BACKEND='blis'"):
        gemm.choice(16)
