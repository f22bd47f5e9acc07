"""Which product computes the exact search fastest on this machine: measured once per machine, then cached.

The fastest float32 GEMM depends on the CPU's vendor and generation and on the libraries installed: torch's
matmul (MKL, which skips AVX-512 on AMD CPUs), oneDNN through torch (``to_mkldnn``), numpy's OpenBLAS, or
faiss's own flat search. On an AVX-512 Zen 4, numpy's OpenBLAS ran at 183 GFLOP/s where torch reached 137;
on the Intel machine the search was tuned on, oneDNN ran at twice MKL's rate. So the search does not
assume: the first fp32 search of a process reads the cached choice for this machine, or measures every
installed backend on a search of the shape it serves (a query block against label blocks, with the top-k
selection) at two batch sizes and keeps the fastest. The cache key holds the CPU model and flags, the
thread count, the embedding width and every library version: a new CPU, a new library or another width
measures again. ``VIXML_SEARCH_BACKEND=onednn|torch|numpy|faiss`` forces one; ``vixml doctor`` shows the
choice and every measurement.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

__all__ = ["BACKENDS", "Choice", "installed", "choice", "measure", "machine_key", "cache_path", "BACKEND_ENV"]

logger = logging.getLogger(__name__)

BACKENDS = ("onednn", "torch", "numpy", "faiss")
BACKEND_ENV = "VIXML_SEARCH_BACKEND"
CACHE_ENV = "VIXML_CACHE_DIR"
#: The probe's searches: (queries, labels, k); "batch" decides for >= SMALL_BATCH queries, "small" below.
PROBE_SHAPES = {"batch": (512, 8192, 100), "small": (32, 8192, 10)}
SMALL_BATCH = 256
_FORMAT = 1


@dataclass(frozen=True)
class Choice:
    """The backend of each batch size, and what the probe measured (queries per second per backend)."""

    batch: str
    small: str
    measured: dict = field(default_factory=dict)  # {"batch": {"numpy": 123.4, ...}, "small": {...}}
    key: dict = field(default_factory=dict)
    source: str = "measured"  # "measured", "cache" or the environment variable that forced it

    def for_queries(self, n: int) -> str:
        return self.batch if n >= SMALL_BATCH else self.small


def installed() -> tuple[str, ...]:
    """The fp32 backends usable here."""
    from vixml.search.blocks import onednn_available

    found = ["torch", "numpy"]
    if onednn_available():
        found.insert(0, "onednn")
    try:
        import faiss  # noqa: F401
    except ImportError:
        pass
    else:
        found.append("faiss")
    return tuple(found)


def machine_key(dim: int) -> dict:
    """What a measurement depends on: CPU model and flags, threads, width, library versions and BLAS builds."""
    import torch

    from vixml.devices import cpu_features

    cpu = cpu_features()
    key = {
        "cpu": cpu.model,
        "flags": cpu.flags + list(cpu.limits),
        "torch_kernels": cpu.torch_kernels,
        "threads": torch.get_num_threads(),
        "dim": int(dim),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "blas": _blas_builds(),
        "backends": list(installed()),
    }
    try:
        import faiss

        key["faiss"] = faiss.__version__
    except ImportError:
        pass
    return key


def _blas_builds() -> list[str]:
    """numpy's BLAS as it was built (name, version); stable for the process, unlike the libraries loaded so far."""
    try:
        blas = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
    except Exception:  # noqa: BLE001 - numpy's build report differs between versions; the version then decides
        return []
    return [f"{blas.get('name')} {blas.get('version')}"]


def cache_path() -> Path:
    """``$VIXML_CACHE_DIR/search-backend.json``, else under ``$XDG_CACHE_HOME/vixml`` or ``~/.cache/vixml``."""
    root = os.environ.get(CACHE_ENV) or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "vixml"
    return Path(root) / "search-backend.json"


@functools.cache
def _choice_for(dim: int) -> Choice:
    key = machine_key(dim)
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    cached = _read_cache().get(digest)
    if cached is not None:
        return Choice(cached["batch"], cached["small"], cached["measured"], key, source=f"cache {cache_path()}")
    logger.info("search: measuring which product is fastest on this CPU (once per machine; cached)")
    found = measure(dim)
    found = Choice(found.batch, found.small, found.measured, key)
    _write_cache(digest, found)
    logger.info("search: %s for batches, %s for few queries (%s)", found.batch, found.small, _summary(found))
    return found


