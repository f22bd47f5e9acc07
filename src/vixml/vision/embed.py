"""Image banks -> image-embedding arrays, offline and resumable (``vixml images embed``, docs/method.md section 3).

A bank ``{train,test,labels}_imgs_<size>_<N>.bin`` holds one base64 JPEG per line; line r becomes row r
of ``{trn,tst,lbl}_embs_imgs_<N>_<D>_<tag>.npy`` (float32 (n_images_total, D)), so the bank's map
(``..._map.npz``: item -> rows) serves the embeddings unchanged and :class:`vixml.data.ImageBank` reads
the pair. Decoding and resizing run in data-loader workers while the model runs. Rows are written into a
preallocated ``.npy`` inside a hidden ``.<final name>.partial`` folder whose ``state.json`` records how
many rows are done, committed every ``chunk_rows`` rows; a rerun with the same bank and model continues
from there, and the finished array is moved to its final name atomically.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from vixml.atomic import atomic_open, atomic_path
from vixml.errors import DataError, Problem
from vixml.vision.embed_inputs import bank_batches, image_batches, line_offsets
from vixml.vision.models import VisionEncoder, load_vision_model

__all__ = ["BadImages", "EmbedResult", "embed_bank", "embed_images"]

logger = logging.getLogger(__name__)

BadImages = Literal["error", "zero"]
_STATE_VERSION = 1


@dataclass(frozen=True)
class EmbedResult:
    """What one bank's embedding produced (also the ``--json`` record of ``vixml images embed``).

    Attributes:
        embeddings: the final ``.npy`` (n_images, dim) float32.
        n_images: rows (= bank lines).
        dim: D.
        resumed_from: rows already done by an earlier, interrupted run (0 for a fresh run).
        bad_rows: 0-based rows whose image could not be decoded and were written as zero vectors.
        seconds: wall time of this run.
        images_per_s: rows embedded by this run per second.
        skipped: the final file already existed and nothing was computed.
        model_type, feature: the model's ``config.model_type`` and the output kept, in words.
        split, map, num_images, tag: filled by the dataset level (:func:`vixml.vision.embed_dataset.embed_dataset`).
    """

    embeddings: Path
    n_images: int
    dim: int
    resumed_from: int = 0
    bad_rows: tuple[int, ...] = ()
    seconds: float = 0.0
    images_per_s: float = 0.0
    skipped: bool = False
    split: str | None = None
    map: Path | None = None
    num_images: int | None = None
    tag: str | None = None
    model_type: str | None = None
    feature: str | None = None


def _encoded(encoder: VisionEncoder, batches):
    """``(first_row, features float32 (n, D) numpy, bad)`` for each preprocessed batch; bad rows zeroed."""
    for start, inputs, bad in batches:
        feats = encoder.encode(inputs).numpy()
        for row, _ in bad:
            feats[row - start] = 0.0
        yield start, feats, bad


def _as_encoder(model: VisionEncoder | str) -> VisionEncoder:
    return model if isinstance(model, VisionEncoder) else load_vision_model(model)


def embed_images(
    model: VisionEncoder | str,
    images: Sequence,
    *,
    batch_size: int = 64,
    workers: int = 0,
    pad_to: int | None = 384,
    progress: bool = False,
) -> np.ndarray:
    """Embed new images (PIL images or file paths), e.g. queries at prediction time.

    Args:
        model: a loaded :class:`VisionEncoder`, or a name / folder to load with defaults.
        images: PIL images or paths, in order.
        batch_size: images per forward pass.
        workers: data-loader processes decoding and resizing (0: in this process).
        pad_to: thumbnail onto a white square of this size first, as the banks were made (None: as given).
        progress: show a progress bar (images/s) on stderr.

    Returns:
        float32 (n, D), row i for ``images[i]``.

    Raises:
        DataError: every image that cannot be read, by position.
    """
    from tqdm.auto import tqdm

    encoder = _as_encoder(model)
    out = np.zeros((len(images), encoder.dim), dtype=np.float32)
    problems = []
    with tqdm(total=len(images), unit="img", disable=not progress, desc="embed") as bar:
        batches = image_batches(
            encoder.preprocess,
            images,
            batch_size=batch_size,
            workers=workers,
            pad_to=pad_to,
            pin_memory=encoder.device.type == "cuda",
        )
        for start, feats, bad in _encoded(encoder, batches):
            out[start : start + len(feats)] = feats
            problems += [Problem(str(_name(images[row], row)), msg, field=f"image {row}") for row, msg in bad]
            bar.update(len(feats))
    if problems:
        raise DataError(problems)
    return out


def _name(item, row: int) -> str:
    return os.fspath(item) if isinstance(item, (str, os.PathLike)) else f"<image {row}>"


def _bank_identity(bank: Path, encoder: VisionEncoder) -> dict:
    """What must be unchanged for a partial run to continue: the bank's bytes (size, head, tail) and the model."""
    size, local = bank.stat().st_size, Path(encoder.name_or_path).expanduser()
    h = hashlib.blake2b(digest_size=16)
    with open(bank, "rb") as fh:
        h.update(fh.read(1 << 20))
        fh.seek(max(0, size - (1 << 20)))
        h.update(fh.read(1 << 20))
    return {
        "version": _STATE_VERSION,
        "bank": bank.name,
        "bank_size": size,
        "bank_digest": h.hexdigest(),
        "model": str(local.resolve()) if local.is_dir() else encoder.name_or_path,
        "model_type": encoder.model_type,
        "output": encoder.output,
        "precision": encoder.precision,
        "dim": encoder.dim,
    }


