"""Which images belong to which item of a split: reading (item id, reference) lists in the dataset's row order.

Inputs (``--urls`` of ``vixml images fetch``):

- a table (CSV/TSV, JSON lines, Parquet; see :mod:`vixml.data.tables`) with an id column (``id``,
  ``item_id``, ``query_id``, ``label_id``, ``uid``) and a reference column (``url``, ``urls``,
  ``image_url``, ``image_urls``, ``images``, ``image``, ``image_path``, ``image_paths``, ``path``). An item
  may have several rows (their references are taken in row order) and a cell may hold several
  references: a list (Parquet), a JSON list (``["a.jpg", "b.jpg"]``) or a ``|``-separated string, read
  by :func:`vixml.data.image_cells.parse_image_cell` (the parser ``prepare`` uses for catalogues). A
  reference is an http(s) URL, a ``file://`` URL, a ``data:`` URI or a path; a relative path is taken
  from the table's folder.
- a folder of images named ``<item_id>.<ext>`` or ``<item_id>_<n>.<ext>``: an item's images in the order
  bare name, then ``_0``, ``_1``, ... (numerically). When the split's ids are known, a file whose whole
  stem is an id belongs to that id even if it ends in ``_<n>``; otherwise a trailing ``_<digits>`` is
  always read as the image number.
- none: the dataset's own ``<split>.images.jsonl`` (one JSON list of references per row), which
  ``vixml data prepare`` writes for catalogues with an image column.

Item order (the rows of the map) is, in this order of preference: the ids file given (``--ids``), the
dataset's ``<split>_ids.txt`` (written by ``vixml data prepare``), or else the order of first appearance
in the input (file-name order for a folder). With an ids order, input items that are not in it are
ignored (counted) and items without any reference get no image. Without one, the number of items must
equal the rows of the dataset's ``<split>.raw.txt`` when that file exists, or the map would not line up.
Repeated references of one item are kept once (first occurrence).
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vixml.data._problems import ProblemCollector
from vixml.data.image_cells import parse_image_cell
from vixml.data.layout import ID_FILES, IMAGE_REF_FILES, TEXT_FILES
from vixml.data.rules import repeated_ids
from vixml.data.tables import iter_table
from vixml.data.texts import read_texts
from vixml.errors import ConfigError, DataError, Problem

__all__ = ["ImageRefs", "load_image_refs", "refs_from_table", "refs_from_folder", "read_ids", "order_refs"]

logger = logging.getLogger(__name__)

ID_COLUMNS = ("id", "item_id", "query_id", "label_id", "uid")
REF_COLUMNS = ("url", "urls", "image_url", "image_urls", "images", "image", "image_path", "image_paths", "path")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp", ".tif", ".tiff", ".jfif")
_NUMBERED = re.compile(r"^(?P<id>.+?)(?:_(?P<n>\d+))?$")


@dataclass(frozen=True, eq=False)
class ImageRefs:
    """The image references of one split's items, in row order (CSR layout).

    Attributes:
        ids: item ids, one per row of the split (n_items,).
        indptr: int64 (n_items + 1,): item ``i`` has references ``refs[indptr[i]:indptr[i + 1]]``, in order.
        refs: every reference, item after item (n_refs,).
        source: where the references came from (for messages and reports).
        ignored: input items whose id is not among ``ids`` (their references are not used).
    """

    ids: list[str]
    indptr: np.ndarray
    refs: list[str]
    source: str = "<memory>"
    ignored: int = 0

    def __len__(self) -> int:
        return len(self.ids)

    @classmethod
    def from_lists(cls, ids: Sequence[str], refs: Iterable[Sequence[str]], source: str = "<memory>") -> ImageRefs:
        """Build from one list of references per item (duplicates within an item kept once)."""
        flat: list[str] = []
        counts = []
        for item_refs in refs:
            unique = list(dict.fromkeys(r for r in item_refs if r))
            flat += unique
            counts.append(len(unique))
        if len(counts) != len(ids):
            raise ValueError(f"{len(ids)} ids but {len(counts)} reference lists")
        indptr = np.zeros(len(counts) + 1, dtype=np.int64)
        np.cumsum(counts, out=indptr[1:])
        return cls(list(ids), indptr, flat, source)


def _pick_column(record: dict, wanted: str | None, candidates: tuple[str, ...]) -> str | None:
    if wanted is not None:
        return wanted if wanted in record else None
    return next((c for c in candidates if c in record), None)


def refs_from_table(
    path: str | os.PathLike,
    *,
    id_column: str | None = None,
    url_column: str | None = None,
    separator: str | None = "|",
) -> dict[str, list[str]]:
    """Read ``{item id: [references]}`` from a table, items in order of first appearance.

    Args:
        path: CSV/TSV, JSON lines or Parquet file.
        id_column: the id column; None tries ``id``, ``item_id``, ``query_id``, ``label_id``, ``uid``.
        url_column: the reference column; None tries ``url``, ``urls``, ``image_url``, ... (module doc).
        separator: splits a text cell into several references (None: never split).

    Raises:
        DataError: missing columns (listing those present), rows without an id, each with its line.
    """
    path = Path(path)
    found = ProblemCollector(path)
    base = path.resolve().parent
    items: dict[str, list[str]] = {}
    columns: tuple[str, str] | None = None
    for line, record in iter_table(path, found):
        if columns is None:
            id_col = _pick_column(record, id_column, ID_COLUMNS)
            ref_col = _pick_column(record, url_column, REF_COLUMNS)
            if id_col is None or ref_col is None:
                missing = [
                    f"{what} column {wanted!r}" if wanted else f"{what} column (one of {', '.join(options)})"
                    for what, col, wanted, options in (
                        ("id", id_col, id_column, ID_COLUMNS),
                        ("image reference", ref_col, url_column, REF_COLUMNS),
                    )
                    if col is None
                ]
                raise DataError(
                    Problem(str(path), f"no {' and no '.join(missing)}; the columns are {', '.join(record)}", line=1)
                )
            columns = (id_col, ref_col)
        key = record.get(columns[0])
        if key is None or str(key).strip() == "":
            found.add("missing item id", line=line, field=columns[0])
            continue
        items.setdefault(str(key).strip(), []).extend(parse_image_cell(record.get(columns[1]), base, separator))
    found.raise_if_any()
    return items


def refs_from_folder(path: str | os.PathLike, known_ids: Iterable[str] | None = None) -> dict[str, list[str]]:
    """Read ``{item id: [image paths]}`` from a folder of ``<item_id>[_<n>].<ext>`` files (module doc).

    Items come in file-name order; an item's images bare name first, then by ``n``.
    """
    path = Path(path)
    known = set(known_ids) if known_ids is not None else set()
    numbered: dict[str, list[tuple[int, str, str]]] = {}
    for entry in sorted(os.scandir(path), key=lambda e: e.name):
        suffix = os.path.splitext(entry.name)[1].lower()
        if suffix not in IMAGE_SUFFIXES or entry.name.startswith(".") or not entry.is_file():
            continue
        stem = entry.name[: -len(suffix)]
        if stem in known:
            key, number = stem, -1
        else:
            match = _NUMBERED.match(stem)
            key, number = match.group("id"), int(match.group("n")) if match.group("n") is not None else -1
        numbered.setdefault(key, []).append((number, entry.name, str(Path(entry.path).resolve())))
    return {key: [p for _, _, p in sorted(files)] for key, files in numbered.items()}


def read_ids(path: str | os.PathLike) -> list[str]:
    """Item ids, one per line (``<split>_ids.txt``).

    Raises:
        DataError: missing file, or a repeated id (naming both lines).
    """
    store = read_texts(path, layout="plain")
    ids = [line.strip() for line in store]
    store.close()
    problems = repeated_ids(ids, path)
    if problems:
        raise DataError(problems)
    return ids


def order_refs(found: dict[str, list[str]], ids: Sequence[str] | None, source: str) -> ImageRefs:
    """Put ``{item id: references}`` in row order: ``ids`` when given, else first appearance."""
    if ids is None:
        return ImageRefs.from_lists(list(found), found.values(), source)
    wanted = set(ids)
    ignored = [key for key in found if key not in wanted]
    if ignored:
        logger.warning(
            "%d item(s) of %s are not among the split's %d ids and are ignored, e.g. %s",
            len(ignored),
            source,
            len(ids),
            ", ".join(repr(k) for k in ignored[:5]),
        )
    refs = ImageRefs.from_lists(ids, (found.get(key, ()) for key in ids), source)
    return ImageRefs(refs.ids, refs.indptr, refs.refs, source, ignored=len(ignored))


def _jsonl_refs(path: Path, ids: Sequence[str] | None) -> ImageRefs:
    """The dataset's ``<split>.images.jsonl``: one JSON list of references per row."""
    found = ProblemCollector(path)
    lists: list[list[str]] = []
    store = read_texts(path, encoding="utf-8", layout="plain")
    for line, text in enumerate(store, start=1):
        try:
            value = json.loads(text) if text.strip() else []
        except ValueError:
            value = None
        if not isinstance(value, list) or not all(isinstance(r, str) for r in value):
            found.add("expected a JSON list of image references (strings)", line=line)
            value = []
        lists.append(value)
    store.close()
    if ids is not None and len(ids) != len(lists):
        found.add(f"{len(lists)} lines but the split has {len(ids)} ids")
    found.raise_if_any()
    return ImageRefs.from_lists(ids if ids is not None else [str(i) for i in range(len(lists))], lists, str(path))


