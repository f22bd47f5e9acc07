"""Images -> model-ready batches: bank lines or new images decoded, resized and normalised in workers.

Two kinds of input share one pipeline: a bank ``*_imgs_<size>_<N>.bin`` (one base64 JPEG per
line, read by byte ranges through a newline index so any row range can be resumed) and a list of PIL
images or files (new queries at prediction time, thumbnailed to the banks' white square first so they
look like the training images). A torch ``DataLoader`` over whole batches runs the decoding and the
image processor in worker processes, so they overlap with the model; undecodable images are reported by
row with a white stand-in in their place, never silently dropped.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from vixml.optional import require
from vixml.vision.models import ImagePreprocessor
from vixml.vision.thumbnail import decode_bank_line, decode_image, thumbnail

__all__ = ["bank_batches", "image_batches", "line_offsets", "to_rgb"]

_SCAN = 1 << 26


def to_rgb(image):
    """An RGB PIL image; transparent pixels become white (the banks' padding colour)."""
    if image.mode == "RGB":
        return image
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        Image = require("PIL.Image", "vision")
        rgba = image.convert("RGBA")
        canvas = Image.new("RGB", rgba.size, (255, 255, 255))
        canvas.paste(rgba, mask=rgba.getchannel("A"))
        return canvas
    return image.convert("RGB")


def line_offsets(path: str | os.PathLike) -> np.ndarray:
    """Byte offset of every line of a bank, plus the end: int64 (n_lines + 1,); line r is ``[o[r], o[r+1])``.

    Scanned in bounded chunks; a last line without a newline counts.
    """
    starts = [np.zeros(1, dtype=np.int64)]
    pos = 0
    with open(path, "rb") as fh:
        while chunk := fh.read(_SCAN):
            starts.append(np.flatnonzero(np.frombuffer(chunk, dtype=np.uint8) == 10).astype(np.int64) + pos + 1)
            pos += len(chunk)
    offsets = np.concatenate(starts)
    if offsets[-1] != pos:
        offsets = np.append(offsets, pos)
    return offsets


class _BankSource:
    """Rows of a bank file, read in one contiguous byte range per batch."""

    def __init__(self, path: Path, offsets: np.ndarray):
        self.path, self.offsets = path, offsets

    def load(self, lo: int, hi: int) -> list:
        base = int(self.offsets[lo])
        with open(self.path, "rb") as fh:
            fh.seek(base)
            data = fh.read(int(self.offsets[hi]) - base)
        out = []
        for r in range(lo, hi):
            line = data[int(self.offsets[r]) - base : int(self.offsets[r + 1]) - base]
            try:
                if not line.strip():
                    raise ValueError("empty line")
                out.append(decode_bank_line(line))
            except ValueError as exc:  # NotAnImageError / ImageTooLargeError are ValueErrors
                out.append(f"not a decodable base64 image: {exc}")
        return out


class _ListSource:
    """PIL images or image files, optionally thumbnailed onto the banks' white square."""

    def __init__(self, images: Sequence, pad_to: int | None):
        self.images, self.pad_to = images, pad_to

    def load(self, lo: int, hi: int) -> list:
        out = []
        for item in self.images[lo:hi]:
            try:
                if isinstance(item, (str, os.PathLike)):
                    with open(item, "rb") as fh:
                        item = decode_image(fh.read())
                out.append(thumbnail(item, self.pad_to) if self.pad_to else to_rgb(item))
            except (ValueError, OSError) as exc:
                out.append(f"cannot read the image: {exc}")
        return out


class _Batches:
    """Map-style dataset of whole batches: index b -> (first row, model inputs, [(row, message), ...])."""

    def __init__(self, source, lo: int, hi: int, batch_size: int, preprocess: ImagePreprocessor):
        self.source, self.lo, self.hi, self.batch_size, self.preprocess = source, lo, hi, batch_size, preprocess

    def __len__(self) -> int:
        return -(-(self.hi - self.lo) // self.batch_size)

    def __getitem__(self, b: int):
        Image = require("PIL.Image", "vision")
        start = self.lo + b * self.batch_size
        images = self.source.load(start, min(start + self.batch_size, self.hi))
        bad = [(start + i, img) for i, img in enumerate(images) if isinstance(img, str)]
        if bad:  # a white stand-in keeps the batch shape; its row is zeroed after encoding
            images = [Image.new("RGB", (32, 32), (255, 255, 255)) if isinstance(i, str) else i for i in images]
        return start, self.preprocess(images), bad


def _identity(batch):
    return batch


def _loader(source, lo: int, hi: int, batch_size: int, workers: int, preprocess: ImagePreprocessor, pin: bool):
    """Preprocessed batches ``(first_row, inputs, bad)`` of rows ``[lo, hi)`` in order, decoded in ``workers``."""
    import torch

    return torch.utils.data.DataLoader(
        _Batches(source, lo, hi, batch_size, preprocess),
        batch_size=None,
        shuffle=False,
        num_workers=workers,
        collate_fn=_identity,
        pin_memory=pin,
        prefetch_factor=4 if workers else None,
    )


def bank_batches(
    preprocess: ImagePreprocessor,
    bank: str | os.PathLike,
    *,
    batch_size: int = 64,
    workers: int = 0,
    start: int = 0,
    stop: int | None = None,
    pin_memory: bool = False,
    offsets: np.ndarray | None = None,
) -> Iterator[tuple[int, dict, list[tuple[int, str]]]]:
    """Decoded, resized and normalised batches of a bank's lines, in row order (the CPU half of embedding).

    Args:
        preprocess: a :class:`VisionEncoder`'s ``preprocess``.
        bank: the base64 bank.
        batch_size: lines per batch.
        workers: data-loader processes (0: in this process).
        start, stop: the rows ``[start, stop)`` to read (default: all).
        pin_memory: pin the tensors for a faster copy to a GPU.
        offsets: the bank's :func:`line_offsets`, when already known.

    Yields:
        ``(first_row, inputs, bad)``: the model inputs of rows ``first_row ...`` (e.g. ``pixel_values``
        (n, C, H, W)), and ``(row, message)`` for undecodable lines (a white stand-in is in their place).
    """
    offsets = line_offsets(bank) if offsets is None else offsets
    stop = len(offsets) - 1 if stop is None else stop
    yield from _loader(_BankSource(Path(bank), offsets), start, stop, batch_size, workers, preprocess, pin_memory)


def image_batches(
    preprocess: ImagePreprocessor,
    images: Sequence,
    *,
    batch_size: int = 64,
    workers: int = 0,
    pad_to: int | None = 384,
    pin_memory: bool = False,
) -> Iterator[tuple[int, dict, list[tuple[int, str]]]]:
    """Like :func:`bank_batches` for PIL images or image files (``bad`` names unreadable ones by position).

    Args:
        pad_to: thumbnail onto a white ``pad_to`` square first, as the banks were made
            (:func:`vixml.vision.thumbnail.thumbnail`); None feeds the images as they are.
    """
    yield from _loader(_ListSource(images, pad_to), 0, len(images), batch_size, workers, preprocess, pin_memory)