def _read_state(partial: Path, identity: dict) -> dict | None:
    try:
        with open(partial / "state.json", encoding="utf-8") as fh:
            state = json.load(fh)
    except (OSError, ValueError):
        return None
    if state.get("identity") != identity or not (partial / "embeddings.npy").is_file():
        logger.warning("%s belongs to another bank or model; starting over", partial)
        return None
    return state


def _write_state(partial: Path, identity: dict, n_rows: int, done: int, bad_rows: list[int]) -> None:
    with atomic_open(partial / "state.json") as fh:
        json.dump({"identity": identity, "n_rows": n_rows, "done": done, "bad_rows": bad_rows}, fh)


def embed_bank(
    model: VisionEncoder | str,
    bank: str | os.PathLike,
    out: str | os.PathLike,
    *,
    batch_size: int = 64,
    workers: int = 2,
    chunk_rows: int = 8192,
    bad_images: BadImages = "error",
    overwrite: bool = False,
    progress: bool = True,
    on_chunk: Callable[[int], None] | None = None,
) -> EmbedResult:
    """Embed every line of one base64 image bank into ``out`` (float32 (n_lines, D) ``.npy``), resumably.

    Args:
        model: a loaded :class:`VisionEncoder`, or a name / folder to load with defaults.
        bank: the ``*_imgs_<size>_<N>.bin`` file.
        out: the final ``.npy`` path; its partial state lives in ``.<name>.partial/`` beside it.
        batch_size: images per forward pass (fp16 on a large GPU: 256+).
        workers: data-loader processes decoding and resizing (0: in this process).
        chunk_rows: rows between commits of the progress record (lost work on interruption is less).
        bad_images: ``error`` stops at the first batch holding undecodable lines (naming them);
            ``zero`` writes zero vectors for them and reports their rows.
        overwrite: recompute even when ``out`` exists (otherwise it is kept and reported as skipped).
        progress: show a progress bar (images/s) on stderr.
        on_chunk: called with the committed row count after each commit (progress hooks, tests).

    Raises:
        DataError: undecodable lines with ``bad_images="error"`` (file, line, the fix).
    """
    encoder = _as_encoder(model)
    bank, out = Path(bank), Path(out)
    partial = out.parent / f".{out.name}.partial"
    if out.exists() and not overwrite:
        logger.info("%s exists; skipping (overwrite to recompute)", out)
        rows = np.load(out, mmap_mode="r", allow_pickle=False).shape[0]
        return EmbedResult(
            out, rows, encoder.dim, skipped=True, model_type=encoder.model_type, feature=encoder.feature
        )
    if overwrite:
        shutil.rmtree(partial, ignore_errors=True)
    identity, offsets, done, bad_rows = _open_partial(partial, bank, encoder)
    n_rows, resumed_from = len(offsets) - 1, done
    t0 = time.perf_counter()
    if done < n_rows:
        batches = _encoded(
            encoder,
            bank_batches(
                encoder.preprocess,
                bank,
                batch_size=batch_size,
                workers=workers,
                start=done,
                offsets=offsets,
                pin_memory=encoder.device.type == "cuda",
            ),
        )
        try:
            _fill(
                partial, identity, bank, batches, (done, n_rows), bad_rows, chunk_rows, bad_images, progress, on_chunk
            )
        finally:
            batches.close()  # stops the data-loader workers now, also on an error or an interrupt
    seconds = time.perf_counter() - t0
    _finish(partial, out)
    return EmbedResult(
        out,
        n_rows,
        encoder.dim,
        resumed_from=resumed_from,
        bad_rows=tuple(bad_rows),
        seconds=seconds,
        images_per_s=(n_rows - resumed_from) / seconds if seconds > 0 else 0.0,
        model_type=encoder.model_type,
        feature=encoder.feature,
    )


