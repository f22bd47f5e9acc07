"""Text files of a dataset (``trn.raw.txt``, ...): one text per line, read lazily from a memory map.

LF-AmazonTitles-1.3M has 2.2M training and 1.3M label lines; holding them as Python strings costs
gigabytes. A :class:`TextStore` keeps only the memory-mapped file and an int64 array of line offsets
(8 bytes per line) and decodes a line when it is asked for.
"""

from __future__ import annotations

import codecs
import mmap
import os
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Literal, overload

import numpy as np

from vixml.atomic import atomic_open
from vixml.data._problems import ProblemCollector
from vixml.data.encoding import Encoding, choose_encoding
from vixml.errors import DataError, Problem

__all__ = ["TextStore", "read_texts", "write_texts", "clean_text", "ID_SEPARATOR"]

ID_SEPARATOR = "->"
_CHUNK = 1 << 26  # bytes scanned at a time: bounds the temporary memory of a scan
_SNIFF_LINES = 1000  # non-empty lines looked at to decide whether a file is `id->text`
_BLOCK_LINES = 4096  # lines decoded at once while iterating
_UTF8_BOM = b"\xef\xbb\xbf"
_CLEAN = str.maketrans({"\n": " ", "\r": " ", "\x00": " "})

Layout = Literal["auto", "plain", "id->text"]


def clean_text(text: str) -> str:
    """Make ``text`` fit on one line: newlines, carriage returns and NUL become spaces."""
    return text.translate(_CLEAN)


class TextStore(Sequence):
    """The lines of a text file as a lazy, read-only sequence of ``str``.

    ``store[i]`` -> str; ``store[slice]``, ``store[int array or list]`` -> list[str]; ``len(store)``;
    iteration decodes blocks of lines at a time. In an ``id->text`` file the text is what follows the
    first ``->`` (:meth:`raw_lines` keeps the ids). A store pickles without its memory map (it
    reopens the file), so it can travel to DataLoader workers.

    Attributes:
        path: the file.
        encoding: ``"utf-8"`` or ``"latin-1"``.
        encoding_reason: why (``"utf-8"``, ``"latin-1 (asked)"``, ``"latin-1 (known public XC file)"``, ...).
        has_ids: whether lines are ``id->text``.
        offsets: int64 array (n + 1,), line i is the bytes ``[offsets[i], offsets[i + 1])`` of the file.
    """

    def __init__(
        self, path: str | os.PathLike, offsets: np.ndarray, encoding: str, has_ids: bool, encoding_reason: str = ""
    ):
        self.path = Path(path)
        self.offsets = offsets
        self.encoding = encoding
        self.encoding_reason = encoding_reason or encoding
        self.has_ids = has_ids
        self._mm: mmap.mmap | bytes | None = None

    # -- access --------------------------------------------------------------------------------------------
    def _buffer(self) -> mmap.mmap | bytes:
        if self._mm is None:
            self._mm = _map(self.path)
        return self._mm

    def _raw(self, i: int) -> str:
        buf = self._buffer()
        return buf[self.offsets[i] : self.offsets[i + 1]].rstrip(b"\r\n").decode(self.encoding)

    def _text_of(self, line: str) -> str:
        if self.has_ids:
            head, sep, tail = line.partition(ID_SEPARATOR)
            return tail if sep else head
        return line

    def __len__(self) -> int:
        return len(self.offsets) - 1

    @overload
    def __getitem__(self, index: int) -> str: ...

    @overload
    def __getitem__(self, index: slice | Sequence[int] | np.ndarray) -> list[str]: ...

    def __getitem__(self, index):
        n = len(self)
        if isinstance(index, (int, np.integer)):
            i = int(index)
            if i < 0:
                i += n
            if not 0 <= i < n:
                raise IndexError(f"line {index} out of range for {n} lines of {self.path}")
            return self._text_of(self._raw(i))
        if isinstance(index, slice):
            start, stop, step = index.indices(n)
            if step == 1:
                return list(self._iter_range(start, stop))
            index = range(start, stop, step)
        rows = np.asarray(index, dtype=np.int64).reshape(-1)
        if rows.size and (rows.min() < -n or rows.max() >= n):
            raise IndexError(f"line index out of range for {n} lines of {self.path}")
        rows = np.where(rows < 0, rows + n, rows)
        return [self._text_of(self._raw(int(i))) for i in rows]

    def __iter__(self) -> Iterator[str]:
        return self._iter_range(0, len(self))

    def _iter_range(self, start: int, stop: int, raw: bool = False) -> Iterator[str]:
        buf = self._buffer()
        for a in range(start, stop, _BLOCK_LINES):
            b = min(a + _BLOCK_LINES, stop)
            block = buf[self.offsets[a] : self.offsets[b]].decode(self.encoding)
            lines = block.split("\n")
            for line in lines[: b - a]:
                yield line.rstrip("\r") if raw else self._text_of(line.rstrip("\r"))

    def raw_lines(self) -> Iterator[str]:
        """Every line as stored (with its id, if any), without line breaks."""
        return self._iter_range(0, len(self), raw=True)

    def close(self) -> None:
        """Release the memory map (it is reopened if the store is used again)."""
        if isinstance(self._mm, mmap.mmap):
            self._mm.close()
        self._mm = None

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_mm"] = None
        return state

    def __repr__(self) -> str:
        layout = "id->text" if self.has_ids else "plain"
        return f"TextStore({str(self.path)!r}, lines={len(self)}, encoding={self.encoding}, layout={layout})"


