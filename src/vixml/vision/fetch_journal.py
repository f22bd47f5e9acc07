"""The resumable state of an image fetch: an append-only journal and a staging file of thumbnails.

A fetch of one split works in a folder ``<dataset>/.<train|test|labels>_imgs_<size>.fetch/`` holding

- ``staging.b64``: the thumbnails fetched so far, one base64 JPEG line each, in completion order;
- ``journal.jsonl``: a header line with the settings that shape a thumbnail (size, JPEG quality,
  upscaling), then one JSON line per finished reference: ``{"url", "ok": true, "offset", "length"}``
  (where its line lies in the staging file) or ``{"url", "ok": false, "reason", "detail", "transient"}``.

Results are appended in batches; each batch fsyncs the staging file *before* the journal lines that
point into it, so every journal line that survives a crash (``kill -9``, power loss) refers to bytes on
disk. A torn last line is ignored, a line pointing past the end of the staging file is ignored, and
staging bytes past the last referenced line (written after the last journal batch) are cut off when the
journal is reopened. Entries are keyed by the reference itself, so a rerun with a reordered or extended
input reuses whatever was already fetched; a later line for the same reference overrides an earlier one.
"""

from __future__ import annotations

import array
import hashlib
import json
import logging
import mmap
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vixml.errors import ConfigError

__all__ = ["FetchJournal", "UrlStates", "url_keys", "TODO", "OK", "FAILED", "JOURNAL_FORMAT"]

logger = logging.getLogger(__name__)

JOURNAL_FORMAT = "vixml-image-fetch/1"
TODO, OK, FAILED = 0, 1, 2
_DETAIL_CHARS = 300


def url_keys(urls: list[str]) -> np.ndarray:
    """Stable 64-bit keys of references (BLAKE2b), uint64 (n,); Python's ``hash`` changes between runs."""
    keys = np.empty(len(urls), dtype=np.uint64)
    for i, url in enumerate(urls):
        digest = hashlib.blake2b(url.encode("utf-8", "surrogatepass"), digest_size=8).digest()
        keys[i] = int.from_bytes(digest, "little")
    return keys


@dataclass
class UrlStates:
    """What the journal knows about each unique reference of the current input.

    Attributes:
        status: int8 (n_urls,): ``TODO``, ``OK`` or ``FAILED``.
        offset: int64 (n_urls,): start of the thumbnail's line in the staging file (``OK`` only).
        length: int64 (n_urls,): its length in bytes, without the newline (``OK`` only).
        failures: ``{url index: (reason, detail, transient)}`` for the ``FAILED`` ones.
    """

    status: np.ndarray
    offset: np.ndarray
    length: np.ndarray
    failures: dict[int, tuple[str, str, bool]]

    @classmethod
    def empty(cls, n: int) -> UrlStates:
        return cls(np.zeros(n, np.int8), np.zeros(n, np.int64), np.zeros(n, np.int64), {})


def _lock(path: Path):
    """Hold an exclusive lock on ``path`` while the returned file is open: one fetch per working folder."""
    fh = open(path, "a+b")
    try:
        import fcntl
    except ImportError:  # Windows: no advisory locks here; running two fetches of one split is on the user
        return fh
    try:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        fh.close()
        raise ConfigError(f"another fetch is writing {path.parent}: wait for it to finish (or stop it)") from exc
    return fh


def _json_or_none(raw: bytes):
    try:
        return json.loads(raw)
    except ValueError:
        return None