def _open_partial(partial: Path, bank: Path, encoder: VisionEncoder) -> tuple[dict, np.ndarray, int, list[int]]:
    """Continue the partial run of the same bank and model, or start a fresh one.

    Returns:
        ``(identity, offsets, done, bad_rows)``; the partial folder then holds ``embeddings.npy``
        (n_rows, D) float32 with rows ``[0, done)`` valid, and ``state.json``.
    """
    identity = _bank_identity(bank, encoder)
    state = _read_state(partial, identity) if partial.exists() else None
    if state is None:
        shutil.rmtree(partial, ignore_errors=True)
        partial.mkdir(parents=True)
    offsets = _offsets(bank, partial, cached=state is not None)
    n_rows = len(offsets) - 1
    if state is not None:
        logger.info("%s: resuming at row %d of %d", bank.name, state["done"], n_rows)
        return identity, offsets, int(state["done"]), list(state["bad_rows"])
    if n_rows == 0:  # an empty file cannot be memory-mapped
        with atomic_path(partial / "embeddings.npy", suffix=".npy") as tmp:
            np.save(tmp, np.zeros((0, encoder.dim), dtype=np.float32))
    else:
        np.lib.format.open_memmap(partial / "embeddings.npy", mode="w+", dtype=np.float32, shape=(n_rows, encoder.dim))
    _write_state(partial, identity, n_rows, 0, [])
    return identity, offsets, 0, []


def _fill(
    partial: Path,
    identity: dict,
    bank: Path,
    batches,
    rows: tuple[int, int],
    bad_rows: list[int],
    chunk_rows: int,
    bad_images: BadImages,
    progress: bool,
    on_chunk: Callable[[int], None] | None,
) -> None:
    """Write encoded batches of rows ``[done, n_rows)`` into the partial array; commit every ``chunk_rows`` rows."""
    from tqdm.auto import tqdm

    done, n_rows = rows
    emb = np.load(partial / "embeddings.npy", mmap_mode="r+", allow_pickle=False)
    t0, first, committed = time.perf_counter(), done, done
    with tqdm(total=n_rows, initial=done, unit="img", disable=not progress, desc=bank.name) as bar:
        for start, feats, bad in batches:
            if bad and bad_images == "error":
                raise DataError(
                    [Problem(str(bank), msg, line=row + 1) for row, msg in bad]
                    + [Problem(str(bank), "rerun with --bad-images zero to embed such lines as zero vectors")]
                )
            for row, msg in bad:
                logger.warning("%s line %d: %s; written as a zero vector", bank, row + 1, msg)
            bad_rows += [row for row, _ in bad]
            emb[start : start + len(feats)] = feats
            done = start + len(feats)
            bar.update(len(feats))
            if done - committed >= chunk_rows or done == n_rows:
                emb.flush()
                _write_state(partial, identity, n_rows, done, bad_rows)
                committed = done
                rate = (done - first) / max(time.perf_counter() - t0, 1e-9)
                logger.info("%s: %d/%d rows done (%.1f images/s)", bank.name, done, n_rows, rate)
                if on_chunk is not None:
                    on_chunk(done)


def _offsets(bank: Path, partial: Path, cached: bool) -> np.ndarray:
    """The bank's line offsets, cached in the partial folder (a resumed run skips the scan)."""
    path = partial / "offsets.npy"
    if cached and path.is_file():
        return np.load(path, allow_pickle=False)
    offsets = line_offsets(bank)
    with atomic_path(path, suffix=".npy") as tmp:
        np.save(tmp, offsets)
    return offsets


def _finish(partial: Path, out: Path) -> None:
    """Move the completed array to its final name (atomic rename after fsync) and drop the partial folder."""
    src = partial / "embeddings.npy"
    with open(src, "rb+") as fh:
        os.fsync(fh.fileno())
    os.replace(src, out)
    shutil.rmtree(partial, ignore_errors=True)
