"""Fetching the images of a split into an image bank and its map: concurrent, resumable, atomic at the end.

For each item (row) of a split, its references are tried in order until ``num_images`` of them gave an
image (a failed reference is replaced by the item's next one). Each image is thumbnailed to
``size`` x ``size`` with white padding (:mod:`vixml.vision.thumbnail`, paper section 3) and staged in a
journal (:mod:`vixml.vision.fetch_journal`) that a rerun resumes after a kill. When every item is
settled, the released layout is written, each file atomically:

- ``<train|test|labels>_imgs_<size>_<N>.bin``: one base64 JPEG per line, item after item, each item's
  images in reference order; a reference shared by several items is stored once and shared in the map;
- ``<...>_<N>_map.npz``: the pickle-free map (:class:`vixml.data.ImageMap`), item ``i`` -> its bank rows in
  reference order (empty for an item without any image);
- ``<...>_<N>_failures.csv``: ``item, url_index, url, reason, detail`` for every reference that gave no
  image (reasons: :mod:`vixml.vision.download`, plus ``not_image``, ``too_large`` for pixels, ``error``).

The output does not depend on thread timing or on interruptions: a run killed and resumed writes the
same files as one uninterrupted run. The working folder ``.<train|test|labels>_imgs_<size>.fetch`` is
removed once the files are written, unless ``keep_work`` (a later run can then retry failures or take
more images per item without downloading again, at the cost of a second copy of the thumbnails).
"""

from __future__ import annotations

import csv
import io
import logging
import os
import time
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from vixml.atomic import atomic_open
from vixml.data.image_cells import is_local
from vixml.data.image_maps import ImageMap, write_image_map
from vixml.data.images import MAP_SPLIT_NAMES
from vixml.data.layout import PREPARING_MARKER
from vixml.data.manifest import refresh_manifest
from vixml.errors import ConfigError, DataError, Problem
from vixml.locking import WriteLock
from vixml.run_folder import RunFolder
from vixml.vision.download import DownloadPolicy, FetchFailure, is_remote, read_reference
from vixml.vision.fetch_journal import FAILED, OK, TODO, FetchJournal, UrlStates
from vixml.vision.fetch_plan import FetchPlan
from vixml.vision.image_refs import ImageRefs
from vixml.vision.thumbnail import DEFAULT_MAX_PIXELS, ImageTooLargeError, NotAnImageError, thumbnail_line

