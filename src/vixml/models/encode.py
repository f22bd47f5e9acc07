"""Embedding many texts at once: length-sorted batches, no gradients, bounded memory."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from vixml.models.amp import Precision, autocast

__all__ = ["embed_tokens"]

EncodeFn = Callable[..., torch.Tensor]


def embed_tokens(
    encode: EncodeFn,
    tokens,
    *,
    rows: np.ndarray | None = None,
    images=None,
    batch_size: int = 512,
    precision: Precision = "fp32",
    device: torch.device | str = "cpu",
    progress: str | None = None,
    min_batches: int = 0,
    inference_mode: bool = True,
) -> np.ndarray:
    """Embed pre-tokenised rows with ``encode`` (e.g. ``DualEncoder.encode_queries``).

    Rows are processed in order of length so that batches carry little padding, then put back in order.

    Args:
        encode: (input_ids (B, T), attention_mask (B, T)) -> (B, D) embeddings.
        tokens: a :class:`vixml.data.tokenize.TokenArrays` (``lengths`` and ``batch(rows)``).
        rows: which rows to embed (default: all).
        images: an image bank of the same items (``gather(rows) -> (emb (B, N, D), mask (B, N))``), or None;
            then ``encode`` is called with the images and their mask as third and fourth arguments.
        batch_size: rows per forward pass.
        precision: autocast precision.
        device: where the model runs.
        progress: a progress-bar caption, or None for none.
        min_batches: run at least this many forward passes; the extra ones encode one row and are dropped
            (an FSDP-sharded model: every rank must run as many, each one all-gathers the weights).
        inference_mode: under ``torch.inference_mode`` (else ``no_grad``: FSDP2 swaps parameters in place).

    Returns:
        (len(rows), D) float32 embeddings in the order of ``rows``.
    """
    with torch.inference_mode() if inference_mode else torch.no_grad():
        return _embed(encode, tokens, rows, images, batch_size, precision, device, progress, min_batches)


def _embed(encode, tokens, rows, images, batch_size, precision, device, progress, min_batches) -> np.ndarray:
    from tqdm.auto import tqdm

    rows = np.arange(len(tokens)) if rows is None else np.asarray(rows, dtype=np.int64)
    order = np.argsort(-tokens.lengths[rows], kind="stable")
    out: np.ndarray | None = None
    starts = range(0, len(rows), batch_size)
    for start in tqdm(starts, desc=progress, disable=progress is None, leave=False, unit="batch"):
        chosen = order[start : start + batch_size]
        input_ids, mask = tokens.batch(rows[chosen])
        extra = ()
        if images is not None:
            image_emb, image_mask = images.gather(rows[chosen])
            extra = (torch.from_numpy(image_emb), torch.from_numpy(image_mask))
        with autocast(precision, device):
            emb = encode(input_ids.to(device), mask.to(device), *extra).float().cpu().numpy()
        if out is None:
            out = np.empty((len(rows), emb.shape[1]), dtype=np.float32)
        out[chosen] = emb
    for _ in range(len(starts), min_batches):
        input_ids, mask = tokens.batch(np.zeros(1, dtype=np.int64))
        extra = () if images is None else tuple(torch.from_numpy(a) for a in images.gather(np.zeros(1, np.int64)))
        with autocast(precision, device):
            encode(input_ids.to(device), mask.to(device), *extra)
    return out if out is not None else np.zeros((0, 0), dtype=np.float32)
