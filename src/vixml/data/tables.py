"""Reading practitioner tables (CSV/TSV, JSON lines, Parquet) record by record, with line numbers.

Every reader yields ``(line, record dict)``: ``line`` is the 1-based line a CSV record ends on (the
header is line 1), the line of a JSON-lines record, or the 1-based row number of a Parquet record, so
problems can point into the file. Parquet goes through pyarrow (extra ``tables``), imported lazily and
read in batches.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import logging
import os
from collections.abc import Iterator
from pathlib import Path

from vixml.data._problems import ProblemCollector
from vixml.data.encoding import locate_utf8_error, utf8_problem
from vixml.errors import DataError, Problem
from vixml.optional import require

__all__ = ["TABLE_SUFFIXES", "csv_delimiter", "iter_table", "no_column", "table_suffix", "find_table"]

TABLE_SUFFIXES = (".csv", ".tsv", ".jsonl", ".ndjson", ".parquet", ".csv.gz", ".tsv.gz", ".jsonl.gz", ".ndjson.gz")
_BATCH = 65536
_OTHER_DELIMITERS = (";", "\t", "|")

logger = logging.getLogger(__name__)


def table_suffix(path: Path) -> str | None:
    """The table suffix of a file name (``.csv.gz`` counts as one), None for other files."""
    name = path.name.lower()
    return next((s for s in sorted(TABLE_SUFFIXES, key=len, reverse=True) if name.endswith(s)), None)


def find_table(directory: Path, stems: tuple[str, ...]) -> Path | None:
    """The first ``<stem><table suffix>`` file in ``directory``, trying stems and suffixes in order."""
    for stem in stems:
        for suffix in TABLE_SUFFIXES:
            path = directory / f"{stem}{suffix}"
            if path.is_file():
                return path
    return None


def iter_table(
    path: str | os.PathLike, problems: ProblemCollector | None = None, encoding: str = "auto"
) -> Iterator[tuple[int, dict]]:
    """Yield ``(line, record)`` for every record of a CSV/TSV, JSON-lines or Parquet file.

    Args:
        path: the table; its suffix picks the format.
        problems: where a JSON line that is not an object is noted (and skipped); without it, such a
            line raises.
        encoding: of a text table: ``auto``/``utf-8`` (UTF-8, a byte-order mark skipped) or ``latin-1``.

    Raises:
        DataError: unknown suffix, unreadable file, malformed CSV (reading cannot resynchronise), text
            that is not UTF-8 (naming the line and byte offset), a truncated gzip, a bad JSON line when
            ``problems`` is None.
        MissingExtraError: a Parquet file without pyarrow installed.
    """
    path = Path(path)
    suffix = table_suffix(path)
    if suffix is None:
        raise DataError(Problem(str(path), f"unknown table format; expected one of {', '.join(TABLE_SUFFIXES)}"))
    if not path.is_file():
        raise DataError(Problem(str(path), "file not found"))
    if suffix == ".parquet":
        yield from _iter_parquet(path)
        return
    text = "latin-1" if encoding == "latin-1" else "utf-8-sig"
    try:
        if suffix.startswith((".jsonl", ".ndjson")):
            yield from _iter_jsonl(path, problems, text)
        else:
            yield from _iter_csv(path, csv_delimiter(path, text), text)
    except UnicodeDecodeError as exc:
        where = locate_utf8_error(path)
        if where is None:
            raise DataError(Problem(str(path), f"not valid UTF-8: {exc}", field="encoding")) from None
        line, offset, raw = where
        raise DataError(utf8_problem(path, offset, line, raw)) from None
    except (EOFError, gzip.BadGzipFile) as exc:
        raise DataError(
            Problem(str(path), f"the compressed data ends early or is corrupt ({exc}): get the file again")
        ) from None


def csv_delimiter(path: Path, encoding: str = "utf-8-sig") -> str:
    """A table's delimiter: tab for ``.tsv``; for ``.csv`` a comma, unless its header line has none and holds
    ``;``, a tab or ``|`` (a spreadsheet exported where the decimal mark is a comma writes ``;``)."""
    if table_suffix(path).startswith(".tsv"):
        return "\t"
    try:
        with _open_text(path, encoding) as fh:
            header = fh.readline()
    except (OSError, UnicodeDecodeError, EOFError, gzip.BadGzipFile):
        return ","  # the reader names the problem
    if "," in header:
        return ","
    counts = {d: header.count(d) for d in _OTHER_DELIMITERS}
    best = max(counts, key=counts.get)
    if counts[best] == 0:
        return ","
    logger.info("%s: delimiter %r (guessed from the header line: it has no comma)", path.name, best)
    return best


def no_column(path: Path, what: str, columns, encoding: str = "utf-8-sig") -> Problem:
    """One problem for a column that no record has, listing the columns found (and a CSV's delimiter)."""
    how = ""
    if table_suffix(path) in (".csv", ".csv.gz", ".tsv", ".tsv.gz"):
        delimiter = csv_delimiter(path, encoding)
        how = f" (delimiter {delimiter!r}, guessed from the header line)"
        try:  # the header's order, as the user sees the file
            with _open_text(path, encoding) as fh:
                columns = next(csv.reader(fh, delimiter=delimiter), columns)
        except (OSError, UnicodeDecodeError, EOFError, gzip.BadGzipFile, csv.Error):
            pass
    found = ", ".join(str(c) for c in columns) or "none"
    return Problem(str(path), f"{path.name} has no {what} column; its columns are {found}{how}")


def _open_text(path: Path, encoding: str) -> io.TextIOBase:
    raw = gzip.open(path, "rb") if path.name.lower().endswith(".gz") else open(path, "rb")
    return io.TextIOWrapper(raw, encoding=encoding, newline="")


def _iter_csv(path: Path, delimiter: str, encoding: str) -> Iterator[tuple[int, dict]]:
    with _open_text(path, encoding) as fh:
        reader = csv.DictReader(fh, delimiter=delimiter)
        try:
            for record in reader:
                yield reader.line_num, record
        except csv.Error as exc:
            raise DataError(Problem(str(path), f"malformed CSV: {exc}", line=reader.line_num)) from exc


def _iter_jsonl(path: Path, problems: ProblemCollector | None, encoding: str) -> Iterator[tuple[int, dict]]:
    with _open_text(path, encoding) as fh:
        for lineno, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
                error = None if isinstance(record, dict) else "expected a JSON object per line"
            except ValueError as exc:
                error = f"not valid JSON: {exc}"
            if error is None:
                yield lineno, record
            elif problems is None:
                raise DataError(Problem(str(path), error, line=lineno))
            else:
                problems.add(error, line=lineno)


def _iter_parquet(path: Path) -> Iterator[tuple[int, dict]]:
    pq = require("pyarrow.parquet", "tables")
    try:
        parquet = pq.ParquetFile(path)
    except Exception as exc:  # noqa: BLE001 - pyarrow raises several types for a bad file
        raise DataError(Problem(str(path), f"not a readable Parquet file: {exc}")) from exc
    row = 0
    for batch in parquet.iter_batches(batch_size=_BATCH):
        for record in batch.to_pylist():
            row += 1
            yield row, record
