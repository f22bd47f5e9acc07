"""Free input for a trained run: texts (and image references) to predict for, or new labels to add.

Accepted files (``vixml predict RUN --texts FILE``, ``vixml labels add RUN --texts FILE``):

- any file that is not a table: one text per line (UTF-8 or latin-1);
- a table (CSV/TSV, JSON lines, Parquet; :mod:`vixml.data.tables`) with a ``text`` column (or ``title``
  [+ ``content``], as in catalogues), an optional id column (``id``, ``query_id`` or ``label_id``: the
  item's own id, carried to the outputs, or given to a new label) and optional image columns (``images``,
  ``image_urls``, ``image``, ...: one reference or a JSON list; relative paths are taken from the table's
  folder).

Every empty text is reported with its line, in one error; or, with ``skip_blank``, blank lines of a plain
text file are skipped and counted (``TextInput.skipped``). ``-`` reads plain text from standard input.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from vixml.data._problems import ProblemCollector
from vixml.data.catalogue import IMAGE_COLUMNS, column_value, record_text
from vixml.data.image_cells import parse_image_cell
from vixml.data.tables import iter_table, no_column, table_suffix
from vixml.data.texts import clean_text, read_texts
from vixml.errors import DataError, Problem

__all__ = ["TextInput", "read_text_input", "ID_COLUMNS"]

ID_COLUMNS = ("id", "query_id", "label_id")


@dataclass(frozen=True)
class TextInput:
    """Texts read from a file, with their image references when the file has an image column.

    Attributes:
        path: the file.
        texts: one text per item.
        images: one list of references (paths, URLs, ``data:`` URIs) per item, or None (no image column).
        lines: the line (or row) each item came from, for messages.
        ids: each item's own id (None where its cell is empty), or None (no id column).
        skipped: blank lines left out (``skip_blank``).
    """

    path: Path
    texts: list[str]
    images: list[list[str]] | None
    lines: list[int]
    ids: list[str | None] | None = None
    skipped: int = 0

    def __len__(self) -> int:
        return len(self.texts)


def read_text_input(path: str | os.PathLike, *, max_items: int | None = None, skip_blank: bool = False) -> TextInput:
    """Read a text file or a table of texts (see the module doc).

    Args:
        path: the file; ``-``: standard input (plain text, UTF-8).
        max_items: refuse files with more items (None: no bound).
        skip_blank: leave out blank lines of a plain text file (counted) instead of refusing them.

    Raises:
        DataError: the file is missing or unreadable, a table has no text column, a text is empty (every
            such line listed), or there are more than ``max_items`` items.
    """
    path = Path(path)
    problems = ProblemCollector("<stdin>" if str(path) == "-" else path)
    texts: list[str] = []
    lines: list[int] = []
    images: list[list[str]] | None = None
    ids: list[str | None] | None = None
    skipped = 0
    missing: list[int] = []
    if str(path) == "-" or table_suffix(path) is None:
        for i, text in enumerate(_stdin_lines() if str(path) == "-" else read_texts(path, layout="plain"), start=1):
            if not text.strip() and skip_blank:
                skipped += 1
                continue
            if not text.strip():
                problems.add("empty line: expected one text per line", line=i)
            texts.append(text.strip())
            lines.append(i)
    else:
        images, ids = [], []
        has_images = has_ids = False
        keys: set = set()
        for line, record in iter_table(path, problems):
            keys.update(record)
            try:
                text = record_text(record, "auto")
            except ValueError as exc:
                problems.add(str(exc), line=line, field="text")
                text = ""
            if text is None:
                missing.append(line)
                continue
            if not text.strip():
                problems.add("empty text", line=line, field="text")
            cell = column_value(record, IMAGE_COLUMNS)
            has_images |= cell is not None
            key = column_value(record, ID_COLUMNS)
            has_ids |= key is not None
            ids.append(None if key is None or not str(key).strip() else clean_text(str(key)).strip())
            texts.append(text.strip())
            images.append(parse_image_cell(cell, path.parent))
            lines.append(line)
        if missing and not texts:  # no record has one: one message with the columns found
            problems.extend([no_column(path, "text (text, or title [+ content])", sorted(keys))])
        for line in missing if texts else []:
            problems.add("no 'text' (or 'title') column", line=line, field="text")
        if not has_images:
            images = None
        if not has_ids:
            ids = None
    if max_items is not None and len(texts) > max_items:
        problems.add(f"{len(texts)} items; at most {max_items} are accepted at once")
    if not texts and not missing:
        problems.add("no text found")
    problems.raise_if_any()
    return TextInput(path, texts, images, lines, ids, skipped)


def _stdin_lines() -> list[str]:
    """Standard input's lines (``--texts -``), which must be UTF-8 (a byte-order mark skipped)."""
    import sys

    raw = sys.stdin.buffer.read()
    try:
        return raw.decode("utf-8-sig").splitlines()
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise DataError(Problem("<stdin>", f"not valid UTF-8 at byte offset {exc.start}", line=line)) from None