def _map(path: Path) -> mmap.mmap | bytes:
    with open(path, "rb") as fh:
        if os.fstat(fh.fileno()).st_size == 0:
            return b""
        return mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)


def _scan(buf: mmap.mmap | bytes) -> tuple[np.ndarray, int, int, bool]:
    """One pass over the bytes.

    Returns:
        ``(offsets (n + 1,), byte offset of the first invalid UTF-8 byte (-1 if none), first NUL byte (-1 if
        none), whether any byte is non-ASCII)``.
    """
    size = len(buf)
    newlines = []
    decoder = codecs.getincrementaldecoder("utf-8")()
    invalid = -1
    nul = -1
    non_ascii = False
    bom = 3 if buf[:3] == _UTF8_BOM else 0
    for start in range(0, size, _CHUNK):
        chunk = buf[start : start + _CHUNK]
        newlines.append(np.flatnonzero(np.frombuffer(chunk, dtype=np.uint8) == 10) + start)
        if nul < 0 and (at := chunk.find(b"\x00")) >= 0:
            nul = start + at
        ascii_chunk = chunk.isascii()
        non_ascii |= not ascii_chunk and not (start == 0 and bom and chunk[3:].isascii())
        if invalid < 0 and (not ascii_chunk or decoder.getstate()[0]):
            pending = len(decoder.getstate()[0])
            try:
                decoder.decode(chunk[bom:] if start == 0 else chunk)
            except UnicodeDecodeError as exc:
                invalid = start + (bom if start == 0 else 0) - pending + exc.start
    if invalid < 0:
        pending = len(decoder.getstate()[0])
        try:
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            invalid = size - pending
    ends = np.concatenate(newlines) + 1 if newlines else np.zeros(0, dtype=np.int64)
    offsets = np.concatenate([np.zeros(1, dtype=np.int64), ends.astype(np.int64)])
    if size and buf[size - 1 : size] != b"\n":
        offsets = np.append(offsets, np.int64(size))
    if bom:
        offsets[0] = 3
    return offsets, invalid, nul, non_ascii


def _sniff_ids(store: TextStore) -> bool:
    """A file is `id->text` when >= 90% of its first non-empty lines start with a whitespace-free id and `->`.

    The tolerance lets validation point at the few lines of an `id->text` file that lost their id.
    """
    seen = with_id = 0
    for line in store.raw_lines():
        if not line.strip():
            continue
        head, sep, _ = line.partition(ID_SEPARATOR)
        with_id += bool(sep and head and not any(c.isspace() for c in head))
        seen += 1
        if seen >= _SNIFF_LINES:
            break
    return seen > 0 and with_id >= 0.9 * seen


def read_texts(path: str | os.PathLike, *, encoding: Encoding = "auto", layout: Layout = "auto") -> TextStore:
    """Open a one-text-per-line file lazily.

    Args:
        path: the file.
        encoding: ``"auto"``: the file must be valid UTF-8, except the public XC files known to be latin-1
            (see :mod:`vixml.data.encoding`); ``"latin-1"`` or ``"utf-8"`` force one. A UTF-8 byte-order
            mark is skipped.
        layout: ``"auto"`` detects ``id->text`` lines from the first 1000 non-empty lines (>= 90% of
            them ``id->...`` with a whitespace-free id); ``"plain"``
            and ``"id->text"`` force one.

    Returns:
        A :class:`TextStore` over the file (``store.encoding_reason`` says why its encoding was chosen).

    Raises:
        DataError: the file is missing, unreadable, binary (contains NUL bytes), or not valid UTF-8 when
            UTF-8 is required (naming the line and byte offset of the first invalid byte).
    """
    path = Path(path)
    problems = ProblemCollector(path)
    try:
        buf = _map(path)
    except OSError as exc:
        raise DataError(Problem(str(path), f"cannot read text file: {exc.strerror or exc}")) from exc
    try:
        offsets, invalid, nul, non_ascii = _scan(buf)
        if nul >= 0:
            line = _line_of(offsets, nul)
            problems.add("binary data (NUL byte): this is not a text file", line=line)
            problems.raise_if_any()
        line = _line_of(offsets, invalid) if invalid >= 0 else None
        context = bytes(buf[offsets[line - 1] : offsets[line]]) if line is not None else None
        chosen, reason = choose_encoding(path, encoding, invalid if invalid >= 0 else None, non_ascii, context, line)
    finally:
        if isinstance(buf, mmap.mmap):
            buf.close()
    store = TextStore(path, offsets, chosen, has_ids=False, encoding_reason=reason)
    if layout == "id->text" or (layout == "auto" and _sniff_ids(store)):
        store.has_ids = True
    return store


def _line_of(offsets: np.ndarray, byte: int) -> int:
    """1-based line holding byte offset ``byte``."""
    return max(1, min(int(np.searchsorted(offsets, byte, side="right")), len(offsets) - 1))


def write_texts(path: str | os.PathLike, texts: Iterable[str]) -> int:
    """Write one text per line, UTF-8, atomically; newlines inside a text become spaces.

    Returns:
        The number of lines written.
    """
    count = 0
    block: list[str] = []
    with atomic_open(path, "wb") as fh:
        for text in texts:
            block.append(clean_text(str(text)))
            if len(block) >= _BLOCK_LINES:
                fh.write(("\n".join(block) + "\n").encode("utf-8", "replace"))
                count += len(block)
                block = []
        if block:
            fh.write(("\n".join(block) + "\n").encode("utf-8", "replace"))
            count += len(block)
    return count