@dataclass
class _Entries:
    """The journal's entries in compact form (a journal can hold millions): keys, not URL strings.

    Attributes:
        keys: uint64 (n,), :func:`url_keys` of each entry's reference, in journal order.
        ok: bool (n,); offset, length: int64 (n,) (ok entries only).
        failures: ``{entry index: (reason, detail, transient)}`` of the failed entries.
        end: the end of the last staging line an entry refers to; torn / dangling: entries ignored.
    """

    keys: np.ndarray
    ok: np.ndarray
    offset: np.ndarray
    length: np.ndarray
    failures: dict[int, tuple[str, str, bool]]
    end: int = 0
    torn: int = 0
    dangling: int = 0

    @classmethod
    def parse(cls, lines, staging_size: int) -> _Entries:
        """Parse entry lines; skip torn ones and ok ones that point past ``staging_size`` bytes."""
        urls: list[str] = []
        ok, offset, length = array.array("b"), array.array("q"), array.array("q")
        failures: dict[int, tuple[str, str, bool]] = {}
        end = torn = dangling = 0
        for raw in lines:
            if not raw.strip():
                continue
            entry = _json_or_none(raw)
            try:
                url, good = entry["url"], bool(entry["ok"])
                start, size = (int(entry["offset"]), int(entry["length"])) if good else (0, 0)
                if not isinstance(url, str):
                    raise TypeError(url)
            except (KeyError, TypeError, ValueError):
                torn += 1
                continue
            if good and start + size + 1 > staging_size:
                dangling += 1
                continue
            if not good:
                info = (str(entry.get("reason", "error")), str(entry.get("detail", "")), bool(entry.get("transient")))
                failures[len(urls)] = info
            end = max(end, start + size + 1) if good else end
            urls.append(url)
            ok.append(good)
            offset.append(start)
            length.append(size)
        return cls(
            url_keys(urls),
            np.frombuffer(ok, dtype=np.int8).astype(bool),
            np.frombuffer(offset, dtype=np.int64),
            np.frombuffer(length, dtype=np.int64),
            failures,
            end,
            torn,
            dangling,
        )