__all__ = ["FetchOptions", "FetchResult", "BankPaths", "bank_paths", "fetch_images"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class FetchOptions:
    """How to fetch a split's images.

    Attributes:
        size: side of the square thumbnails (the ``<size>`` of the file names).
        num_images: N, images kept per item (the ``<N>`` of the file names).
        quality: JPEG quality of the stored thumbnails (1-95).
        upscale: enlarge images smaller than ``size`` to fill the square (False: keep them small, centred).
        workers: concurrent downloads (threads; decoding and resizing run in them too).
        download: time limit (a total deadline per attempt), retries, back-off and size cap of each download.
        allow_local: read local files (paths, ``file://``) even when the input also holds http(s) URLs. A
            table of local paths only (a local catalogue, a folder of images) needs no permission; a table of
            URLs from elsewhere must not make the fetch read this machine's files unless asked.
        max_pixels: refuse images with more pixels than this (decompression bombs).
        retry_failed: try again the references that failed in an earlier, unfinished run (kept with
            ``keep_work``); otherwise a recorded failure is final.
        restart: discard an earlier unfinished run instead of resuming it.
        overwrite: replace an existing bank and map of the same name.
        keep_work: keep the working folder after writing the bank (see the module doc).
        limit: fetch at most this many references in this run, then stop without writing the bank (the
            next run resumes); None fetches everything.
        flush_every: make results durable every this many references...
        flush_seconds: ... or at least this often, so a kill loses little work.
    """

    size: int = 384
    num_images: int = 3
    quality: int = 90
    upscale: bool = True
    workers: int = 16
    download: DownloadPolicy = field(default_factory=DownloadPolicy)
    allow_local: bool = False
    max_pixels: int = DEFAULT_MAX_PIXELS
    retry_failed: bool = False
    restart: bool = False
    overwrite: bool = False
    keep_work: bool = False
    limit: int | None = None
    flush_every: int = 256
    flush_seconds: float = 5.0

    def __post_init__(self) -> None:
        checks = [
            (self.size >= 1, f"size must be >= 1, got {self.size}"),
            (self.num_images >= 1, f"num_images must be >= 1, got {self.num_images}"),
            (1 <= self.quality <= 95, f"quality must be in 1..95, got {self.quality}"),
            (self.workers >= 1, f"workers must be >= 1, got {self.workers}"),
            (self.max_pixels >= 1, f"max_pixels must be >= 1, got {self.max_pixels}"),
            (self.limit is None or self.limit >= 0, f"limit must be >= 0, got {self.limit}"),
            (self.flush_every >= 1, f"flush_every must be >= 1, got {self.flush_every}"),
            (self.flush_seconds > 0, f"flush_seconds must be > 0, got {self.flush_seconds}"),
        ]
        problems = [message for ok, message in checks if not ok]
        if problems:
            raise ConfigError("; ".join(problems))


@dataclass(frozen=True)
class BankPaths:
    """Where a split's fetch writes: the bank, its map, the failure report, and the working folder."""

    bank: Path
    map: Path
    failures: Path
    work: Path


def bank_paths(directory: str | os.PathLike, split: str, size: int, num_images: int) -> BankPaths:
    """The released names (``train_imgs_384_3.bin``, ``..._map.npz``) of ``split`` in ``directory``."""
    if split not in MAP_SPLIT_NAMES:
        raise ConfigError(f"split must be one of {', '.join(MAP_SPLIT_NAMES)}, got {split!r}")
    directory = Path(directory)
    stem = f"{MAP_SPLIT_NAMES[split]}_imgs_{size}_{num_images}"
    return BankPaths(
        bank=directory / f"{stem}.bin",
        map=directory / f"{stem}_map.npz",
        failures=directory / f"{stem}_failures.csv",
        work=directory / f".{MAP_SPLIT_NAMES[split]}_imgs_{size}.fetch",
    )


@dataclass
class FetchResult:
    """What a fetch did (all counts; the ``as_dict`` form is what ``vixml images fetch --json`` prints).

    Attributes:
        split: the split fetched.
        complete: every item is settled and the bank, map and failure report are written.
        items: rows of the split; ``references``: their references; ``unique_references``: distinct ones.
        attempted: references tried in this run; ``seconds``: its duration; ``images_per_s``: the rate.
        ok: distinct references that gave an image (this run and earlier ones).
        failed: distinct references that gave none; ``failed_by_reason``: the same, by reason.
        not_needed: distinct references never tried because their items had N images already.
        images: rows of the written bank (0 while incomplete).
        items_with_images / items_without_image: items with at least one / no image in the map.
        items_short: items with some images but fewer than N.
        ignored_items: input items that are not rows of the split.
        bank, map, failures: the written files (None while incomplete).
    """

    split: str
    complete: bool
    items: int
    references: int
    unique_references: int
    attempted: int
    ok: int
    failed: int
    failed_by_reason: dict[str, int]
    not_needed: int
    images: int = 0
    items_with_images: int = 0
    items_without_image: int = 0
    items_short: int = 0
    ignored_items: int = 0
    seconds: float = 0.0
    images_per_s: float = 0.0
    bank: str | None = None
    map: str | None = None
    failures: str | None = None

    def as_dict(self) -> dict:
        return asdict(self)


def _fetch_one(url: str, options: FetchOptions) -> tuple[bytes | None, str, str, bool]:
    """Download and thumbnail one reference (runs in a worker thread): ``(line, reason, detail, transient)``."""
    try:
        data = read_reference(url, options.download)
        line = thumbnail_line(
            data, options.size, quality=options.quality, upscale=options.upscale, max_pixels=options.max_pixels
        )
        return line, "", "", False
    except FetchFailure as failure:
        return None, failure.reason, failure.detail, failure.transient
    except ImageTooLargeError as exc:
        return None, "too_large", str(exc), False
    except NotAnImageError as exc:
        return None, "not_image", str(exc), False
    except Exception as exc:  # noqa: BLE001 - one odd image must not end a run of millions; it is reported
        logger.debug("unexpected failure on %s", url, exc_info=True)
        return None, "error", f"{type(exc).__name__}: {exc}", False


class _Runner:
    """Feeds the wanted references to a thread pool, a bounded number at a time, and journals each result."""

    def __init__(self, plan: FetchPlan, states: UrlStates, journal: FetchJournal, options: FetchOptions, bar):
        self.plan, self.states, self.journal, self.options, self.bar = plan, states, journal, options, bar
        self.attempted = 0
        self.failed = 0
        self._last_flush = time.monotonic()
        self._warned_error = False

    def run_round(self, wanted: np.ndarray, pool: ThreadPoolExecutor) -> bool:
        """Try ``wanted``; returns False when the run's ``limit`` stopped it early."""
        cap = 4 * self.options.workers
        todo = iter(wanted.tolist())
        inflight: dict[Future, int] = {}
        stopped = False
        while True:
            while len(inflight) < cap and not stopped:
                if self.options.limit is not None and self.attempted >= self.options.limit:
                    stopped = True
                    break
                u = next(todo, None)
                if u is None:
                    break
                inflight[pool.submit(_fetch_one, self.plan.urls[u], self.options)] = u
                self.attempted += 1
            if not inflight:
                return not stopped
            done, _ = wait(inflight, timeout=self.options.flush_seconds, return_when=FIRST_COMPLETED)
            for future in done:
                self._record(inflight.pop(future), future.result())
            if (
                self.journal.pending >= self.options.flush_every
                or time.monotonic() - self._last_flush >= self.options.flush_seconds
            ):
                self.journal.flush()
                self._last_flush = time.monotonic()

    def _record(self, u: int, outcome: tuple[bytes | None, str, str, bool]) -> None:
        line, reason, detail, transient = outcome
        url = self.plan.urls[u]
        if line is not None:
            offset, length = self.journal.record_ok(url, line)
            self.states.status[u] = OK
            self.states.offset[u], self.states.length[u] = offset, length
            self.states.failures.pop(u, None)
        else:
            if reason == "error" and not self._warned_error:
                logger.warning("unexpected failure on %s: %s (further ones are only counted)", url, detail)
                self._warned_error = True
            self.journal.record_failure(url, reason, detail, transient)
            self.states.status[u] = FAILED
            self.states.failures[u] = (reason, detail, transient)
            self.failed += 1
            self.bar.set_postfix_str(f"failed {self.failed}", refresh=False)
        self.bar.update(1)


def fetch_images(
    directory: str | os.PathLike,
    split: str,
    refs: ImageRefs,
    options: FetchOptions | None = None,
    *,
    progress: bool = False,
) -> FetchResult:
    """Fetch the images of one split into ``directory``'s bank and map (module doc), resuming any earlier run.

    Args:
        directory: the dataset folder (created if missing).
        split: ``"trn"``, ``"tst"`` or ``"lbl"`` (files named ``train``, ``test``, ``labels``).
        refs: the split's items in row order with their references (:func:`vixml.vision.load_image_refs`).
        options: see :class:`FetchOptions`.
        progress: show a progress bar (images/s) on stderr.

    Returns:
        The counts; ``complete`` is False when ``options.limit`` stopped the run before the end.

    Raises:
        ConfigError: the bank exists and ``overwrite`` is off; an unfinished run used other settings.
        DataError: ``directory`` is a file or a run folder; the input mixes URLs and local files without
            ``allow_local``.
        LockedError: another process is writing ``directory`` (a fetch, an embed, a prepare).
        KeyboardInterrupt: passes through after the finished results are made durable.
    """
    options = options or FetchOptions()
    directory = Path(directory)
    _check_folder(directory)
    _check_local(refs, options.allow_local)
    with WriteLock(directory, "vixml images fetch"):
        return _fetch(directory, split, refs, options, progress)


def _check_folder(directory: Path) -> None:
    """Refuse a ``directory`` that is not (or cannot become) a dataset folder."""
    if directory.exists() and not directory.is_dir():
        raise DataError(Problem(str(directory), "is a file, not a dataset folder: give the folder to write into"))
    if RunFolder(directory).looks_like_run():
        raise DataError(Problem(str(directory), "is a run folder (config.yaml, checkpoints/), not a dataset folder"))
    if (directory / PREPARING_MARKER).exists():
        raise DataError(
            Problem(str(directory), "a `vixml data prepare --overwrite` is replacing this folder, or was interrupted")
        )


def _check_local(refs: ImageRefs, allow_local: bool) -> None:
    """Local references in an input that also holds URLs need ``allow_local`` (see :class:`FetchOptions`)."""
    if allow_local:
        return
    local = [r for r in refs.refs if is_local(r)]
    if not local or not any(is_remote(r) for r in refs.refs):
        return
    shown = ", ".join(repr(r[:60]) for r in local[:3]) + (", ..." if len(local) > 3 else "")
    raise DataError(
        Problem(
            refs.source,
            f"the input holds http(s) URLs and {len(local)} local file reference(s) ({shown}): reading this "
            "machine's files from a URL table needs --allow-local (allow_local=True)",
        )
    )


def _fetch(directory: Path, split: str, refs: ImageRefs, options: FetchOptions, progress: bool) -> FetchResult:
    from tqdm.auto import tqdm

    paths = bank_paths(directory, split, options.size, options.num_images)
    if (paths.bank.exists() or paths.map.exists()) and not paths.work.exists() and not options.overwrite:
        raise ConfigError(f"{paths.bank.name} already exists in {paths.bank.parent}: pass --overwrite to fetch again")
    start = time.perf_counter()
    plan = FetchPlan.of(refs)
    settings = {"size": options.size, "quality": options.quality, "upscale": options.upscale}
    journal = FetchJournal(paths.work, settings, restart=options.restart)
    states = journal.states(plan.urls, plan.keys)
    if options.retry_failed:
        states.status[states.status == FAILED] = TODO
        states.failures.clear()
    complete = False
    with tqdm(total=0, unit="img", desc=f"fetch {split}", disable=not progress, dynamic_ncols=True) as bar:
        runner = _Runner(plan, states, journal, options, bar)
        try:
            with ThreadPoolExecutor(max_workers=options.workers, thread_name_prefix="vixml-fetch") as pool:
                try:
                    while True:
                        wanted = plan.wanted(states.status, options.num_images)
                        if not len(wanted):
                            complete = True
                            break
                        bar.total += len(wanted)
                        bar.refresh()
                        if not runner.run_round(wanted, pool):
                            break
                finally:
                    pool.shutdown(wait=True, cancel_futures=True)
        except BaseException:
            journal.close()  # what finished is made durable; the next run resumes from it
            raise
    seconds = time.perf_counter() - start
    result = _summary(split, refs, plan, states, options, runner.attempted, complete, seconds)
    if not complete:
        journal.close()
        logger.info("fetch of %s stopped after %d references; run again to resume", split, runner.attempted)
        return result
    try:
        _write_outputs(paths, plan, states, journal, refs, options, result)
    except BaseException:
        journal.close()  # the work folder stays: a rerun writes the outputs again without downloading
        raise
    if options.keep_work:
        journal.close()
    else:
        journal.discard()
    refresh_manifest(directory)  # the folder's dataset.json now describes the new bank and map
    return result


def _summary(
    split: str,
    refs: ImageRefs,
    plan: FetchPlan,
    states: UrlStates,
    options: FetchOptions,
    attempted: int,
    complete: bool,
    seconds: float,
) -> FetchResult:
    by_reason: dict[str, int] = {}
    for reason, _, _ in states.failures.values():
        by_reason[reason] = by_reason.get(reason, 0) + 1
    return FetchResult(
        split=split,
        complete=complete,
        items=len(refs),
        references=len(refs.refs),
        unique_references=len(plan.urls),
        attempted=attempted,
        ok=int((states.status == OK).sum()),
        failed=int((states.status == FAILED).sum()),
        failed_by_reason=dict(sorted(by_reason.items(), key=lambda kv: (-kv[1], kv[0]))),
        not_needed=int((states.status == TODO).sum()) if complete else 0,
        ignored_items=refs.ignored,
        seconds=round(seconds, 3),
        images_per_s=round(attempted / seconds, 2) if seconds > 0 else 0.0,
    )


def _write_outputs(
    paths: BankPaths,
    plan: FetchPlan,
    states: UrlStates,
    journal: FetchJournal,
    refs: ImageRefs,
    options: FetchOptions,
    result: FetchResult,
) -> None:
    """Write the bank (item order, each reference once), the map and the failure report, each atomically."""
    chosen = plan.first_within_item(states.status[plan.slot_url] == OK, options.num_images)
    used = plan.slot_url[chosen]  # in item order, each item's images in reference order
    unique, first, inverse = np.unique(used, return_index=True, return_inverse=True)
    by_first_use = np.argsort(first, kind="stable")
    row_of = np.empty(len(unique), dtype=np.int64)
    row_of[by_first_use] = np.arange(len(unique), dtype=np.int64)
    counts = np.bincount(plan.slot_item[chosen], minlength=len(refs)).astype(np.int64)
    indptr = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    staging = journal.open_staging()
    try:
        with atomic_open(paths.bank, "wb") as fh:
            for u in unique[by_first_use].tolist():
                start = int(states.offset[u])
                fh.write(staging[start : start + int(states.length[u])])
                fh.write(b"\n")
    finally:
        if not isinstance(staging, bytes):
            staging.close()
    write_image_map(paths.map, ImageMap(indptr, row_of[inverse.reshape(-1)]))
    _write_failures(paths.failures, plan, states, refs)
    result.images = len(unique)
    result.items_with_images = int((counts > 0).sum())
    result.items_without_image = int((counts == 0).sum())
    result.items_short = int(((counts > 0) & (counts < options.num_images)).sum())
    result.bank, result.map, result.failures = str(paths.bank), str(paths.map), str(paths.failures)
    logger.info(
        "%s: %d images for %d items (%d without any image), %d failed references",
        paths.bank,
        result.images,
        result.items,
        result.items_without_image,
        result.failed,
    )


def _write_failures(path: Path, plan: FetchPlan, states: UrlStates, refs: ImageRefs) -> None:
    """``item, url_index, url, reason, detail``: one row per reference slot whose reference failed."""
    failed_slots = np.flatnonzero(states.status[plan.slot_url] == FAILED)
    with atomic_open(path, "w") as fh:
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(["item", "url_index", "url", "reason", "detail"])
        for slot in failed_slots.tolist():
            item = int(plan.slot_item[slot])
            reason, detail, _ = states.failures[int(plan.slot_url[slot])]
            writer.writerow([refs.ids[item], slot - int(plan.indptr[item]), refs.refs[slot], reason, detail])
            if buffer.tell() > 1 << 20:
                fh.write(buffer.getvalue())
                buffer.seek(0)
                buffer.truncate()
        fh.write(buffer.getvalue())
