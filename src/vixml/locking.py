"""One writer at a time: an advisory lock on a folder or file that names its holder and dies with it.

Two ``vixml train`` into one run folder would interleave checkpoints, configs and models. Every command
that writes a run folder, a dataset's image banks or an output file takes a :class:`WriteLock` first; a
second writer is refused at once with the holder's pid, host, command and start time. The lock is an
``flock`` on a small file: the kernel releases it when the holder exits, however it exits (``kill -9``
included), so a dead holder never leaves it stuck; the file itself may stay and is reused.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import time
from pathlib import Path

from vixml.errors import StorageError, VixmlError

__all__ = ["WriteLock", "LockedError", "lock_path_for"]

LOCK_NAME = ".vixml.lock"


class LockedError(VixmlError):
    """Another process holds the write lock; the message names it and what to do."""


def lock_path_for(target: str | os.PathLike) -> Path:
    """The lock file of ``target``: ``DIR/.vixml.lock`` for a folder, ``DIR/.NAME.lock`` for a file."""
    target = Path(target)
    if target.is_dir() or not target.suffix:
        return target / LOCK_NAME
    return target.with_name(f".{target.name}.lock")


class WriteLock:
    """Exclusive, non-blocking write lock on ``target`` (a folder, created if needed, or a file's path).

    Use as a context manager, or :meth:`acquire` / :meth:`release`. Not re-entrant: a second lock on the same
    target is refused even inside one process (two writers in one process are a bug as well).

    Args:
        target: the folder (or output file) to protect.
        purpose: what the holder does (shown to a refused writer), e.g. ``"vixml train"``.
    """

    def __init__(self, target: str | os.PathLike, purpose: str = "write"):
        self.target = Path(target)
        self.purpose = purpose
        self.path = lock_path_for(self.target)
        self._fd: int | None = None

    def acquire(self) -> WriteLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:  # never through a link: a planted one would truncate its target
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o644)
        except OSError as exc:
            if self.path.is_symlink():
                raise StorageError(
                    f"the lock {self.path} is a symbolic link (to {os.readlink(self.path)}); vixml never writes "
                    "through a link: remove it"
                ) from None
            raise StorageError(f"cannot create the lock {self.path}: {exc.strerror}") from None
        try:
            _lock(fd)
        except OSError:
            holder = _read_holder(fd)
            os.close(fd)
            raise LockedError(
                f"{self.target} is being written by another process ({holder}); wait for it to finish or stop "
                f"it (the lock {self.path} frees itself when its holder exits)"
            ) from None
        info = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "purpose": self.purpose,
            "command": " ".join(sys.argv)[:500],
            "since": time.strftime("%Y-%m-%d %H:%M:%S"),
        }
        os.ftruncate(fd, 0)
        os.lseek(fd, 0, os.SEEK_SET)
        os.write(fd, (json.dumps(info) + "\n").encode())
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        try:
            os.ftruncate(fd, 0)
            _unlock(fd)
        finally:
            os.close(fd)

    @property
    def held(self) -> bool:
        return self._fd is not None

    def __enter__(self) -> WriteLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


def _read_holder(fd: int) -> str:
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        info = json.loads(os.read(fd, 4096).decode() or "{}")
    except (OSError, ValueError):
        info = {}
    if not info:
        return "holder unknown"
    get = info.get
    return f"{get('purpose', '?')}, pid {get('pid', '?')} on {get('host', '?')} since {get('since', '?')}"


if sys.platform == "win32":  # pragma: no cover - CI runs on Linux
    import msvcrt

    def _lock(fd: int) -> None:
        msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)

    def _unlock(fd: int) -> None:
        msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)

else:
    import fcntl

    def _lock(fd: int) -> None:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)

    def _unlock(fd: int) -> None:
        fcntl.flock(fd, fcntl.LOCK_UN)
