"""Refusing work that would not fit in memory before it starts, instead of an out-of-memory kill half-way.

A command that loads whole files (``vixml data prepare/validate/stats``, ``vixml evaluate``, the search of
``vixml predict``) first estimates its peak resident memory from the files' headers and sizes
(:mod:`vixml.data.footprint` for the data files, :mod:`vixml.planning` for the rest, whose
:class:`~vixml.planning.Plan` adds a command's phases up), then calls :func:`require`, which compares it
with what this machine (or its cgroup) still has and raises :class:`~vixml.errors.ResourceError` with the
need, what is available and what to do about it.

Estimates are of the whole process (the interpreter and libraries included, :data:`BASE_BYTES`), so the
check compares them with what is available plus what this process already holds. They count anonymous
memory; pages of memory-mapped files (text files, label embeddings) are page cache that the kernel takes
back under pressure, and are left out.

``VIXML_SKIP_MEMORY_CHECK=1`` skips the check (for a machine whose figures mislead, e.g. swap that is
meant to be used). Where neither ``/proc/meminfo`` nor the cgroup files can be read, nothing is checked.
"""

from __future__ import annotations

import ctypes
import functools
import logging
import os
from pathlib import Path

from vixml.errors import ResourceError

__all__ = [
    "SKIP_ENV",
    "BASE_BYTES",
    "available_bytes",
    "resident_bytes",
    "require",
    "gib",
    "skipped",
    "budget",
    "give_back_freed",
]

logger = logging.getLogger(__name__)

SKIP_ENV = "VIXML_SKIP_MEMORY_CHECK"
#: The interpreter with numpy, scipy, numba (compiling) and the command line loaded: 40-100 MiB measured.
BASE_BYTES = 128 << 20
_MEMINFO = Path("/proc/meminfo")
_CGROUP = Path("/sys/fs/cgroup")


def skipped() -> bool:
    """Whether ``VIXML_SKIP_MEMORY_CHECK`` asks to skip the checks."""
    return os.environ.get(SKIP_ENV, "").strip().lower() in ("1", "true", "yes", "on")


def _meminfo_available() -> int | None:
    try:
        for line in _MEMINFO.read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def _read_int(path: Path) -> int | None:
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None  # "max" (no limit) -> None


def _stat(path: Path, key: str) -> int:
    """A counter of a cgroup's ``memory.stat`` (0 when absent)."""
    try:
        for line in path.read_text().splitlines():
            name, _, value = line.partition(" ")
            if name == key and value.strip().isdigit():
                return int(value)
    except OSError:
        pass
    return 0


def _cgroup_available() -> int | None:
    """Limit minus usage of this process's cgroup (v2 ``memory.max``, else v1 ``memory.limit_in_bytes``).

    The usage counts the page cache of files read; its inactive part (``inactive_file``) is given back
    first under pressure, so it is left out of the usage, as ``docker stats`` does.
    """
    limit, usage = _read_int(_CGROUP / "memory.max"), _read_int(_CGROUP / "memory.current")
    cache = _stat(_CGROUP / "memory.stat", "inactive_file")
    if limit is None:
        v1 = _CGROUP / "memory"
        limit, usage = _read_int(v1 / "memory.limit_in_bytes"), _read_int(v1 / "memory.usage_in_bytes")
        cache = _stat(v1 / "memory.stat", "total_inactive_file")
        if limit is not None and limit >= 1 << 60:  # v1 reports "no limit" as a huge number
            limit = None
    if limit is None or usage is None:
        return None
    return max(0, limit - max(0, usage - cache))


def available_bytes() -> int | None:
    """Memory a new allocation can still get: ``MemAvailable``, or the cgroup's limit minus its usage (less its
    inactive file cache) when lower.

    None when neither can be read (then nothing is checked).
    """
    found = [v for v in (_meminfo_available(), _cgroup_available()) if v is not None]
    return min(found) if found else None


def resident_bytes() -> int:
    """Anonymous memory this process holds now (``RssAnon``; the whole resident set where that is unknown)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("RssAnon:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    except (ImportError, OSError):  # pragma: no cover - not Linux
        return 0


def gib(n: float) -> str:
    """``n`` bytes in the unit a person reads (``9.3 GiB``, ``412 MiB``)."""
    if n >= 1 << 30:
        return f"{n / 2**30:.1f} GiB"
    return f"{n / 2**20:.0f} MiB"


def require(need_bytes: int, what: str, hint: str, *, command: str = "vixml") -> None:
    """Raise :class:`ResourceError` when a peak of ``need_bytes`` (whole process) would not fit.

    Args:
        need_bytes: the estimated peak resident memory of the process, :data:`BASE_BYTES` included.
        what: what needs it, naming the file and its size, e.g. ``"the label matrices of data/ (2,248,619 x
            1,305,265, 49.9M entries)"``.
        hint: what the user can do (a smaller input, a flag, a machine with more memory).
        command: the command, to start the message with (``"vixml data stats"``).

    Nothing is checked under ``VIXML_SKIP_MEMORY_CHECK=1`` or where the memory available cannot be read.
    """
    if skipped():
        logger.debug("%s: memory check skipped (%s=1); needs about %s", command, SKIP_ENV, gib(need_bytes))
        return
    available = available_bytes()
    if available is None:
        logger.debug("%s: memory available unknown; needs about %s", command, gib(need_bytes))
        return
    held = resident_bytes()
    logger.debug("%s: needs about %s, %s available + %s held", command, gib(need_bytes), gib(available), gib(held))
    if need_bytes > available + held:
        raise ResourceError(
            f"{command}: needs about {gib(need_bytes)} for {what}; {gib(available + held)} available. {hint} "
            f"(the estimate is an upper bound; {SKIP_ENV}=1 runs it anyway)"
        )


def budget(want_bytes: int, share: float = 0.25, floor: int = 64 << 20) -> int:
    """``want_bytes``, or less: at most ``share`` of the memory available (never under ``floor``).

    For buffers whose size is a choice (a search chunk), so that they shrink on a small machine instead
    of failing. The full ``want_bytes`` when the check is skipped or the memory available is unknown.
    """
    if skipped():
        return want_bytes
    available = available_bytes()
    if available is None:
        return want_bytes
    return max(min(floor, want_bytes), min(want_bytes, int(available * share)))


@functools.cache
def _malloc_trim():
    try:
        return ctypes.CDLL(None).malloc_trim  # glibc; absent on musl, macOS and Windows
    except (OSError, AttributeError):
        return None


def give_back_freed() -> None:
    """Return the C heap's freed pages to the system (glibc ``malloc_trim``; nothing elsewhere).

    glibc keeps a freed buffer of a few MiB in its heap, where the next buffer of the same size is not always
    placed: the search's second label chunk then came on top of the first one's freed blocks (measured at
    1.3M x 384 labels: 1.94 GiB peak instead of 1.24). Called between such buffers.
    """
    trim = _malloc_trim()
    if trim is not None:
        trim(0)