def choice(dim: int) -> Choice:
    """This machine's choice for ``dim``-wide embeddings (measured on first use, then from the cache), unless
    ``VIXML_SEARCH_BACKEND`` forces one."""
    forced = os.environ.get(BACKEND_ENV, "").strip().lower()
    if forced:
        from vixml.errors import ConfigError

        if forced not in installed():
            raise ConfigError(f"{BACKEND_ENV}={forced!r}: expected one of the installed {', '.join(installed())}")
        return Choice(forced, forced, source=f"{BACKEND_ENV}={forced}")
    return _choice_for(int(dim))


def measure(dim: int, shapes: dict | None = None, repeats: int = 2) -> Choice:
    """Time every installed backend on the probe searches; the fastest of each shape wins."""
    from vixml.search.exact import topk

    rng = np.random.default_rng(0)
    measured = {}
    for name, (n, n_labels, k) in (shapes or PROBE_SHAPES).items():
        queries = rng.standard_normal((n, dim), dtype=np.float32)
        labels = rng.standard_normal((n_labels, dim), dtype=np.float32)
        rates = {}
        for backend in installed():
            if backend == "onednn" and n < SMALL_BATCH:
                continue  # copying the labels into oneDNN's layout does not pay for few queries
            search = functools.partial(topk, queries, labels, k, device="cpu", check_finite="none", backend=backend)
            rates[backend] = round(n / _best_seconds(search, repeats), 1)
        measured[name] = rates
    pick = {name: max(rates, key=rates.get) for name, rates in measured.items()}
    return Choice(pick.get("batch", "torch"), pick.get("small", pick.get("batch", "torch")), measured)


def _summary(found: Choice) -> str:
    parts = (f"{name}: " + ", ".join(f"{b} {q:,.0f} q/s" for b, q in r.items()) for name, r in found.measured.items())
    return "; ".join(parts)


def _read_cache() -> dict:
    try:
        data = json.loads(cache_path().read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data.get("choices", {}) if isinstance(data, dict) and data.get("format") == _FORMAT else {}


def _write_cache(digest: str, found: Choice) -> None:
    """Add this machine's choice to the cache (best effort: an unwritable cache only means measuring again)."""
    from vixml.atomic import atomic_open

    choices = _read_cache()
    choices[digest] = {**asdict(found), "source": "measured", "at": time.strftime("%Y-%m-%d %H:%M:%S")}
    try:
        with atomic_open(cache_path()) as fh:
            json.dump({"format": _FORMAT, "choices": choices}, fh, indent=1)
    except OSError as exc:
        logger.debug("search backend cache not written: %s", exc)


def ceilings(m: int = 2048, n: int = 8192, k: int = 384, repeats: int = 3) -> dict[str, float]:
    """GFLOP/s of one large (m x k) @ (k x n) product per installed backend and precision: the machine's
    ceilings, against which the search's speed is read (``vixml doctor --gemm``, ``bench_search``).

    Keys: ``fp32-onednn``, ``fp32-torch``, ``fp32-numpy``, ``bf16-torch`` (oneDNN inside torch) and
    ``int8-torch`` (``torch._int_mm``, int32 accumulation) where this torch has it on CPU.
    """
    import torch

    rng = np.random.default_rng(0)
    a32 = rng.standard_normal((m, k), dtype=np.float32)
    b32 = rng.standard_normal((n, k), dtype=np.float32)
    ta, tb = torch.from_numpy(a32), torch.from_numpy(b32)
    products = {"fp32-torch": lambda: torch.matmul(ta, tb.T), "fp32-numpy": lambda: np.matmul(a32, b32.T)}
    if "onednn" in installed():
        da, db = ta.to_mkldnn(), tb.to_mkldnn()
        products["fp32-onednn"] = lambda: torch.nn.functional.linear(da, db).to_dense()
    ha, hb = ta.to(torch.bfloat16), tb.to(torch.bfloat16)
    products["bf16-torch"] = lambda: torch.matmul(ha, hb.T)
    ia = torch.randint(-127, 128, (m, k), dtype=torch.int8)
    ib = torch.randint(-127, 128, (k, n), dtype=torch.int8)
    try:
        torch._int_mm(ia[:32], ib[:, :32])
        products["int8-torch"] = lambda: torch._int_mm(ia, ib)
    except (RuntimeError, AttributeError, NotImplementedError):  # pragma: no cover - depends on the torch build
        pass
    out = {}
    with torch.inference_mode():
        for name, product in products.items():
            out[name] = round(2 * m * n * k / _best_seconds(product, repeats) / 1e9, 2)
    return out


def _best_seconds(fn, repeats: int) -> float:
    """The fastest of ``repeats`` timed calls of ``fn``, after one that warms up (allocations, thread pools)."""
    times = []
    for _ in range(repeats + 1):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return min(times[1:])
