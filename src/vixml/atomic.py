"""Atomic file writing: a reader sees the old file or the complete new one, never half of either."""

from __future__ import annotations

import contextlib
import logging
import os
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO

__all__ = ["atomic_path", "atomic_open", "clean_stale_temps"]

logger = logging.getLogger(__name__)

# ``tempfile.mkstemp(prefix=".NAME.", suffix=SUFFIX)`` names: "." NAME "." 8 random characters SUFFIX.
_TEMP_NAME = re.compile(r"^\.(?P<name>.+)\.[a-z0-9_]{8}(?P<suffix>\.[^.]+)$")

_UMASK = os.umask(0)
os.umask(_UMASK)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success fsync and rename it over ``path``.

    Use it with writers that want a file name (``np.save``, ``scipy.sparse.save_npz``, ``torch.save``).
    ``suffix`` keeps an extension that a writer insists on (``np.save`` appends ``.npy`` otherwise).
    On an exception the temporary file is removed and ``path`` is untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix or path.suffix or ".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    os.chmod(tmp_path, 0o666 & ~_UMASK)  # mkstemp makes 0600 files; give the final file the usual mode
    try:
        yield tmp_path
        with open(tmp_path, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "w", encoding: str | None = "utf-8") -> Iterator[IO]:
    """Open a temporary file for writing that replaces ``path`` atomically when the block succeeds."""
    if "b" in mode:
        encoding = None
    with atomic_path(path) as tmp, open(tmp, mode, encoding=encoding) as fh:
        yield fh
        fh.flush()


def clean_stale_temps(folder: str | os.PathLike) -> list[Path]:
    """Remove the temporary files that :func:`atomic_path` left in ``folder`` when its writer was killed.

    Only files named exactly as :func:`atomic_path` names them (``.NAME.<8 random>SUFFIX`` whose suffix is
    NAME's own, or ``.tmp``) are removed. Call it only while holding the folder's write lock: a live writer's
    temporary file looks the same. Returns the removed paths.
    """
    removed = []
    folder = Path(folder)
    if not folder.is_dir():
        return removed
    for path in folder.iterdir():
        match = _TEMP_NAME.match(path.name)
        if match is None or not path.is_file():
            continue
        if match["suffix"] not in (Path(match["name"]).suffix or ".tmp", ".tmp"):
            continue
        path.unlink(missing_ok=True)
        removed.append(path)
    if removed:
        logger.info("removed %d stale temporary file(s) in %s", len(removed), folder)
    return removed
