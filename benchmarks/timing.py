"""The one timing helper of the benchmarks: median wall and CPU seconds of repeated calls."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

__all__ = ["Timing", "timed"]


@dataclass(frozen=True)
class Timing:
    """Medians over the repeats: ``wall`` seconds, ``cpu`` seconds of this process (all its threads; CPU over
    wall shows how many cores a run really had on a shared machine), and the last call's ``result``."""

    wall: float
    cpu: float
    result: Any = None


def timed(
    fn: Callable[[], object] | dict[str, Callable[[], object]],
    repeats: int = 3,
    *,
    warmup: bool = False,
    slow_after: float | None = None,
) -> Timing | dict[str, Timing]:
    """Time ``repeats`` calls of ``fn``, or of each function of a ``{name: fn}`` dict, repeats interleaved.

    Interleaving makes a busy machine slow every compared step alike. ``warmup``: one untimed call of each
    first (allocator, kernels' first-call costs, worker start). ``slow_after``: stop one repeat early once a
    call took longer than this many seconds.
    """
    steps = fn if isinstance(fn, dict) else {"": fn}
    if warmup:
        for step in steps.values():
            step()
    walls: dict[str, list[float]] = {name: [] for name in steps}
    cpus: dict[str, list[float]] = {name: [] for name in steps}
    results: dict[str, Any] = {}
    for i in range(repeats):
        for name, step in steps.items():
            wall, cpu = time.perf_counter(), time.process_time()
            results[name] = step()
            walls[name].append(time.perf_counter() - wall)
            cpus[name].append(time.process_time() - cpu)
        slowest = max(w[-1] for w in walls.values())
        if slow_after is not None and slowest > slow_after and i + 1 >= max(1, repeats - 1):
            break
    out = {
        name: Timing(statistics.median(walls[name]), statistics.median(cpus[name]), results[name]) for name in steps
    }
    return out if isinstance(fn, dict) else out[""]
