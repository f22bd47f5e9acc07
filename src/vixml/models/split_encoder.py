"""Texts (and their images) -> embeddings, for a dataset split or free input: one encoder for every caller.

Training (the zero-shot and periodic evaluations, PRIME's initial label embeddings, the exact final
centroids), :class:`~vixml.inference.Predictor`, the server and every distributed rank embed through
:class:`SplitEncoder`, so a query is encoded the same way wherever it is encoded: the run's token lengths,
the split's image bank on the sides that carry images, length-sorted batches without gradients.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Literal

import numpy as np
import torch

from vixml import distributed
from vixml.data.tokenize import TokenArrays, TokenCache
from vixml.errors import DataError, Problem
from vixml.models.amp import autocast
from vixml.models.encode import embed_tokens

if TYPE_CHECKING:
    from vixml.config import RunConfig
    from vixml.data import XMCDataset
    from vixml.data.images import ImageBank
    from vixml.models.dual_encoder import DualEncoder

__all__ = ["SplitEncoder", "Split", "side_of"]

logger = logging.getLogger(__name__)

Split = Literal["trn", "tst", "lbl"]


def side_of(split: str) -> Literal["query", "label"]:
    """Labels are encoded by the label side of the dual encoder; training and test queries by the query side."""
    return "label" if split == "lbl" else "query"


class SplitEncoder:
    """Embed the splits of one dataset (token cache, image banks) or free texts with a dual encoder.

    Args:
        model: the dual encoder (its mode is left as found; embedding runs in eval mode).
        config: the run configuration (token lengths, cache folder, batch size).
        precision: the resolved autocast precision (``fp32``, ``bf16``, ``fp16``).
        device: where the model runs.
        dataset: the dataset whose splits :meth:`embed_split` embeds (None for free input only).
        images: the dataset's image banks per split (``vixml.models.build.image_banks``); ``{}`` = text only.
    """

    def __init__(
        self,
        model: DualEncoder,
        config: RunConfig,
        *,
        precision: str,
        device: torch.device,
        dataset: XMCDataset | None = None,
        images: dict[str, ImageBank] | None = None,
    ):
        self.model = model
        self.config = config
        self.precision = precision
        self.device = torch.device(device)
        self.dataset = dataset
        self.images = dict(images or {})
        self._tokens: dict[str, TokenArrays] = {}

    @property
    def batch_size(self) -> int:
        return self.config.eval.encode_batch_size

    def max_length(self, split: str) -> int:
        return self.config.data.label_length() if split == "lbl" else self.config.data.max_length

    def tokens(self, split: Split) -> TokenArrays:
        """The split's token arrays, from the memory-mapped cache (tokenised once per tokenizer and length)."""
        if split not in self._tokens:
            texts = self._texts(split)
            root = self.config.data.cache_dir
            cache = TokenCache(root) if root else TokenCache.for_dataset(self.dataset.path)
            tokenizer = self.model.backbone.tokenizer
            self._tokens[split] = cache.get(texts, split, texts.path, tokenizer, self.max_length(split))
        return self._tokens[split]

    def _texts(self, split: str):
        ds = self.dataset
        texts = None if ds is None else {"trn": ds.trn_texts, "tst": ds.tst_texts, "lbl": ds.lbl_texts}.get(split)
        if texts is None:
            where = str(ds.path) if ds is not None else "<no dataset>"
            raise DataError(Problem(where, f"has no '{split}' split (expected 'trn', 'tst' or 'lbl')"))
        return texts

    def image_bank(self, split: str) -> ImageBank | None:
        """The bank the split is encoded with: None when the model has no images on that side."""
        return self.images.get(split) if self.model.uses_images(side_of(split)) else None

    def embed_split(
        self,
        split: Split,
        *,
        rows: np.ndarray | None = None,
        progress: str | None = None,
        raw: bool = False,
        min_batches: int = 0,
    ) -> np.ndarray:
        """(len(rows), D) float32 embeddings of a split's items (all rows by default), in row order.

        ``raw`` (labels only): before the normalisation, as PRIME's prototype network reads them.
        ``min_batches``: forward passes at least (see :func:`~vixml.models.encode.embed_tokens`).
        """
        encode = functools.partial(self.model.encode_labels, raw=raw) if split == "lbl" else self.model.encode_queries
        with _eval_mode(self.model):
            return embed_tokens(
                encode,
                self.tokens(split),
                rows=rows,
                images=self.image_bank(split),
                batch_size=self.batch_size,
                precision=self.precision,
                device=self.device,
                progress=progress,
                min_batches=min_batches,
                inference_mode=not distributed.is_sharded(self.model),
            )

    def embed_split_sharded(
        self, split: Split, *, progress: str | None = None, to_all: bool = True, raw: bool = False
    ) -> np.ndarray | None:
        """A whole split's (n, D) embeddings; under torchrun each rank embeds whole batches of it, round robin.

        The batches are those of one process (length-sorted, ``eval.encode_batch_size``), so the result is the
        single-process one. ``to_all``: every rank gets the whole array (an all-gather); otherwise rank 0 does
        and the others get None (evaluation and prediction: only rank 0 searches and writes). An FSDP-sharded
        model runs as many forward passes on every rank (a rank short of a batch encodes a dummy one).
        """
        if not distributed.world().distributed:
            return self.embed_split(split, progress=progress, raw=raw)
        tokens = self.tokens(split)
        order = np.argsort(-tokens.lengths, kind="stable")
        rows = distributed.shard_batches(len(tokens), self.batch_size, order)
        batches = -(-len(tokens) // self.batch_size)
        most = -(-batches // distributed.world().size)  # rank 0's count (whole batches, round robin)
        values = self.embed_split(
            split,
            rows=rows,
            progress=progress if distributed.is_main() else None,
            raw=raw,
            min_batches=most if distributed.is_sharded(self.model) else 0,
        )
        return distributed.gather_rows(rows, values, len(tokens), to_all=to_all)

    @torch.inference_mode()
    def embed_texts(
        self,
        texts: Sequence[str],
        images: tuple[np.ndarray, np.ndarray] | None = None,
        *,
        side: Literal["query", "label"] = "query",
        raw: bool = False,
    ) -> np.ndarray:
        """Free texts (and their image embeddings ``(emb (n, N, D), mask (n, N))``) -> (n, D) float32.

        Tokenised on the fly with the run's maximum length of ``side``; images are used when the model carries
        images on that side; without images, such a model reads the texts as training read items whose images
        are missing (masked slots), not as a text-only model would. ``raw`` (labels only): before the
        normalisation.
        """
        model = self.model
        encode = functools.partial(model.encode_labels, raw=raw) if side == "label" else model.encode_queries
        use_images = model.uses_images(side)
        if use_images and images is None:  # as training encodes an item without images: every slot masked
            shape = (len(texts), self.config.images.num_images)
            images = np.zeros((*shape, model.image_projection.vision_dim), np.float32), np.zeros(shape, bool)
        max_length = self.max_length("lbl" if side == "label" else "tst")
        out = []
        with _eval_mode(model):
            for start in range(0, len(texts), self.batch_size):
                stop = start + self.batch_size
                batch = model.backbone.tokenize(list(texts[start:stop]), max_length)
                extra = ()
                if use_images:
                    extra = (torch.from_numpy(images[0][start:stop]), torch.from_numpy(images[1][start:stop]))
                with autocast(self.precision, self.device):
                    emb = encode(batch["input_ids"].to(self.device), batch["attention_mask"], *extra)
                out.append(emb.float().cpu().numpy())
        return np.concatenate(out) if out else np.zeros((0, model.embedding_dim), dtype=np.float32)


class _eval_mode:
    """Run a block in eval mode and restore the module's previous mode."""

    def __init__(self, module: torch.nn.Module):
        self.module = module

    def __enter__(self) -> None:
        self.was_training = self.module.training
        self.module.eval()

    def __exit__(self, *exc: object) -> None:
        self.module.train(self.was_training)
