"""The encoding of a text file, decided once per file: UTF-8, or latin-1 only when asked or for known public files.

Guessing per file hides damage: a UTF-8 file with one invalid byte read as latin-1 turns every "café" into
"cafÃ©" and still looks fine. So the rule is strict:

- ``"auto"`` (the default): the file must be valid UTF-8 (a UTF-8 byte-order mark is skipped). If it is
  not, that is an error naming the file, the line and the byte offset of the first invalid byte, unless
  the file is one of the **known public latin-1 files** below, which are read as latin-1 (and said so).
- ``"latin-1"``: every byte is one character (what the user asked for; a warning is logged when the file
  is in fact valid non-ASCII UTF-8, since its accents would then be misread).
- ``"utf-8"``: UTF-8 or an error, even for the known public files.

Known public latin-1 files: the text files ``trn.raw.txt``, ``tst.raw.txt`` and ``lbl.raw.txt`` inside a
folder named after an Amazon dataset of the Extreme Classification Repository (``LF-AmazonTitles-131K``,
``LF-Amazon-131K``, ``LF-AmazonTitles-1.3M``, ``MM-AmazonTitles-300K``, ``AmazonTitles-670K``,
``Amazon-3M``, ...: the pattern ``[LF-|MM-]Amazon[Titles]-<size><K|M>``, any case). These are the files
that the XC tooling (the ViXML/NGAME ``extract_text_and_labels.py``) writes from the repository's JSON with
``encoding="latin"``. The rule needs both the exact file name and the exact folder name: a renamed folder
or any other file gets the strict UTF-8 check, and ``--encoding latin-1`` says what to do.
"""

from __future__ import annotations

import codecs
import gzip
import logging
import os
import re
from pathlib import Path
from typing import Literal

from vixml.errors import ConfigError, DataError, Problem

__all__ = [
    "Encoding",
    "ENCODINGS",
    "check_encoding",
    "is_known_latin1",
    "choose_encoding",
    "utf8_problem",
    "locate_utf8_error",
]

logger = logging.getLogger(__name__)

Encoding = Literal["auto", "utf-8", "latin-1"]
ENCODINGS: tuple[str, ...] = ("auto", "utf-8", "latin-1")

KNOWN_LATIN1_NAMES = frozenset({"trn.raw.txt", "tst.raw.txt", "lbl.raw.txt"})
KNOWN_LATIN1_FOLDERS = re.compile(r"^(?:LF-|MM-)?Amazon(?:Titles)?-\d+(?:\.\d+)?[KM]$", re.IGNORECASE)
_HINT = "if it is latin-1, pass --encoding latin-1 (Python: encoding='latin-1')"


def is_known_latin1(path: str | os.PathLike) -> bool:
    """Whether ``path`` is one of the public XC files known to be latin-1 (module docstring)."""
    path = Path(path)
    return path.name in KNOWN_LATIN1_NAMES and bool(KNOWN_LATIN1_FOLDERS.match(path.resolve().parent.name))


def check_encoding(encoding: str) -> Encoding:
    """``encoding`` itself when it is one of :data:`ENCODINGS` (``latin1``/``utf8`` spellings accepted)."""
    normal = {"latin1": "latin-1", "iso-8859-1": "latin-1", "utf8": "utf-8"}.get(str(encoding).lower(), encoding)
    if normal not in ENCODINGS:
        raise ConfigError(f"encoding must be one of {', '.join(ENCODINGS)}, got {encoding!r}")
    return normal  # type: ignore[return-value]


def choose_encoding(
    path: str | os.PathLike,
    requested: str,
    invalid_at: int | None,
    non_ascii: bool,
    context: bytes | None = None,
    line: int | None = None,
) -> tuple[str, str]:
    """The encoding to read ``path`` with, and why (for logs and ``validate``).

    Args:
        path: the file.
        requested: ``auto``, ``utf-8`` or ``latin-1``.
        invalid_at: byte offset of the first byte that is not valid UTF-8, None when the file is valid UTF-8.
        non_ascii: whether the file holds any non-ASCII byte.
        context: the bytes of the line holding ``invalid_at`` (for the error message).
        line: the 1-based line of ``invalid_at``.

    Raises:
        DataError: not valid UTF-8, and latin-1 neither asked for nor known (module docstring).
    """
    requested = check_encoding(requested)
    if requested == "latin-1":
        if invalid_at is None and non_ascii:
            logger.warning(
                "%s is valid UTF-8 but is read as latin-1, as asked: its non-ASCII characters will be misread",
                path,
            )
        return "latin-1", "latin-1 (asked)"
    if invalid_at is None:
        return "utf-8", "utf-8" if non_ascii else "utf-8 (ascii)"
    if requested == "auto" and is_known_latin1(path):
        logger.info("reading %s as latin-1: a public XC file of an Amazon dataset, written in latin-1", path)
        return "latin-1", "latin-1 (known public XC file)"
    raise DataError(utf8_problem(path, invalid_at, line, context))


def utf8_problem(path: str | os.PathLike, offset: int, line: int | None, context: bytes | None) -> Problem:
    """The problem "not valid UTF-8" at byte ``offset`` (line ``line``), showing the offending bytes."""
    shown = ""
    if context is not None:
        text = context.rstrip(b"\r\n").decode("utf-8", "backslashreplace")
        shown = f' in "{text[:80]}"'
    return Problem(
        str(path),
        f"not valid UTF-8 at byte offset {offset}{shown}: the file must be UTF-8; {_HINT}",
        line=line,
        field="encoding",
    )


def locate_utf8_error(path: str | os.PathLike) -> tuple[int, int, bytes] | None:
    """``(line, byte offset, line bytes)`` of the first invalid UTF-8 byte of a (possibly gzipped) file.

    Used after a text stream failed to decode, to say where: reads the file line by line (a newline never
    sits inside a UTF-8 sequence, so lines decode independently). None when no invalid byte is found (or
    the file cannot be read).
    """
    path = Path(path)
    opener = gzip.open if path.name.lower().endswith(".gz") else open
    offset = 0
    try:
        with opener(path, "rb") as fh:
            for lineno, raw in enumerate(fh, start=1):
                start = 3 if lineno == 1 and raw.startswith(codecs.BOM_UTF8) else 0
                try:
                    raw[start:].decode("utf-8")
                except UnicodeDecodeError as exc:
                    return lineno, offset + start + exc.start, raw
                offset += len(raw)
    except (OSError, EOFError):
        return None
    return None