class FetchJournal:
    """Append-only record of finished references, with their thumbnails staged beside it.

    Args:
        work_dir: the fetch's working folder (created).
        settings: what shapes a thumbnail (size, quality, ...); a journal written with other settings
            cannot be resumed.
        restart: discard any earlier journal and staging file first.

    Raises:
        ConfigError: an existing journal was written with other settings (the message says which).
    """

    JOURNAL = "journal.jsonl"
    STAGING = "staging.b64"
    LOCK = "lock"

    def __init__(self, work_dir: str | os.PathLike, settings: dict, *, restart: bool = False):
        self.work_dir = Path(work_dir)
        self.settings = {"format": JOURNAL_FORMAT, **settings}
        self.work_dir.mkdir(parents=True, exist_ok=True)
        self.journal_path = self.work_dir / self.JOURNAL
        self.staging_path = self.work_dir / self.STAGING
        self._lock = _lock(self.work_dir / self.LOCK)
        if restart:
            self.journal_path.unlink(missing_ok=True)
            self.staging_path.unlink(missing_ok=True)
        try:
            self._entries = self._read_existing()
        except BaseException:
            self._lock.close()
            raise
        self._staging = open(self.staging_path, "ab")
        self._journal = open(self.journal_path, "ab")
        if not self._has_header:
            self._journal.write((json.dumps(self.settings) + "\n").encode())
            self._sync()
        self._staging_end = self.staging_path.stat().st_size
        self._pending: list[bytes] = []

    # reading ------------------------------------------------------------------------------------------------
    def _read_existing(self) -> _Entries:
        """Check the header, parse the entries, and cut unreferenced staging bytes off."""
        self._has_header = False
        if not self.journal_path.is_file() or self.journal_path.stat().st_size == 0:
            self.staging_path.unlink(missing_ok=True)
            return _Entries.parse([], 0)
        staging_size = self.staging_path.stat().st_size if self.staging_path.is_file() else 0
        with open(self.journal_path, "rb") as fh:
            header = _json_or_none(fh.readline())
            if header is None and not any(line.strip() for line in fh):  # killed while writing the header
                fh.close()
                self.journal_path.unlink()
                self.staging_path.unlink(missing_ok=True)
                return _Entries.parse([], 0)
            self._check_header(header)
            entries = _Entries.parse(fh, staging_size)
            fh.seek(-1, os.SEEK_END)
            torn_end = fh.read(1) != b"\n"
        if entries.torn or entries.dangling:
            logger.warning(
                "%s: %d unreadable and %d dangling entries ignored (a run was killed mid-write)",
                self.journal_path,
                entries.torn,
                entries.dangling,
            )
        if staging_size > entries.end:
            with open(self.staging_path, "r+b") as fh:
                fh.truncate(entries.end)
        if torn_end:  # end the file with a newline so that appends start on a line of their own
            with open(self.journal_path, "ab") as fh:
                fh.write(b"\n")
        return entries

    def _check_header(self, header: dict | None) -> None:
        if not isinstance(header, dict) or header.get("format") != JOURNAL_FORMAT:
            raise ConfigError(f"{self.journal_path} is not a vixml fetch journal: remove it or fetch with --restart")
        different = {k: (header.get(k), v) for k, v in self.settings.items() if header.get(k) != v}
        if different:
            said = ", ".join(f"{k}={old!r} (now {new!r})" for k, (old, new) in different.items())
            raise ConfigError(
                f"the unfinished fetch in {self.work_dir} used {said}: pass the same options to resume it, "
                "or --restart to discard it"
            )
        self._has_header = True

    def states(self, urls: list[str], keys: np.ndarray | None = None) -> UrlStates:
        """What is known about each of ``urls`` (unique references), the latest entry of each winning."""
        keys = url_keys(urls) if keys is None else keys
        states = UrlStates.empty(len(urls))
        found = self._entries
        if not len(found.keys) or not len(urls):
            return states
        order = np.argsort(keys, kind="stable")
        sorted_keys = keys[order]
        pos = np.minimum(np.searchsorted(sorted_keys, found.keys), len(urls) - 1)
        match = np.flatnonzero(sorted_keys[pos] == found.keys)  # others are references of another input
        last = len(match) - 1 - np.unique(pos[match][::-1], return_index=True)[1]  # the latest entry per url
        entry = match[last]
        u = order[pos[entry]]
        ok = found.ok[entry]
        states.status[u] = np.where(ok, OK, FAILED)
        states.offset[u[ok]] = found.offset[entry[ok]]
        states.length[u[ok]] = found.length[entry[ok]]
        for e, target in zip(entry[~ok].tolist(), u[~ok].tolist(), strict=True):
            states.failures[target] = found.failures[e]
        return states

    # writing ------------------------------------------------------------------------------------------------
    def record_ok(self, url: str, line: bytes) -> tuple[int, int]:
        """Stage one thumbnail line (base64, no newline); returns its ``(offset, length)``."""
        offset = self._staging_end
        self._staging.write(line)
        self._staging.write(b"\n")
        self._staging_end += len(line) + 1
        entry = {"url": url, "ok": True, "offset": offset, "length": len(line)}
        self._pending.append(json.dumps(entry, ensure_ascii=False).encode("utf-8", "surrogatepass"))
        return offset, len(line)

    def record_failure(self, url: str, reason: str, detail: str, transient: bool) -> None:
        """Note a reference that gave no image."""
        entry = {"url": url, "ok": False, "reason": reason, "detail": detail[:_DETAIL_CHARS], "transient": transient}
        self._pending.append(json.dumps(entry, ensure_ascii=False).encode("utf-8", "surrogatepass"))

    @property
    def pending(self) -> int:
        """Entries recorded but not yet made durable."""
        return len(self._pending)

    def flush(self) -> None:
        """Make every recorded entry durable: staging bytes first, then the journal lines pointing into them."""
        if not self._pending:
            return
        self._staging.flush()
        os.fsync(self._staging.fileno())
        self._journal.write(b"\n".join(self._pending) + b"\n")
        self._pending.clear()
        self._sync()

    def _sync(self) -> None:
        self._journal.flush()
        os.fsync(self._journal.fileno())

    def open_staging(self) -> mmap.mmap | bytes:
        """The staging file for reading thumbnails back (flush first); ``buf[offset:offset + length]``."""
        self._staging.flush()
        if self._staging_end == 0:
            return b""
        with open(self.staging_path, "rb") as fh:
            return mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)

    def close(self) -> None:
        """Flush and close the files (the folder stays, for a later run)."""
        if self._journal.closed:
            return
        try:
            self.flush()
        finally:
            self._staging.close()
            self._journal.close()
            self._lock.close()

    def discard(self) -> None:
        """Close and remove the working folder (after the final bank and map are written)."""
        self.close()
        shutil.rmtree(self.work_dir, ignore_errors=True)
