"""Atomic file writing: a reader sees the old file or the complete new one, never half of either."""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from vixml.errors import StorageError

__all__ = ["atomic_path", "atomic_open", "clean_stale_temps", "refuse_links"]

logger = logging.getLogger(__name__)

# ``tempfile.mkstemp(prefix=".NAME.", suffix=SUFFIX)`` names: "." NAME "." 8 random characters SUFFIX.
_TEMP_NAME = re.compile(r"^\.(?P<name>.+)\.[a-z0-9_]{8}(?P<suffix>\.[^.]+)$")


def refuse_links(path: str | os.PathLike, root: str | os.PathLike) -> Path:
    """``path`` (inside ``root``) when no existing part of it below ``root`` is a symbolic link.

    vixml writes and deletes only inside the folders it owns (a run, a dataset's cache): a link planted
    there (a ``checkpoints`` pointing elsewhere, a lock file pointing at another file) would send a write or
    a delete outside. ``root`` itself may be a link: the user chose it.
    """
    path, root = Path(path), Path(root)
    try:
        parts = path.relative_to(root).parts
    except ValueError:
        parts = path.parts  # not under root: check every part given
        root = Path(parts[0]) if parts else root
        parts = parts[1:]
    current = root
    for part in parts:
        current = current / part
        if current.is_symlink():
            raise StorageError(
                f"{current} is a symbolic link (to {os.readlink(current)}); vixml never writes through a link "
                f"inside {root}: replace it with a real {'folder' if current.is_dir() else 'file'} or remove it"
            )
    return path


_UMASK = os.umask(0)
os.umask(_UMASK)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str | None = None, size_hint: int | None = None) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success fsync and rename it over ``path``.

    Use it with writers that want a file name (``np.save``, ``scipy.sparse.save_npz``, ``torch.save``).
    ``suffix`` keeps an extension that a writer insists on (``np.save`` appends ``.npy`` otherwise).
    On an exception the temporary file is removed and ``path`` is untouched. A full disk or an exceeded
    quota (``ENOSPC``/``EDQUOT``) becomes a :class:`~vixml.errors.StorageError` naming ``path``, the bytes
    written when it struck (or ``size_hint``, the size the writer meant to write) and the space left.
    """
    path = Path(path)
    if path.is_dir():  # refused before the work, not by the final rename after it
        raise StorageError(f"{path} is a folder: give the name of a file to write")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix or path.suffix or ".tmp", dir=path.parent)
    except OSError as exc:
        error = _storage_error(exc, path, None, size_hint) or _unwritable(exc, path)
        if error is None:
            raise
        raise error from exc
    os.close(fd)
    tmp_path = Path(tmp)
    os.chmod(tmp_path, 0o666 & ~_UMASK)  # mkstemp makes 0600 files; give the final file the usual mode
    try:
        try:
            yield tmp_path
            with open(tmp_path, "rb+") as fh:
                os.fsync(fh.fileno())
        except OSError as exc:
            error = _storage_error(exc, path, tmp_path, size_hint)
            if error is None:
                raise
            raise error from exc
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


_NO_SPACE = {errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)}


def _storage_error(exc: OSError, path: Path, tmp: Path | None, size_hint: int | None) -> StorageError | None:
    """A :class:`StorageError` saying what did not fit where, or None for another kind of OSError."""
    if isinstance(exc, StorageError) or exc.errno not in _NO_SPACE:
        return None
    try:
        written = tmp.stat().st_size if tmp is not None else 0
    except OSError:
        written = 0
    try:
        free = shutil.disk_usage(path.parent).free
    except OSError:
        free = None
    if size_hint is not None:
        need = f"{_size(size_hint)} were needed"
    else:
        need = f"more than {_size(written)} were needed ({_size(written)} written when the space ran out)"
    left = f", {_size(free)} free there" if free is not None else ""
    what = "quota exceeded" if exc.errno != errno.ENOSPC else "no space left on device"
    error = StorageError(f"{what} while writing {path}: {need}{left}; free some space or write elsewhere")
    error.errno = exc.errno
    return error


def _unwritable(exc: OSError, path: Path) -> StorageError | None:
    """A :class:`StorageError` for a place this process cannot write (permissions, a read-only disk, a file
    where a folder should be), or None for another kind of OSError."""
    if exc.errno in (errno.ENOTDIR, errno.EEXIST):
        reason = f"{exc.filename or path.parent} is a file, not a folder"
    elif exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOENT):
        reason = f"{(exc.strerror or str(exc)).lower()} in {path.parent} (a folder this process cannot write)"
    else:
        return None
    error = StorageError(f"cannot write {path}: {reason}; choose a place you can write to")
    error.errno = exc.errno
    return error


def _size(n: int) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} bytes"


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
