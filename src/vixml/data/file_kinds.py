"""What a file is, by its first bytes, so that a message can say "this is a numpy array" instead of misreading it.

A dense ``.npy`` passed where a label file is expected used to be parsed as text (a page of binary
tokens); a file that is not a zip archive named ``.npz`` used to be called "pickled data". Readers ask
:func:`sniff` first and name the kind in their messages.
"""

from __future__ import annotations

import os
import zipfile
import zlib
from pathlib import Path
from typing import Literal

__all__ = ["FileKind", "sniff", "describe", "NUMPY_READ_ERRORS"]

FileKind = Literal["missing", "folder", "empty", "npy", "npz", "gzip", "parquet", "text", "binary"]

#: What numpy/scipy raise on a truncated or corrupt ``.npy`` / ``.npz`` (a zip archive).
NUMPY_READ_ERRORS = (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile, zlib.error)

_NPY_MAGIC = b"\x93NUMPY"
_ZIP_MAGIC = b"PK\x03\x04"
_GZIP_MAGIC = b"\x1f\x8b"
_PARQUET_MAGIC = b"PAR1"


def sniff(path: str | os.PathLike) -> FileKind:
    """The kind of ``path`` from its first bytes (``text``: no NUL byte in its first 4 KiB)."""
    path = Path(path)
    if path.is_dir():
        return "folder"
    try:
        with open(path, "rb") as fh:
            head = fh.read(4096)
    except FileNotFoundError:
        return "missing"
    except OSError:
        return "binary"
    if not head:
        return "empty"
    for magic, kind in ((_NPY_MAGIC, "npy"), (_ZIP_MAGIC, "npz"), (_GZIP_MAGIC, "gzip"), (_PARQUET_MAGIC, "parquet")):
        if head.startswith(magic):
            return kind  # type: ignore[return-value]
    return "binary" if b"\x00" in head else "text"


def describe(path: str | os.PathLike) -> str:
    """A few words on what ``path`` holds (``a dense numpy array float32 (5, 6)``, ``a zip archive``, ...)."""
    kind = sniff(path)
    if kind == "npy":
        import numpy as np

        try:
            array = np.load(path, mmap_mode="r", allow_pickle=False)
        except NUMPY_READ_ERRORS:
            return "a numpy .npy file that cannot be read (truncated, or it holds Python objects)"
        return f"a dense numpy array {array.dtype} of shape {tuple(array.shape)} (.npy)"
    if kind == "npz":
        try:
            with zipfile.ZipFile(path) as archive:
                names = [n.removesuffix(".npy") for n in archive.namelist()]
        except (zipfile.BadZipFile, OSError):
            return "a truncated or corrupt zip archive"
        return f"a zip archive (.npz) holding {', '.join(names[:8]) or 'nothing'}"
    return {
        "missing": "missing",
        "folder": "a folder",
        "empty": "an empty file",
        "gzip": "a gzip-compressed file",
        "parquet": "a Parquet table",
        "text": "a text file",
        "binary": "a binary file (not text, not numpy)",
    }[kind]