def _count_rows(path: Path) -> int | None:
    if not path.is_file():
        return None
    store = read_texts(path, layout="plain")
    n = len(store)
    store.close()
    return n


def load_image_refs(
    directory: str | os.PathLike,
    split: str,
    urls: str | os.PathLike | None = None,
    *,
    ids_file: str | os.PathLike | None = None,
    id_column: str | None = None,
    url_column: str | None = None,
    separator: str | None = "|",
) -> ImageRefs:
    """The image references of one split of dataset folder ``directory``, in its row order (module doc).

    Args:
        directory: the dataset folder (its ``<split>_ids.txt``, ``<split>.raw.txt`` and
            ``<split>.images.jsonl`` are used when present).
        split: ``"trn"``, ``"tst"`` or ``"lbl"``.
        urls: a table or a folder of images; None reads ``<split>.images.jsonl``.
        ids_file: the row order (one id per line); None takes ``<split>_ids.txt`` when present.
        id_column, url_column, separator: see :func:`refs_from_table`.

    Raises:
        DataError: no input, unreadable input, an item count that cannot match the split's rows.
    """
    directory = Path(directory)
    if split not in ID_FILES:
        raise ConfigError(f"split must be one of {', '.join(ID_FILES)}, got {split!r}")
    default_ids = directory / ID_FILES[split]
    ids_path = Path(ids_file) if ids_file is not None else (default_ids if default_ids.is_file() else None)
    ids = read_ids(ids_path) if ids_path is not None else None
    n_rows = _count_rows(directory / TEXT_FILES[split])
    if ids is not None and n_rows is not None and len(ids) != n_rows:
        raise DataError(
            Problem(str(ids_path), f"{len(ids)} ids but {directory / TEXT_FILES[split]} has {n_rows} rows")
        )
    if urls is None:
        jsonl = directory / IMAGE_REF_FILES[split]
        if not jsonl.is_file():
            raise DataError(
                Problem(
                    str(jsonl),
                    "no image references: pass a table or folder of images (--urls), or prepare the dataset "
                    "from a catalogue with an image column",
                )
            )
        return _jsonl_refs(jsonl, ids)
    urls = Path(urls)
    if urls.is_dir():
        found = refs_from_folder(urls, known_ids=ids)
    elif urls.is_file():
        found = refs_from_table(urls, id_column=id_column, url_column=url_column, separator=separator)
    else:
        raise DataError(Problem(str(urls), "no such table or folder of images"))
    refs = order_refs(found, ids, str(urls))
    if ids is None and n_rows is not None and len(refs) != n_rows:
        raise DataError(
            Problem(
                str(urls),
                f"{len(refs)} items but {directory / TEXT_FILES[split]} has {n_rows} rows, and no ids file gives "
                "the row of each item: pass --ids (one id per row, in the dataset's order)",
            )
        )
    return refs
